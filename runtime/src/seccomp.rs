//! The OCI seccomp profile, translated to libseccomp, plus what hull always adds:
//!
//! * the mount family goes to hull-guard (SCMP_ACT_NOTIFY) whenever the profile
//!   would let it through — the guard, not the caller's memory, decides;
//! * `socket(AF_VSOCK, ...)` fails with EPERM (the VM's vsock is the engine's
//!   door to the host; containers never get it), and on 32-bit x86
//!   `socketcall(SYS_SOCKET, ...)` fails too, because its arguments sit in memory
//!   a filter cannot read;
//! * hull's deny list (what reaches global kernel state: bpf, perf_event_open,
//!   open_by_handle_at, the keyring calls, module loading, ...) is laid over
//!   **whatever profile** the bundle carries: a profile may narrow the
//!   filter, never widen it past the list (a custom profile that allows every
//!   syscall still gets EPERM / ENOSYS for these);
//! * bundles with no profile (`--privileged`, `seccomp=unconfined`) still get a
//!   filter: allow by default, plus the deny list.

use std::os::fd::{FromRawFd, OwnedFd};
use std::str::FromStr;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};

use crate::cli::GuardMode;
use crate::error::{Error, Result};

pub const MOUNT_FAMILY: &[&str] = &[
    "mount",
    "umount",
    "umount2",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
];

const AF_VSOCK: u64 = 40;
const SYS_SOCKET: u64 = 1;
const I386_SOCKET: i32 = 359;
const I386_SOCKETCALL: i32 = 102;

/// Denied with EPERM in every container, whatever its profile says.
pub const DENY_LIST: &[&str] = &[
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "stime",
    "iopl",
    "ioperm",
    "syslog",
    "quotactl",
    "nfsservctl",
    "lookup_dcookie",
    "uselib",
    "open_by_handle_at",
    "name_to_handle_at",
    "bpf",
    "perf_event_open",
    "vm86",
    "vm86old",
    "_sysctl",
];

fn action(a: LinuxSeccompAction, errno: Option<u32>, default_errno: u32) -> ScmpAction {
    let e = errno.unwrap_or(default_errno) as i32;
    match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(e),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(e as u16),
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    }
}

fn allows(a: ScmpAction) -> bool {
    matches!(a, ScmpAction::Allow | ScmpAction::Log | ScmpAction::Notify)
}

/// One argument condition (kept in our own form: libseccomp's is opaque).
#[derive(Debug, Clone, Copy)]
struct Cond {
    index: u32,
    op: ScmpCompareOp,
    value: u64,
}

impl Cond {
    fn scmp(&self) -> ScmpArgCompare {
        ScmpArgCompare::new(self.index, self.op, self.value)
    }
}

fn cmp(index: usize, op: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> Cond {
    let index = index as u32;
    let op = match op {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        // OCI puts the mask in `value` and the expected value in `valueTwo`.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            return Cond {
                index,
                op: ScmpCompareOp::MaskedEqual(value),
                value: value_two.unwrap_or(0),
            }
        }
    };
    Cond { index, op, value }
}

fn se(e: impl std::fmt::Display) -> Error {
    Error::Seccomp(e.to_string())
}

/// One rule of the translated profile.
struct Rule {
    name: String,
    action: ScmpAction,
    conds: Vec<Cond>,
    /// The same argument index twice: libseccomp cannot AND them in one rule,
    /// so (as runc does) each becomes its own rule.
    split: bool,
}

/// Build the filter for a container process. Returns the context; `load`
/// applies it.
pub fn build(profile: Option<&LinuxSeccomp>, guard: GuardMode) -> Result<ScmpFilterContext> {
    let (default, mut rules, arches) = match profile {
        Some(p) => translate(p)?,
        None => (ScmpAction::Allow, Vec::new(), default_arches()),
    };
    // The profile's own rules for the listed calls (allowed, conditional,
    // or denied with another action) give way to the list's.
    rules.retain(|r| {
        !DENY_LIST.contains(&r.name.as_str()) && !DENY_ENOSYS.contains(&r.name.as_str())
    });
    rules.extend(deny_rules());
    let main: Vec<ScmpArch> = arches
        .iter()
        .copied()
        .filter(|a| *a != ScmpArch::X86)
        .collect();
    let ctx = build_ctx(default, &rules, &main, guard, false)?;
    if arches.contains(&ScmpArch::X86) {
        // Deliberately stricter than Docker: 32-bit x86 syscalls are not in
        // the filter at all (they hit the bad-arch action and the process is
        // killed). On i386, socket(2) is reached through socketcall(2), whose
        // arguments sit in memory no filter can read, so AF_VSOCK could not be
        // kept out; libseccomp also cannot express the AF_VSOCK rule there.
        tracing::debug!("32-bit x86 syscalls are not allowed in hull containers");
    }
    Ok(ctx)
}

fn build_ctx(
    default: ScmpAction,
    rules: &[Rule],
    arches: &[ScmpArch],
    guard: GuardMode,
    x86: bool,
) -> Result<ScmpFilterContext> {
    let mut ctx = ScmpFilterContext::new(default).map_err(se)?;
    for a in arches {
        ctx.add_arch(*a).map_err(se)?;
    }
    if x86 {
        ctx.remove_arch(ScmpArch::native()).map_err(se)?;
    }
    // libseccomp sets no_new_privs on load by default; that is the bundle's
    // choice (setuid programs in the container rely on it being off), and the
    // runtime sets it itself when asked.
    ctx.set_ctl_nnp(false).map_err(se)?;
    // The profile's own rules, except the syscalls hull rewrites below.
    let mut mount_allowed: Vec<&str> = Vec::new();
    let mut socket_rules: Vec<Rule> = Vec::new();
    let mut socketcall_rules: Vec<&Rule> = Vec::new();
    for r in rules {
        if MOUNT_FAMILY.contains(&r.name.as_str()) {
            if allows(r.action) && !mount_allowed.contains(&r.name.as_str()) {
                mount_allowed.push(r.name.as_str());
            }
            continue;
        }
        if r.name == "socket" {
            // Docker 23+ profiles allow socket only with `family != AF_VSOCK`:
            // that condition is exactly what hull enforces below, so it is
            // dropped here and the rule narrowed the same way as an
            // unconditional one (libseccomp refuses NE next to the EQ deny).
            let conds: Vec<Cond> = r
                .conds
                .iter()
                .filter(|c| {
                    !(c.index == 0 && c.op == ScmpCompareOp::NotEqual && c.value == AF_VSOCK)
                })
                .map(|c| Cond {
                    index: c.index,
                    op: c.op,
                    value: c.value,
                })
                .collect();
            socket_rules.push(Rule {
                name: r.name.clone(),
                action: r.action,
                split: r.split && conds.len() > 1,
                conds,
            });
            continue;
        }
        if x86 && r.name == "socketcall" {
            socketcall_rules.push(r);
            continue;
        }
        add(&mut ctx, r)?;
    }
    // Mount family: notify (or deny) wherever the profile would have allowed it.
    for name in MOUNT_FAMILY {
        let allowed = mount_allowed.contains(name) || allows(default);
        let act = match (allowed, guard) {
            (false, _) => ScmpAction::Errno(libc::EPERM),
            (true, GuardMode::Required) => ScmpAction::Notify,
            (true, GuardMode::Deny) => ScmpAction::Errno(libc::EPERM),
            (true, GuardMode::None) => ScmpAction::Allow,
        };
        if let Ok(sc) = ScmpSyscall::from_name(name) {
            put(&mut ctx, act, sc, &[])?;
        }
    }
    // socket: the profile's rules, each narrowed to "not AF_VSOCK".
    let sock = if x86 {
        // i386's direct socket(2); by name libseccomp gives a socketcall pseudo-number.
        ScmpSyscall::from_raw_syscall(I386_SOCKET)
    } else {
        ScmpSyscall::from_name("socket").map_err(se)?
    };
    let vsock_deny = ScmpAction::Errno(libc::EPERM);
    // The deny goes in first: libseccomp refuses it once an overlapping allow
    // exists. Without it the VM's vsock could be open: fail closed.
    put_x(
        x86,
        &mut ctx,
        vsock_deny,
        sock,
        &[ScmpArgCompare::new(0, ScmpCompareOp::Equal, AF_VSOCK)],
    )
    .map_err(|e| {
        Error::Seccomp(format!(
            "cannot add the rule denying socket(AF_VSOCK): {e}; hull refuses to create the container without it"
        ))
    })?;
    for r in &socket_rules {
        let on_arg0: Vec<&Cond> = r.conds.iter().filter(|c| c.index == 0).collect();
        if on_arg0.is_empty() {
            // "family != AF_VSOCK" as two disjoint ranges: libseccomp refuses
            // a NE rule next to the EQ rule that denies AF_VSOCK below.
            for not_vsock in [
                ScmpArgCompare::new(0, ScmpCompareOp::Less, AF_VSOCK),
                ScmpArgCompare::new(0, ScmpCompareOp::Greater, AF_VSOCK),
            ] {
                if r.split {
                    for c in &r.conds {
                        put_x(x86, &mut ctx, r.action, sock, &[c.scmp(), not_vsock])?;
                    }
                } else {
                    let mut conds: Vec<ScmpArgCompare> = r.conds.iter().map(Cond::scmp).collect();
                    conds.push(not_vsock);
                    put_x(x86, &mut ctx, r.action, sock, &conds)?;
                }
            }
        } else if allows(r.action) {
            // A rule that already pins the family: keep it unless it can match AF_VSOCK.
            let pins_vsock = on_arg0
                .iter()
                .any(|c| c.op == ScmpCompareOp::Equal && c.value == AF_VSOCK);
            let pins_other = on_arg0
                .iter()
                .all(|c| c.op == ScmpCompareOp::Equal && c.value != AF_VSOCK);
            if !pins_vsock && pins_other {
                add_socket(&mut ctx, r, sock, x86)?;
            } else if !pins_vsock {
                tracing::warn!(
                    "dropping a conditional socket rule hull cannot narrow away from AF_VSOCK"
                );
            }
        } else {
            add_socket(&mut ctx, r, sock, x86)?;
        }
    }
    if allows(default) {
        put_x(
            x86,
            &mut ctx,
            ScmpAction::Allow,
            sock,
            &[ScmpArgCompare::new(0, ScmpCompareOp::Less, AF_VSOCK)],
        )?;
        put_x(
            x86,
            &mut ctx,
            ScmpAction::Allow,
            sock,
            &[ScmpArgCompare::new(0, ScmpCompareOp::Greater, AF_VSOCK)],
        )?;
    }
    // 32-bit x86 socketcall(SYS_SOCKET, args*): the family is behind a pointer.
    if x86 {
        let sc = ScmpSyscall::from_raw_syscall(I386_SOCKETCALL);
        put_x(
            true,
            &mut ctx,
            vsock_deny,
            sc,
            &[ScmpArgCompare::new(0, ScmpCompareOp::Equal, SYS_SOCKET)],
        )?;
        for r in socketcall_rules {
            if r.conds.is_empty() && allows(r.action) {
                put_x(
                    true,
                    &mut ctx,
                    r.action,
                    sc,
                    &[ScmpArgCompare::new(0, ScmpCompareOp::Greater, SYS_SOCKET)],
                )?;
            } else {
                add_socket(&mut ctx, r, sc, true)?;
            }
        }
        if allows(default) {
            put_x(
                true,
                &mut ctx,
                ScmpAction::Allow,
                sc,
                &[ScmpArgCompare::new(0, ScmpCompareOp::Greater, SYS_SOCKET)],
            )?;
        }
    }
    Ok(ctx)
}

/// Add one rule unless it only restates the default action (libseccomp
/// refuses those).
fn put(
    ctx: &mut ScmpFilterContext,
    act: ScmpAction,
    sc: ScmpSyscall,
    conds: &[ScmpArgCompare],
) -> Result<()> {
    put_x(false, ctx, act, sc, conds)
}

/// `exact`: add the rule for this very syscall number, with no rewriting.
fn put_x(
    exact: bool,
    ctx: &mut ScmpFilterContext,
    act: ScmpAction,
    sc: ScmpSyscall,
    conds: &[ScmpArgCompare],
) -> Result<()> {
    if act == ctx.get_act_default().map_err(se)? {
        return Ok(());
    }
    let r = match (conds.is_empty(), exact) {
        (true, false) => ctx.add_rule(act, sc).map(|_| ()),
        (true, true) => ctx.add_rule_exact(act, sc).map(|_| ()),
        (false, false) => ctx.add_rule_conditional(act, sc, conds).map(|_| ()),
        (false, true) => ctx.add_rule_conditional_exact(act, sc, conds).map(|_| ()),
    };
    r.map_err(|e| Error::Seccomp(format!("rule for syscall {}: {e}", sc.as_raw_syscall())))
}

/// A profile socket rule kept as it is (it already pins a family).
fn add_socket(ctx: &mut ScmpFilterContext, r: &Rule, sock: ScmpSyscall, exact: bool) -> Result<()> {
    let conds: Vec<ScmpArgCompare> = r.conds.iter().map(Cond::scmp).collect();
    if r.split {
        for c in &conds {
            put_x(exact, ctx, r.action, sock, std::slice::from_ref(c))?;
        }
        Ok(())
    } else {
        put_x(exact, ctx, r.action, sock, &conds)
    }
}

fn add(ctx: &mut ScmpFilterContext, r: &Rule) -> Result<()> {
    let sc = match ScmpSyscall::from_name(&r.name) {
        Ok(s) => s,
        Err(_) => {
            tracing::debug!(syscall = %r.name, "unknown to libseccomp; skipped");
            return Ok(());
        }
    };
    let res = if r.conds.is_empty() {
        ctx.add_rule(r.action, sc).map(|_| ())
    } else if r.split {
        r.conds.iter().try_for_each(|c| {
            ctx.add_rule_conditional(r.action, sc, &[c.scmp()])
                .map(|_| ())
        })
    } else {
        let conds: Vec<ScmpArgCompare> = r.conds.iter().map(Cond::scmp).collect();
        ctx.add_rule_conditional(r.action, sc, &conds).map(|_| ())
    };
    match res {
        Ok(_) => Ok(()),
        // A rule whose action equals the default is refused by libseccomp; harmless.
        Err(e) if r.action == ctx.get_act_default().map_err(se)? => {
            tracing::debug!(syscall = %r.name, "rule equals the default action: {e}");
            Ok(())
        }
        Err(e) => Err(Error::Seccomp(format!("rule for {}: {e}", r.name))),
    }
}

type Translated = (ScmpAction, Vec<Rule>, Vec<ScmpArch>);

fn translate(p: &LinuxSeccomp) -> Result<Translated> {
    let default_errno = p.default_errno_ret().unwrap_or(libc::EPERM as u32);
    let default = action(p.default_action(), None, default_errno);
    let mut arches = Vec::new();
    for a in p.architectures().clone().unwrap_or_default() {
        let name = serde_json::to_value(a)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        match ScmpArch::from_str(&name) {
            Ok(arch) => arches.push(arch),
            Err(_) => tracing::warn!("unknown seccomp architecture {name}; skipped"),
        }
    }
    let mut rules = Vec::new();
    for s in p.syscalls().clone().unwrap_or_default() {
        let act = action(s.action(), s.errno_ret(), default_errno);
        let args = s.args().clone().unwrap_or_default();
        let conds: Vec<Cond> = args
            .iter()
            .map(|a| cmp(a.index(), a.op(), a.value(), a.value_two()))
            .collect();
        let mut idx: Vec<usize> = args.iter().map(|a| a.index()).collect();
        idx.sort_unstable();
        let split = idx.windows(2).any(|w| w[0] == w[1]);
        for n in s.names() {
            rules.push(Rule {
                name: n.clone(),
                action: act,
                conds: conds.clone(),
                split,
            });
        }
    }
    Ok((default, rules, arches))
}

/// Denied with ENOSYS in every container: as if the kernel had no keyrings
/// (the keyring is not namespaced), which runtimes inside the container
/// (Docker-in-Docker's runc joining a session keyring) treat as "skip",
/// where EPERM is fatal to them.
pub const DENY_ENOSYS: &[&str] = &["add_key", "request_key", "keyctl"];

/// The deny list as rules (unconditional).
fn deny_rules() -> Vec<Rule> {
    DENY_LIST
        .iter()
        .map(|n| (n, libc::EPERM))
        .chain(DENY_ENOSYS.iter().map(|n| (n, libc::ENOSYS)))
        .map(|(n, e)| Rule {
            name: n.to_string(),
            action: ScmpAction::Errno(e),
            conds: vec![],
            split: false,
        })
        .collect()
}

fn default_arches() -> Vec<ScmpArch> {
    vec![ScmpArch::X8664, ScmpArch::X86, ScmpArch::X32]
}

/// Load the filter into this process; return the notify listener if the filter has one.
pub fn load(ctx: &ScmpFilterContext, guard: GuardMode) -> Result<Option<OwnedFd>> {
    ctx.load()
        .map_err(|e| Error::Seccomp(format!("load: {e}")))?;
    if guard != GuardMode::Required {
        return Ok(None);
    }
    match ctx.get_notify_fd() {
        // SAFETY: libseccomp hands us the listener fd it got from the kernel; we own it now.
        Ok(fd) => Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) })),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Load the filter in a forked child (with no_new_privs, so no privilege
    /// is needed) and report what a few calls return there.
    fn probe(profile: Option<&LinuxSeccomp>, guard: GuardMode) -> (i32, i32, i32) {
        let (r, w) = nix::unistd::pipe().unwrap();
        // SAFETY: the child only makes raw syscalls and _exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
                let ctx = build(profile, guard).unwrap();
                crate::sys::set_no_new_privs().unwrap();
                let listener = load(&ctx, guard).unwrap();
                drop(listener); // no guard: trapped calls must fail, not run
                                // SAFETY: plain syscalls with integer arguments.
                let vs = unsafe { libc::socket(40, libc::SOCK_STREAM, 0) };
                let vsock = if vs < 0 { errno() } else { 0 };
                // SAFETY: as above.
                let us = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
                let unix = if us < 0 { errno() } else { 0 };
                // SAFETY: umount2 of a path that is not a mount point.
                let um = unsafe { libc::umount2(c"/nonexistent-hull".as_ptr(), 0) };
                let mnt = if um < 0 { errno() } else { 0 };
                let out = [vsock, unix, mnt].map(|v| v.to_string()).join(" ");
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
                let v: Vec<i32> = s.split_whitespace().map(|x| x.parse().unwrap()).collect();
                (v[0], v[1], v[2])
            }
        }
    }

    fn docker_like() -> LinuxSeccomp {
        serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["socket", "umount2", "close", "write", "exit_group", "exit", "mmap", "munmap",
                                    "brk", "rt_sigprocmask", "rt_sigaction", "sigaltstack", "futex", "getpid",
                                    "read", "madvise", "gettid", "rt_sigreturn"],
                          "action": "SCMP_ACT_ALLOW"}]
        }))
        .unwrap()
    }

    #[test]
    fn vsock_is_denied_and_other_sockets_allowed() {
        let p = docker_like();
        let (vsock, unix, _) = probe(Some(&p), GuardMode::None);
        assert_eq!(vsock, libc::EPERM);
        assert_eq!(unix, 0);
        // Also without any profile (--privileged).
        let (vsock, unix, _) = probe(None, GuardMode::None);
        assert_eq!(vsock, libc::EPERM);
        assert_eq!(unix, 0);
    }

    /// Docker 23+ profiles: `socket` allowed only with `family != AF_VSOCK`
    /// (and absent from the big allow list). Ordinary sockets must still work.
    #[test]
    fn docker_26_socket_rule_keeps_other_sockets_working() {
        let mut p = docker_like();
        let mut sc = p.syscalls().clone().unwrap();
        let names: Vec<String> = sc[0]
            .names()
            .iter()
            .filter(|n| *n != "socket")
            .cloned()
            .collect();
        sc[0].set_names(names);
        let rule: oci_spec::runtime::LinuxSyscall = serde_json::from_value(serde_json::json!({
            "names": ["socket"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]
        }))
        .unwrap();
        sc.push(rule);
        p.set_syscalls(Some(sc));
        let (vsock, unix, _) = probe(Some(&p), GuardMode::None);
        assert_eq!(vsock, libc::EPERM);
        assert_eq!(unix, 0, "socket(AF_UNIX) refused under a Docker 26 profile");
    }

    #[test]
    fn trapped_mount_calls_fail_with_enosys_when_no_guard_holds_the_listener() {
        let p = docker_like();
        let (_, _, mnt) = probe(Some(&p), GuardMode::Required);
        assert_eq!(mnt, libc::ENOSYS);
        let (_, _, mnt) = probe(None, GuardMode::Required);
        assert_eq!(mnt, libc::ENOSYS);
        // --guard=deny: EPERM straight from the filter.
        let (_, _, mnt) = probe(Some(&p), GuardMode::Deny);
        assert_eq!(mnt, libc::EPERM);
    }

    #[test]
    fn denied_mount_family_stays_denied() {
        // A profile that does not allow umount2 keeps it denied (no notify).
        let mut p = docker_like();
        let mut sc = p.syscalls().clone().unwrap();
        let names: Vec<String> = sc[0]
            .names()
            .iter()
            .filter(|n| *n != "umount2")
            .cloned()
            .collect();
        sc[0].set_names(names);
        p.set_syscalls(Some(sc));
        let (_, _, mnt) = probe(Some(&p), GuardMode::Required);
        assert_eq!(mnt, libc::EPERM);
    }

    /// A profile allowing every syscall it names (bpf and keyctl included)
    /// still gets hull's deny list: EPERM for bpf, ENOSYS for keyctl.
    #[test]
    fn a_widening_profile_still_gets_the_deny_list() {
        let p: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["bpf", "keyctl", "perf_event_open"], "action": "SCMP_ACT_ALLOW"}]
        }))
        .unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        // SAFETY: the child only makes raw syscalls and _exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
                let ctx = build(Some(&p), GuardMode::None).unwrap();
                crate::sys::set_no_new_privs().unwrap();
                load(&ctx, GuardMode::None).unwrap();
                let mut attr = [0u32; 8];
                // SAFETY: an unknown bpf command with a valid buffer.
                let b = unsafe { libc::syscall(libc::SYS_bpf, 10_000, attr.as_mut_ptr(), 32) };
                let bpf = if b < 0 { errno() } else { 0 };
                // SAFETY: KEYCTL_GET_KEYRING_ID with integers only.
                let k = unsafe { libc::syscall(libc::SYS_keyctl, 0, -3, 0) };
                let key = if k < 0 { errno() } else { 0 };
                let out = format!("{bpf} {key}");
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
                assert_eq!(s, format!("{} {}", libc::EPERM, libc::ENOSYS));
            }
        }
    }
}
