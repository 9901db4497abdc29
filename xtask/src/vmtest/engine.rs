//! The docker experience through the host CLI's channel (issue: host CLI and
//! vsock channel): every scenario uses the real docker CLI on the host.

use anyhow::{bail, ensure, Result};

use super::vm::Vm;

pub fn version(vm: &Vm) -> Result<()> {
    let r = vm
        .docker(&[
            "version",
            "--format",
            "{{.Server.Version}} {{.Server.APIVersion}}",
        ])?
        .success()?;
    ensure!(
        r.out().starts_with("26."),
        "unexpected server version: {}",
        r.out()
    );
    Ok(())
}

pub fn run(vm: &Vm) -> Result<()> {
    let r = vm
        .docker(&["run", "--rm", "busybox", "echo", "hello from hull"])?
        .success()?;
    ensure!(r.out() == "hello from hull", "{r}");
    // Exit codes come back unchanged.
    let r = vm.docker(&["run", "--rm", "busybox", "sh", "-c", "exit 7"])?;
    ensure!(r.code == Some(7), "exit code not carried: {r}");
    // Engine errors reach the CLI as engine errors.
    vm.docker(&["inspect", "no-such-thing"])?
        .failure_with("No such object")?;
    Ok(())
}

/// `echo hello | docker run -i --rm busybox cat`: stdin EOF crosses the
/// channel as a half-close, so cat ends and the container exits 0.
pub fn run_stdin_eof(vm: &Vm) -> Result<()> {
    let r = vm
        .docker_stdin(&["run", "-i", "--rm", "busybox", "cat"], b"hello\n")?
        .success()?;
    ensure!(r.out() == "hello", "{r}");
    // A bigger stream, to cross many frames in both directions.
    let input: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let r = vm
        .docker_stdin(&["run", "-i", "--rm", "busybox", "wc", "-c"], &input)?
        .success()?;
    ensure!(r.out() == "300000", "{r}");
    Ok(())
}

/// `docker run -it` under a pseudo-terminal (as a user at a shell has one).
pub fn run_tty(vm: &Vm) -> Result<()> {
    let r = vm
        .sh("script -qec \"docker run -it --rm busybox sh -c 'tty; stty size; echo tty-ok'\" /dev/null")?
        .success()?;
    ensure!(
        r.stdout.contains("/dev/pts/0"),
        "no pty in the container: {r}"
    );
    ensure!(r.stdout.contains("tty-ok"), "{r}");
    Ok(())
}

pub fn exec(vm: &Vm) -> Result<()> {
    let id = vm
        .docker(&[
            "run",
            "-d",
            "--name",
            "exec-target",
            "busybox",
            "sleep",
            "300",
        ])?
        .success()?
        .out()
        .to_string();
    let r = vm
        .docker(&["exec", "exec-target", "sh", "-c", "echo in-$(hostname)"])?
        .success()?;
    ensure!(r.out().starts_with("in-"), "{r}");
    let r = vm
        .docker_stdin(&["exec", "-i", "exec-target", "cat"], b"exec-stdin\n")?
        .success()?;
    ensure!(r.out() == "exec-stdin", "{r}");
    let r = vm
        .sh("script -qec 'docker exec -it exec-target sh -c \"tty\"' /dev/null")?
        .success()?;
    ensure!(r.stdout.contains("/dev/pts/"), "{r}");
    vm.docker(&["rm", "-f", &id])?.success()?;
    Ok(())
}

pub fn logs_follow(vm: &Vm) -> Result<()> {
    let id = vm
        .docker(&[
            "run",
            "-d",
            "busybox",
            "sh",
            "-c",
            "for i in 1 2 3; do echo line$i; sleep 1; done",
        ])?
        .success()?
        .out()
        .to_string();
    // -f streams until the container ends, then returns.
    let r = vm.docker(&["logs", "-f", &id])?.success()?;
    ensure!(r.out() == "line1\nline2\nline3", "{r}");
    vm.docker(&["rm", "-f", &id])?.success()?;
    Ok(())
}

pub fn cp(vm: &Vm) -> Result<()> {
    let dir = super::boot::tempdir()?;
    let src = dir.join("in.bin");
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&src, &data)?;
    let id = vm
        .docker(&["create", "busybox", "true"])?
        .success()?
        .out()
        .to_string();
    vm.docker(&[
        "cp",
        &src.display().to_string(),
        &format!("{id}:/tmp/in.bin"),
    ])?
    .success()?;
    let back = dir.join("back.bin");
    vm.docker(&[
        "cp",
        &format!("{id}:/tmp/in.bin"),
        &back.display().to_string(),
    ])?
    .success()?;
    let got = std::fs::read(&back)?;
    let _ = std::fs::remove_dir_all(&dir);
    vm.docker(&["rm", &id])?.success()?;
    ensure!(got == data, "docker cp round trip changed the file");
    Ok(())
}

pub fn events(vm: &Vm) -> Result<()> {
    // --since from before the run: however late the stream is subscribed on a
    // slow machine, the engine replays from there and then keeps streaming;
    // the stream is read until `die` arrives (or a minute passes).
    let r = vm.sh(
        "t0=$(date +%s); f=\"$HULL_HOME/events.txt\"; : > \"$f\"; \
         docker events --since \"$t0\" --filter container=evtest --format '{{.Status}}' > \"$f\" 2>&1 & \
         ev=$!; docker run --rm --name evtest busybox true; \
         for i in $(seq 60); do grep -q die \"$f\" && break; sleep 1; done; \
         kill $ev; cat \"$f\"",
    )?;
    ensure!(
        r.stdout.contains("start") && r.stdout.contains("die"),
        "events did not stream: {r}"
    );
    Ok(())
}

pub fn context(vm: &Vm) -> Result<()> {
    let r = vm
        .sh("unset DOCKER_HOST; docker context use hull >/dev/null && docker version --format '{{.Server.Version}}'")?
        .success()?;
    ensure!(r.out().starts_with("26."), "{r}");
    Ok(())
}

/// `docker save` and `docker load` of a 100 MB image through the channel.
pub fn load_save_100mb(vm: &Vm) -> Result<()> {
    let dir = super::boot::tempdir()?;
    let tar = super::images::busybox_rootfs(&dir)?;
    let root = dir.join("busybox-root");
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c 100000000 /dev/urandom > {r}/big && sha256sum {r}/big | cut -d' ' -f1 > {d}/sum && tar -C {r} --owner=0 --group=0 -cf {t} .",
            r = root.display(),
            d = dir.display(),
            t = tar.display()
        ))
        .status()?;
    ensure!(st.success(), "making the 100 MB rootfs failed");
    let want = std::fs::read_to_string(dir.join("sum"))?.trim().to_string();
    vm.docker(&["import", &tar.display().to_string(), "big:1"])?
        .success()?;
    let saved = dir.join("big-image.tar");
    vm.docker(&["save", "-o", &saved.display().to_string(), "big:1"])?
        .success()?;
    let size = std::fs::metadata(&saved)?.len();
    ensure!(size > 100_000_000, "saved image is only {size} bytes");
    vm.docker(&["rmi", "big:1"])?.success()?;
    vm.docker(&["load", "-i", &saved.display().to_string()])?
        .success()?;
    let r = vm
        .docker(&[
            "run",
            "--rm",
            "big:1",
            "sh",
            "-c",
            "sha256sum /big | cut -d' ' -f1",
        ])?
        .success()?;
    let _ = std::fs::remove_dir_all(&dir);
    vm.docker(&["rmi", "big:1"])?.success()?;
    if r.out() != want {
        bail!("the loaded image's file differs: {} vs {want}", r.out());
    }
    Ok(())
}
