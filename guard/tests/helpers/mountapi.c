/* Attempts to get around hull-guard's vetting with the new mount API.
 * Each line printed is "name=errno" (0 = the call succeeded). Run inside a
 * container with CAP_SYS_ADMIN, a read-only /ro, a tmpfs /tmp and a masked
 * /proc/keys. Static, so it runs on a busybox rootfs. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x1
#endif
struct attr { uint64_t set, clr, prop, userns; };

static int fsopen_(const char *t) { return syscall(SYS_fsopen, t, 1); }
static int fsconfig_(int fd, int cmd, const char *k, const void *v, int aux) { return syscall(SYS_fsconfig, fd, cmd, k, v, aux); }
static int fsmount_(int fd) { return syscall(SYS_fsmount, fd, 1, 0); }
static int move_mount_(int from, const char *fp, int to, const char *tp, int fl) { return syscall(SYS_move_mount, from, fp, to, tp, fl); }
static int open_tree_(const char *p, int fl) { return syscall(SYS_open_tree, AT_FDCWD, p, fl | O_CLOEXEC); }
static int setattr_(int dfd, const char *p, int fl, struct attr *a) { return syscall(SYS_mount_setattr, dfd, p, fl, a, sizeof(*a)); }
static int fspick_(const char *p) { return syscall(SYS_fspick, AT_FDCWD, p, 1); }

#define R(name, expr) do { int _r = (expr); printf("%s=%d\n", name, _r < 0 ? errno : 0); fflush(stdout); } while (0)
#define EMPTY 0x1000 /* AT_EMPTY_PATH */
#define REC 0x8000   /* AT_RECURSIVE */

int main(void) {
    int fd;
    R("fsopen_cgroup_v1", fsopen_("cgroup"));
    R("fsopen_proc", fsopen_("proc"));
    R("fsopen_ext4", fsopen_("ext4"));
    /* Allowed: a tmpfs through the new API. */
    fd = fsopen_("tmpfs");
    R("fsopen_tmpfs", fd);
    R("fsconfig_size", fsconfig_(fd, 1 /* SET_STRING */, "size", "1m", 0));
    R("fsconfig_create", fsconfig_(fd, 6 /* CMD_CREATE */, NULL, NULL, 0));
    int m = fsmount_(fd);
    R("fsmount_tmpfs", m);
    mkdir("/tmp/n", 0755);
    R("move_mount_tmpfs", move_mount_(m, "", AT_FDCWD, "/tmp/n", 4 /* F_EMPTY_PATH */));
    int w = open("/tmp/n/f", O_CREAT | O_WRONLY, 0644);
    R("write_new_tmpfs", w);
    close(w);
    /* Reconfigure of the container's own superblock is fine... */
    int p = fspick_("/tmp/n");
    R("fspick_own", p);
    /* ...of an initial one is not. */
    R("fspick_ro_volume", fspick_("/ro"));
    R("fspick_root", fspick_("/"));
    /* mount_setattr: clear read-only of the read-only volume, directly... */
    struct attr clr = { 0, MOUNT_ATTR_RDONLY, 0, 0 };
    R("setattr_ro_volume_rw", setattr_(AT_FDCWD, "/ro", 0, &clr));
    /* ...on a detached clone of it... */
    int t = open_tree_("/ro", 1 /* OPEN_TREE_CLONE */);
    R("open_tree_clone_ro", t);
    R("setattr_clone_rw", setattr_(t, "", EMPTY, &clr));
    mkdir("/tmp/c", 0755);
    R("move_mount_clone", move_mount_(t, "", AT_FDCWD, "/tmp/c", 4));
    R("write_through_clone", open("/tmp/c/f", O_CREAT | O_WRONLY, 0644));
    /* ...and recursively from / (the read-only volume is a submount). */
    R("setattr_recursive_from_root", setattr_(AT_FDCWD, "/", REC, &clr));
    /* Making things tighter is fine. */
    struct attr ro = { MOUNT_ATTR_RDONLY, 0, 0, 0 };
    R("setattr_own_ro", setattr_(AT_FDCWD, "/tmp/n", 0, &ro));
    /* Unmask: move the mask away, clone /proc without its masks. */
    mkdir("/tmp/k", 0755);
    R("move_mount_mask", move_mount_(AT_FDCWD, "/proc/keys", AT_FDCWD, "/tmp/k", 0));
    R("open_tree_proc_nonrecursive", open_tree_("/proc", 1));
    int q = open_tree_("/proc", 1 | REC);
    R("open_tree_proc_recursive", q);
    mkdir("/tmp/q", 0755);
    R("move_mount_proc_clone", move_mount_(q, "", AT_FDCWD, "/tmp/q", 4));
    /* Mount over a masked path or into /proc. */
    int fd2 = fsopen_("tmpfs");
    fsconfig_(fd2, 6, NULL, NULL, 0);
    int m3 = fsmount_(fd2);
    R("move_mount_over_proc_sys", move_mount_(m3, "", AT_FDCWD, "/proc/sys/kernel", 4));
    return 0;
}
