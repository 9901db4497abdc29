//! Issue 15, a normal user's day one in user mode: a fresh account (made by
//! the test, with a home, as `adduser` leaves one) runs `hull up` (with the
//! image, memory and timeout every suite passes), no root, no sudo and no
//! settings files; `docker
//! run`, `docker run -v $HOME/x:/x` (Docker Desktop's default share),
//! `hull status` saying what user mode guarantees, and `hull down`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};

use super::vm::Vm;

const USER: &str = "hull-day-one";

/// Removes the account (and its home, the VM's disk with it) when the suite
/// ends; stops the VM first as root, should a scenario have left it up.
struct Account {
    hull: PathBuf,
    vm_home: PathBuf,
}

impl Drop for Account {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.hull)
            .args(["down", "--force"])
            .env("HULL_HOME", &self.vm_home)
            .output();
        let _ = std::process::Command::new("userdel")
            .args(["-r", USER])
            .output();
    }
}

fn id(flag: &str) -> Result<u32> {
    let o = std::process::Command::new("id")
        .args([flag, USER])
        .output()?;
    ensure!(o.status.success(), "id {flag} {USER} failed");
    Ok(String::from_utf8_lossy(&o.stdout).trim().parse()?)
}

pub fn setup(vm: &mut Vm, _work: &Path) -> Result<Box<dyn std::any::Any>> {
    let _ = std::process::Command::new("userdel")
        .args(["-r", USER])
        .output();
    let o = std::process::Command::new("useradd")
        .args(["--create-home", "--shell", "/bin/sh", USER])
        .output()
        .context("running useradd")?;
    ensure!(
        o.status.success(),
        "useradd {USER}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let home = PathBuf::from(format!("/home/{USER}"));
    ensure!(
        std::fs::metadata(&home)?.uid() == id("-u")?,
        "{} is not {USER}'s",
        home.display()
    );
    // hull's own default: no HULL_HOME is needed; the same path is named so
    // that the harness's commands all act on it.
    let vm_home = home.join(".local/share/hull");
    vm.use_home(&vm_home);
    vm.login = Some(USER.into());
    vm.env.push(("HOME".into(), home.display().to_string()));
    vm.env.push((
        "DOCKER_CONFIG".into(),
        home.join(".docker").display().to_string(),
    ));
    vm.vars
        .insert("user_home".into(), home.display().to_string());
    Ok(Box::new(Account {
        hull: vm.hull.clone(),
        vm_home,
    }))
}

/// `docker run` works, in a user namespace of its own.
pub fn run(vm: &Vm) -> Result<()> {
    let r = vm
        .docker(&["run", "--rm", "busybox", "cat", "/proc/self/uid_map"])?
        .success()?;
    let f: Vec<&str> = r.out().split_whitespace().collect();
    ensure!(
        f.first() == Some(&"0") && f.get(1) != Some(&"0"),
        "not in a user namespace of its own: {r}"
    );
    Ok(())
}

/// `-v $HOME/x:/x`: $HOME is shared by default; the container's root writes
/// there, and on the host the file is the user's.
pub fn home_share(vm: &Vm) -> Result<()> {
    let home = PathBuf::from(vm.var("user_home")?);
    let x = home.join("x");
    vm.sh(&format!("mkdir -p {}", x.display()))?.success()?;
    let bind = format!("{}:/x", x.display());
    let r = vm
        .docker(&[
            "run",
            "--rm",
            "-v",
            &bind,
            "busybox",
            "sh",
            "-c",
            "echo day-one > /x/f && stat -c %u /x/f",
        ])?
        .success()?;
    ensure!(r.out() == "0", "the file is not root's inside: {r}");
    let m = std::fs::metadata(x.join("f")).context("the file never reached the host")?;
    ensure!(
        m.uid() == id("-u")?,
        "on the host the file is uid {}, not {USER}'s",
        m.uid()
    );
    Ok(())
}

/// `hull status` tells the user what user mode does and does not promise.
pub fn status_says_user_mode(vm: &Vm) -> Result<()> {
    let r = vm.hull_cmd(&["status"])?.success()?;
    ensure!(
        r.out().contains("user mode: you control this VM")
            && r.out().contains("can bypass the admin's locks"),
        "hull status does not say what user mode guarantees: {r}"
    );
    let v = vm.status()?;
    ensure!(v["mode"] == "user", "mode: {}", v["mode"]);
    Ok(())
}

/// `hull down` as the user.
pub fn down(vm: &mut Vm) -> Result<()> {
    vm.down()?.success()?;
    let v = vm.status()?;
    ensure!(v["state"] == "stopped", "still running: {v}");
    Ok(())
}
