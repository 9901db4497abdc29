//! Host tier: a container whose /dev is not the runtime's own fresh tmpfs
//! (a bind whose source holds the machine's real device nodes) must never
//! have those nodes handed to its root. Before the fix, the device setup
//! took an existing node of the right number for one it had made, and
//! chowned the machine's own /dev/null (and /dev/ptmx, the /dev/fd links,
//! ...) to the container's root id.

mod common;

use common::*;
use serde_json::json;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The machine's nodes and links the runtime's device setup names.
const WATCHED: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/fd",
    "/dev/stdin",
    "/dev/stdout",
    "/dev/stderr",
    "/dev/console",
];

fn owners() -> Vec<(&'static str, Option<(u32, u32)>)> {
    WATCHED
        .iter()
        .map(|p| {
            (
                *p,
                std::fs::symlink_metadata(p)
                    .ok()
                    .map(|m| (m.uid(), m.gid())),
            )
        })
        .collect()
}

/// Unmounts the bind of the machine's /dev when the test ends, however.
struct Bound(PathBuf);

impl Drop for Bound {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn a_bind_of_the_machines_dev_over_dev_never_chowns_its_nodes() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "missing prerequisite: root (bind mounts and namespaces)"
    );
    assert!(
        Path::new("/bin/busybox").exists(),
        "missing prerequisite: /bin/busybox (apt-get install busybox-static)"
    );
    let env = Env::new();
    // The machine's /dev, reachable under the test folder (the runtime's
    // mount root here), as a volume or host share holding real nodes would be.
    let src = std::fs::canonicalize(env.dir.path())
        .unwrap()
        .join("machine-dev");
    std::fs::create_dir(&src).unwrap();
    nix::mount::mount(
        Some("/dev"),
        &src,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .expect("bind the machine's /dev under the test folder");
    let _bound = Bound(src.clone());
    let before = owners();
    assert_eq!(
        before.iter().find(|(p, _)| *p == "/dev/null").unwrap().1,
        Some((0, 0)),
        "the machine's /dev/null must start root-owned: {before:?}"
    );

    let mut c = config(&[
        "sh",
        "-c",
        "echo null=$(stat -c %F,%t,%T /dev/null); \
         test -c /dev/kmsg && echo machine_dev=yes; echo done",
    ]);
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/dev", "type": "bind", "source": src, "options": ["bind", "rw"]
    }));
    let b = env.bundle("b", &c);
    let (ok, out, err) = run_to_end(&env, "devchown", &b);

    // Put the machine back first (a failure must not leave it changed).
    let after = owners();
    for ((p, was), (_, now)) in before.iter().zip(after.iter()) {
        if let (Some((u, g)), Some(n)) = (was, now) {
            if (*u, *g) != *n {
                let _ = std::os::unix::fs::lchown(p, Some(*u), Some(*g));
            }
        }
    }
    // The attempt really happened: the container ran with the machine's
    // /dev as its /dev, and its /dev/null is a real null device.
    assert!(ok, "{err}");
    let kv = kv(&out);
    assert_eq!(
        kv.get("machine_dev").map(String::as_str),
        Some("yes"),
        "{out}"
    );
    assert_eq!(kv["null"], "character special file,1,3", "{out}");
    assert_eq!(
        after, before,
        "the machine's device nodes changed owner (put back by the test)"
    );
}
