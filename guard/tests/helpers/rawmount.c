/* One raw mount(2) or umount2(2), exactly as given (no path rewriting, which
 * busybox's mount and umount do), printing "name=errno" (0 = succeeded).
 *   rawmount NAME mount SOURCE TARGET FSTYPE [bind]
 *   rawmount NAME umount TARGET
 * Static, so it runs on a busybox rootfs. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>

int main(int argc, char **argv) {
    int r;
    if (argc >= 6 && strcmp(argv[2], "mount") == 0) {
        unsigned long fl = (argc > 6 && strcmp(argv[6], "bind") == 0) ? MS_BIND : 0;
        r = mount(argv[3], argv[4], argv[5], fl, NULL);
    } else if (argc == 4 && strcmp(argv[2], "umount") == 0) {
        r = umount2(argv[3], 0);
    } else {
        fprintf(stderr, "usage: rawmount NAME mount SRC TARGET FSTYPE [bind] | NAME umount TARGET\n");
        return 2;
    }
    printf("%s=%d\n", argv[1], r < 0 ? errno : 0);
    return 0;
}
