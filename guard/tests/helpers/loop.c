/* The benchmark's workload: N tmpfs mount+umount pairs, N getpid calls, or
 * N openat+close pairs of one file (a syscall mix the guard's filter
 * checks but never traps). Prints the elapsed nanoseconds. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int n = argc > 2 ? atoi(argv[2]) : 10000;
    const char *what = argc > 1 ? argv[1] : "getpid";
    int mnt = strcmp(what, "mount") == 0;
    int opn = strcmp(what, "open") == 0;
    struct timespec s, e;
    mkdir("/tmp/bench", 0755);
    clock_gettime(CLOCK_MONOTONIC, &s);
    for (int i = 0; i < n; i++) {
        if (mnt) {
            if (mount("none", "/tmp/bench", "tmpfs", 0, NULL) != 0) { perror("mount"); return 1; }
            if (umount2("/tmp/bench", 0) != 0) { perror("umount"); return 1; }
        } else if (opn) {
            int fd = openat(AT_FDCWD, "/bin/loop", O_RDONLY | O_CLOEXEC);
            if (fd < 0) { perror("openat"); return 1; }
            close(fd);
        } else {
            syscall(SYS_getpid);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &e);
    printf("%lld\n", (long long)(e.tv_sec - s.tv_sec) * 1000000000LL + (e.tv_nsec - s.tv_nsec));
    return 0;
}
