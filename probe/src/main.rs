//! hull-probe: one attempted escape per invocation, reported in one line.

use std::ffi::CString;

mod fsbench;
mod kernel;
mod races;
mod ryuk;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn name(e: i32) -> String {
    match e {
        libc::EPERM => "EPERM".into(),
        libc::EACCES => "EACCES".into(),
        libc::ENOSYS => "ENOSYS".into(),
        libc::EINVAL => "EINVAL".into(),
        libc::EBUSY => "EBUSY".into(),
        libc::ENOENT => "ENOENT".into(),
        libc::EROFS => "EROFS".into(),
        libc::EAFNOSUPPORT => "EAFNOSUPPORT".into(),
        libc::ENODEV => "ENODEV".into(),
        libc::ENOTBLK => "ENOTBLK".into(),
        libc::ESRCH => "ESRCH".into(),
        libc::EBADF => "EBADF".into(),
        libc::ENOEXEC => "ENOEXEC".into(),
        libc::ECONNREFUSED => "ECONNREFUSED".into(),
        libc::ETIMEDOUT => "ETIMEDOUT".into(),
        libc::ENETUNREACH => "ENETUNREACH".into(),
        libc::EIO => "EIO".into(),
        libc::ELOOP => "ELOOP".into(),
        libc::E2BIG => "E2BIG".into(),
        libc::ENXIO => "ENXIO".into(),
        libc::ETXTBSY => "ETXTBSY".into(),
        libc::EEXIST => "EEXIST".into(),
        libc::ENOTDIR => "ENOTDIR".into(),
        libc::EISDIR => "EISDIR".into(),
        e => format!("errno{e}"),
    }
}

/// Reports a syscall result and turns it into the exit status.
fn report(ret: i64, detail: &str) -> i32 {
    if ret < 0 {
        let e = errno();
        println!("DENIED {} {detail}", name(e));
        0
    } else {
        println!("ALLOWED {detail} (ret {ret})");
        1
    }
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

fn arg(args: &[String], i: usize) -> Option<&str> {
    args.get(i).map(String::as_str)
}

/// Says whether the object an attempt names is there, so that a scenario can
/// tell "refused by the wall" from "nothing to act on" (`SETUP exists <p>` /
/// `SETUP missing <p>`, before the attempt's own line).
fn note_path(p: &str) {
    match std::fs::symlink_metadata(p) {
        Ok(m) => {
            use std::os::unix::fs::FileTypeExt;
            let t = m.file_type();
            let kind = if t.is_block_device() {
                "block"
            } else if t.is_char_device() {
                "char"
            } else if t.is_dir() {
                "dir"
            } else if t.is_symlink() {
                "symlink"
            } else {
                "file"
            };
            println!("SETUP exists {p} ({kind})");
        }
        Err(e) => println!("SETUP missing {p}: {e}"),
    }
}

/// Says whether `pid` is visible from here, and what it runs.
fn note_pid(pid: i32) {
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => println!("SETUP visible pid {pid} ({})", comm.trim()),
        Err(e) => println!("SETUP missing pid {pid}: {e}"),
    }
}

fn mount(src: &str, target: &str, fstype: &str, flags: u64, data: &str) -> i64 {
    let (s, t, f, d) = (c(src), c(target), c(fstype), c(data));
    // SAFETY: all pointers are valid NUL-terminated strings for the call.
    unsafe {
        libc::mount(
            if src.is_empty() {
                std::ptr::null()
            } else {
                s.as_ptr()
            },
            t.as_ptr(),
            if fstype.is_empty() {
                std::ptr::null()
            } else {
                f.as_ptr()
            },
            flags,
            if data.is_empty() {
                std::ptr::null()
            } else {
                d.as_ptr().cast()
            },
        ) as i64
    }
}

fn syscall6(nr: i64, a: [i64; 6]) -> i64 {
    // SAFETY: the probe's whole purpose is to issue raw syscalls; arguments
    // are either plain numbers or pointers to live buffers of this process.
    unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) }
}

fn run(args: &[String]) -> i32 {
    let Some(cmd) = arg(args, 1) else {
        eprintln!("usage: hull-probe <test> [args]");
        return 2;
    };
    match cmd {
        "finit-module" => report(
            syscall6(
                libc::SYS_finit_module,
                [0, c("").as_ptr() as i64, 0, 0, 0, 0],
            ),
            "finit_module",
        ),
        "init-module" => {
            let img = [0u8; 64];
            report(
                syscall6(
                    libc::SYS_init_module,
                    [img.as_ptr() as i64, 64, c("").as_ptr() as i64, 0, 0, 0],
                ),
                "init_module",
            )
        }
        "bpf-prog-list" => {
            // BPF_PROG_GET_NEXT_ID: walks the VM's programs if allowed.
            let mut attr = [0u32; 8];
            report(
                syscall6(libc::SYS_bpf, [11, attr.as_mut_ptr() as i64, 32, 0, 0, 0]),
                "bpf(BPF_PROG_GET_NEXT_ID)",
            )
        }
        "open-read" => {
            // Open a path (a device node shipped in an image) for reading and
            // read one byte: DENIED at open (EACCES from nodev, EPERM from the
            // device cgroup program) or at read.
            let Some(p) = arg(args, 2) else { return 2 };
            note_path(p);
            // SAFETY: valid C string.
            let fd = unsafe { libc::open(c(p).as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            if fd < 0 {
                return report(-1, &format!("open({p})"));
            }
            let mut b = [0u8; 1];
            // SAFETY: a valid fd and a 1-byte buffer.
            let r = unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) };
            report(r as i64, &format!("open+read({p})"))
        }
        "perf-event-open" => {
            // struct perf_event_attr with a size of 1: the kernel itself
            // answers E2BIG before any permission check, so a seccomp denial
            // (EPERM) is told apart from the kernel's own refusal.
            let mut attr = [0u8; 128];
            attr[0..4].copy_from_slice(&1u32.to_le_bytes());
            attr[4..8].copy_from_slice(&1u32.to_le_bytes());
            report(
                syscall6(
                    libc::SYS_perf_event_open,
                    [attr.as_mut_ptr() as i64, 0, -1, -1, 0, 0],
                ),
                "perf_event_open",
            )
        }
        "open-by-handle-at" => {
            // struct file_handle { u32 handle_bytes; i32 handle_type; u8 f_handle[]; }
            // handle_bytes 0: the kernel answers EINVAL (before its
            // capability check), a seccomp denial EPERM.
            let mut h = [0u8; 64];
            h[0..4].copy_from_slice(&0u32.to_le_bytes());
            h[4..8].copy_from_slice(&1i32.to_le_bytes());
            report(
                syscall6(
                    libc::SYS_open_by_handle_at,
                    [libc::AT_FDCWD as i64, h.as_mut_ptr() as i64, 0, 0, 0, 0],
                ),
                "open_by_handle_at",
            )
        }
        "bpf-bad-cmd" => {
            // An unknown bpf command: the kernel answers EINVAL, a seccomp
            // denial EPERM.
            let mut attr = [0u32; 8];
            report(
                syscall6(
                    libc::SYS_bpf,
                    [10_000, attr.as_mut_ptr() as i64, 32, 0, 0, 0],
                ),
                "bpf(unknown command)",
            )
        }
        "keyctl" => report(
            // KEYCTL_GET_KEYRING_ID (0) of the session keyring (-3), create=0.
            syscall6(libc::SYS_keyctl, [0, -3, 0, 0, 0, 0]),
            "keyctl(KEYCTL_GET_KEYRING_ID)",
        ),
        "bpf-map-list" => {
            let mut attr = [0u32; 8];
            report(
                syscall6(libc::SYS_bpf, [12, attr.as_mut_ptr() as i64, 32, 0, 0, 0]),
                "bpf(BPF_MAP_GET_NEXT_ID)",
            )
        }
        "vsock" => {
            let cid: u32 = arg(args, 2).and_then(|v| v.parse().ok()).unwrap_or(2);
            let port: u32 = arg(args, 3).and_then(|v| v.parse().ok()).unwrap_or(1024);
            // SAFETY: plain socket(2).
            let fd = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0) };
            if fd < 0 {
                return report(-1, "socket(AF_VSOCK)");
            }
            // The socket exists: that alone is the escape hatch; say so even
            // if nothing answers on the other side.
            println!("ALLOWED socket(AF_VSOCK) = {fd}");
            let mut sa: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
            sa.svm_family = libc::AF_VSOCK as u16;
            sa.svm_cid = cid;
            sa.svm_port = port;
            // SAFETY: sa is a valid sockaddr_vm of the size given.
            let r = unsafe {
                libc::connect(
                    fd,
                    (&sa as *const libc::sockaddr_vm).cast(),
                    std::mem::size_of::<libc::sockaddr_vm>() as u32,
                )
            };
            let _ = report(r as i64, &format!("connect(vsock {cid}:{port})"));
            1
        }
        "mount" => {
            // mount <src> <target> <fstype> [ro|rw|remount-rw|remount-ro|bind] [data]
            let (Some(src), Some(t), Some(ty)) = (arg(args, 2), arg(args, 3), arg(args, 4)) else {
                return 2;
            };
            if src.starts_with('/') {
                note_path(src);
            }
            note_path(t);
            let data = arg(args, 6).unwrap_or("");
            let flags = match arg(args, 5).unwrap_or("") {
                "remount-rw" => libc::MS_REMOUNT,
                "remount-ro" => libc::MS_REMOUNT | libc::MS_RDONLY,
                "bind-remount-rw" => libc::MS_REMOUNT | libc::MS_BIND,
                "bind" => libc::MS_BIND,
                "rbind" => libc::MS_BIND | libc::MS_REC,
                "ro" => libc::MS_RDONLY,
                _ => 0,
            };
            report(
                mount(
                    if src == "-" { "" } else { src },
                    t,
                    if ty == "-" { "" } else { ty },
                    flags,
                    data,
                ),
                &format!("mount({src}, {t}, {ty})"),
            )
        }
        "umount" => {
            let Some(t) = arg(args, 2) else { return 2 };
            note_path(t);
            let detach = arg(args, 3) == Some("detach");
            // SAFETY: valid C string.
            let r =
                unsafe { libc::umount2(c(t).as_ptr(), if detach { libc::MNT_DETACH } else { 0 }) };
            report(
                r as i64,
                &format!("umount2({t}{})", if detach { ", DETACH" } else { "" }),
            )
        }
        "mknod" => {
            let (Some(p), Some(kind)) = (arg(args, 2), arg(args, 3)) else {
                return 2;
            };
            let mode = if kind == "block" {
                libc::S_IFBLK
            } else {
                libc::S_IFCHR
            } | 0o600;
            let major: u32 = arg(args, 4).and_then(|v| v.parse().ok()).unwrap_or(254);
            let minor: u32 = arg(args, 5).and_then(|v| v.parse().ok()).unwrap_or(0);
            // SAFETY: valid C string; makedev is pure.
            let r = unsafe { libc::mknod(c(p).as_ptr(), mode, libc::makedev(major, minor)) };
            report(r as i64, &format!("mknod({p}, {kind} {major}:{minor})"))
        }
        "sethostname" => {
            let n = c("escaped");
            // SAFETY: valid buffer of the given length.
            report(
                unsafe { libc::sethostname(n.as_ptr(), 7) } as i64,
                "sethostname",
            )
        }
        "settimeofday" => {
            let tv = libc::timeval {
                tv_sec: 1_000_000_000,
                tv_usec: 0,
            };
            // SAFETY: valid timeval; null timezone.
            report(
                unsafe { libc::settimeofday(&tv, std::ptr::null()) } as i64,
                "settimeofday",
            )
        }
        "reboot" => {
            // reboot [restart|cad-off]. RESTART in the container's own pid
            // namespace is what the kernel lets a root with CAP_SYS_BOOT in
            // that namespace do (it kills the namespace's init): only a wall
            // in front of the kernel stops it. CAD_OFF is refused by the
            // kernel itself (EINVAL) in any pid namespace but the VM's.
            let (cmd, label) = match arg(args, 2).unwrap_or("restart") {
                "cad-off" => (0_i64, "reboot(CAD_OFF)"),
                _ => (0x0123_4567_i64, "reboot(RESTART)"),
            };
            report(
                syscall6(
                    libc::SYS_reboot,
                    [0xfee1dead_u32 as i64, 672274793, cmd, 0, 0, 0],
                ),
                label,
            )
        }
        "swapon" => {
            // swapon <path>: a file the caller prepared (mkswap), so that the
            // kernel would act on it without the wall.
            let Some(p) = arg(args, 2) else { return 2 };
            note_path(p);
            report(
                syscall6(libc::SYS_swapon, [c(p).as_ptr() as i64, 0, 0, 0, 0, 0]),
                &format!("swapon({p})"),
            )
        }
        "write" => {
            // write <path> [data]: open a file for writing as a shell's `>`
            // does (created if missing, truncated) and write `data`.
            let Some(p) = arg(args, 2) else { return 2 };
            let data = arg(args, 3).unwrap_or("1");
            note_path(p);
            // SAFETY: valid C string.
            let fd = unsafe {
                libc::open(
                    c(p).as_ptr(),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
                    0o644,
                )
            };
            if fd < 0 {
                return report(-1, &format!("open({p}, O_WRONLY|O_CREAT|O_TRUNC)"));
            }
            // SAFETY: a valid fd and a live buffer of the given length.
            let r = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
            let e = errno();
            // SAFETY: fd was opened above and is closed once.
            unsafe { libc::close(fd) };
            if r < 0 {
                // SAFETY: restores errno for report().
                unsafe { *libc::__errno_location() = e };
            }
            report(r as i64, &format!("write({p})"))
        }
        "kexec" => report(
            syscall6(libc::SYS_kexec_load, [0, 0, 0, 0, 0, 0]),
            "kexec_load",
        ),
        "open-tree" => {
            // open_tree(AT_FDCWD, path, OPEN_TREE_CLONE|AT_RECURSIVE)
            let Some(p) = arg(args, 2) else { return 2 };
            report(
                syscall6(
                    libc::SYS_open_tree,
                    [
                        libc::AT_FDCWD as i64,
                        c(p).as_ptr() as i64,
                        1 | 0x8000,
                        0,
                        0,
                        0,
                    ],
                ),
                &format!("open_tree({p})"),
            )
        }
        "fsopen" => {
            let ty = arg(args, 2).unwrap_or("tmpfs");
            report(
                syscall6(libc::SYS_fsopen, [c(ty).as_ptr() as i64, 0, 0, 0, 0, 0]),
                &format!("fsopen({ty})"),
            )
        }
        "fspick" => {
            let Some(p) = arg(args, 2) else { return 2 };
            note_path(p);
            report(
                syscall6(
                    libc::SYS_fspick,
                    [libc::AT_FDCWD as i64, c(p).as_ptr() as i64, 0, 0, 0, 0],
                ),
                &format!("fspick({p})"),
            )
        }
        "mount-setattr-rw" => {
            // Clear MOUNT_ATTR_RDONLY on an existing mount.
            let Some(p) = arg(args, 2) else { return 2 };
            note_path(p);
            let attr: [u64; 4] = [0, 1, 0, 0];
            report(
                syscall6(
                    libc::SYS_mount_setattr,
                    [
                        libc::AT_FDCWD as i64,
                        c(p).as_ptr() as i64,
                        0,
                        attr.as_ptr() as i64,
                        32,
                        0,
                    ],
                ),
                &format!("mount_setattr({p}, clear RDONLY)"),
            )
        }
        "ptrace" => {
            let pid: i32 = arg(args, 2).and_then(|v| v.parse().ok()).unwrap_or(1);
            note_pid(pid);
            // SAFETY: PTRACE_ATTACH takes no pointers.
            report(
                unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) },
                &format!("ptrace(ATTACH {pid})"),
            )
        }
        "kill" => {
            let pid: i32 = arg(args, 2).and_then(|v| v.parse().ok()).unwrap_or(1);
            note_pid(pid);
            // SAFETY: signal 0 only checks permission.
            report(
                unsafe { libc::kill(pid, 0) } as i64,
                &format!("kill({pid}, 0)"),
            )
        }
        "chdir-fd" => {
            // CVE-2024-21626: is any inherited fd a directory outside our root?
            let mut found = Vec::new();
            for fd in 3..64 {
                let link = std::fs::read_link(format!("/proc/self/fd/{fd}"));
                if let Ok(l) = link {
                    found.push(format!("{fd}->{}", l.display()));
                }
            }
            if found.is_empty() {
                println!("DENIED none no inherited fds beyond stdio");
                0
            } else {
                println!("ALLOWED inherited fds: {}", found.join(" "));
                1
            }
        }
        "http" => {
            // http <unix socket> <METHOD> <target> [json body]: one raw
            // request, the way a program in the container would talk to a
            // mounted Docker socket. Prints the status line and the body.
            let (Some(sock), Some(method), Some(target)) =
                (arg(args, 2), arg(args, 3), arg(args, 4))
            else {
                return 2;
            };
            let body = arg(args, 5).unwrap_or("");
            http(sock, method, target, body)
        }
        "tcp-get" => {
            // tcp-get <ip:port> <path>: an HTTP/1.0 GET without any name
            // lookup (the test image's static busybox cannot resolve
            // names); prints the body.
            let (Some(addr), Some(path)) = (arg(args, 2), arg(args, 3)) else {
                return 2;
            };
            tcp_get(addr, path)
        }
        "toctou" => {
            let (Some(mode), Some(n), Some(a), Some(b)) =
                (arg(args, 2), arg(args, 3), arg(args, 4), arg(args, 5))
            else {
                eprintln!("usage: hull-probe toctou remount|umount N ALLOWED FORBIDDEN");
                return 2;
            };
            races::toctou(mode, n.parse().unwrap_or(1000), a, b)
        }
        "tiocsti" => kernel::tiocsti(),
        "mmap-low" => {
            let addr = arg(args, 2)
                .and_then(|v| usize::from_str_radix(v.trim_start_matches("0x"), 16).ok())
                .unwrap_or(0x8000);
            kernel::mmap_low(addr)
        }
        "proc-mem-write" => kernel::proc_mem_write(),
        "exe-race" => {
            let secs = arg(args, 2).and_then(|v| v.parse().ok()).unwrap_or(60);
            races::exe_race(secs, arg(args, 3).unwrap_or("/tmp/stop"))
        }
        "fsbench" => {
            // fsbench <dir> <files> <mib>: not an attempt but the timed
            // file-system load of `cargo xtask bench` (fsbench.rs).
            let (Some(dir), Some(files), Some(mib)) = (
                arg(args, 2),
                arg(args, 3).and_then(|v| v.parse().ok()),
                arg(args, 4).and_then(|v| v.parse().ok()),
            ) else {
                eprintln!("usage: hull-probe fsbench <dir> <files> <mib>");
                return 2;
            };
            fsbench::run(dir, files, mib)
        }
        // Not an attempt: testcontainers' reaper for the client-compat
        // scenario (ryuk.rs).
        "ryuk" => ryuk::run(),
        _ => {
            eprintln!("unknown test {cmd}");
            2
        }
    }
}

/// One HTTP/1.1 request on a unix socket. `body` `@<file>` sends that
/// file's bytes as a tar (a build context). A connection or write that
/// fails is FAILED (exit 2): no answer is not a refusal.
fn tcp_get(addr: &str, path: &str) -> i32 {
    use std::io::{Read, Write};
    let Ok(sa) = addr.parse::<std::net::SocketAddr>() else {
        println!("FAILED {addr} is not ip:port");
        return 2;
    };
    let mut s = match std::net::TcpStream::connect_timeout(&sa, std::time::Duration::from_secs(20))
    {
        Ok(s) => s,
        Err(e) => {
            println!("FAILED connect {addr}: {e}");
            return 1;
        }
    };
    let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut resp = Vec::new();
    if let Err(e) = s
        .write_all(req.as_bytes())
        .and_then(|()| s.read_to_end(&mut resp))
    {
        println!("FAILED {addr}: {e}");
        return 1;
    }
    let text = String::from_utf8_lossy(&resp);
    match text.split_once("\r\n\r\n") {
        Some((_, body)) => {
            println!("{body}");
            0
        }
        None => {
            println!("FAILED no HTTP answer from {addr}");
            1
        }
    }
}

fn http(sock: &str, method: &str, target: &str, body: &str) -> i32 {
    use std::io::{Read, Write};
    let (bytes, ctype) = match body.strip_prefix('@') {
        Some(file) => match std::fs::read(file) {
            Ok(b) => (b, "application/x-tar"),
            Err(e) => {
                println!("FAILED read {file}: {e}");
                return 2;
            }
        },
        None => (body.as_bytes().to_vec(), "application/json"),
    };
    let mut s = match std::os::unix::net::UnixStream::connect(sock) {
        Ok(s) => s,
        Err(e) => {
            println!("FAILED connect {sock}: {e}");
            return 2;
        }
    };
    // dockerd refuses a push without registry credentials (400): send the
    // empty ones, as the docker CLI does, so that a push is a request
    // dockerd would carry out.
    let auth = if target.contains("/push") {
        "X-Registry-Auth: e30=\r\n"
    } else {
        ""
    };
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: docker\r\n{auth}Content-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        bytes.len()
    );
    if let Err(e) = s
        .write_all(head.as_bytes())
        .and_then(|()| s.write_all(&bytes))
    {
        println!("FAILED write: {e}");
        return 2;
    }
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp);
    let status = text.lines().next().unwrap_or("").to_string();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    let code: u32 = status
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    if code == 0 {
        println!("FAILED no HTTP status in the answer: {status:?}");
        return 2;
    }
    let verdict = if (200..300).contains(&code) || code == 101 {
        "ALLOWED"
    } else {
        "DENIED"
    };
    println!("{verdict} {status}");
    println!("{body}");
    if verdict == "ALLOWED" {
        1
    } else {
        0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    std::process::exit(run(&args));
}
