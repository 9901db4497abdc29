//! dockerd's configuration, written to /run at boot (the root is read-only).

use serde_json::json;

pub const DAEMON_JSON: &str = "/run/hull/daemon.json";
/// What dockerd passes to hull-runtime on every call: nothing, so its
/// fail-closed default holds (`--guard required`: no hull-guard, no
/// container). containerd's shim gives the runtime a clean environment, so
/// any setting would have to be an argument here.
#[cfg(not(feature = "weaken-guard"))]
pub const RUNTIME_ARGS: &[&str] = &[];
/// The guard-off build (`cargo xtask vm-test --weaken guard`): the mount
/// family is not trapped, so the escape suite can show what the guard
/// stops. Never shipped.
#[cfg(feature = "weaken-guard")]
pub const RUNTIME_ARGS: &[&str] = &["--guard", "none"];

/// The wall this build removed, if it is a weakened build (logged at boot,
/// reported in `status` as `weakened`). Exactly one `weaken-*` feature is
/// enabled by `cargo xtask`; `None` for every build that may ship.
pub const WEAKENED: Option<&str> = weakened();

const fn weakened() -> Option<&'static str> {
    if cfg!(feature = "weaken-guard") {
        Some("guard")
    } else if cfg!(feature = "weaken-userns") {
        Some("userns")
    } else if cfg!(feature = "weaken-gate") {
        Some("gate")
    } else if cfg!(feature = "weaken-kernel-locks") {
        Some("kernel-locks")
    } else if cfg!(feature = "weaken-nodev") {
        Some("nodev")
    } else if cfg!(feature = "weaken-settings-lock") {
        Some("settings-lock")
    } else {
        None
    }
}
/// dockerd's name for the one runtime (also the gate's: every create asks
/// for it) and where its binary is.
pub const RUNTIME_NAME: &str = "hull";
pub const RUNTIME_PATH: &str = "/usr/bin/hull-runtime";
/// The services that run containers, and so never start without
/// hull-runtime (the gate only fronts dockerd).
pub const NEEDS_RUNTIME: &[&str] = &["dockerd", "hull-gate"];

/// hull-runtime's path, or why the engine must not start: there is no
/// fallback to any other runtime (Debian's runc, or whatever answers to
/// that name), since that would run containers without hull's walls.
pub fn runtime(exists: impl Fn(&str) -> bool) -> Result<&'static str, String> {
    if exists(RUNTIME_PATH) {
        Ok(RUNTIME_PATH)
    } else {
        Err(format!(
            "{RUNTIME_PATH} is missing: the engine ({}) is not started, since hull runs containers with hull-runtime only",
            NEEDS_RUNTIME.join(", ")
        ))
    }
}

/// The most the user's engine settings may weigh.
const USER_MAX_BYTES: u64 = 256 * 1024;
/// dockerd's own socket: inside the root-only /run/hull, reachable by the gate only.
pub const DOCKER_SOCK: &str = "/run/hull/docker.sock";

/// The user's engine settings from the host (checked again here), if it
/// sent any: `Ok(None)` when there are none, an error (shown in `hull
/// status`, settings ignored) when they cannot be read or do not pass
/// hull-policy's check.
pub fn user_settings() -> Result<Option<serde_json::Map<String, serde_json::Value>>, String> {
    let Some(raw) = crate::fw_cfg::read(crate::fw_cfg::ENGINE, USER_MAX_BYTES)? else {
        return Ok(None);
    };
    hull_policy::parse_engine(&raw)
        .map(Some)
        .map_err(|e| format!("engine settings from the host: {e}"))
}

/// dockerd's configuration with `runtime_name` at `runtime_path` as its
/// default runtime (never Docker's built-in `runc`). `runtime_args` are
/// passed to the runtime on every call.
/// `defaults` are the image's engine defaults (the manifest's
/// `[vm.engine]`, from vm.json; they cannot set init's own keys,
/// [`crate::vmconf::ENGINE_KEYS_OF_INIT`]); the user's settings only add
/// keys that neither sets.
pub fn daemon_json(
    runtime_name: &str,
    runtime_path: &str,
    runtime_args: &[&str],
    defaults: &serde_json::Map<String, serde_json::Value>,
    user: Option<&serde_json::Map<String, serde_json::Value>>,
) -> String {
    // What init owns: its own sockets and paths, the runtime it found, and
    // the gateway of its network.
    let mut v = json!({
        "hosts": [format!("unix://{DOCKER_SOCK}")],
        "group": "root",
        "containerd": "/run/containerd/containerd.sock",
        "data-root": "/var/lib/docker",
        "exec-root": "/run/docker",
        "pidfile": "/run/docker.pid",
        "default-runtime": runtime_name,
        // `--add-host x:host-gateway` (and the gate's host.docker.internal)
        // reach the host: QEMU's gateway forwards to the host's loopback.
        "host-gateway-ip": crate::net::GATEWAY.to_string(),
    });
    if let Some(obj) = v.as_object_mut() {
        for (k, val) in defaults {
            obj.entry(k.clone()).or_insert_with(|| val.clone());
        }
    }
    v["runtimes"] = json!({ runtime_name: { "path": runtime_path, "runtimeArgs": runtime_args } });
    if let (Some(obj), Some(user)) = (v.as_object_mut(), user) {
        // hull-policy allows only keys that hull itself never sets.
        for (k, val) in user {
            obj.entry(k.clone()).or_insert_with(|| val.clone());
        }
    }
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(
            r#"{"log-driver": "json-file", "hosts": ["tcp://0.0.0.0:2375"],
            "builder": {"entitlements": {"network-host": false, "security-insecure": false}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn daemon_json_names_the_runtime() {
        let v: serde_json::Value = serde_json::from_str(&daemon_json(
            "hull",
            "/usr/bin/hull-runtime",
            &["--guard-socket", "/x"],
            &defaults(),
            None,
        ))
        .unwrap();
        assert_eq!(v["default-runtime"], "hull");
        assert_eq!(v["runtimes"]["hull"]["path"], "/usr/bin/hull-runtime");
        assert_eq!(v["runtimes"]["hull"]["runtimeArgs"][1], "/x");
        assert_eq!(v["builder"]["entitlements"]["network-host"], false);
        // init's own keys hold even against a default that names them.
        assert_eq!(v["hosts"][0], "unix:///run/hull/docker.sock");
        assert_eq!(v["log-driver"], "json-file");
        assert_eq!(v["host-gateway-ip"], "10.0.2.2");
        assert!(
            v.get("log-opts").is_none(),
            "Docker Engine's default log options"
        );
    }

    #[test]
    fn without_hull_runtime_the_engine_fails_closed() {
        assert_eq!(runtime(|p| p == RUNTIME_PATH), Ok("/usr/bin/hull-runtime"));
        let asked = std::cell::RefCell::new(Vec::new());
        let e = runtime(|p| {
            asked.borrow_mut().push(p.to_string());
            false
        })
        .unwrap_err();
        assert_eq!(*asked.borrow(), ["/usr/bin/hull-runtime"], "the check ran");
        assert_eq!(
            e,
            "/usr/bin/hull-runtime is missing: the engine (dockerd, hull-gate) is not started, since hull runs containers with hull-runtime only"
        );
        // Even when a runc is there, it is never used in its place.
        assert!(runtime(|p| p.ends_with("/runc")).is_err());
        // Every service that runs containers is left out, and what remains
        // still starts in order.
        let rest: Vec<_> = crate::services::table()
            .into_iter()
            .filter(|d| !NEEDS_RUNTIME.contains(&d.name))
            .collect();
        let order = crate::services::start_order(&rest).unwrap();
        assert_eq!(order, ["containerd", "hull-guard"]);
    }

    #[test]
    fn user_engine_settings_are_merged_but_never_override_hull() {
        let user =
            hull_policy::parse_engine(br#"{"insecure-registries": ["10.0.2.2:5000"]}"#).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&daemon_json("hull", "/x", &[], &defaults(), Some(&user)))
                .unwrap();
        assert_eq!(v["insecure-registries"][0], "10.0.2.2:5000");
        assert_eq!(v["default-runtime"], "hull");
    }
}
