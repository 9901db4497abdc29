//! The container's device cgroup program (cgroup v2 has no `devices.allow`
//! file: the kernel asks a BPF_PROG_TYPE_CGROUP_DEVICE program instead).
//!
//! Why: an image can carry device nodes (`b 254 0`, the VM's disk) that
//! dockerd unpacks as the VM's root. Every mount hull gives a container is
//! nodev (see `rootfs`), so opening such a node fails with EACCES; this
//! program is the second wall: whatever mount a node sits on, opening (or
//! creating) any device outside the safe set fails with EPERM for every
//! process of the container's cgroup and its descendants.
//!
//! Why hand-assembled and not a crate (aya, libbpf-rs): the program is a
//! dozen fixed instructions, needs no maps, relocations, BTF or ELF loading,
//! and those crates would bring a BPF toolchain (clang) or a large
//! dependency into the build for a couple of syscalls.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::error::{Error, Result};

/// `bpf_cgroup_dev_ctx.access_type`'s low half: the node's type.
const DEVCG_DEV_CHAR: i32 = 2;

const BPF_PROG_LOAD: i64 = 5;
const BPF_PROG_ATTACH: i64 = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;

/// One allowed character device: `minor: None` is any minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    pub major: u32,
    pub minor: Option<u32>,
}

/// The safe set (the nodes `rootfs` makes, plus the ptys and console of the
/// container's own devpts). Block devices: none.
pub fn safe_set(want_fuse: bool) -> Vec<Allowed> {
    let mut v: Vec<Allowed> = crate::hardening::SAFE_DEVICES
        .iter()
        .filter(|d| !d.on_request || (d.path == "/dev/fuse" && want_fuse))
        .map(|d| Allowed {
            major: d.major as u32,
            minor: Some(d.minor as u32),
        })
        .collect();
    // /dev/console (5:1) and /dev/ptmx (5:2); the console given to a
    // terminal container is one of its own pts.
    v.push(Allowed {
        major: 5,
        minor: Some(1),
    });
    v.push(Allowed {
        major: 5,
        minor: Some(2),
    });
    // UNIX98 pty slaves: majors 136..=143, any minor.
    for major in 136..=143 {
        v.push(Allowed { major, minor: None });
    }
    v
}

/// One eBPF instruction, encoded as the kernel reads it (`struct bpf_insn`).
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let o = off.to_le_bytes();
    let i = imm.to_le_bytes();
    [code, dst | (src << 4), o[0], o[1], i[0], i[1], i[2], i[3]]
}

// Opcodes (class | op | source).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU64_AND_K: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

/// The program: allow (return 1) a character device in `allowed`, deny
/// (return 0) everything else: every block device, every other char device,
/// for any access (read, write, mknod).
pub fn assemble(allowed: &[Allowed]) -> Vec<[u8; 8]> {
    // r1 = ctx: { u32 access_type; u32 major; u32 minor; }
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0), // r2 = access_type
        insn(ALU64_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 4, 0), // r3 = major
        insn(LDX_MEM_W, 4, 1, 8, 0), // r4 = minor
    ];
    // Jumps to DENY/ALLOW are patched once their addresses are known.
    let to_deny = p.len();
    p.push(insn(JNE_K, 2, 0, 0, DEVCG_DEV_CHAR));
    let mut to_allow = Vec::new();
    for a in allowed {
        match a.minor {
            Some(minor) => {
                // if major != M skip the next test; if minor == m allow.
                p.push(insn(JNE_K, 3, 0, 1, a.major as i32));
                to_allow.push(p.len());
                p.push(insn(JEQ_K, 4, 0, 0, minor as i32));
            }
            None => {
                to_allow.push(p.len());
                p.push(insn(JEQ_K, 3, 0, 0, a.major as i32));
            }
        }
    }
    let deny = p.len();
    p.push(insn(MOV64_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    let allow = p.len();
    p.push(insn(MOV64_K, 0, 0, 0, 1));
    p.push(insn(EXIT, 0, 0, 0, 0));
    patch(&mut p, to_deny, deny);
    for i in to_allow {
        patch(&mut p, i, allow);
    }
    p
}

/// Point the jump at `at` to `target` (offsets count from the next insn).
fn patch(p: &mut [[u8; 8]], at: usize, target: usize) {
    let off = (target as i64 - at as i64 - 1) as i16;
    let b = off.to_le_bytes();
    p[at][2] = b[0];
    p[at][3] = b[1];
}

fn bpf(cmd: i64, attr: &mut [u8; 128]) -> std::io::Result<i64> {
    // SAFETY: `attr` is a zeroed 128-byte `union bpf_attr` with only the
    // fields of `cmd` set; the kernel reads (and for PROG_LOAD writes the
    // log into the buffer named there, none here) no more than its size.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len() as u32) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn put_u32(a: &mut [u8; 128], off: usize, v: u32) {
    a[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(a: &mut [u8; 128], off: usize, v: u64) {
    a[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Load the program (the kernel verifies it).
pub fn load(allowed: &[Allowed]) -> std::io::Result<OwnedFd> {
    let prog: Vec<u8> = assemble(allowed).concat();
    let license = c"GPL";
    let mut attr = [0u8; 128];
    put_u32(&mut attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE); // prog_type
    put_u32(&mut attr, 4, (prog.len() / 8) as u32); // insn_cnt
    put_u64(&mut attr, 8, prog.as_ptr() as u64); // insns
    put_u64(&mut attr, 16, license.as_ptr() as u64); // license
    attr[48..48 + 9].copy_from_slice(b"hull_devs"); // prog_name
    put_u32(&mut attr, 68, BPF_CGROUP_DEVICE); // expected_attach_type
    let fd = bpf(BPF_PROG_LOAD, &mut attr)?;
    // SAFETY: BPF_PROG_LOAD returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Attach `prog` to the cgroup directory `cg`, with no flags: no descendant
/// cgroup can attach a program of its own that would widen it.
pub fn attach(prog: &OwnedFd, cg: &Path) -> std::io::Result<()> {
    let dir = std::fs::File::open(cg)?;
    let mut attr = [0u8; 128];
    put_u32(&mut attr, 0, dir.as_raw_fd() as u32); // target_fd
    put_u32(&mut attr, 4, prog.as_raw_fd() as u32); // attach_bpf_fd
    put_u32(&mut attr, 8, BPF_CGROUP_DEVICE); // attach_type
    bpf(BPF_PROG_ATTACH, &mut attr).map(|_| ())
}

/// Load and attach the safe set to the container's cgroup; any failure fails
/// the create (fail closed: without it, a node on a mount that is not nodev
/// would be the VM's device).
pub fn confine(cg: &Path, want_fuse: bool) -> Result<()> {
    let prog = load(&safe_set(want_fuse)).map_err(|e| {
        Error::Other(format!(
            "device cgroup program: bpf(BPF_PROG_LOAD) failed: {e}; hull refuses to create a container without it"
        ))
    })?;
    attach(&prog, cg).map_err(|e| {
        Error::Other(format!(
            "device cgroup program: attaching it to {} failed: {e}; hull refuses to create a container without it",
            cg.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_land_on_allow_and_deny() {
        let p = assemble(&[
            Allowed {
                major: 1,
                minor: Some(3),
            },
            Allowed {
                major: 136,
                minor: None,
            },
        ]);
        // 4 loads, type check, 2 insns for 1:3, 1 for 136:*, deny (2), allow (2).
        assert_eq!(p.len(), 4 + 1 + 2 + 1 + 2 + 2);
        let off = |i: usize| i16::from_le_bytes([p[i][2], p[i][3]]) as i64;
        let deny = 8;
        let allow = 10;
        assert_eq!(4 + 1 + off(4), deny);
        assert_eq!(6 + 1 + off(6), allow);
        assert_eq!(7 + 1 + off(7), allow);
        // JNE on the major skips only the minor test.
        assert_eq!(off(5), 1);
        assert_eq!(p[deny as usize][4], 0);
        assert_eq!(p[allow as usize][4], 1);
    }

    /// Host tier: the program really is what stops a device open. A char
    /// node outside the safe set (1:11, kmsg) made in a temporary folder
    /// opens before; in a cgroup carrying the program it fails with EPERM,
    /// while a safe node (1:3, null) still opens.
    #[test]
    fn the_program_denies_devices_outside_the_safe_set() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root (bpf, mknod, cgroups)"
        );
        let (root, _) = crate::cgroup::v2_root().expect(
            "this test needs a cgroup v2 hierarchy (/sys/fs/cgroup or /sys/fs/cgroup/unified)",
        );
        let dir = tempfile::tempdir().unwrap();
        let mk = |name: &str, minor: u32| {
            let p = dir.path().join(name);
            nix::sys::stat::mknod(
                &p,
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::from_bits_truncate(0o600),
                libc::makedev(1, minor),
            )
            .unwrap();
            p
        };
        let kmsg = mk("kmsg", 11);
        let null = mk("null", 3);
        // The attempt is real: outside the cgroup the node opens.
        std::fs::File::open(&kmsg).expect("the test node must open outside the cgroup");
        let cg = root.join(format!("hull-devcg-test-{}", std::process::id()));
        std::fs::create_dir(&cg).unwrap();
        confine(&cg, false).unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        // SAFETY: the child only writes files, opens two nodes and _exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let errno = |p: &Path| match std::fs::File::open(p) {
                    Ok(_) => 0,
                    Err(e) => e.raw_os_error().unwrap_or(-1),
                };
                let joined = std::fs::write(cg.join("cgroup.procs"), "0").is_ok();
                let out = format!("{} {} {}", joined, errno(&kmsg), errno(&null));
                let _ = nix::unistd::write(&w, out.as_bytes());
                // SAFETY: leave the forked test process at once.
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(w);
                nix::sys::wait::waitpid(child, None).unwrap();
                let mut s = String::new();
                use std::io::Read;
                std::fs::File::from(r).read_to_string(&mut s).unwrap();
                let _ = std::fs::remove_dir(&cg);
                assert_eq!(
                    s,
                    format!("true {} 0", libc::EPERM),
                    "joined, kmsg errno, null errno"
                );
            }
        }
    }
}
