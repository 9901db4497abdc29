//! hull's build and test driver: `cargo xtask <task>`, one subcommand per task.

mod bench;
mod chart;
mod deps;
mod fuzz;
mod kernel;
mod paths;
mod plugins;
mod release;
mod repro;
mod testing;
mod vm;
mod vmtest;
mod weaken;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, boot and test hull", version)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install every build and test dependency (apt packages, vhost-device-vsock, Rust components); idempotent.
    Deps,
    /// Build the VM kernel from Debian's linux-source-6.12 and kernel-config/ (cached by content hash).
    Kernel(kernel::Args),
    /// Build the VM image (erofs root, qcow2 form, kernel) from image/manifest.toml.
    Image(vm::ImageArgs),
    /// Build what is missing, boot the VM and print the DOCKER_HOST to use.
    Up(vm::UpArgs),
    /// Shut the VM down cleanly (no data is lost).
    Down(vm::DownArgs),
    /// Run every test tier: unit, host integration (as root), VM.
    Test(testing::Args),
    /// Run the VM tier only: boot hull under QEMU and drive it with the real docker CLI.
    VmTest(vmtest::Args),
    /// Run the benchmarks and write target/bench/report.json and report.svg.
    Bench(bench::Args),
    /// Check that two builds give the same bytes: hull's binaries and the image
    /// (`--full`: also the kernel, twice from scratch).
    Repro(repro::Args),
    /// Build every weakened variant (one wall removed each), run the security
    /// scenarios on it, and write docs/walls.json and docs/security.md's table.
    Walls(weaken::WallsArgs),
    /// Write the release bundle target/release/hull-<version>-<arch>/ and its
    /// .tar: kernel, verified root, qcow2, boot.json, SBOM, sha256 listing.
    Release(release::Args),
    /// Run every cargo-fuzz target, or one, from its committed seeds (e.g. `cargo xtask fuzz --seconds 600 framed`).
    Fuzz(fuzz::Args),
}

fn main() -> std::process::ExitCode {
    // Errors are printed with their causes, without a backtrace (the tasks'
    // own output says where they were).
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.task {
        Task::Deps => deps::run(),
        Task::Kernel(a) => kernel::run(&a).map(|_| ()),
        Task::Image(a) => vm::image(&a).map(|_| ()),
        Task::Up(a) => vm::up(&a),
        Task::Down(a) => vm::down(&a),
        Task::Test(a) => testing::run(&a),
        Task::VmTest(a) => vmtest::run(&a),
        Task::Bench(a) => bench::run(&a),
        Task::Repro(a) => repro::run(&a),
        Task::Fuzz(a) => fuzz::run(&a),
        Task::Release(a) => release::run(&a),
        Task::Walls(a) => weaken::walls(&a),
    }
}
