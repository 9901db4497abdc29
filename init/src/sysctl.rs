//! Lockdown sysctls, written before any service starts and read back: a
//! hardening value the kernel silently refused must show up in the log and
//! in `hull status`. The reasons for each value are in docs/security.md.

pub const LOCKDOWN: &[(&str, &str)] = &[
    ("kernel/kptr_restrict", "2"),
    ("kernel/dmesg_restrict", "1"),
    // 1 is one-way: once set, no one can turn unprivileged BPF back on.
    ("kernel/unprivileged_bpf_disabled", "1"),
    ("kernel/perf_event_paranoid", "3"),
    ("kernel/kexec_load_disabled", "1"),
    ("net/core/bpf_jit_harden", "2"),
    ("kernel/yama/ptrace_scope", "1"),
    ("kernel/randomize_va_space", "2"),
    ("kernel/panic_on_oops", "1"),
    ("fs/protected_symlinks", "1"),
    ("fs/protected_hardlinks", "1"),
    ("fs/protected_fifos", "2"),
    ("fs/protected_regular", "2"),
    ("fs/suid_dumpable", "0"),
    // Docker Engine's: a dump lands in the crashing process's cwd (dumps.rs).
    // Written and read back so that the integrity watch has a value to hold.
    ("kernel/core_pattern", "core"),
    ("kernel/core_uses_pid", "0"),
    ("dev/tty/ldisc_autoload", "0"),
];

#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub key: String,
    pub wanted: String,
    /// "ok", "absent" (the kernel has no such knob: the feature is compiled
    /// out, which is stronger), or "refused: ..." .
    pub result: String,
}

pub fn apply() -> Vec<Outcome> {
    LOCKDOWN
        .iter()
        .map(|(k, v)| {
            let path = format!("/proc/sys/{k}");
            let result = if !std::path::Path::new(&path).exists() {
                "absent".to_string()
            } else {
                match std::fs::write(&path, v) {
                    Err(e) => format!("refused: {e}"),
                    Ok(()) => match std::fs::read_to_string(&path) {
                        Ok(now) if now.trim() == *v => "ok".to_string(),
                        Ok(now) => format!("refused: reads back {:?}", now.trim()),
                        Err(e) => format!("refused: read back failed: {e}"),
                    },
                }
            };
            let key = k.replace('/', ".");
            match result.as_str() {
                "ok" => crate::debug!("sysctl {key}={v}"),
                "absent" => crate::info!("sysctl {key}: not in this kernel (compiled out)"),
                r => crate::warn!("sysctl {key}={v}: {r}"),
            }
            Outcome {
                key,
                wanted: v.to_string(),
                result,
            }
        })
        .collect()
}
