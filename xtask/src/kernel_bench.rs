//! `cargo xtask bench --kernel-options`: the price of each kernel hardening
//! option of kernel-config/hull.config, measured against the same kernel in
//! the same run.
//!
//! Most options have a boot switch, so one kernel serves every variant: the
//! hardened kernel as built ("all on"), then booted once per option with that
//! option switched off on the command line (`hull up --bench-kernel-arg`),
//! then with every switch off at once. Compile-time options (zeroed
//! call-used registers, DEBUG_WX, keys, the lockdown level, which cannot be
//! lowered at boot once forced) have no switch: `--reference-kernel` boots
//! the previous kernel (the fragment before them) on the same root, and the
//! gap between it and "every switch off" is their price.
//!
//! Variants are interleaved round by round so that a slow spell of the
//! shared host falls on all of them alike. Not part of CI: one round boots
//! about nine VMs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::json;

use super::{metric, Metric};
use crate::vmtest::{self, vm::Vm};

/// One way to boot: a name, the kernel words that switch options off, and
/// optionally another kernel.
struct Variant {
    name: String,
    words: Vec<&'static str>,
    kernel: Option<PathBuf>,
}

/// Options with a boot switch, and the words that turn each off.
const SWITCHES: &[(&str, &[&str])] = &[
    ("INIT_ON_ALLOC_DEFAULT_ON", &["init_on_alloc=0"]),
    ("INIT_ON_FREE_DEFAULT_ON", &["init_on_free=0"]),
    ("SLAB_MERGE_DEFAULT=n", &["slab_merge"]),
    (
        "RANDOMIZE_KSTACK_OFFSET_DEFAULT",
        &["randomize_kstack_offset=off"],
    ),
    ("PAGE_TABLE_CHECK_ENFORCED", &["page_table_check=off"]),
    (
        "PROC_MEM_NO_FORCE, DEFAULT_MMAP_MIN_ADDR=65536, LEGACY_TIOCSTI=n",
        &[
            "proc_mem.force_override=always",
            "sysctl.vm.mmap_min_addr=4096",
            "sysctl.dev.tty.legacy_tiocsti=1",
        ],
    ),
];

const ALL_ON: &str = "all on";
const ALL_OFF: &str = "every boot switch off";
const REFERENCE: &str = "reference kernel";

/// What one boot measured.
#[derive(Default, Clone)]
struct Sample {
    /// `hull up` until the engine answers (host wall clock).
    engine_ready_s: f64,
    /// Kernel start to every service ready (init's timeline, guest clock).
    services_ready_s: f64,
    /// `docker run --rm busybox true`, median of the boot's runs.
    docker_run_s: f64,
    /// Container create+start+delete by hull-runtime in the VM (median).
    lifecycle_ms: f64,
}

pub fn run(
    hull: &Path,
    image: &Path,
    reference_kernel: Option<&Path>,
    rounds: usize,
    runs: usize,
) -> Result<(Vec<Metric>, serde_json::Value)> {
    let mut variants = vec![Variant {
        name: ALL_ON.into(),
        words: vec![],
        kernel: None,
    }];
    for (opt, words) in SWITCHES {
        variants.push(Variant {
            name: format!("{opt} undone ({})", words.join(" ")),
            words: words.to_vec(),
            kernel: None,
        });
    }
    variants.push(Variant {
        name: ALL_OFF.into(),
        words: SWITCHES
            .iter()
            .flat_map(|(_, w)| w.iter().copied())
            .collect(),
        kernel: None,
    });
    if let Some(k) = reference_kernel {
        if !k.is_file() {
            bail!("--reference-kernel {}: no such file", k.display());
        }
        variants.push(Variant {
            name: REFERENCE.into(),
            words: vec![],
            kernel: Some(k.to_path_buf()),
        });
    }

    let work = vmtest::boot::tempdir()?;
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); variants.len()];
    let mut errors: Vec<Vec<String>> = vec![Vec::new(); variants.len()];
    for round in 0..rounds.max(1) {
        for (i, v) in variants.iter().enumerate() {
            eprintln!("[bench] kernel options: round {round}, {}", v.name);
            let img = match &v.kernel {
                Some(k) => image_with_kernel(image, k, &work.join(format!("ref-image-{round}")))?,
                None => image.to_path_buf(),
            };
            // A failed boot costs that variant a sample, not the whole run;
            // the report names the failure.
            let s = match one_boot(hull, &img, &v.words, &work, runs) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("[bench]   FAILED: {e:#}");
                    errors[i].push(format!("{e:#}"));
                    continue;
                }
            };
            eprintln!(
                "[bench]   engine ready {:.2} s, services ready {:.2} s, docker run {:.3} s, lifecycle {:.1} ms",
                s.engine_ready_s, s.services_ready_s, s.docker_run_s, s.lifecycle_ms
            );
            samples[i].push(s);
        }
    }
    let _ = std::fs::remove_dir_all(&work);

    let med = |i: usize, f: fn(&Sample) -> f64| {
        let mut v: Vec<f64> = samples[i].iter().map(f).collect();
        median(&mut v)
    };
    type Field = (&'static str, &'static str, fn(&Sample) -> f64);
    let fields: [Field; 4] = [
        ("hull up to engine ready", "s", |s| s.engine_ready_s),
        ("kernel start to every service ready", "s", |s| {
            s.services_ready_s
        }),
        ("docker run --rm busybox true", "s", |s| s.docker_run_s),
        (
            "container create+start+delete by hull-runtime in the VM",
            "ms",
            |s| s.lifecycle_ms,
        ),
    ];
    let mut metrics = Vec::new();
    let mut table = Vec::new();
    for (i, v) in variants.iter().enumerate() {
        let mut row = serde_json::Map::new();
        row.insert("variant".into(), json!(v.name));
        row.insert("kernel_words".into(), json!(v.words));
        row.insert("boots".into(), json!(samples[i].len()));
        row.insert("failed_boots".into(), json!(errors[i]));
        for (name, unit, f) in fields {
            let value = med(i, f);
            row.insert(format!("{name} ({unit})"), json!(value));
            if i == 0 {
                continue;
            }
            // The price of what the variant switched off: all on / off.
            let (reference, on) = (value, med(0, f));
            let ratio = on / reference;
            row.insert(format!("{name}: all on / this"), json!(ratio));
            metrics.push(metric(
                &format!("kernel options: {name}, all on vs {}", v.name),
                unit,
                on,
                Some((&v.name, reference)),
                &format!("{ratio:.3}x"),
            ));
        }
        table.push(serde_json::Value::Object(row));
    }
    // The compile-time remainder: the reference kernel vs the new kernel
    // with every boot switch off.
    if let (Some(off), Some(rk)) = (
        variants.iter().position(|v| v.name == ALL_OFF),
        variants.iter().position(|v| v.name == REFERENCE),
    ) {
        for (name, unit, f) in fields {
            let (a, b) = (med(off, f), med(rk, f));
            metrics.push(metric(
                &format!(
                    "kernel options: {name}, compile-time options only ({ALL_OFF}) vs {REFERENCE}"
                ),
                unit,
                a,
                Some((REFERENCE, b)),
                &format!(
                    "{:.3}x (ZERO_CALL_USED_REGS, DEBUG_WX, KEYS off, lockdown confidentiality)",
                    a / b
                ),
            ));
        }
    }
    Ok((metrics, json!(table)))
}

/// A folder holding `kernel` as vmlinuz and the image's own root.
fn image_with_kernel(image: &Path, kernel: &Path, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    // Absolute targets: the links live in another folder.
    let image = &image
        .canonicalize()
        .with_context(|| format!("resolving {}", image.display()))?;
    let kernel = &kernel
        .canonicalize()
        .with_context(|| format!("resolving {}", kernel.display()))?;
    for entry in std::fs::read_dir(image).with_context(|| image.display().to_string())? {
        let entry = entry?;
        let dest = dir.join(entry.file_name());
        let _ = std::fs::remove_file(&dest);
        let src = if entry.file_name() == "vmlinuz" {
            kernel.to_path_buf()
        } else {
            entry.path()
        };
        std::os::unix::fs::symlink(&src, &dest)
            .with_context(|| format!("linking {} to {}", dest.display(), src.display()))?;
    }
    Ok(dir.to_path_buf())
}

fn one_boot(hull: &Path, image: &Path, words: &[&str], work: &Path, runs: usize) -> Result<Sample> {
    let mut up = vec!["--memory", "2048"];
    for w in words {
        up.extend(["--bench-kernel-arg", w]);
    }
    let t = Instant::now();
    let mut vm = Vm::boot(hull, image, &up)?;
    let engine_ready_s = t.elapsed().as_secs_f64();
    let mut s = Sample {
        engine_ready_s,
        ..Sample::default()
    };
    let result = (|| -> Result<()> {
        check_words_passed(&vm, words)?;
        let st = vm.status()?;
        s.services_ready_s = st["guest"]["timeline"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["event"] == "all services ready")
            .and_then(|x| x["t"].as_f64())
            .unwrap_or(f64::NAN);
        vmtest::images::import_busybox(&vm, work)?;
        // The first run pays for loading the image's layers: not counted.
        vm.docker(&["run", "--rm", "busybox", "true"])?.success()?;
        let mut runs_s = Vec::new();
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            vm.docker(&["run", "--rm", "busybox", "true"])?.success()?;
            runs_s.push(t.elapsed().as_secs_f64());
        }
        s.docker_run_s = median(&mut runs_s);
        let v = hull_qemu::control::request_within(
            &vm.home.join("vsock.sock"),
            &json!({"op": "bench-runtimes", "iterations": 5, "trace": false}),
            std::time::Duration::from_secs(900),
        )
        .context("the in-VM runtime benchmark")?;
        if let Some(e) = v.get("error") {
            bail!("runtime benchmark: {e}");
        }
        s.lifecycle_ms = v["hull"]["median_ms"].as_f64().unwrap_or(f64::NAN);
        Ok(())
    })();
    let _ = vm.down();
    result.map(|()| s)
}

/// QEMU's own argv carries every word: a typo'd or dropped switch would
/// silently measure "all on" twice.
fn check_words_passed(vm: &Vm, words: &[&str]) -> Result<()> {
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(vm.home.join("state.json"))?)?;
    let pid = state["qemu_pid"]
        .as_u64()
        .context("state.json names no qemu_pid")?;
    let argv = std::fs::read(format!("/proc/{pid}/cmdline"))
        .with_context(|| format!("reading QEMU's argv (pid {pid})"))?;
    let argv = String::from_utf8_lossy(&argv).replace('\0', " ");
    let append = argv
        .split(" -append ")
        .nth(1)
        .context("QEMU has no -append")?;
    for w in words {
        if !append.split(' ').any(|x| x == *w) {
            bail!("kernel word {w} is missing from QEMU's -append: {append}");
        }
    }
    Ok(())
}

/// The median, averaging the two middle values of an even count (with two
/// rounds, the upper one alone would bias every variant towards its slower
/// boot).
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
