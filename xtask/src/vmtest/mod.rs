//! `cargo xtask vm-test`: the VM tier. Each suite boots one hull VM in a fresh
//! `HULL_HOME`, drives it only as a user would (`hull`, `docker`, its socket),
//! runs independent scenarios in parallel, prints the VM's logs for a failed
//! scenario, and always tears the VM down.

mod arm64;
pub mod boot;
mod compat;
mod conformance;
mod defaults;
mod desktop;
mod engine;
mod escapes;
pub mod images;
mod init;
mod kernel_hardening;
mod lifecycle;
mod redteam_gate;
mod redteam_guard;
mod redteam_runtime;
mod registry;
mod release;
mod runtime;
mod shares;
mod system_mode;
mod user_mode;
mod verity;
pub mod vm;
mod workloads;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use hull_qemu::accel::AccelChoice;
use hull_qemu::machine::MachineKind;
use xshell::Shell;

use crate::vm as build;
use vm::Vm;

#[derive(clap::Args, Default, Clone)]
pub struct Args {
    /// Use this image folder instead of building one.
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Only run scenarios whose name contains this text (or one of several
    /// texts separated by commas).
    #[arg(long)]
    pub filter: Option<String>,
    #[arg(long, value_enum, default_value_t = AccelChoice::Auto)]
    pub accel: AccelChoice,
    #[arg(long, value_enum, default_value_t = MachineKind::Microvm)]
    pub machine: MachineKind,
    /// Scenarios run at once within a VM.
    #[arg(long, default_value_t = 3)]
    pub jobs: usize,
    /// Run on the variant with this wall removed: passes only if every
    /// scenario `cargo xtask walls` recorded for it fails (see weaken.rs).
    #[arg(long, value_enum)]
    pub weaken: Option<crate::weaken::Wall>,
    /// Run the suite of another guest architecture: `arm64` boots the
    /// arm64 image (built if --image is not given) under emulation and runs
    /// the arm64 smoke suite (`arm64/*`) instead of the host's suites.
    #[arg(long, value_enum)]
    pub arch: Option<hull_qemu::arch::Arch>,
}

/// What a run found, per scenario (suite boot or setup failures are named
/// `<suite>/boot` and `<suite>/setup`).
#[derive(Default, Debug)]
pub struct Tally {
    pub passed: Vec<String>,
    /// Scenario and the reason, short.
    pub failed: Vec<(String, String)>,
}

impl Tally {
    /// An error naming every failed scenario (`kind` prefixes "VM
    /// scenario(s)", e.g. "arm64 "), or Ok when none failed.
    fn result(&self, kind: &str) -> Result<()> {
        if self.failed.is_empty() {
            return Ok(());
        }
        let failed: Vec<String> = self
            .failed
            .iter()
            .map(|(n, why)| format!("{n} ({why})"))
            .collect();
        bail!(
            "{} {kind}VM scenario(s) failed:\n  {}",
            failed.len(),
            failed.join("\n  ")
        );
    }
}

type Par = fn(&Vm) -> Result<()>;
type Ser = fn(&mut Vm) -> Result<()>;
/// Prepares a suite's home before `hull up` (settings files, environment,
/// variables); what it returns (e.g. a registry process) lives as long as
/// the suite.
type Setup = fn(&mut Vm, &Path) -> Result<Box<dyn std::any::Any>>;

/// Independent scenarios run in parallel first, then the serial ones (they
/// restart services or the VM) in order.
struct Suite {
    name: &'static str,
    up_args: Vec<String>,
    setup: Option<Setup>,
    /// Run once after boot and the busybox import, before the scenarios.
    after_boot: Option<Par>,
    parallel: Vec<(&'static str, Par)>,
    serial: Vec<(&'static str, Ser)>,
}

/// Shares a host folder of the test run with the VM (user settings).
fn share_setup(vm: &mut Vm, work: &Path) -> Result<Box<dyn std::any::Any>> {
    let share = work.join(format!("share-{}", vm.home.display().to_string().len()));
    // An ordinary directory (0755, root's): containers write to it
    // through their idmapped bind, not through loose permissions.
    std::fs::create_dir_all(&share)?;
    let share = share.canonicalize()?;
    std::fs::write(
        vm.home.join("settings.json"),
        serde_json::json!({"filesharingDirectories": [share]}).to_string(),
    )?;
    vm.vars.insert("share".into(), share.display().to_string());
    // `hull up` runs as root here (the share-user suite runs it as a user).
    vm.vars.insert("host_uid".into(), "0".into());
    vm.vars.insert("host_gid".into(), "0".into());
    Ok(Box::new(()))
}

/// The ECI suite: §9's admin settings (root-owned, as an admin would leave
/// them), a registry for real digests, and the user's engine settings to
/// reach it.
fn eci_setup(vm: &mut Vm, work: &Path) -> Result<Box<dyn std::any::Any>> {
    use std::os::unix::fs::PermissionsExt;
    let reg = registry::Registry::start(work)?;
    let admin = work.join("admin-settings.json");
    std::fs::write(
        &admin,
        conformance::eci_admin_settings(&reg.address_in_vm()),
    )?;
    std::fs::set_permissions(&admin, std::fs::Permissions::from_mode(0o644))?;
    vm.env
        .push(("HULL_ADMIN_SETTINGS".into(), admin.display().to_string()));
    // A second registry wants a login and is named as Docker Desktop users
    // name the host: host.docker.internal (the VM's /etc/hosts).
    let login = registry::Registry::start_with(work, Some(("hull", "hull-secret")))?;
    let login_name = login.address_in_vm();
    // The open registry doubles as the user's Docker Hub mirror: nothing
    // on this machine resolves registry-1.docker.io, so a docker.io pull
    // that succeeds came through the mirror (desktop/registry-mirror), and
    // an image pushed there as `testcontainers/ryuk` pulls with the digest a
    // Docker Hub pull gives (desktop/client-compat).
    std::fs::write(
        vm.home.join("engine.json"),
        serde_json::json!({
            "insecure-registries": [reg.address_in_vm(), login_name],
            "registry-mirrors": [format!("http://{}", reg.address_in_vm())],
        })
        .to_string(),
    )?;
    vm.vars.insert("registry".into(), reg.address_in_vm());
    vm.vars.insert("login_registry".into(), login_name);
    vm.vars
        .insert("login_store".into(), login.store.display().to_string());
    Ok(Box::new((reg, login)))
}

/// `--raw-settings` exists only in test builds (feature test-hooks): this
/// suite's VM is started by that build of `hull`.
fn test_hooks_setup(vm: &mut Vm, _work: &Path) -> Result<Box<dyn std::any::Any>> {
    vm.hull = build::hull_test_hooks_bin(&Shell::new()?)?;
    Ok(Box::new(()))
}

fn suites(work: &Path) -> Result<Vec<Suite>> {
    let bad = work.join("malformed-settings.json");
    std::fs::write(&bad, b"{\"enhancedContainerIsolation\": {\"value\": tru")?;
    let mut all = vec![
        Suite {
            name: "engine",
            up_args: vec![],
            setup: Some(share_setup),
            after_boot: None,
            parallel: vec![
                ("channel/version", engine::version),
                ("channel/run", engine::run),
                ("channel/run-stdin-eof", engine::run_stdin_eof),
                ("channel/run-tty", engine::run_tty),
                ("channel/exec", engine::exec),
                ("channel/logs-follow", engine::logs_follow),
                ("channel/cp", engine::cp),
                ("channel/events", engine::events),
                ("channel/context", engine::context),
                ("channel/load-save-100mb", engine::load_save_100mb),
                ("init/status-timeline", init::status_timeline),
                ("init/control-no-bench-ops", init::control_no_bench_ops),
                ("verity/status-root-hash", verity::status_root_hash),
                ("workload/docker-in-docker", workloads::dind),
                ("workload/compose-app", workloads::compose_app),
                ("workload/multi-stage-build", workloads::multi_stage_build),
                ("workload/systemd-pid1", workloads::systemd_pid1),
                ("runtime/is-hull", runtime::runtime_is_hull),
                ("runtime/exclusive-id-ranges", runtime::exclusive_id_ranges),
                ("runtime/files-root-owned", runtime::files_root_owned),
                ("runtime/named-volume-shared", runtime::named_volume_shared),
                ("runtime/lifecycle", runtime::lifecycle),
                ("runtime/logs", runtime::logs),
                ("runtime/restart-policy", runtime::restart_policy),
                ("runtime/healthcheck", runtime::healthcheck),
                ("runtime/bridge-publish", runtime::bridge_publish),
                ("runtime/build-run-steps", runtime::build_run_steps),
                ("runtime/cp-running", runtime::cp_running),
                ("escape/01-vm-disk", escapes::vm_disk),
                ("escape/02-core-pattern", escapes::core_pattern),
                (
                    "escape/03-cgroup-v1-release-agent",
                    escapes::cgroup_v1_release_agent,
                ),
                ("escape/04-cgroup-escalation", escapes::cgroup_escalation),
                ("escape/05-kernel-modules", escapes::kernel_modules),
                ("escape/06-bpf", escapes::bpf),
                ("escape/08-leaked-fd-cwd", escapes::leaked_fd_cwd),
                ("escape/10-remount-read-only", escapes::remount_read_only),
                ("escape/11-unmask", escapes::unmask),
                ("escape/17-namespace-flags", escapes::namespace_flags),
                ("escape/18-devices", escapes::devices),
                (
                    "escape/19-global-kernel-state",
                    escapes::global_kernel_state,
                ),
                ("escape/20-vsock", escapes::vsock),
                ("escape/21-cross-container", escapes::cross_container),
                ("escape/22-exec-leaks", escapes::exec_leaks),
                ("escape/13-new-mount-api", escapes::new_mount_api),
                (
                    "redteam/guard-protected-by-mount-id",
                    redteam_guard::protected_by_mount_id,
                ),
                (
                    "redteam/guard-fresh-sysfs-superblock",
                    redteam_guard::fresh_sysfs_superblock,
                ),
                ("escape/14-toctou", escapes::toctou),
                ("escape/kernel-switches", kernel_hardening::kernel_switches),
                ("escape/09-masked-path-races", escapes::masked_path_races),
                ("escape/07-runtime-overwrite", escapes::runtime_overwrite),
                ("eci/5-procfs-emulation", conformance::s5_procfs_emulation),
                (
                    "eci/2-privileged-own-resources",
                    conformance::s2_privileged_own_resources,
                ),
                ("eci/3-namespaces", conformance::s3_namespaces),
                ("eci/4-mount-vetting", conformance::s4_mount_vetting),
                ("eci/5-masked-paths", conformance::s5_masked_paths),
                ("eci/6-runtime-and-build", conformance::s6_runtime_and_build),
                (
                    "eci/7-restricted-host-mounts",
                    conformance::s7_restricted_host_mounts,
                ),
                (
                    "eci/8-socket-denied-by-default",
                    conformance::s8_socket_denied_by_default,
                ),
                (
                    "redteam-gate/28-seccomp-profiles",
                    redteam_gate::seccomp_profiles,
                ),
                (
                    "redteam-gate/forward-published-only",
                    redteam_gate::forward_published_only,
                ),
                (
                    "redteam-gate/build-leftovers",
                    redteam_gate::build_leftovers,
                ),
                ("redteam-gate/cgroup-parent", redteam_gate::cgroup_parent),
                ("redteam-gate/joins-pinned", redteam_gate::joins_pinned),
                ("redteam/26-image-devices", redteam_runtime::image_devices),
                ("redteam/27-bind-swap", redteam_runtime::bind_swap),
                ("redteam/28-seccomp-widen", redteam_runtime::seccomp_widen),
                ("redteam/29-exec-cgroup", redteam_runtime::exec_cgroup),
                ("desktop/compose-up-build", desktop::compose_up_build),
                (
                    "desktop/buildx-multistage-cache",
                    desktop::buildx_multistage_cache,
                ),
                (
                    "desktop/buildkit-entitlements-refused",
                    desktop::buildkit_entitlements_refused,
                ),
            ],
            serial: vec![
                ("escape/24-vm-surface", escapes::vm_surface),
                ("init/idle-cache", |vm| init::idle_cache(vm)),
                ("init/restart-dockerd", |vm| init::restart_dockerd(vm)),
                ("init/persistence", init::persistence),
                ("init/hard-kill", init::hard_kill),
            ],
        },
        Suite {
            name: "eci",
            up_args: vec![],
            setup: Some(eci_setup),
            after_boot: Some(conformance::push_allowed_image),
            parallel: vec![
                ("eci/8-socket-allow-list", conformance::s8_socket_allow_list),
                ("eci/8-command-list", conformance::s8_command_list),
                (
                    "eci/8-nested-create-hardened",
                    conformance::s8_nested_create_hardened,
                ),
                ("eci/9-settings-locked", conformance::s9_settings_locked),
                (
                    "eci/9-settings-endpoint",
                    conformance::settings_endpoint_on_host,
                ),
                ("workload/testcontainers", workloads::testcontainers),
                ("desktop/client-compat", compat::client_compat),
            ],
            serial: vec![],
        },
        Suite {
            name: "settings-malformed",
            up_args: vec!["--raw-settings".into(), bad.display().to_string()],
            setup: Some(test_hooks_setup),
            after_boot: None,
            parallel: vec![("init/malformed-settings", init::malformed_settings)],
            serial: vec![],
        },
    ];
    all[0].parallel.extend(shares::AS_ROOT.iter().copied());
    // The eci suite's user has no settings file: Docker Desktop's defaults.
    all[1].parallel.extend(defaults::SCENARIOS.iter().copied());
    all.push(Suite {
        name: "user-day-one",
        up_args: vec![],
        setup: Some(user_mode::setup),
        after_boot: None,
        parallel: vec![
            ("user/day-one-run", user_mode::run),
            ("user/day-one-home-share", user_mode::home_share),
            ("user/day-one-status", user_mode::status_says_user_mode),
        ],
        serial: vec![("user/day-one-down", user_mode::down)],
    });
    all.push(Suite {
        name: "share-user",
        up_args: vec![],
        setup: Some(shares::user_setup),
        after_boot: None,
        parallel: shares::AS_USER.to_vec(),
        serial: vec![],
    });
    // Boots from a release bundle of the image (`cargo xtask release`).
    all.push(Suite {
        name: "release",
        up_args: vec![],
        setup: Some(release::setup),
        after_boot: None,
        parallel: vec![
            ("release/status-version", release::status_version),
            ("release/manifest-applied", release::manifest_applied),
        ],
        serial: vec![],
    });
    // Boots three times (upgrade, refusal) and builds a second image.
    all.push(Suite {
        name: "lifecycle",
        up_args: lifecycle::up_args(),
        setup: Some(lifecycle::setup),
        after_boot: None,
        parallel: vec![],
        serial: lifecycle::SCENARIOS.to_vec(),
    });
    Ok(all)
}

pub fn run(args: &Args) -> Result<()> {
    if let Some(wall) = args.weaken {
        return crate::weaken::vm_test(args, wall);
    }
    if let Some(arch) = args.arch.filter(|a| *a != hull_qemu::arch::Arch::host()) {
        return run_arch(args, arch);
    }
    let image = match &args.image {
        Some(i) => i.clone(),
        None => build::image(&build::ImageArgs::default())?,
    };
    let sh = Shell::new()?;
    let hull = build::hull_bin(&sh)?;
    let tally = run_scenarios(args, &image, &hull)?;
    tally.result("")
}

/// `--arch arm64`: the other architecture's smoke suite on its image.
pub fn run_arch(args: &Args, arch: hull_qemu::arch::Arch) -> Result<()> {
    use hull_qemu::arch::Arch;
    if arch != Arch::Arm64 {
        bail!("--arch {arch}: only the arm64 suite exists for a foreign architecture");
    }
    let image = match &args.image {
        Some(i) => i.clone(),
        None => build::image(&build::ImageArgs {
            no_deps: true,
            arch: Some(arch),
            ..Default::default()
        })?,
    };
    let sh = Shell::new()?;
    let hull = build::hull_bin(&sh)?;
    let tally = arm64::run_suite(args, &image, &hull)?;
    if tally.passed.is_empty() && tally.failed.is_empty() {
        bail!(
            "--filter selected none of the arm64 scenarios ({})",
            arm64::SCENARIOS.join(", ")
        );
    }
    tally.result("arm64 ")
}

/// Whether `--filter` selects this scenario.
pub fn selected(filter: Option<&str>, name: &str) -> bool {
    filter.is_none_or(|f| f.split(',').any(|p| name.contains(p)))
}

/// Runs the selected scenarios on `image` with this `hull` binary.
pub fn run_scenarios(args: &Args, image: &Path, hull: &Path) -> Result<Tally> {
    if !build::image_ready(image) {
        bail!(
            "{} holds no hull image (vmlinuz, root.erofs)",
            image.display()
        );
    }
    eprintln!(
        "[vm-test] accelerator: {}",
        hull_qemu::accel::describe(args.accel).map_err(anyhow::Error::msg)?
    );
    let want = |name: &str| selected(args.filter.as_deref(), name);
    let work = boot::tempdir()?;
    let mut failed = Tally::default();
    let t0 = Instant::now();

    if want("boot/selftest") {
        let r = boot::selftest(args, image);
        report("boot/selftest", t0.elapsed(), r, None, &mut failed);
    }
    if want("release/tampered-refused") {
        let t = Instant::now();
        let r = release::tampered_refused(hull, image);
        report(
            "release/tampered-refused",
            t.elapsed(),
            r,
            None,
            &mut failed,
        );
    }
    if want("verity/corrupt-block") {
        let t = Instant::now();
        let r = verity::corrupt_block(args, image);
        report("verity/corrupt-block", t.elapsed(), r, None, &mut failed);
    }
    for suite in suites(&work)? {
        let par: Vec<_> = suite.parallel.iter().filter(|(n, _)| want(n)).collect();
        let ser: Vec<_> = suite.serial.iter().filter(|(n, _)| want(n)).collect();
        if par.is_empty() && ser.is_empty() {
            continue;
        }
        let mut up: Vec<&str> = vec!["--accel", accel_name(args.accel), "--memory", "2048"];
        up.extend(suite.up_args.iter().map(String::as_str));
        let machine = format!("{:?}", args.machine).to_lowercase();
        up.extend(["--machine", machine.as_str()]);
        let t = Instant::now();
        let mut vm = Vm::new(hull, image, &up)?;
        vm.vars.insert("suite".into(), suite.name.to_string());
        let _keep = match suite.setup.map(|f| f(&mut vm, &work)) {
            Some(Err(e)) => {
                report(
                    &format!("{}/setup", suite.name),
                    t.elapsed(),
                    Err(e),
                    None,
                    &mut failed,
                );
                continue;
            }
            Some(Ok(k)) => Some(k),
            None => None,
        };
        if let Err(e) = vm.up() {
            report(
                &format!("{}/boot", suite.name),
                t.elapsed(),
                Err(e),
                None,
                &mut failed,
            );
            continue;
        }
        eprintln!(
            "[vm-test] {}: VM up in {:.1}s",
            suite.name,
            vm.boot_time.as_secs_f64()
        );
        let prepared = images::import_busybox(&vm, &work)
            .and_then(|()| suite.after_boot.map_or(Ok(()), |f| f(&vm)));
        if let Err(e) = prepared {
            report(
                &format!("{}/setup", suite.name),
                t.elapsed(),
                Err(e),
                Some(&vm),
                &mut failed,
            );
            continue;
        }
        let results: Mutex<Vec<(String, Duration, Result<()>)>> = Mutex::new(Vec::new());
        let queue = Mutex::new(par.into_iter());
        std::thread::scope(|s| {
            for _ in 0..args.jobs.max(1) {
                s.spawn(|| loop {
                    let next = queue.lock().ok().and_then(|mut q| q.next());
                    let Some((name, f)) = next else { break };
                    let t = Instant::now();
                    let r = f(&vm);
                    let took = t.elapsed();
                    if let Ok(mut v) = results.lock() {
                        v.push((name.to_string(), took, r));
                    }
                });
            }
        });
        for (name, took, r) in results.into_inner().unwrap_or_default() {
            report(&name, took, r, Some(&vm), &mut failed);
        }
        for (name, f) in ser {
            let t = Instant::now();
            let r = f(&mut vm);
            report(name, t.elapsed(), r, Some(&vm), &mut failed);
        }
    }
    // Last: while system mode is installed, users other than root may not
    // run VMs of their own (the share-user suite does).
    if system_mode::SCENARIOS.iter().any(|n| want(n)) {
        system_mode::run_all(hull, image, &want, &mut |n, t, r, vm| {
            report(n, t, r, vm, &mut failed)
        });
    }
    let _ = std::fs::remove_dir_all(&work);
    eprintln!("[vm-test] finished in {:.0}s", t0.elapsed().as_secs_f64());
    for r in vm::retries() {
        eprintln!("[vm-test] RETRIED hull up in suite {r}");
    }
    Ok(failed)
}

fn accel_name(a: AccelChoice) -> &'static str {
    match a {
        AccelChoice::Auto => "auto",
        AccelChoice::Kvm => "kvm",
        AccelChoice::Tcg => "tcg",
    }
}

fn report(name: &str, took: Duration, r: Result<()>, vm: Option<&Vm>, tally: &mut Tally) {
    let secs = took.as_secs_f64();
    match r {
        Ok(()) => {
            eprintln!("[vm-test] ok   {name} ({secs:.1}s)");
            tally.passed.push(name.to_string());
        }
        Err(e) => {
            let diag = vm.map(Vm::diagnostics).unwrap_or_default();
            eprintln!("[vm-test] FAIL {name} ({secs:.1}s): {e:#}{diag}");
            // The reason again, short, for the summary: CI keeps only a tail.
            let why: String = format!("{e:#}").chars().take(400).collect();
            tally
                .failed
                .push((name.to_string(), why.replace('\n', " ")));
        }
    }
}
