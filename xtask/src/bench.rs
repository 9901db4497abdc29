//! `cargo xtask bench`: measurements that are never asserted in tests. Each
//! figure is measured side by side with its reference in the same run, and the
//! report carries the machine, the accelerator and the date.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::json;
use xshell::Shell;

use crate::vmtest::{self, vm::Vm};
use crate::{paths, vm};

#[path = "bench_boot.rs"]
mod boot;
#[path = "kernel_bench.rs"]
mod kernel_options;
#[path = "bench_restore.rs"]
mod restore;
#[path = "bench_shares.rs"]
mod shares;

#[derive(clap::Args, Default)]
pub struct Args {
    /// Use this image folder instead of building one.
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Boots per boot-time figure (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub boots: usize,
    /// Round trips per latency figure.
    #[arg(long, default_value_t = 300)]
    pub pings: u32,
    /// Container creates per create-latency figure.
    #[arg(long, default_value_t = 20)]
    pub creates: u32,
    /// A quick subset: one boot of the bench image, only the request
    /// latency figures (`/_ping` and container create, host through the
    /// channel and gate vs dockerd's socket in the VM, keep-alive and a
    /// new connection each); no host tier.
    #[arg(long, conflicts_with_all = ["no_vm", "kernel_options", "shares_only", "runtimes_only"])]
    pub ping_only: bool,
    /// Skip the host-tier benchmarks (runtime lifecycle, guard, gate); the
    /// report then says so under "skipped".
    #[arg(long)]
    pub no_host: bool,
    /// Skip the VM half (boots, channel, in-VM runtimes); the report then
    /// says so under "skipped".
    #[arg(long, conflicts_with = "kernel_options")]
    pub no_vm: bool,
    /// Also run hull-runtime with --debug in the in-VM runtime benchmark and
    /// keep its stage timestamps (target/bench/runtime-trace.log).
    #[arg(long)]
    pub trace_runtime: bool,
    /// Instead of the usual figures: the price of each kernel hardening
    /// option, booting the same kernel with each one switched off by a boot
    /// parameter (about nine VM boots per round; not for CI).
    #[arg(long)]
    pub kernel_options: bool,
    /// With --kernel-options: also boot this kernel (the fragment before the
    /// compile-time options) on the same root, to price those options.
    #[arg(long, requires = "kernel_options")]
    pub reference_kernel: Option<PathBuf>,
    /// With --kernel-options: boots per variant, interleaved (median reported).
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// With --kernel-options: timed `docker run`s per boot.
    #[arg(long, default_value_t = 5)]
    pub docker_runs: usize,
    /// Only the file-sharing figures (virtiofs share, named volume, 9p
    /// share; one boot): no other VM figure and no host tier. The normal
    /// bench runs them too, in a boot of their own.
    #[arg(long, conflicts_with_all = ["no_vm", "kernel_options"])]
    pub shares_only: bool,
    /// A quick subset: one boot of the bench image, only the runtime
    /// figures (in-VM create→delete against runc and crun, and `docker run`
    /// end to end with dockerd on hull-runtime and on crun); no host tier.
    #[arg(long, conflicts_with_all = ["no_vm", "kernel_options", "shares_only"])]
    pub runtimes_only: bool,
    /// A quick subset: one boot of the bench image, only the boot figures
    /// (init's CPU by stage and RSS, `hull up` -> engine ready in phases,
    /// and dockerd alone started by hand in that VM as the floor); no
    /// host tier.
    #[arg(long, conflicts_with_all = ["no_vm", "kernel_options", "shares_only", "runtimes_only", "ping_only"])]
    pub boot_only: bool,
    /// `docker run --rm busybox true` per runtime in the end-to-end figure.
    #[arg(long, default_value_t = 10)]
    pub docker_run_rounds: usize,
    /// Skip the file-sharing figures (their own boot, the longest part of
    /// the VM half); the report then says so under "skipped".
    #[arg(long, conflicts_with = "shares_only")]
    pub no_shares: bool,
    /// Files of the small-file load and of the stat storm.
    #[arg(long, default_value_t = 10_000)]
    pub share_files: usize,
    /// MiB of the sequential write and read.
    #[arg(long, default_value_t = 1024)]
    pub share_mib: usize,
    /// Only the memory figures (one boot): QEMU's RSS before, during and
    /// after a 1 GiB workload, split into guest RAM and QEMU's own part,
    /// the guest's own view of where its memory is, and a few timed
    /// `docker run`s (the price of any memory setting); no host tier.
    #[arg(long, conflicts_with_all = ["no_vm", "kernel_options", "shares_only", "runtimes_only", "ping_only", "boot_only"])]
    pub memory_only: bool,
    /// Only the save/restore experiment (one boot): ask QEMU to save an
    /// engine-ready VM, with its vhost-user devices, to a file, and report
    /// what it answers; no host tier.
    #[arg(long, conflicts_with_all = ["no_vm", "kernel_options", "shares_only", "runtimes_only", "memory_only", "ping_only", "boot_only"])]
    pub save_restore: bool,
}

#[derive(Serialize, Clone)]
pub struct Metric {
    pub name: String,
    pub unit: String,
    pub hull: f64,
    /// The same thing measured without hull's part, in the same run.
    pub reference: Option<f64>,
    pub reference_name: Option<String>,
    pub note: String,
}

fn metric(name: &str, unit: &str, hull: f64, reference: Option<(&str, f64)>, note: &str) -> Metric {
    let m = Metric {
        name: name.into(),
        unit: unit.into(),
        hull,
        reference: reference.map(|r| r.1),
        reference_name: reference.map(|r| r.0.to_string()),
        note: note.into(),
    };
    match m.reference {
        Some(r) => eprintln!("[bench] {name}: {hull:.3} {unit} (reference {r:.3}: {note})"),
        None => eprintln!("[bench] {name}: {hull:.3} {unit} {note}"),
    }
    m
}

/// The manifest variant `cargo xtask bench` builds and boots.
pub const BENCH_VARIANT: &str = "bench";

/// The shipped image's root (target/hull-image, as last built) against the
/// bench image's (target/hull-image-bench): what the test tools weigh.
fn size_metric() -> Result<Metric> {
    let read = |dir: PathBuf| -> Result<(String, f64)> {
        let file = dir.join("image.json");
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&file)
                .with_context(|| format!("{} (build that image first)", file.display()))?,
        )?;
        let bytes = v["root"]["bytes"]
            .as_f64()
            .with_context(|| format!("{} has no root.bytes", file.display()))?;
        let variant = v["variant"].as_str().unwrap_or("unrecorded").to_string();
        Ok((variant, bytes / 1048576.0))
    };
    let (sv, shipped) = read(paths::image_out())?;
    let (bv, bench) = read(paths::target().join(format!("hull-image-{BENCH_VARIANT}")))?;
    if sv != "shipped" || bv != BENCH_VARIANT {
        bail!("target/hull-image is {sv:?} and target/hull-image-{BENCH_VARIANT} is {bv:?}");
    }
    Ok(metric(
        "root image (root.erofs): shipped vs bench variant (runc, crun, bench binary, bench init)",
        "MiB",
        shipped,
        Some(("bench image", bench)),
        &format!("the test tools weigh {:.1} MiB", bench - shipped),
    ))
}

/// An `--image` must be the bench variant: the shipped image has no
/// reference runtimes, and its init refuses the benchmark operations.
fn check_bench_image(image: &Path) -> Result<()> {
    let file = image.join("image.json");
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&file).with_context(|| file.display().to_string())?,
    )
    .with_context(|| file.display().to_string())?;
    let variant = v["variant"]
        .as_str()
        .unwrap_or("shipped (no variant recorded)");
    if variant != BENCH_VARIANT {
        bail!(
            "--image {}: this is the {variant} image, not the bench one; build it with `cargo xtask image --variant {BENCH_VARIANT}` (target/hull-image-{BENCH_VARIANT}) or leave out --image",
            image.display()
        );
    }
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn run(args: &Args) -> Result<()> {
    let vmargs = vmtest::Args::default();
    let accel = hull_qemu::accel::resolve(vmargs.accel).map_err(anyhow::Error::msg)?;
    eprintln!(
        "[bench] accelerator: {}",
        hull_qemu::accel::describe(vmargs.accel).map_err(anyhow::Error::msg)?
    );
    // Every half that does not run says why in the report; nothing of an
    // older run is left in its place.
    let mut skipped = serde_json::Map::new();
    let mut failed = Vec::new();
    let mut metrics = Vec::new();
    let mut kernel_table = None;
    if args.no_vm {
        skipped.insert("vm".into(), json!("--no-vm given"));
    } else {
        let mut shares_failed = None;
        let r = (|| -> Result<()> {
            // The bench image: the shipped one has neither the reference
            // runtimes nor init's benchmark operations.
            let image = match &args.image {
                Some(i) => {
                    check_bench_image(i)?;
                    i.clone()
                }
                None => vm::image(&vm::ImageArgs {
                    variant: Some(BENCH_VARIANT.into()),
                    ..Default::default()
                })?,
            };
            let sh = Shell::new()?;
            let hull = vm::hull_bin(&sh)?;
            if args.kernel_options {
                let (m, t) = kernel_options::run(
                    &hull,
                    &image,
                    args.reference_kernel.as_deref(),
                    args.rounds,
                    args.docker_runs,
                )?;
                metrics.extend(m);
                kernel_table = Some(t);
            } else if args.runtimes_only {
                metrics.extend(runtimes_only(args, &hull, &image)?);
            } else if args.ping_only {
                metrics.extend(ping_only(args, &hull, &image)?);
            } else if args.boot_only {
                metrics.extend(boot::run(&hull, &image)?);
            } else if args.memory_only {
                metrics.extend(memory_only(&hull, &image)?);
            } else if args.save_restore {
                metrics.extend(restore::run(&hull, &image)?);
            } else {
                if !args.shares_only {
                    metrics.extend(boot_metrics(args, &vmargs, &image)?);
                    metrics.extend(vm_metrics(args, &hull, &image)?);
                }
                // Its own boot (the shares are settings of that boot) and
                // its own verdict, so a failure here keeps the figures above.
                if args.no_shares {
                    skipped.insert("vm/shares".into(), json!("--no-shares given"));
                } else {
                    match shares::run(&hull, &image, args.share_files, args.share_mib) {
                        Ok(m) => metrics.extend(m),
                        Err(e) => shares_failed = Some(format!("{e:#}")),
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = r {
            eprintln!("[bench] VM half FAILED: {e:#}");
            skipped.insert("vm".into(), json!(format!("failed: {e:#}")));
            failed.push("vm");
        }
        if let Some(e) = shares_failed {
            eprintln!("[bench] VM shares FAILED: {e}");
            skipped.insert("vm/shares".into(), json!(format!("failed: {e}")));
            failed.push("vm/shares");
        }
    }
    // A run limited to one part names what it left out, so a report can
    // never be read as the whole bench.
    let only: [(bool, &str, &str); 6] = [
        (
            args.ping_only,
            "--ping-only: request latency in the VM only",
            "--ping-only: no boot, init, throughput, runtime or share figures",
        ),
        (
            args.runtimes_only,
            "--runtimes-only measures the runtimes in the VM only",
            "--runtimes-only: no boot, init, channel, ping or share figures",
        ),
        (
            args.boot_only,
            "--boot-only measures one boot in the VM only",
            "--boot-only: no channel, ping, runtime, memory or share figures",
        ),
        (
            args.save_restore,
            "--save-restore is a VM experiment only",
            "--save-restore: no other VM figure",
        ),
        (
            args.memory_only,
            "--memory-only measures the VM's memory only",
            "--memory-only: no boot, init, channel, ping, runtime or share figures",
        ),
        (
            args.shares_only,
            "--shares-only measures the file shares only",
            "--shares-only: no boot, channel or runtime figures",
        ),
    ];
    if let Some((_, host, other)) = only.iter().find(|(on, _, _)| *on) {
        skipped.insert("host".into(), json!(host));
        skipped.insert("vm/other".into(), json!(other));
    } else if args.kernel_options {
        skipped.insert(
            "host".into(),
            json!("--kernel-options measures the VM only"),
        );
    } else if args.no_host {
        skipped.insert("host".into(), json!("--no-host given"));
    } else {
        let (m, why) = host_metrics();
        metrics.extend(m);
        for (part, why) in why {
            eprintln!("[bench] host {part} FAILED: {why}");
            skipped.insert(format!("host/{part}"), json!(format!("failed: {why}")));
            failed.push("host");
        }
    }
    match size_metric() {
        Ok(m) => metrics.push(m),
        Err(e) => {
            skipped.insert("image size".into(), json!(format!("{e:#}")));
        }
    }
    let (machine, date) = (machine(), date());
    let mut report = json!({
        "machine": machine,
        "accel": accel.as_str(),
        "date": date,
        "metrics": metrics,
        "skipped": skipped,
    });
    if let Some(t) = kernel_table {
        report["kernel_options"] = t;
    }
    let out = paths::target().join("bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    let title = format!("hull benchmarks: {machine}, {}, {date}", accel.as_str());
    std::fs::write(out.join("report.svg"), crate::chart::svg(&title, &metrics))?;
    eprintln!(
        "[bench] wrote {} and report.svg",
        out.join("report.json").display()
    );
    for (half, why) in &skipped {
        eprintln!(
            "[bench] NOT MEASURED {half}: {}",
            why.as_str().unwrap_or_default()
        );
    }
    if !failed.is_empty() {
        bail!("benchmark half failed: {}", failed.join(", "));
    }
    Ok(())
}

fn boot_metrics(args: &Args, vmargs: &vmtest::Args, image: &Path) -> Result<Vec<Metric>> {
    let mut to_init = Vec::new();
    let mut to_off = Vec::new();
    for i in 0..args.boots.max(1) {
        let f =
            vmtest::boot::boot_once(vmargs, image, &["hull.selftest"], Duration::from_secs(300))?;
        let Some(t) = vmtest::boot::init_start(&f.console) else {
            bail!("boot {i}: init never started; console:\n{}", f.console);
        };
        to_init.push(t);
        to_off.push(f.wall.as_secs_f64());
    }
    Ok(vec![
        metric(
            "kernel start to init (median)",
            "s",
            median(&mut to_init),
            None,
            &format!("{} boots", to_init.len()),
        ),
        metric(
            "QEMU start to power-off, self-test boot (median)",
            "s",
            median(&mut to_off),
            None,
            "",
        ),
    ])
}

/// One timed boot of the bench image (2 GiB guest) and its figure.
fn boot_timed(hull: &Path, image: &Path) -> Result<(Vm, Metric)> {
    let t = Instant::now();
    let vm = Vm::boot(hull, image, &["--memory", "2048"])?;
    let cold = t.elapsed().as_secs_f64();
    let m = metric("hull up to engine ready (cold boot)", "s", cold, None, "");
    Ok((vm, m))
}

fn vm_metrics(args: &Args, hull: &Path, image: &Path) -> Result<Vec<Metric>> {
    let (vm, cold) = boot_timed(hull, image)?;
    let mut m = vec![cold];
    let st = vm.status()?;
    let tl = st["guest"]["timeline"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let at = |ev: &str| {
        tl.iter()
            .find(|x| x["event"] == ev)
            .and_then(|x| x["t"].as_f64())
    };
    if let (Some(a), Some(b)) = (at("init started"), at("all services ready")) {
        m.push(metric(
            "kernel start to init start",
            "s",
            a,
            None,
            "from init's timeline",
        ));
        m.push(metric(
            "init start to every service ready",
            "s",
            b - a,
            None,
            "",
        ));
    }
    m.extend(boot::init_metrics(&st));
    m.extend(phase_metrics(&st));
    m.extend(boot::floor_metrics(&vm, &st)?);
    if let Some(rss) = qemu_rss_kib(&vm) {
        m.push(metric(
            "idle VM memory (QEMU RSS on the host)",
            "MiB",
            rss / 1024.0,
            None,
            "after boot, engine idle",
        ));
    }
    m.extend(memory_metrics(&vm)?);
    m.extend(ping_metrics(&vm, args.pings)?);
    m.extend(create_metrics(&vm, args.creates)?);
    m.extend(throughput_metrics(&vm)?);
    m.extend(runtime_metrics(&vm, args.trace_runtime)?);
    m.extend(docker_run_metrics(&vm, args.docker_run_rounds)?);
    Ok(m)
}

/// `--runtimes-only`: one boot, the runtime figures only.
fn runtimes_only(args: &Args, hull: &Path, image: &Path) -> Result<Vec<Metric>> {
    let vm = Vm::boot(hull, image, &["--memory", "2048"])?;
    let mut m = runtime_metrics(&vm, args.trace_runtime)?;
    m.extend(docker_run_metrics(&vm, args.docker_run_rounds)?);
    Ok(m)
}

/// Switches what dockerd's runtime runs (bench image only) and, when
/// `check`, shows it took: hull-runtime gives each container an id range
/// of its own, crun under dockerd (no userns-remap) the VM's identity map.
fn engine_runtime(vm: &Vm, runtime: &str, check: bool) -> Result<()> {
    let v = hull_qemu::control::request(
        &vm.home.join("vsock.sock"),
        &json!({"op": "bench-engine-runtime", "runtime": runtime}),
    )?;
    if let Some(e) = v.get("error") {
        bail!("bench-engine-runtime {runtime}: {e}");
    }
    if !check {
        return Ok(());
    }
    let r = vm
        .docker(&["run", "--rm", "busybox", "cat", "/proc/self/uid_map"])?
        .success()?;
    let identity = r.out().split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"];
    if identity != (runtime == "crun") {
        bail!(
            "dockerd on {runtime}: unexpected uid_map {:?} (the switch did not take)",
            r.out()
        );
    }
    Ok(())
}

/// `docker run --rm busybox true` from the host CLI, end to end (channel,
/// gate, dockerd, containerd, runtime), with dockerd's runtime switched
/// between hull-runtime and crun in this one boot, interleaved.
fn docker_run_metrics(vm: &Vm, rounds: usize) -> Result<Vec<Metric>> {
    let work = vmtest::boot::tempdir()?;
    vmtest::images::import_busybox(vm, &work)?;
    let _ = std::fs::remove_dir_all(&work);
    let runtimes = ["hull", "crun"];
    let mut samples = [Vec::new(), Vec::new()];
    let result = (|| -> Result<()> {
        for round in 0..rounds.max(1) + 1 {
            for (i, rt) in runtimes.iter().enumerate() {
                // Checked in the warm-up round, which is not counted.
                engine_runtime(vm, rt, round == 0)?;
                let t = Instant::now();
                vm.docker(&["run", "--rm", "busybox", "true"])?.success()?;
                // The first round warms the page cache for both: not counted.
                if round > 0 {
                    samples[i].push(t.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }
        Ok(())
    })();
    // Never leave the engine on crun.
    engine_runtime(vm, "hull", true).context("switching dockerd back to hull-runtime")?;
    result?;
    let [mut hull, mut crun] = samples;
    let (h50, c50) = (percentile(&mut hull, 0.5), percentile(&mut crun, 0.5));
    let (h90, c90) = (percentile(&mut hull, 0.9), percentile(&mut crun, 0.9));
    let n = hull.len();
    Ok(vec![
        metric(
            "docker run --rm busybox true from the host, end to end: dockerd on hull-runtime vs on crun (p50, same boot)",
            "ms",
            h50,
            Some(("dockerd+crun", c50)),
            &format!("{:.2}x (goal: within 1.1x); {n} runs each, interleaved", h50 / c50),
        ),
        metric(
            "docker run --rm busybox true from the host, end to end: dockerd on hull-runtime vs on crun (p90, same boot)",
            "ms",
            h90,
            Some(("dockerd+crun", c90)),
            &format!("{:.2}x; {n} runs each, interleaved", h90 / c90),
        ),
    ])
}

/// `hull up` -> engine ready in phases, as `hull status` shows them.
fn phase_metrics(st: &serde_json::Value) -> Vec<Metric> {
    st["boot_phases"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            metric(
                &format!("boot phase: {}", p["phase"].as_str().unwrap_or("?")),
                "s",
                p["took_s"].as_f64().unwrap_or(f64::NAN),
                None,
                &format!(
                    "at {:.2} s after QEMU started",
                    p["at_s"].as_f64().unwrap_or(f64::NAN)
                ),
            )
        })
        .collect()
}

/// `--memory-only`: one boot, the memory figures, then timed `docker run`s
/// (hull-runtime only) so a memory setting's price on a container start is
/// seen in the same run.
fn memory_only(hull: &Path, image: &Path) -> Result<Vec<Metric>> {
    let vm = Vm::boot(hull, image, &["--memory", "2048"])?;
    let mut m = memory_metrics(&vm)?;
    let mut runs = Vec::new();
    for round in 0..6 {
        let t = Instant::now();
        vm.docker(&["run", "--rm", "busybox", "true"])?.success()?;
        // The first run warms the caches: not counted.
        if round > 0 {
            runs.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let n = runs.len();
    m.push(metric(
        "docker run --rm busybox true after the memory figures (p50)",
        "ms",
        percentile(&mut runs, 0.5),
        None,
        &format!("{n} runs on hull-runtime, after the workload and the idle minute"),
    ));
    Ok(m)
}

/// The guest's own view of its memory (`/proc/meminfo`, read in a
/// container: the VM has no lxcfs, so it is the kernel's), the fields that
/// say what holds pages: page cache, shmem/tmpfs, slab, anonymous memory.
fn guest_meminfo(vm: &Vm) -> Result<Vec<(String, f64)>> {
    let r = vm
        .docker(&["run", "--rm", "busybox", "cat", "/proc/meminfo"])?
        .success()
        .context("reading the guest's /proc/meminfo")?;
    Ok(r.stdout
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let keep = [
                "MemFree",
                "Cached",
                "Shmem",
                "Slab",
                "SReclaimable",
                "AnonPages",
                "Buffers",
            ];
            keep.contains(&k)
                .then(|| Some((k.to_string(), v.split_whitespace().next()?.parse().ok()?)))?
        })
        .collect())
}

/// QEMU's RSS before, during and after a container that fills 1 GiB of
/// tmpfs: with free page reporting the guest hands the freed memory back.
fn memory_metrics(vm: &Vm) -> Result<Vec<Metric>> {
    let work = vmtest::boot::tempdir()?;
    vmtest::images::import_busybox(vm, &work)?;
    // The import just before allocates and frees too, and reporting lags
    // by seconds (one run read 1156 MiB right after it): the lowest of 10 s.
    let mut before = qemu_rss_kib(vm).context("no QEMU RSS")?;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_secs(1));
        before = before.min(qemu_rss_kib(vm).unwrap_or(f64::MAX));
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peak = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut peak = 0f64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(qemu_rss_kib(vm).unwrap_or(0.0));
                std::thread::sleep(Duration::from_millis(200));
            }
            peak
        });
        let r = vm.docker_timeout(
            &[
                "run",
                "--rm",
                "--tmpfs",
                "/t:size=1100m",
                "busybox",
                "dd",
                "if=/dev/zero",
                "of=/t/fill",
                "bs=1M",
                "count=1024",
            ],
            Duration::from_secs(600),
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let peak = sampler.join().unwrap_or(0.0);
        r.and_then(|r| r.success().map(|_| ()))
            .context("the 1 GiB workload")?;
        anyhow::Ok(peak)
    })?;
    // Free page reporting runs a couple of seconds after pages are freed,
    // a batch at a time, and init drops the clean page cache after two idle
    // checks 10 s apart (init/src/idle.rs): let both settle, then read the
    // lowest figure.
    let mut after = f64::MAX;
    for _ in 0..60 {
        std::thread::sleep(Duration::from_secs(1));
        after = after.min(qemu_rss_kib(vm).unwrap_or(f64::MAX));
    }
    // The guest's RAM is QEMU's shared memfd; the rest of its RSS is QEMU's
    // own (under TCG mostly the translated-code cache, which KVM has not).
    let guest_ram = qemu_status_kib(vm, "RssShmem:").unwrap_or(f64::NAN);
    let qemu_own = qemu_status_kib(vm, "RssAnon:").unwrap_or(f64::NAN);
    let _ = std::fs::remove_dir_all(&work);
    let mib = |k: f64| k / 1024.0;
    // Read last: this container's own start touches memory too.
    let guest: Vec<Metric> = guest_meminfo(vm)?
        .into_iter()
        .map(|(k, kib)| {
            metric(
                &format!("guest /proc/meminfo after a 1 GiB workload: {k}"),
                "MiB",
                mib(kib),
                None,
                "the guest kernel's view, read after the RSS figures",
            )
        })
        .collect();
    let mut m = vec![
        metric(
            "VM memory before a 1 GiB workload (QEMU RSS)",
            "MiB",
            mib(before),
            None,
            "lowest in the 10 s before it started",
        ),
        metric(
            "VM memory during a 1 GiB workload (QEMU RSS, peak)",
            "MiB",
            mib(peak),
            None,
            "docker run filling 1 GiB of tmpfs",
        ),
        metric(
            "VM memory after a 1 GiB workload (QEMU RSS)",
            "MiB",
            mib(after),
            None,
            "lowest in the 60 s after it ended (the idle engine's page cache dropped); the bench's 2 GiB guest, not hull's default 4 GiB; goal <= 300 MiB",
        ),
        metric(
            "VM memory after a 1 GiB workload: guest RAM part (QEMU RssShmem)",
            "MiB",
            mib(guest_ram),
            None,
            "the rest is QEMU's own memory (TCG's code cache under TCG)",
        ),
        metric(
            "VM memory after a 1 GiB workload: QEMU's own part (QEMU RssAnon)",
            "MiB",
            mib(qemu_own),
            None,
            "heap and, under TCG, the translated-code cache",
        ),
    ];
    m.extend(guest);
    Ok(m)
}

fn qemu_rss_kib(vm: &Vm) -> Option<f64> {
    qemu_status_kib(vm, "VmRSS:")
}

/// A KiB figure (`VmRSS:`, `RssShmem:`) of QEMU's /proc/<pid>/status.
fn qemu_status_kib(vm: &Vm, field: &str) -> Option<f64> {
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(vm.home.join("state.json")).ok()?).ok()?;
    let pid = st["qemu_pid"].as_u64()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p) as usize]
}

/// Reads one HTTP/1.1 answer that carries a `Content-Length` (or is a
/// 204); returns its status and body. The same reader as the bench init's,
/// so both sides of a figure wait for the same bytes.
fn read_answer(s: &mut impl Read) -> Result<(u16, Vec<u8>)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let status: u16 = head
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .with_context(|| format!("no status line in {head:?}"))?;
            let len: usize = match head.lines().find_map(|l| l.strip_prefix("content-length:")) {
                Some(v) => v.trim().parse().context("bad Content-Length")?,
                None if status == 204 => 0,
                None => bail!("no Content-Length in {head:?}"),
            };
            if got.len() >= end + 4 + len {
                return Ok((status, got[end + 4..end + 4 + len].to_vec()));
            }
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            bail!("the channel closed before the answer was complete");
        }
        got.extend_from_slice(&buf[..n]);
    }
}

/// The request a latency figure times: `GET /_ping`, or a create of `image`.
fn engine_request(create: Option<&str>) -> Vec<u8> {
    match create {
        None => b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n".to_vec(),
        Some(image) => {
            let body = json!({"Image": image, "Cmd": ["true"]}).to_string();
            format!(
                "POST /containers/create HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        }
    }
}

/// `count` round trips from the host through `docker.sock` (the channel and
/// the gate): keep-alive on one connection, or with `fresh` a connection
/// per request as the docker CLI makes. A create is removed after it is
/// timed.
fn host_requests(vm: &Vm, count: u32, fresh: bool, create: Option<&str>) -> Result<Vec<f64>> {
    let connect = || -> Result<std::os::unix::net::UnixStream> {
        let s = std::os::unix::net::UnixStream::connect(vm.home.join("docker.sock"))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(s)
    };
    let req = engine_request(create);
    let mut out = Vec::new();
    let mut kept = None;
    for _ in 0..count {
        let t = Instant::now();
        let mut s = match (kept.take(), fresh) {
            (Some(s), false) => s,
            _ => connect()?,
        };
        s.write_all(&req)?;
        let (status, body) = read_answer(&mut s)?;
        out.push(t.elapsed().as_secs_f64() * 1e6);
        if !(200..300).contains(&status) {
            bail!(
                "the gate answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        if create.is_some() {
            let id = serde_json::from_slice::<serde_json::Value>(&body)?["Id"]
                .as_str()
                .context("a create answer without an Id")?
                .to_string();
            let del = format!("DELETE /containers/{id}?force=1 HTTP/1.1\r\nHost: docker\r\n\r\n");
            s.write_all(del.as_bytes())?;
            read_answer(&mut s)?;
        }
        kept = Some(s);
    }
    Ok(out)
}

/// The same round trips on dockerd's own socket, from init in the VM.
fn vm_requests(vm: &Vm, count: u32, fresh: bool, create: Option<&str>) -> Result<Vec<f64>> {
    let v = hull_qemu::control::request_within(
        &vm.home.join("vsock.sock"),
        &json!({"op": "engine-ping", "count": count, "fresh": fresh, "create": create}),
        Duration::from_secs(600),
    )?;
    if let Some(e) = v.get("error") {
        bail!("engine-ping in the VM: {e}");
    }
    Ok(v["us"]
        .as_array()
        .context("engine-ping gave no samples")?
        .iter()
        .filter_map(|x| x.as_f64())
        .collect())
}

/// Host and in-VM samples taken in alternating batches of a tenth, so a
/// change in the machine's load during the run weighs on both sides alike.
fn interleaved(
    vm: &Vm,
    count: u32,
    fresh: bool,
    create: Option<&str>,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let batch = count.div_ceil(10).max(1);
    let (mut host, mut inside) = (Vec::new(), Vec::new());
    let mut left = count;
    while left > 0 {
        let n = batch.min(left);
        host.extend(host_requests(vm, n, fresh, create)?);
        inside.extend(vm_requests(vm, n, fresh, create)?);
        left -= n;
    }
    Ok((host, inside))
}

/// p50, p90 and p99 lines of one figure, host vs in the VM, same boot.
fn latency_lines(
    what: &str,
    unit: f64,
    host: &mut [f64],
    vm: &mut [f64],
    goal: &str,
) -> Vec<Metric> {
    let (u, scale) = if unit == 1.0 {
        ("us", 1.0)
    } else {
        ("ms", 1e-3)
    };
    let n = host.len();
    [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)]
        .into_iter()
        .map(|(p, q)| {
            let (h, i) = (percentile(host, q) * scale, percentile(vm, q) * scale);
            let goal = if p == "p50" { goal } else { "" };
            metric(
                &format!("{what} {p}: host via channel+gate vs dockerd socket in the VM"),
                u,
                h,
                Some(("dockerd socket in the VM", i)),
                &format!("added {:.2} {u}{goal}; {n} requests", h - i),
            )
        })
        .collect()
}

/// `GET /_ping` through the channel and gate vs on dockerd's socket inside
/// the VM, on a kept connection and on a fresh one per request; and the
/// transport alone (a bare vsock echo, and the CONNECT handshake).
fn ping_metrics(vm: &Vm, count: u32) -> Result<Vec<Metric>> {
    let mut m = Vec::new();
    // One warm-up, not counted: the gate's and dockerd's first request.
    host_requests(vm, 5, false, None)?;
    for (fresh, how) in [(false, "keep-alive"), (true, "new connection each")] {
        let (mut host, mut inside) = interleaved(vm, count, fresh, None)?;
        m.extend(latency_lines(
            &format!("GET /_ping ({how})"),
            1.0,
            &mut host,
            &mut inside,
            " (goal: +500 us)",
        ));
    }
    let mut echo = vsock_echo(vm, count)?;
    let mut hs = vsock_connects(vm, count.min(100))?;
    m.push(metric(
        "bare vsock round trip p50 (1-byte echo)",
        "us",
        percentile(&mut echo, 0.5),
        None,
        "the transport alone",
    ));
    m.push(metric(
        "vsock CONNECT handshake p50 (host to the gate's port, no request)",
        "us",
        percentile(&mut hs, 0.5),
        None,
        "what a new connection adds before its first byte",
    ));
    Ok(m)
}

/// Container create (`POST /containers/create` of busybox) from the host
/// through the gate vs on dockerd's socket in the VM, same boot.
fn create_metrics(vm: &Vm, count: u32) -> Result<Vec<Metric>> {
    let work = vmtest::boot::tempdir()?;
    vmtest::images::import_busybox(vm, &work)?;
    let _ = std::fs::remove_dir_all(&work);
    let mut m = Vec::new();
    host_requests(vm, 2, false, Some("busybox"))?;
    vm_requests(vm, 2, false, Some("busybox"))?;
    for (fresh, how) in [(false, "keep-alive"), (true, "new connection each")] {
        let (mut host, mut inside) = interleaved(vm, count, fresh, Some("busybox"))?;
        m.extend(latency_lines(
            &format!("container create ({how})"),
            1e3,
            &mut host,
            &mut inside,
            " (goal: +2 ms)",
        ));
    }
    Ok(m)
}

/// `--ping-only`: one boot, the request latency figures only.
fn ping_only(args: &Args, hull: &Path, image: &Path) -> Result<Vec<Metric>> {
    let vm = Vm::boot(hull, image, &["--memory", "2048"])?;
    let mut m = ping_metrics(&vm, args.pings)?;
    m.extend(create_metrics(&vm, args.creates)?);
    Ok(m)
}

/// Turns one host benchmark's JSON into report lines.
type Lines = fn(&serde_json::Value, &mut Vec<Metric>) -> Result<()>;

/// The host-tier benchmarks of the runtime, the guard and the gate (run as
/// root on this machine), read back from the JSON each one writes. Each
/// file is removed first, so a benchmark that fails can never leave an
/// older figure to be read; a part that fails is returned with why.
fn host_metrics() -> (Vec<Metric>, Vec<(&'static str, String)>) {
    let mut m = Vec::new();
    let mut failed = Vec::new();
    let parts: [(&str, &str, &str, Lines); 3] = [
        ("runtime", "hull-runtime", "lifecycle", lifecycle_lines),
        ("guard", "hull-guard", "guard", guard_lines),
        ("gate", "hull-gate", "overhead", gate_lines),
    ];
    let files = ["runtime-lifecycle.json", "guard.json", "gate-overhead.json"];
    for ((part, package, bench, lines), file) in parts.into_iter().zip(files) {
        let p = paths::target().join("bench").join(file);
        let _ = std::fs::remove_file(&p);
        let r = (|| -> Result<()> {
            let sh = Shell::new()?;
            let _dir = sh.push_dir(paths::workspace());
            xshell::cmd!(sh, "cargo bench -q -p {package} --bench {bench}").run()?;
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&p).with_context(|| {
                    format!("{} (the benchmark wrote no report)", p.display())
                })?)?;
            lines(&v, &mut m)
        })();
        if let Err(e) = r {
            failed.push((part, format!("{e:#}")));
        }
    }
    (m, failed)
}

fn lifecycle_lines(life: &serde_json::Value, m: &mut Vec<Metric>) -> Result<()> {
    let hull = life["hull-runtime"]["median_ms"]
        .as_f64()
        .context("no hull-runtime figure")?;
    let bundle = life["hull-runtime"]["bundle"].as_str().unwrap_or("?");
    let hull_version = life["hull-runtime"]["version"].as_str().unwrap_or("?");
    for (name, goal) in [("runc", "faster"), ("crun", "within 1.2x")] {
        let r = life[name]["median_ms"]
            .as_f64()
            .with_context(|| format!("no {name} figure"))?;
        let version = life[name]["version"].as_str().unwrap_or("?");
        m.push(metric(
            &format!("host: container create+start+delete, {hull_version} --guard none vs {version} (median; {bundle})"),
            "ms",
            hull,
            Some((version, r)),
            &format!("{:.2}x (goal: {goal})", hull / r),
        ));
    }
    Ok(())
}

fn guard_lines(g: &serde_json::Value, m: &mut Vec<Metric>) -> Result<()> {
    let side = |k: &str| g[k].as_str().unwrap_or("?").to_string();
    let (trapped, untrapped) = (side("trapped"), side("untrapped"));
    let num = |a: &str, b: &str| {
        g[a][b]
            .as_f64()
            .with_context(|| format!("guard.json has no {a}.{b}"))
    };
    let rounds = g["rounds"].as_u64().unwrap_or(0);
    // Spreads are (max - min) / median of a side's interleaved rounds.
    let spreads = |k: &str| -> Result<String> {
        Ok(format!(
            "spread over {rounds} rounds: trapped {:.0}%, untrapped {:.0}%",
            num(k, "trapped_spread")? * 100.0,
            num(k, "untrapped_spread")? * 100.0
        ))
    };
    let (t, u) = (
        num("mount_pair_ns", "trapped")?,
        num("mount_pair_ns", "untrapped")?,
    );
    m.push(metric(
        &format!("host: tmpfs mount+umount pair in a container; hull side: {trapped}; reference: {untrapped}"),
        "us",
        t / 1000.0,
        Some(("--guard none", u / 1000.0)),
        &format!(
            "{:.2}x, per-round paired {:.2}x; {} (goal: 1.3x)",
            t / u,
            num("mount_pair_ns", "paired_ratio")?,
            spreads("mount_pair_ns")?
        ),
    ));
    // A loop of calls the guard never traps must not slow down: within noise
    // means the ratio is no further from 1 than the untrapped rounds' spread.
    for (key, what) in [
        ("getpid_ns", "getpid"),
        ("openclose_ns", "openat+close of one file"),
    ] {
        let (t, u) = (num(key, "trapped")?, num(key, "untrapped")?);
        let within = g[key]["within_noise"]
            .as_bool()
            .with_context(|| format!("guard.json has no {key}.within_noise"))?;
        m.push(metric(
            &format!("host: {what} in a container under the guard's trapping filter (--guard required) vs --guard none"),
            "ns",
            t,
            Some(("--guard none", u)),
            &format!(
                "{:.3}x, {}; {} (goal: unchanged)",
                t / u,
                if within { "within noise" } else { "NOT within noise" },
                spreads(key)?
            ),
        ));
    }
    Ok(())
}

fn gate_lines(gate: &serde_json::Value, m: &mut Vec<Metric>) -> Result<()> {
    if let Some(why) = gate["sides"]["dockerd"]["skipped"].as_str() {
        bail!("the dockerd half did not run: {why}");
    }
    let side = gate["sides"]["dockerd"].as_str().unwrap_or("?");
    let mut n = 0;
    for f in gate["figures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["engine"] == "dockerd")
    {
        let name = f["name"].as_str().unwrap_or("?");
        let how = if f["fresh"] == true {
            "new connection each"
        } else {
            "keep-alive"
        };
        let goal = if name.contains("create") { 2.0 } else { 0.5 };
        for p in ["p50", "p90", "p99"] {
            let (gp, dp) = (
                f[format!("gate_{p}_ms")].as_f64().unwrap_or(f64::NAN),
                f[format!("direct_{p}_ms")].as_f64().unwrap_or(f64::NAN),
            );
            let goal = if p == "p50" {
                format!(" (goal: {goal} ms)")
            } else {
                String::new()
            };
            m.push(metric(
                &format!(
                    "host: {name} ({how}) through hull-gate vs dockerd's socket ({p}; {side})"
                ),
                "ms",
                gp,
                Some(("dockerd socket", dp)),
                &format!("added {:.3} ms{goal}", gp - dp),
            ));
        }
        n += 1;
    }
    if n == 0 {
        bail!("gate-overhead.json has no dockerd figures");
    }
    Ok(())
}

/// Container create to delete in the VM: hull-runtime vs Debian's runc and
/// crun, same bundle, interleaved, one boot.
fn runtime_metrics(vm: &Vm, trace: bool) -> Result<Vec<Metric>> {
    // 22 rounds of four or five runtimes: minutes under a slow TCG host.
    let v = hull_qemu::control::request_within(
        &vm.home.join("vsock.sock"),
        &json!({"op": "bench-runtimes", "iterations": 20, "trace": trace}),
        Duration::from_secs(900),
    )
    .context("the in-VM runtime benchmark")?;
    if let Some(e) = v.get("error") {
        bail!("runtime benchmark: {e}");
    }
    if trace {
        let log = v["hull-trace"]["last_log"].as_str().unwrap_or_default();
        let file = paths::target().join("bench").join("runtime-trace.log");
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Over all measured rounds (one round's trace is one noisy sample).
        let mut text = log.to_string();
        if let Some(rows) = v["hull-trace"]["stage_medians"].as_array() {
            text.push_str(&format!(
                "\n# median over {} rounds: ms since spawn, ms since the stage before (in that round), stage\n",
                rows.first().and_then(|r| r["rounds"].as_u64()).unwrap_or(0)
            ));
            for r in rows {
                text.push_str(&format!(
                    "{:9.2} {:8.2}  {}\n",
                    r["at_ms"].as_f64().unwrap_or(f64::NAN),
                    r["step_ms"].as_f64().unwrap_or(f64::NAN),
                    r["stage"].as_str().unwrap_or_default()
                ));
            }
        }
        std::fs::write(&file, text)?;
        eprintln!(
            "[bench] hull-runtime --debug stages of the last round: {}",
            file.display()
        );
    }
    let med = |k: &str| v[k]["median_ms"].as_f64().unwrap_or(f64::NAN);
    // Versions as the binaries in the VM report them (never written here).
    let ver = |k: &str| {
        v[k]["version"]
            .as_str()
            .map_or_else(|| format!("{k} (version not reported)"), str::to_string)
    };
    let bundle = v["hull"]["bundle"].as_str().unwrap_or("same bundle");
    let (hull, runc, crun) = (med("hull"), med("runc"), med("crun"));
    let hull_v = ver("hull");
    Ok(vec![
        metric(
            &format!("container create+start+delete in the VM, {hull_v} (guarded) vs {} (median; {bundle})", ver("runc")),
            "ms",
            hull,
            Some((&ver("runc"), runc)),
            &format!("{:.2}x of runc (goal: faster)", hull / runc),
        ),
        metric(
            &format!("container create+start+delete in the VM, {hull_v} (guarded) vs {} (median; {bundle})", ver("crun")),
            "ms",
            hull,
            Some((&ver("crun"), crun)),
            &format!("{:.2}x of crun (goal: within 1.2x)", hull / crun),
        ),
        metric(
            "container create+start+delete in the VM, hull-runtime vs hull-runtime --guard none (median)",
            "ms",
            hull,
            Some(("unguarded", med("hull-unguarded"))),
            "the guard's share: registration, per-container worker, procfs emulation",
        ),
    ])
}

/// One-byte round trips on a bare vsock stream (no framing, no gate).
fn vsock_echo(vm: &Vm, count: u32) -> Result<Vec<f64>> {
    let uds = vm.home.join("vsock.sock");
    let v = hull_qemu::control::request(&uds, &json!({"op": "echo", "port": 5100}))?;
    if v.get("error").is_some() {
        bail!("echo: {v}");
    }
    let mut s = hull_qemu::hvsock::connect_blocking(&uds, 5100)?;
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    for _ in 0..count {
        let t = Instant::now();
        s.write_all(b"x")?;
        s.read_exact(&mut b)?;
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(out)
}

/// The CONNECT handshake alone on vhost-device-vsock's socket, to the
/// gate's port: what each new docker connection pays before its request.
fn vsock_connects(vm: &Vm, count: u32) -> Result<Vec<f64>> {
    let uds = vm.home.join("vsock.sock");
    let mut out = Vec::new();
    for _ in 0..count {
        let t = Instant::now();
        let mut s = std::os::unix::net::UnixStream::connect(&uds)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(format!("CONNECT {}\n", hull_channel::DOCKER_PORT).as_bytes())?;
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while s.read(&mut b)? == 1 && b[0] != b'\n' {
            line.push(b[0]);
        }
        out.push(t.elapsed().as_secs_f64() * 1e6);
        if !line.starts_with(b"OK ") {
            bail!(
                "CONNECT {}: {:?}",
                hull_channel::DOCKER_PORT,
                String::from_utf8_lossy(&line)
            );
        }
    }
    Ok(out)
}

/// 100 MB into the VM: raw vsock, the framed channel, and `docker load`.
fn throughput_metrics(vm: &Vm) -> Result<Vec<Metric>> {
    const BYTES: u64 = 100_000_000;
    let uds = vm.home.join("vsock.sock");
    let mut rates = Vec::new();
    for (i, framed) in [false, true].into_iter().enumerate() {
        let port = 5000 + i as u32;
        let v = hull_qemu::control::request(
            &uds,
            &json!({"op": "sink", "port": port, "bytes": BYTES, "framed": framed}),
        )?;
        if v.get("error").is_some() {
            bail!("sink: {v}");
        }
        let mut s = hull_qemu::hvsock::connect_blocking(&uds, port)?;
        let chunk = vec![0x5au8; 64 * 1024];
        let mut frame = Vec::new();
        hull_channel::encode(&hull_channel::Frame::Data(chunk.clone()), &mut frame);
        let t = Instant::now();
        if framed {
            s.write_all(hull_channel::HELLO)?;
        }
        let mut sent = 0u64;
        while sent < BYTES {
            if framed {
                s.write_all(&frame)?;
            } else {
                s.write_all(&chunk)?;
            }
            sent += chunk.len() as u64;
        }
        let mut ns = [0u8; 8];
        s.read_exact(&mut ns)?;
        let secs = t.elapsed().as_secs_f64();
        rates.push(sent as f64 / secs / 1048576.0);
    }
    let dir = vmtest::boot::tempdir()?;
    let tar = vmtest::images::busybox_rootfs(&dir)?;
    let root = dir.join("busybox-root");
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c {BYTES} /dev/urandom > {r}/big && tar -C {r} --owner=0 --group=0 -cf {t} .",
            r = root.display(),
            t = tar.display()
        ))
        .status()?;
    if !st.success() {
        bail!("making the 100 MB image failed");
    }
    vm.docker(&["import", &tar.display().to_string(), "bench-big:1"])?
        .success()?;
    let saved = dir.join("saved.tar");
    vm.docker(&["save", "-o", &saved.display().to_string(), "bench-big:1"])?
        .success()?;
    vm.docker(&["rmi", "bench-big:1"])?.success()?;
    let size = std::fs::metadata(&saved)?.len() as f64;
    let t = Instant::now();
    vm.docker(&["load", "-i", &saved.display().to_string()])?
        .success()?;
    let load_rate = size / t.elapsed().as_secs_f64() / 1048576.0;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(vec![
        metric(
            "100 MB through the framed channel vs raw vsock",
            "MiB/s",
            rates[1],
            Some(("raw vsock", rates[0])),
            &format!("{:.0}% of raw", 100.0 * rates[1] / rates[0]),
        ),
        metric(
            "docker load of a 100 MB image through the channel vs raw vsock",
            "MiB/s",
            load_rate,
            Some(("raw vsock", rates[0])),
            &format!(
                "{:.0}% of raw (includes dockerd unpacking to disk)",
                100.0 * load_rate / rates[0]
            ),
        ),
    ])
}

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores")
}

pub fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
