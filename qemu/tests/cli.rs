//! The `hull` CLI before any VM boots: settings are checked on the host, and
//! a bad file stops `hull up` with the file, line and field.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn hull(
    home: &std::path::Path,
    admin: Option<&std::path::Path>,
    args: &[&str],
) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hull"));
    c.args(args)
        .env("HULL_HOME", home)
        .env_remove("HULL_ADMIN_SETTINGS");
    if let Some(a) = admin {
        c.env("HULL_ADMIN_SETTINGS", a);
    }
    c.output().expect("running hull")
}

/// These tests need root: the admin settings file must be root-owned. A
/// test that cannot run fails, naming why.
fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() == 0 };
    assert!(
        root,
        "needs root: the admin settings file must be owned by root (run as root, or `cargo xtask test`)"
    );
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn env_and_status_of_a_stopped_home() {
    let t = tempfile::tempdir().unwrap();
    let o = hull(t.path(), None, &["env"]);
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!(
            "export DOCKER_HOST=unix://{}/docker.sock",
            t.path().display()
        )
    );
    let o = hull(t.path(), None, &["status"]);
    assert!(text(&o).contains("stopped"), "{}", text(&o));
}

#[test]
fn malformed_admin_settings_stop_up_naming_file_line_and_field() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let admin = t.path().join("admin-settings.json");
    std::fs::write(
        &admin,
        "{\"configurationFileVersion\": 2,\n \"enhancedContainerIsolation\": {\"locked\": true, \"value\": true,\n  \"dockerSocketMount\": {\"imageList\": {\"images\": [\"docker:cli\", 42]}}}}\n",
    )
    .unwrap();
    std::fs::set_permissions(&admin, std::fs::Permissions::from_mode(0o644)).unwrap();
    let home = t.path().join("home");
    let o = hull(&home, Some(&admin), &["up", "--image", "/nonexistent"]);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains(&admin.display().to_string()), "{out}");
    assert!(out.contains("line 3"), "{out}");
    assert!(out.contains("imageList.images[1]"), "{out}");
}

#[test]
fn admin_file_writable_by_others_is_refused() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let admin = t.path().join("admin-settings.json");
    std::fs::write(&admin, "{\"configurationFileVersion\": 2}").unwrap();
    std::fs::set_permissions(&admin, std::fs::Permissions::from_mode(0o666)).unwrap();
    let o = hull(&t.path().join("home"), Some(&admin), &["settings"]);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("must be owned by root and not writable"),
        "{out}"
    );
}

#[test]
fn a_user_cannot_change_a_locked_admin_value() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let admin = t.path().join("admin-settings.json");
    std::fs::write(
        &admin,
        r#"{"configurationFileVersion": 2, "enhancedContainerIsolation": {"locked": true, "value": true, "dockerSocketMount": {"imageList": {"images": ["docker:cli"]}}}}"#,
    )
    .unwrap();
    std::fs::set_permissions(&admin, std::fs::Permissions::from_mode(0o644)).unwrap();
    let home = t.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("settings.json"),
        r#"{"enhancedContainerIsolation": {"value": false, "dockerSocketMount": {"imageList": {"images": ["*"]}}}}"#,
    )
    .unwrap();
    let o = hull(&home, Some(&admin), &["settings"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("IGNORED"),
        "the ignored user value is not reported: {out}"
    );
    let images = out
        .lines()
        .find(|l| l.starts_with("dockerSocketMount.imageList.images"))
        .expect("no images row");
    assert!(images.contains("\"docker:cli\""), "{images}");
    assert!(images.contains("admin, locked"), "{images}");
    assert!(
        !images.contains('*'),
        "the user's wildcard got in: {images}"
    );
}

#[test]
fn bench_kernel_arg_refuses_words_outside_its_list() {
    let t = tempfile::tempdir().unwrap();
    for word in ["hull.selftest", "init=/bin/sh", "lockdown=none"] {
        let o = hull(t.path(), None, &["up", "--bench-kernel-arg", word]);
        assert!(!o.status.success(), "{word} accepted: {}", text(&o));
        assert!(
            text(&o).contains("is not a benchmark switch"),
            "{word}: {}",
            text(&o)
        );
        // Refused while parsing: nothing was started in the home.
        assert!(!t.path().join("state.json").exists());
    }
}
