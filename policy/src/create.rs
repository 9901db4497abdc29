//! `POST /containers/create` and `POST /volumes/create` bodies.
//!
//! # Making sure the engine honours what was checked
//!
//! The engine decodes the body with Go's `encoding/json`, which (a) keeps
//! the last of duplicate keys, (b) matches keys to struct fields
//! case-insensitively, with Unicode folding (`binds`, `BINDS` and `Bindſ`
//! all set `Binds`), and (c) still reads `HostConfig` fields placed at the
//! top level of the body (a deprecated form). A policy reading
//! `HostConfig.Binds` from a `serde_json::Value` would miss all three. So:
//!
//! - duplicate keys anywhere are refused (400);
//! - in every object the engine decodes into a struct this crate inspects
//!   (the body, `HostConfig`, `NetworkingConfig`, `Mounts[]` and their
//!   options, `Devices[]`, `LogConfig`), a key that Go would fold onto a
//!   field but that is not spelt exactly like it is refused (400);
//! - `HostConfig` fields at the top level of the body are dropped (the
//!   engine of today ignores them; clients such as some SDKs send a
//!   top-level `Runtime`), so nothing an engine might merge from them
//!   arrives unchecked;
//! - the gate forwards [`CreateRequest::to_bytes`], the re-serialised body,
//!   never the original bytes, so the engine reads exactly what was
//!   checked (and the forced `Runtime`).

use serde_json::{Map, Value};

use crate::json::{self, escape_for_message, Limits};
use crate::refusal::Refusal;

/// Device nodes a container may be given (`--device`), and their numbers
/// for `--device-cgroup-rule`: FUSE, TUN and the harmless character devices
/// every container already has. Everything else (disks, `/dev/mem`,
/// `/dev/kmsg`, `/dev/port`, `/dev/vsock`, ...) is a VM device.
pub const SAFE_DEVICES: &[(&str, u32, u32)] = &[
    ("/dev/fuse", 10, 229),
    ("/dev/net/tun", 10, 200),
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Annotation key prefixes reserved for hull (the runtime may read them).
pub const RESERVED_ANNOTATION_PREFIXES: &[&str] = &["dev.hull.", "io.hull."];

/// The engine's default masked paths (moby `oci/defaults.go`).
const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// The engine's default read-only paths.
const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

// Field lists of the Go structs the engine decodes into (docker 26.1).
const CONFIG_FIELDS: &[&str] = &[
    "Hostname",
    "Domainname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "ExposedPorts",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Env",
    "Cmd",
    "Healthcheck",
    "ArgsEscaped",
    "Image",
    "Volumes",
    "WorkingDir",
    "Entrypoint",
    "NetworkDisabled",
    "MacAddress",
    "OnBuild",
    "Labels",
    "StopSignal",
    "StopTimeout",
    "Shell",
];
const WRAPPER_FIELDS: &[&str] = &["HostConfig", "Cpuset", "NetworkingConfig"];
const HOSTCONFIG_FIELDS: &[&str] = &[
    "Binds",
    "ContainerIDFile",
    "LogConfig",
    "NetworkMode",
    "PortBindings",
    "RestartPolicy",
    "AutoRemove",
    "VolumeDriver",
    "VolumesFrom",
    "ConsoleSize",
    "Annotations",
    "CapAdd",
    "CapDrop",
    "CgroupnsMode",
    "Dns",
    "DnsOptions",
    "DnsSearch",
    "ExtraHosts",
    "GroupAdd",
    "IpcMode",
    "Cgroup",
    "Links",
    "OomScoreAdj",
    "PidMode",
    "Privileged",
    "PublishAllPorts",
    "ReadonlyRootfs",
    "SecurityOpt",
    "StorageOpt",
    "Tmpfs",
    "UTSMode",
    "UsernsMode",
    "ShmSize",
    "Sysctls",
    "Runtime",
    "Isolation",
    "Mounts",
    "MaskedPaths",
    "ReadonlyPaths",
    "Init",
];
const RESOURCES_FIELDS: &[&str] = &[
    "CpuShares",
    "Memory",
    "NanoCpus",
    "CgroupParent",
    "BlkioWeight",
    "BlkioWeightDevice",
    "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps",
    "BlkioDeviceReadIOps",
    "BlkioDeviceWriteIOps",
    "CpuPeriod",
    "CpuQuota",
    "CpuRealtimePeriod",
    "CpuRealtimeRuntime",
    "CpusetCpus",
    "CpusetMems",
    "Devices",
    "DeviceCgroupRules",
    "DeviceRequests",
    "KernelMemory",
    "KernelMemoryTCP",
    "MemoryReservation",
    "MemorySwap",
    "MemorySwappiness",
    "OomKillDisable",
    "PidsLimit",
    "Ulimits",
    "CpuCount",
    "CpuPercent",
    "IOMaximumIOps",
    "IOMaximumBandwidth",
];
const NETWORKING_FIELDS: &[&str] = &["EndpointsConfig"];
const MOUNT_FIELDS: &[&str] = &[
    "Type",
    "Source",
    "Target",
    "ReadOnly",
    "Consistency",
    "BindOptions",
    "VolumeOptions",
    "TmpfsOptions",
    "ClusterOptions",
];
const BIND_OPTIONS_FIELDS: &[&str] = &[
    "Propagation",
    "NonRecursive",
    "CreateMountpoint",
    "ReadOnlyNonRecursive",
    "ReadOnlyForceRecursive",
];
const VOLUME_OPTIONS_FIELDS: &[&str] = &["NoCopy", "Labels", "Subpath", "DriverConfig"];
const DRIVER_FIELDS: &[&str] = &["Name", "Options"];
const DEVICE_FIELDS: &[&str] = &["PathOnHost", "PathInContainer", "CgroupPermissions"];
const LOG_CONFIG_FIELDS: &[&str] = &["Type", "Config"];
const VOLUME_CREATE_FIELDS: &[&str] = &[
    "ClusterVolumeSpec",
    "Driver",
    "DriverOpts",
    "Labels",
    "Name",
];

/// Log options that make the engine read a VM file.
const LOG_PATH_OPTIONS: &[&str] = &[
    "syslog-tls-ca-cert",
    "syslog-tls-cert",
    "syslog-tls-key",
    "splunk-capath",
];

fn bad(msg: impl Into<String>) -> Refusal {
    Refusal::bad_request(msg)
}

/// Folds a key the way Go's `encoding/json` does when it compares keys with
/// struct field names (Go ≥ 1.21 `foldName`: ASCII upper-cased, every other
/// rune mapped to the smallest rune of its case-folding orbit). Field names
/// are ASCII, and the only non-ASCII runes whose orbit contains an ASCII
/// letter are U+017F (ſ → S) and U+212A (Kelvin sign → K); any other
/// non-ASCII rune can never match a field, so `None` is returned.
fn go_fold(key: &str) -> Option<String> {
    key.chars()
        .map(|c| match c {
            'ſ' => Some('S'),
            '\u{212A}' => Some('K'),
            c if c.is_ascii() => Some(c.to_ascii_uppercase()),
            _ => None,
        })
        .collect()
}

/// Refuses keys that Go would map onto one of `fields` without being spelt
/// exactly like it (see the module docs).
/// The name containers reach the host by, as under Docker Desktop.
pub const HOST_ALIAS: &str = "host.docker.internal";

/// Adds `host.docker.internal:host-gateway` to `ExtraHosts` (the engine
/// resolves `host-gateway` to the address init configured), unless the
/// client named that host itself, or the container joins another's
/// network namespace (the engine refuses extra hosts there).
fn add_host_alias(hc: &mut Map<String, Value>) -> Result<(), Refusal> {
    let mode = get_str(hc, "NetworkMode", "HostConfig")?.unwrap_or("");
    if mode.starts_with("container:") || mode == "none" {
        return Ok(());
    }
    let named = get_str_list(hc, "ExtraHosts", "HostConfig")?
        .iter()
        .any(|e| e.split([':', '=']).next() == Some(HOST_ALIAS));
    if named {
        return Ok(());
    }
    let entry = Value::String(format!("{HOST_ALIAS}:host-gateway"));
    match hc.get_mut("ExtraHosts") {
        Some(Value::Array(list)) => list.push(entry),
        _ => {
            hc.insert("ExtraHosts".into(), Value::Array(vec![entry]));
        }
    }
    Ok(())
}

fn check_keys(obj: &Map<String, Value>, fields: &[&[&str]], path: &str) -> Result<(), Refusal> {
    for key in obj.keys() {
        let Some(folded) = go_fold(key) else { continue };
        for field in fields.iter().flat_map(|f| f.iter()) {
            if *field != key && field.to_ascii_uppercase() == folded {
                return Err(bad(format!(
                    "hull: key \"{}\" in {path} must be spelt \"{field}\"",
                    escape_for_message(key)
                )));
            }
        }
    }
    Ok(())
}

fn as_object<'a>(v: &'a Value, path: &str) -> Result<Option<&'a Map<String, Value>>, Refusal> {
    match v {
        Value::Null => Ok(None),
        Value::Object(m) => Ok(Some(m)),
        _ => Err(bad(format!("hull: {path} must be an object"))),
    }
}

fn get_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, Refusal> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(format!("hull: {path}.{key} must be a string"))),
    }
}

fn get_str_list<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Vec<&'a str>, Refusal> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .ok_or_else(|| bad(format!("hull: {path}.{key} must be a list of strings")))
            })
            .collect(),
        Some(_) => Err(bad(format!("hull: {path}.{key} must be a list of strings"))),
    }
}

fn get_array<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a [Value], Refusal> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(bad(format!("hull: {path}.{key} must be a list"))),
    }
}

fn get_str_map<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Vec<(&'a str, &'a str)>, Refusal> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|s| (k.as_str(), s))
                    .ok_or_else(|| bad(format!("hull: {path}.{key} values must be strings")))
            })
            .collect(),
        Some(_) => Err(bad(format!("hull: {path}.{key} must be an object"))),
    }
}

/// Where a bind source sits in the body, so it can be rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindLocation {
    /// `HostConfig.Binds[i]` (the part before the first `:`).
    Binds(usize),
    /// `HostConfig.Mounts[i].Source` of a `bind` mount.
    Mount(usize),
    /// `HostConfig.Mounts[i].VolumeOptions.DriverConfig.Options.device` of
    /// a volume whose options bind a path.
    VolumeDevice(usize),
}

/// A path the engine would bind into the container, as the client wrote
/// it. The gate maps host paths into the VM, resolves it, judges it with
/// [`crate::mounts::classify_bind`] and writes the resolved path back with
/// [`CreateRequest::set_bind_source`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindSource {
    /// Where it is in the body.
    pub location: BindLocation,
    /// The path as given.
    pub source: String,
}

/// Another container whose namespace this one joins (`container:<id>`).
/// The gate must check that the target was itself created under hull's
/// policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceJoin {
    /// `network`, `pid`, `ipc` or `cgroup`.
    pub namespace: &'static str,
    /// The container named after `container:`.
    pub container: String,
}

/// Settings the create policy needs from its caller.
#[derive(Debug, Clone, Copy)]
pub struct CreateContext<'a> {
    /// The runtime every container must use (`HostConfig.Runtime`).
    pub runtime: &'a str,
}

/// A create request that passed the policy, with what the gate still has to
/// check against the VM.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRequest {
    body: Value,
    /// `Image` as requested (for the socket decision and its message).
    pub image: String,
    /// Every path the engine would bind (see [`BindSource`]).
    pub binds: Vec<BindSource>,
    /// Named volumes used (`Binds` names and `volume` mounts with a
    /// source). Existing ones must be inspected: their options may bind a
    /// path ([`volume_options_bind_source`]).
    pub named_volumes: Vec<String>,
    /// `HostConfig.VolumesFrom` containers (without `:ro`/`:rw`). Their
    /// mounts are inherited: the gate must check they were created under
    /// hull's policy.
    pub volumes_from: Vec<String>,
    /// Namespaces shared with other containers.
    pub joins: Vec<NamespaceJoin>,
    /// What the policy changed (for the audit log).
    pub notes: Vec<String>,
}

fn host_namespaces_message(ns: &[&str]) -> String {
    format!(
        "hull containers can't share namespaces [{}] with the host (because they use the linux user-namespace for isolation)",
        ns.join(" ")
    )
}

/// ECI's refusal for `--network=host`.
pub const HOST_NETWORK_MESSAGE: &str =
    "hull containers can't share a network namespace with the host (because they use the linux user-namespace for isolation)";

impl CreateRequest {
    /// Applies the create policy to a raw body:
    ///
    /// - `HostConfig.Runtime` is set to `ctx.runtime` (a user's
    ///   `--runtime` is ignored, as in ECI);
    /// - `PidMode`/`IpcMode`/`UTSMode`/`CgroupnsMode` = `host` and
    ///   `NetworkMode` = `host` (or an endpoint on the `host` network) are
    ///   refused with ECI's messages; `UsernsMode` = `host` is dropped;
    /// - seccomp disabled (`seccomp=unconfined`, `seccomp:unconfined`, or a
    ///   profile that is `unconfined` by another name: see
    ///   [`SECCOMP_WITHHELD`] and `check_seccomp`) is refused, and profiles
    ///   are read like the engine reads them (Go's key folding);
    ///   `apparmor=...` passes (the VM kernel has no AppArmor, so it
    ///   changes nothing); `MaskedPaths`/`ReadonlyPaths` that drop any
    ///   default path (what `systempaths=unconfined` sends) are refused;
    /// - `Devices` outside [`SAFE_DEVICES`], any `DeviceRequests` (GPUs),
    ///   and `DeviceCgroupRules` other than `c <major>:<minor>` of a safe
    ///   device are refused;
    /// - `shared`/`rshared` bind propagation (mounts flowing from the
    ///   container into the VM) is refused; mount types other than `bind`,
    ///   `volume` and `tmpfs`, volume drivers other than `local`, and local
    ///   volume options other than tmpfs or a bind are refused;
    /// - log options that read VM files or write to VM sockets, annotations
    ///   with a [`RESERVED_ANNOTATION_PREFIXES`] prefix, and a
    ///   `CgroupParent` outside the containers' slice (`check_cgroup_parent`)
    ///   are refused;
    /// - `Privileged`, `CapAdd` and everything else pass (they are confined
    ///   by the user namespace and the runtime).
    pub fn parse(body: &[u8], ctx: &CreateContext<'_>) -> Result<CreateRequest, Refusal> {
        let node = json::parse(body, Limits::API_BODY)
            .map_err(|e| bad(format!("hull: invalid request body: {e}")))?;
        let body = node
            .to_value()
            .map_err(|e| bad(format!("hull: invalid request body: {e}")))?;
        Self::from_value(body, ctx)
    }

    /// [`CreateRequest::parse`] on an already parsed body. A
    /// `serde_json::Value` has already dropped duplicate keys (keeping the
    /// last), so the gate must use `parse` on the received bytes; this is for
    /// bodies the caller built itself.
    pub fn from_value(mut body: Value, ctx: &CreateContext<'_>) -> Result<CreateRequest, Refusal> {
        let Value::Object(root) = &mut body else {
            return Err(bad("hull: the request body must be a JSON object"));
        };
        check_keys(root, &[CONFIG_FIELDS, WRAPPER_FIELDS], "the request body")?;
        // Top-level HostConfig fields (`Runtime`, `Binds`, ...): the engine
        // ignores them (its wrapper reads HostConfig only), and some
        // clients send them. They are dropped here, so that whatever an
        // engine might once have merged from them never reaches it
        // unchecked.
        let stray: Vec<String> = root
            .keys()
            .filter(|key| {
                go_fold(key).is_some_and(|folded| {
                    HOSTCONFIG_FIELDS
                        .iter()
                        .chain(RESOURCES_FIELDS)
                        .any(|f| f.to_ascii_uppercase() == folded)
                })
            })
            .cloned()
            .collect();
        for key in &stray {
            root.remove(key);
        }
        let image = get_str(root, "Image", "the request body")?
            .unwrap_or("")
            .to_string();
        let mut out = CreateRequest {
            body: Value::Null,
            image,
            binds: Vec::new(),
            named_volumes: Vec::new(),
            volumes_from: Vec::new(),
            joins: Vec::new(),
            notes: stray
                .iter()
                .map(|k| {
                    format!(
                        "top-level \"{}\" ignored (the engine reads it only inside HostConfig)",
                        escape_for_message(k)
                    )
                })
                .collect(),
        };

        if let Some(nc) = root.get("NetworkingConfig") {
            check_networking(nc)?;
        }

        let hc_value = root
            .entry("HostConfig")
            .or_insert_with(|| Value::Object(Map::new()));
        if hc_value.is_null() {
            *hc_value = Value::Object(Map::new());
        }
        let Value::Object(hc) = hc_value else {
            return Err(bad("hull: HostConfig must be an object"));
        };
        check_keys(hc, &[HOSTCONFIG_FIELDS, RESOURCES_FIELDS], "HostConfig")?;
        out.check_host_config(hc)?;

        // Rewrites come last, after every check passed.
        match get_str(hc, "Runtime", "HostConfig")? {
            Some(r) if r == ctx.runtime => {}
            Some(r) if !r.is_empty() => out.notes.push(format!(
                "HostConfig.Runtime \"{}\" replaced by \"{}\"",
                escape_for_message(r),
                ctx.runtime
            )),
            _ => {}
        }
        hc.insert("Runtime".into(), Value::String(ctx.runtime.to_string()));
        if get_str(hc, "UsernsMode", "HostConfig")? == Some("host") {
            hc.remove("UsernsMode");
            out.notes
                .push("HostConfig.UsernsMode \"host\" ignored".into());
        }
        add_host_alias(hc)?;
        out.body = body;
        Ok(out)
    }

    fn check_host_config(&mut self, hc: &Map<String, Value>) -> Result<(), Refusal> {
        const P: &str = "HostConfig";
        // Namespaces.
        let mut shared = Vec::new();
        for (key, ns) in [
            ("PidMode", "pid"),
            ("IpcMode", "ipc"),
            ("UTSMode", "uts"),
            ("CgroupnsMode", "cgroup"),
        ] {
            if get_str(hc, key, P)? == Some("host") {
                shared.push(ns);
            }
        }
        if !shared.is_empty() {
            return Err(Refusal::forbidden(host_namespaces_message(&shared)));
        }
        let network_mode = get_str(hc, "NetworkMode", P)?;
        if network_mode == Some("host") {
            return Err(Refusal::forbidden(HOST_NETWORK_MESSAGE));
        }
        for (key, ns) in [
            ("NetworkMode", "network"),
            ("PidMode", "pid"),
            ("IpcMode", "ipc"),
            ("Cgroup", "cgroup"),
        ] {
            if let Some(c) = get_str(hc, key, P)?.and_then(|v| v.strip_prefix("container:")) {
                self.joins.push(NamespaceJoin {
                    namespace: ns,
                    container: c.to_string(),
                });
            }
        }

        check_security_opts(&get_str_list(hc, "SecurityOpt", P)?)?;
        for (key, defaults) in [
            ("MaskedPaths", DEFAULT_MASKED_PATHS),
            ("ReadonlyPaths", DEFAULT_READONLY_PATHS),
        ] {
            if matches!(hc.get(key), None | Some(Value::Null)) {
                continue;
            }
            let given = get_str_list(hc, key, P)?;
            if let Some(missing) = defaults.iter().find(|d| !given.contains(d)) {
                return Err(Refusal::forbidden(format!(
                    "hull: HostConfig.{key} must keep {missing} (--security-opt systempaths=unconfined is not allowed)"
                )));
            }
        }

        check_devices(hc)?;

        if let Some(cp) = get_str(hc, "CgroupParent", P)? {
            check_cgroup_parent(cp)?;
        }
        for (k, _) in get_str_map(hc, "Annotations", P)? {
            if RESERVED_ANNOTATION_PREFIXES
                .iter()
                .any(|p| k.starts_with(p))
            {
                return Err(Refusal::forbidden(format!(
                    "hull: annotation \"{}\" uses a prefix reserved for hull",
                    escape_for_message(k)
                )));
            }
        }
        if let Some(lc) = hc.get("LogConfig") {
            if let Some(lc) = as_object(lc, "HostConfig.LogConfig")? {
                check_keys(lc, &[LOG_CONFIG_FIELDS], "HostConfig.LogConfig")?;
                for (k, v) in get_str_map(lc, "Config", "HostConfig.LogConfig")? {
                    let lower = v.trim().to_ascii_lowercase();
                    if LOG_PATH_OPTIONS.contains(&k)
                        || lower.starts_with("unix://")
                        || lower.starts_with("unixgram://")
                    {
                        return Err(Refusal::forbidden(format!(
                            "hull: log option \"{}\" would make the engine use a VM file or socket",
                            escape_for_message(k)
                        )));
                    }
                }
            }
        }
        if let Some(d) = get_str(hc, "VolumeDriver", P)? {
            check_volume_driver(d)?;
        }

        // Binds: "src:dst[:mode]"; an absolute src is a bind, else a volume.
        for (i, b) in get_str_list(hc, "Binds", P)?.into_iter().enumerate() {
            let mut parts = b.splitn(4, ':');
            let src = parts.next().unwrap_or("");
            let rest: Vec<&str> = parts.collect();
            if rest.len() >= 2 {
                let mode = rest[1];
                if mode.split(',').any(|o| o == "shared" || o == "rshared") {
                    return Err(propagation_refused());
                }
            }
            if rest.is_empty() || src.is_empty() {
                // Only a container path: an anonymous volume.
                continue;
            }
            if src.starts_with('/') {
                self.binds.push(BindSource {
                    location: BindLocation::Binds(i),
                    source: src.to_string(),
                });
            } else {
                self.named_volumes.push(src.to_string());
            }
        }

        for (i, m) in get_array(hc, "Mounts", P)?.iter().enumerate() {
            let path = format!("HostConfig.Mounts[{i}]");
            let Some(m) = as_object(m, &path)? else {
                continue;
            };
            check_keys(m, &[MOUNT_FIELDS], &path)?;
            let ty = get_str(m, "Type", &path)?.unwrap_or("");
            let source = get_str(m, "Source", &path)?.unwrap_or("");
            match ty {
                "bind" => {
                    if let Some(bo) = m.get("BindOptions") {
                        let bp = format!("{path}.BindOptions");
                        if let Some(bo) = as_object(bo, &bp)? {
                            check_keys(bo, &[BIND_OPTIONS_FIELDS], &bp)?;
                            if matches!(
                                get_str(bo, "Propagation", &bp)?,
                                Some("shared" | "rshared")
                            ) {
                                return Err(propagation_refused());
                            }
                        }
                    }
                    self.binds.push(BindSource {
                        location: BindLocation::Mount(i),
                        source: source.to_string(),
                    });
                }
                "volume" => {
                    if !source.is_empty() {
                        self.named_volumes.push(source.to_string());
                    }
                    if let Some(vo) = m.get("VolumeOptions") {
                        let vp = format!("{path}.VolumeOptions");
                        if let Some(vo) = as_object(vo, &vp)? {
                            check_keys(vo, &[VOLUME_OPTIONS_FIELDS], &vp)?;
                            if let Some(dc) = vo.get("DriverConfig") {
                                let dp = format!("{vp}.DriverConfig");
                                if let Some(dc) = as_object(dc, &dp)? {
                                    check_keys(dc, &[DRIVER_FIELDS], &dp)?;
                                    let driver = get_str(dc, "Name", &dp)?;
                                    let opts = get_str_map(dc, "Options", &dp)?;
                                    if let Some(dev) =
                                        volume_options_bind_source(driver, opts.into_iter())?
                                    {
                                        self.binds.push(BindSource {
                                            location: BindLocation::VolumeDevice(i),
                                            source: dev,
                                        });
                                    }
                                }
                            }
                        }
                    }
                }
                "tmpfs" => {}
                other => {
                    return Err(Refusal::forbidden(format!(
                        "hull: mount type \"{}\" is not supported",
                        escape_for_message(other)
                    )))
                }
            }
        }

        for v in get_str_list(hc, "VolumesFrom", P)? {
            let name = v.split(':').next().unwrap_or("");
            if !name.is_empty() {
                self.volumes_from.push(name.to_string());
            }
        }
        Ok(())
    }

    /// The body to forward (policy applied).
    pub fn body(&self) -> &Value {
        &self.body
    }

    /// The body to forward, serialised. Always forward this, never the
    /// bytes received.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.body).unwrap_or_default()
    }

    /// Replaces the bind source at `index` in [`CreateRequest::binds`] with
    /// the path the gate resolved in the VM, so that the engine mounts what
    /// was checked. A path containing `:` cannot be written into a `Binds`
    /// entry and is refused.
    pub fn set_bind_source(&mut self, index: usize, resolved: &str) -> Result<(), Refusal> {
        let Some(bind) = self.binds.get(index).cloned() else {
            return Err(bad("hull: no such bind source"));
        };
        let hc = self
            .body
            .get_mut("HostConfig")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| bad("hull: HostConfig missing"))?;
        match bind.location {
            BindLocation::Binds(i) => {
                if resolved.contains(':') {
                    return Err(Refusal::forbidden(format!(
                        "hull: can't bind {} (a ':' in a -v source is ambiguous; use --mount)",
                        escape_for_message(resolved)
                    )));
                }
                let entry = hc
                    .get_mut("Binds")
                    .and_then(|b| b.get_mut(i))
                    .ok_or_else(|| bad("hull: bind entry missing"))?;
                let old = entry.as_str().unwrap_or("");
                let rest = old.split_once(':').map(|(_, r)| r).unwrap_or("");
                *entry = Value::String(format!("{resolved}:{rest}"));
            }
            BindLocation::Mount(i) => {
                let m = hc
                    .get_mut("Mounts")
                    .and_then(|m| m.get_mut(i))
                    .and_then(Value::as_object_mut)
                    .ok_or_else(|| bad("hull: mount entry missing"))?;
                m.insert("Source".into(), Value::String(resolved.to_string()));
            }
            BindLocation::VolumeDevice(i) => {
                let opts = hc
                    .get_mut("Mounts")
                    .and_then(|m| m.get_mut(i))
                    .and_then(|m| m.get_mut("VolumeOptions"))
                    .and_then(|v| v.get_mut("DriverConfig"))
                    .and_then(|d| d.get_mut("Options"))
                    .and_then(Value::as_object_mut)
                    .ok_or_else(|| bad("hull: volume options missing"))?;
                opts.insert("device".into(), Value::String(resolved.to_string()));
            }
        }
        if let Some(b) = self.binds.get_mut(index) {
            b.source = resolved.to_string();
        }
        Ok(())
    }

    /// Pins every reference to container `given` (`--volumes-from`,
    /// `--network`/`--pid`/`--ipc`/`--cgroupns`-style `container:<given>`)
    /// to `id`, the full id of the container the gate checked, so that a
    /// rename or a new container under that name between the check and the
    /// engine's create (or the container's start, when the engine resolves
    /// the name again) cannot swap in another container.
    pub fn pin_container(&mut self, given: &str, id: &str) {
        let Some(hc) = self
            .body
            .get_mut("HostConfig")
            .and_then(Value::as_object_mut)
        else {
            return;
        };
        let joined = format!("container:{given}");
        for key in ["NetworkMode", "PidMode", "IpcMode", "Cgroup"] {
            if let Some(v) = hc.get_mut(key) {
                if v.as_str() == Some(joined.as_str()) {
                    *v = Value::String(format!("container:{id}"));
                }
            }
        }
        if let Some(Value::Array(list)) = hc.get_mut("VolumesFrom") {
            for entry in list.iter_mut() {
                let Some(e) = entry.as_str() else { continue };
                let (name, mode) = match e.split_once(':') {
                    Some((n, m)) => (n, Some(m)),
                    None => (e, None),
                };
                if name == given {
                    *entry = Value::String(match mode {
                        Some(m) => format!("{id}:{m}"),
                        None => id.to_string(),
                    });
                }
            }
        }
    }

    /// Pins `Image` to an exact reference (an image id or `name@digest`)
    /// so a re-tag between the gate's check and the engine's create cannot
    /// swap the image. Worth doing when a socket mount was granted.
    pub fn pin_image(&mut self, reference: &str) {
        if let Some(root) = self.body.as_object_mut() {
            root.insert("Image".into(), Value::String(reference.to_string()));
        }
    }
}

fn propagation_refused() -> Refusal {
    Refusal::forbidden(
        "hull: shared bind propagation is not allowed (mounts made in a container must not appear in the VM)",
    )
}

fn check_networking(nc: &Value) -> Result<(), Refusal> {
    let Some(nc) = as_object(nc, "NetworkingConfig")? else {
        return Ok(());
    };
    check_keys(nc, &[NETWORKING_FIELDS], "NetworkingConfig")?;
    if let Some(ec) = nc.get("EndpointsConfig") {
        if let Some(ec) = as_object(ec, "NetworkingConfig.EndpointsConfig")? {
            if ec.contains_key("host") {
                return Err(Refusal::forbidden(HOST_NETWORK_MESSAGE));
            }
        }
    }
    Ok(())
}

fn check_security_opts(opts: &[&str]) -> Result<(), Refusal> {
    for opt in opts {
        // The engine splits on the first '=' or, failing that, on ':'.
        let (k, v) = opt
            .split_once('=')
            .or_else(|| opt.split_once(':'))
            .unwrap_or((opt, ""));
        let k = k.trim().to_ascii_lowercase();
        match k.as_str() {
            "seccomp" => check_seccomp(v)?,
            "systempaths" => {
                return Err(Refusal::forbidden(
                    "hull: --security-opt systempaths=unconfined is not allowed",
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// ECI's refusal for a disabled seccomp filter (also for profiles that are
/// `unconfined` by another name).
const SECCOMP_DISABLED: &str =
    "hull: seccomp can't be disabled (--security-opt seccomp=unconfined is not allowed)";

// The engine decodes a profile into moby's `seccomp.Seccomp` (which embeds
// runtime-spec's `LinuxSeccomp`) and each rule into `seccomp.Syscall`.
const SECCOMP_FIELDS: &[&str] = &[
    "defaultAction",
    "defaultErrnoRet",
    "architectures",
    "archMap",
    "flags",
    "listenerPath",
    "listenerMetadata",
    "syscalls",
];
const SECCOMP_RULE_FIELDS: &[&str] = &[
    "names", "name", "action", "errnoRet", "args", "comment", "includes", "excludes",
];

/// Default actions that refuse what the profile does not list.
const SECCOMP_DENYING: &[&str] = &[
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
];
/// Default actions that let unlisted calls run (or hand them to someone
/// else to decide): a profile with one is `unconfined`.
const SECCOMP_PERMISSIVE: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_NOTIFY",
];

/// Syscalls Docker's default profile keeps from every container (x86_64,
/// implemented ones). A profile whose rules allow all of them denies
/// nothing Docker's own profile denies: `unconfined` by another name (what
/// a profile listing every syscall does). Narrower profiles pass; the
/// runtime adds its own deny list on top of any profile.
pub const SECCOMP_WITHHELD: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "delete_module",
    "finit_module",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "mount",
    "move_pages",
    "name_to_handle_at",
    "open_by_handle_at",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "swapon",
    "swapoff",
    "umount2",
    "unshare",
    "userfaultfd",
];

fn seccomp_bad(msg: impl std::fmt::Display) -> Refusal {
    bad(format!("hull: seccomp profile: {msg}"))
}

/// `--security-opt seccomp=<value>`: `unconfined`, and profiles that are
/// `unconfined` by another name, are refused (attacks.md #28). A profile
/// is read the way the engine's Go decoder reads it, through the same
/// rules as create bodies: duplicate keys refused, keys Go would fold onto
/// a field but spelt otherwise (`DefaultAction`, `DEFAULTACTION`,
/// `Syscalls`, `Names`...) refused, JSON this crate cannot read refused
/// (never passed unread). A permissive or unknown `defaultAction`, a
/// missing one, a notify `listenerPath` (a VM socket) and rules allowing
/// every [`SECCOMP_WITHHELD`] syscall are refused.
fn check_seccomp(value: &str) -> Result<(), Refusal> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("unconfined") {
        return Err(Refusal::forbidden(SECCOMP_DISABLED));
    }
    // `builtin` (or nothing) is the engine's default profile.
    if v.is_empty() || v == "builtin" {
        return Ok(());
    }
    let node = json::parse(v.as_bytes(), Limits::API_BODY).map_err(seccomp_bad)?;
    let profile = node.to_value().map_err(seccomp_bad)?;
    let Value::Object(p) = &profile else {
        return Err(seccomp_bad("must be a JSON object"));
    };
    const P: &str = "the seccomp profile";
    check_keys(p, &[SECCOMP_FIELDS], P)?;
    match get_str(p, "listenerPath", P)? {
        None | Some("") => {}
        Some(_) => {
            return Err(Refusal::forbidden(
                "hull: seccomp profile: listenerPath is not allowed (it names a socket in the VM)",
            ))
        }
    }
    match get_str(p, "defaultAction", P)? {
        Some(a) if SECCOMP_DENYING.contains(&a) => {}
        Some(a) if SECCOMP_PERMISSIVE.contains(&a) => {
            return Err(Refusal::forbidden(SECCOMP_DISABLED))
        }
        Some(a) => {
            return Err(seccomp_bad(format!(
                "defaultAction \"{}\" is not a seccomp action hull knows",
                escape_for_message(a)
            )))
        }
        None => return Err(seccomp_bad("defaultAction is missing")),
    }
    let mut allowed = std::collections::BTreeSet::new();
    for (i, rule) in get_array(p, "syscalls", P)?.iter().enumerate() {
        let rp = format!("the seccomp profile's syscalls[{i}]");
        let Some(rule) = as_object(rule, &rp)? else {
            continue;
        };
        check_keys(rule, &[SECCOMP_RULE_FIELDS], &rp)?;
        // Conditions (args, includes, excludes) are not weighed: a rule
        // that may allow a call counts as allowing it.
        if matches!(
            get_str(rule, "action", &rp)?,
            Some("SCMP_ACT_ALLOW" | "SCMP_ACT_LOG")
        ) {
            allowed.extend(get_str_list(rule, "names", &rp)?);
            allowed.extend(get_str(rule, "name", &rp)?);
        }
    }
    if SECCOMP_WITHHELD.iter().all(|s| allowed.contains(s)) {
        return Err(Refusal::forbidden(SECCOMP_DISABLED));
    }
    Ok(())
}

/// The cgroup that holds the engine's containers (dockerd's cgroupfs
/// driver puts a container at `<CgroupParent or /docker>/<id>`).
pub const CONTAINERS_CGROUP: &str = "docker";

/// `HostConfig.CgroupParent` (`--cgroup-parent`): the container's cgroup
/// must stay in the containers' slice, `/docker` or a group below it
/// (`/docker/ci`), never elsewhere in the VM's hierarchy (beside init's
/// services, at the root) and never inside another container's cgroup
/// (`/docker/<64 hex>`: that container's cgroup namespace would hold this
/// one). Only clean paths pass: no `.`, `..`, empty components, or `:`
/// (systemd's `slice:prefix:name`), since the engine joins and cleans the
/// path before the runtime sees it.
fn check_cgroup_parent(cp: &str) -> Result<(), Refusal> {
    if cp.is_empty() {
        return Ok(());
    }
    let refuse = |why: &str| {
        Err(Refusal::forbidden(format!(
            "hull: --cgroup-parent \"{}\" is not allowed: {why}",
            escape_for_message(cp)
        )))
    };
    let rel = cp.strip_prefix('/').unwrap_or(cp);
    let parts: Vec<&str> = rel.split('/').collect();
    if cp.contains(':')
        || parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return refuse("it must be a clean path under /docker (e.g. /docker/<group>)");
    }
    if parts.first() != Some(&CONTAINERS_CGROUP) {
        return refuse("a container's cgroup must stay under /docker (e.g. /docker/<group>)");
    }
    if parts
        .iter()
        .any(|p| p.len() == 64 && p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return refuse("that is another container's cgroup");
    }
    Ok(())
}

fn check_devices(hc: &Map<String, Value>) -> Result<(), Refusal> {
    const P: &str = "HostConfig";
    for (i, d) in get_array(hc, "Devices", P)?.iter().enumerate() {
        let path = format!("HostConfig.Devices[{i}]");
        let Some(d) = as_object(d, &path)? else {
            continue;
        };
        check_keys(d, &[DEVICE_FIELDS], &path)?;
        let host = get_str(d, "PathOnHost", &path)?.unwrap_or("");
        if !SAFE_DEVICES.iter().any(|(p, _, _)| *p == host) {
            return Err(Refusal::forbidden(format!(
                "hull: device {} is a VM device and can't be given to a container (allowed: {})",
                escape_for_message(host),
                SAFE_DEVICES
                    .iter()
                    .map(|d| d.0)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    if !get_array(hc, "DeviceRequests", P)?.is_empty() {
        return Err(Refusal::forbidden(
            "hull: device requests (--gpus) are not available in the VM",
        ));
    }
    for rule in get_str_list(hc, "DeviceCgroupRules", P)? {
        if !device_rule_is_safe(rule) {
            return Err(Refusal::forbidden(format!(
                "hull: device cgroup rule \"{}\" names VM devices (only c <major>:<minor> of {} is allowed)",
                escape_for_message(rule),
                SAFE_DEVICES.iter().map(|d| d.0).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    Ok(())
}

fn device_rule_is_safe(rule: &str) -> bool {
    let parts: Vec<&str> = rule.split_whitespace().collect();
    let [ty, numbers, perms] = parts.as_slice() else {
        return false;
    };
    let Some((maj, min)) = numbers.split_once(':') else {
        return false;
    };
    let (Ok(maj), Ok(min)) = (maj.parse::<u32>(), min.parse::<u32>()) else {
        return false;
    };
    *ty == "c"
        && !perms.is_empty()
        && perms.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
        && SAFE_DEVICES.iter().any(|(_, a, b)| *a == maj && *b == min)
}

fn check_volume_driver(driver: &str) -> Result<(), Refusal> {
    if driver.is_empty() || driver == "local" {
        Ok(())
    } else {
        Err(Refusal::forbidden(format!(
            "hull: volume driver \"{}\" is not available (volume plugins are not supported)",
            escape_for_message(driver)
        )))
    }
}

/// Judges a volume's driver and options (from a create request, from
/// `POST /volumes/create`, or from `GET /volumes/<name>` of an existing
/// volume: `Driver` and `Options`). The `local` driver mounts `device` with
/// `type` and `o` as root in the VM, so:
/// - no `type`/`o`/`device`: a plain volume, `Ok(None)`;
/// - `o` containing `bind` or `rbind`: a bind of `device`, returned as
///   `Ok(Some(device))` for [`crate::mounts::classify_bind`];
/// - `type=tmpfs`: `Ok(None)`;
/// - anything else (block devices, `overlay` with `lowerdir=`, `nfs`,
///   `o=move`/`remount`) and non-local drivers: refused.
pub fn volume_options_bind_source<'a>(
    driver: Option<&str>,
    options: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<Option<String>, Refusal> {
    check_volume_driver(driver.unwrap_or(""))?;
    let (mut ty, mut o, mut device) = (None, None, None);
    for (k, v) in options {
        match k {
            "type" => ty = Some(v),
            "o" => o = Some(v),
            "device" => device = Some(v),
            _ => {}
        }
    }
    if ty.is_none() && o.is_none() && device.is_none() {
        return Ok(None);
    }
    let flags: Vec<&str> = o.unwrap_or("").split(',').map(str::trim).collect();
    if flags.iter().any(|f| *f == "move" || *f == "remount") {
        return Err(Refusal::forbidden(
            "hull: volume option o=move/remount is not allowed",
        ));
    }
    if flags.iter().any(|f| *f == "bind" || *f == "rbind") {
        return match device {
            Some(d) if !d.is_empty() => Ok(Some(d.to_string())),
            _ => Err(Refusal::forbidden(
                "hull: a bind volume needs a device path",
            )),
        };
    }
    if ty == Some("tmpfs") {
        return Ok(None);
    }
    Err(Refusal::forbidden(format!(
        "hull: local volume type \"{}\" is not allowed (only tmpfs and bind volumes)",
        escape_for_message(ty.unwrap_or(""))
    )))
}

/// A `POST /volumes/create` body that passed the policy.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeCreateRequest {
    body: Value,
    /// The path a bind volume would mount, if it is one: the gate resolves
    /// and judges it like any bind source.
    pub bind_source: Option<String>,
}

impl VolumeCreateRequest {
    /// Parses and judges a volume create body (duplicate and mis-cased keys
    /// refused as for container create).
    pub fn parse(body: &[u8]) -> Result<VolumeCreateRequest, Refusal> {
        let node = json::parse(body, Limits::API_BODY)
            .map_err(|e| bad(format!("hull: invalid request body: {e}")))?;
        let body = node
            .to_value()
            .map_err(|e| bad(format!("hull: invalid request body: {e}")))?;
        let Value::Object(root) = &body else {
            return Err(bad("hull: the request body must be a JSON object"));
        };
        check_keys(root, &[VOLUME_CREATE_FIELDS], "the request body")?;
        let driver = get_str(root, "Driver", "the request body")?;
        let opts = get_str_map(root, "DriverOpts", "the request body")?;
        let bind_source = volume_options_bind_source(driver, opts.into_iter())?;
        Ok(VolumeCreateRequest { body, bind_source })
    }

    /// Writes the resolved bind source back (see
    /// [`CreateRequest::set_bind_source`]).
    pub fn set_bind_source(&mut self, resolved: &str) {
        if let Some(opts) = self
            .body
            .get_mut("DriverOpts")
            .and_then(Value::as_object_mut)
        {
            opts.insert("device".into(), Value::String(resolved.to_string()));
            self.bind_source = Some(resolved.to_string());
        }
    }

    /// The body to forward. Always forward this, never the bytes received.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.body).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CTX: CreateContext<'static> = CreateContext { runtime: "hull" };

    fn parse(v: Value) -> Result<CreateRequest, Refusal> {
        CreateRequest::parse(v.to_string().as_bytes(), &CTX)
    }

    fn parse_str(s: &str) -> Result<CreateRequest, Refusal> {
        CreateRequest::parse(s.as_bytes(), &CTX)
    }

    fn refused(v: Value) -> Refusal {
        parse(v).unwrap_err()
    }

    #[test]
    fn from_value_applies_the_same_policy() {
        assert!(
            CreateRequest::from_value(json!({"HostConfig": {"PidMode": "host"}}), &CTX).is_err()
        );
        let r = CreateRequest::from_value(json!({"Image": "x"}), &CTX).unwrap();
        assert_eq!(r.body()["HostConfig"]["Runtime"], "hull");
    }

    #[test]
    fn containers_reach_the_host_by_name() {
        let hosts = |body: Value| -> Value {
            let r = parse(body).unwrap();
            let fwd: Value = serde_json::from_slice(&r.to_bytes()).unwrap();
            fwd["HostConfig"]["ExtraHosts"].clone()
        };
        assert_eq!(
            hosts(json!({"Image": "x"})),
            json!(["host.docker.internal:host-gateway"])
        );
        assert_eq!(
            hosts(json!({"Image": "x", "HostConfig": {"ExtraHosts": ["a:1.2.3.4"]}})),
            json!(["a:1.2.3.4", "host.docker.internal:host-gateway"])
        );
        // The client's own mapping wins; joined namespaces get none.
        assert_eq!(
            hosts(
                json!({"Image": "x", "HostConfig": {"ExtraHosts": ["host.docker.internal=5.6.7.8"]}})
            ),
            json!(["host.docker.internal=5.6.7.8"])
        );
        assert_eq!(
            hosts(json!({"Image": "x", "HostConfig": {"NetworkMode": "container:abc"}})),
            Value::Null
        );
    }

    #[test]
    fn runtime_is_forced() {
        let r = parse(json!({"Image": "busybox"})).unwrap();
        assert_eq!(r.body()["HostConfig"]["Runtime"], "hull");
        let r = parse(json!({"Image": "busybox", "HostConfig": {"Runtime": "runc"}})).unwrap();
        assert_eq!(r.body()["HostConfig"]["Runtime"], "hull");
        assert!(r.notes[0].contains("runc"));
        let r = parse(json!({"Image": "busybox", "HostConfig": null})).unwrap();
        assert_eq!(r.body()["HostConfig"]["Runtime"], "hull");
        let fwd: Value = serde_json::from_slice(&r.to_bytes()).unwrap();
        assert_eq!(fwd["HostConfig"]["Runtime"], "hull");
        assert_eq!(r.image, "busybox");
    }

    #[test]
    fn host_namespaces_refused_with_eci_messages() {
        let e = refused(json!({"HostConfig": {"PidMode": "host"}}));
        assert_eq!(e.status.code(), 403);
        assert!(e.message.ends_with(
            "can't share namespaces [pid] with the host (because they use the linux user-namespace for isolation)"
        ));
        let e = refused(
            json!({"HostConfig": {"PidMode": "host", "IpcMode": "host", "UTSMode": "host", "CgroupnsMode": "host"}}),
        );
        assert!(e.message.contains("[pid ipc uts cgroup]"));
        let e = refused(json!({"HostConfig": {"NetworkMode": "host"}}));
        assert!(e
            .message
            .contains("can't share a network namespace with the host"));
        let e = refused(json!({"NetworkingConfig": {"EndpointsConfig": {"host": {}}}}));
        assert!(e.message.contains("network namespace"));
        assert!(parse(
            json!({"HostConfig": {"NetworkMode": "bridge", "IpcMode": "private", "PidMode": ""}})
        )
        .is_ok());
    }

    #[test]
    fn userns_host_is_dropped() {
        let r = parse(json!({"HostConfig": {"UsernsMode": "host"}})).unwrap();
        assert!(r.body()["HostConfig"].get("UsernsMode").is_none());
        assert_eq!(r.notes.len(), 1);
    }

    #[test]
    fn joins_are_reported() {
        let r = parse(json!({"HostConfig": {"NetworkMode": "container:abc", "PidMode": "container:def", "IpcMode": "container:abc", "Cgroup": "container:x"}})).unwrap();
        let ns: Vec<_> = r
            .joins
            .iter()
            .map(|j| (j.namespace, j.container.as_str()))
            .collect();
        assert_eq!(
            ns,
            vec![
                ("network", "abc"),
                ("pid", "def"),
                ("ipc", "abc"),
                ("cgroup", "x")
            ]
        );
    }

    #[test]
    fn seccomp_and_systempaths() {
        for opt in [
            "seccomp=unconfined",
            "seccomp:unconfined",
            "seccomp=UNCONFINED",
            "seccomp=unconfined ",
        ] {
            let e = refused(json!({"HostConfig": {"SecurityOpt": [opt]}}));
            assert!(e.message.contains("seccomp"), "{opt}");
        }
        let allow_all = r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW"}"#;
        assert!(parse(json!({"HostConfig": {"SecurityOpt": [allow_all]}})).is_err());
        let strict = r#"seccomp={"defaultAction":"SCMP_ACT_ERRNO","syscalls":[]}"#;
        assert!(parse(json!({"HostConfig": {"SecurityOpt": [strict]}})).is_ok());
        assert!(parse(json!({"HostConfig": {"SecurityOpt": ["apparmor=unconfined", "no-new-privileges", "label=disable"]}})).is_ok());
        assert!(parse(json!({"HostConfig": {"SecurityOpt": ["systempaths=unconfined"]}})).is_err());
        // What the CLI sends for --security-opt systempaths=unconfined.
        let e = refused(json!({"HostConfig": {"MaskedPaths": [], "ReadonlyPaths": []}}));
        assert!(e.message.contains("systempaths=unconfined"));
        let mut more: Vec<&str> = DEFAULT_MASKED_PATHS.to_vec();
        more.push("/proc/extra");
        assert!(parse(
            json!({"HostConfig": {"MaskedPaths": more, "ReadonlyPaths": DEFAULT_READONLY_PATHS}})
        )
        .is_ok());
        assert!(parse(json!({"HostConfig": {"MaskedPaths": null}})).is_ok());
        assert!(parse(json!({"HostConfig": {"SecurityOpt": "seccomp=unconfined"}})).is_err());
    }

    fn seccomp(profile: &str) -> Result<CreateRequest, Refusal> {
        let opt = format!("seccomp={profile}");
        parse(json!({"HostConfig": {"SecurityOpt": [opt]}}))
    }

    /// Syscalls Docker's default profile keeps from containers (x86_64);
    /// a profile that allows all of them is `unconfined` by another name.
    const EVERY_WITHHELD: &str = r#""acct","add_key","bpf","clock_adjtime","clock_settime","delete_module","finit_module","init_module","ioperm","iopl","kcmp","kexec_file_load","kexec_load","keyctl","mount","move_pages","name_to_handle_at","open_by_handle_at","perf_event_open","pivot_root","process_vm_readv","process_vm_writev","ptrace","quotactl","reboot","request_key","setns","settimeofday","swapon","swapoff","umount2","unshare","userfaultfd""#;

    // attacks.md #28: the engine decodes the profile with Go's
    // encoding/json (keys matched case-insensitively, the last of
    // duplicates wins); the gate must read it the same way.
    #[test]
    fn seccomp_profiles_are_read_as_the_engine_reads_them() {
        for p in [
            r#"{"DefaultAction":"SCMP_ACT_ALLOW"}"#,
            r#"{"defaultaction":"SCMP_ACT_ALLOW"}"#,
            r#"{"DEFAULTACTION":"SCMP_ACT_LOG"}"#,
            "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"\u{17f}yscalls\":[]}",
            r#"{"defaultAction":"SCMP_ACT_ERRNO","DefaultAction":"SCMP_ACT_ALLOW"}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","Syscalls":[]}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"Names":["ptrace"],"action":"SCMP_ACT_ALLOW"}]}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["ptrace"],"ACTION":"SCMP_ACT_ALLOW"}]}"#,
        ] {
            let e = seccomp(p).expect_err(p);
            assert_eq!(e.status.code(), 400, "{p}: {}", e.message);
            assert!(e.message.contains("seccomp profile"), "{p}: {}", e.message);
            assert!(e.message.contains("must be spelt"), "{p}: {}", e.message);
        }
        // Duplicates spelt alike: refused by the reader, not "last wins".
        let e = seccomp(r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultAction":"SCMP_ACT_ALLOW"}"#)
            .unwrap_err();
        assert_eq!(e.status.code(), 400);
        assert!(e.message.contains("duplicate key"), "{}", e.message);
        // What serde_json cannot read but Go can (a lone surrogate) must not
        // pass unread.
        let e = seccomp(r#"{"defaultAction":"SCMP_ACT_ALLOW","comment":"\ud800"}"#).unwrap_err();
        assert!(e.message.contains("seccomp"), "{}", e.message);
        // No default action: the engine would pass an empty one on.
        for p in [
            r#"{}"#,
            r#"{"defaultAction":null}"#,
            r#"{"defaultAction":"SCMP_ACT_NOPE"}"#,
        ] {
            let e = seccomp(p).expect_err(p);
            assert!(e.message.contains("defaultAction"), "{p}: {}", e.message);
        }
        // Allowing every syscall one by one is unconfined by another name.
        let names = format!(
            r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{{"names":[{EVERY_WITHHELD},"read","write"],"action":"SCMP_ACT_ALLOW"}}]}}"#
        );
        let e = seccomp(&names).unwrap_err();
        assert_eq!(e.status.code(), 403, "{}", e.message);
        assert!(
            e.message.contains("seccomp can't be disabled"),
            "{}",
            e.message
        );
        // ... also split over rules and the deprecated "name".
        let split: Vec<String> = EVERY_WITHHELD
            .split(',')
            .map(|n| format!(r#"{{"name":{n},"action":"SCMP_ACT_LOG"}}"#))
            .collect();
        let split = format!(
            r#"{{"defaultAction":"SCMP_ACT_KILL","syscalls":[{}]}}"#,
            split.join(",")
        );
        assert_eq!(seccomp(&split).unwrap_err().status.code(), 403);
        // A notify listener is a VM socket.
        let e =
            seccomp(r#"{"defaultAction":"SCMP_ACT_ERRNO","listenerPath":"/run/hull/guard.sock"}"#)
                .unwrap_err();
        assert!(e.message.contains("listenerPath"), "{}", e.message);
        // Narrow profiles pass (the runtime adds its deny list on top).
        for p in [
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","write","exit_group"],"action":"SCMP_ACT_ALLOW"}]}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"architectures":["SCMP_ARCH_X86_64"],"syscalls":[{"names":["ptrace","mount"],"action":"SCMP_ACT_ALLOW","comment":"debuggers"}]}"#,
            r#"{"defaultAction":"SCMP_ACT_KILL_PROCESS","unknownKey":1}"#,
        ] {
            assert!(seccomp(p).is_ok(), "{p}: {:?}", seccomp(p).err());
        }
    }

    #[test]
    fn cgroup_parent_stays_under_the_containers_slice() {
        for cp in [
            "/docker",
            "docker",
            "/docker/ci",
            "/docker/ci/jobs",
            "docker/ci",
            "",
        ] {
            assert!(
                parse(json!({"HostConfig": {"CgroupParent": cp}})).is_ok(),
                "{cp}"
            );
        }
        let other = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        for cp in [
            "/",
            "/hull",
            "/init.scope",
            "system.slice",
            "/docker/../hull",
            "/docker/..",
            "/docker/./x",
            "//docker",
            "/docker//x",
            "/dockerx",
            "docker.slice:docker:x",
            &format!("/docker/{other}"),
            &format!("/docker/{other}/x"),
        ] {
            let e = parse(json!({"HostConfig": {"CgroupParent": cp}})).expect_err(cp);
            assert_eq!(e.status.code(), 403, "{cp}");
            assert!(
                e.message.starts_with("hull: --cgroup-parent"),
                "{cp}: {}",
                e.message
            );
        }
    }

    #[test]
    fn joined_containers_are_pinned_to_the_checked_id() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let mut r = parse(json!({"HostConfig": {
            "NetworkMode": "container:web",
            "PidMode": "container:web",
            "IpcMode": "container:other",
            "Cgroup": "container:web",
            "VolumesFrom": ["web:ro", "web", "other"]
        }}))
        .unwrap();
        r.pin_container("web", id);
        let fwd: Value = serde_json::from_slice(&r.to_bytes()).unwrap();
        let hc = &fwd["HostConfig"];
        assert_eq!(hc["NetworkMode"], format!("container:{id}"));
        assert_eq!(hc["PidMode"], format!("container:{id}"));
        assert_eq!(hc["Cgroup"], format!("container:{id}"));
        assert_eq!(hc["IpcMode"], "container:other");
        assert_eq!(hc["VolumesFrom"], json!([format!("{id}:ro"), id, "other"]));
    }

    #[test]
    fn privileged_is_allowed() {
        let r = parse(json!({"HostConfig": {"Privileged": true, "CapAdd": ["ALL"]}})).unwrap();
        assert_eq!(r.body()["HostConfig"]["Privileged"], true);
    }

    #[test]
    fn devices() {
        assert!(parse(json!({"HostConfig": {"Devices": [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"}]}})).is_ok());
        for dev in [
            "/dev/vda",
            "/dev/mem",
            "/dev/kmsg",
            "/dev/port",
            "/dev",
            "/dev/../dev/fuse",
            "/dev/vsock",
        ] {
            assert!(
                parse(json!({"HostConfig": {"Devices": [{"PathOnHost": dev}]}})).is_err(),
                "{dev}"
            );
        }
        assert!(parse(
            json!({"HostConfig": {"DeviceRequests": [{"Driver": "nvidia", "Count": -1}]}})
        )
        .is_err());
        assert!(parse(json!({"HostConfig": {"DeviceRequests": []}})).is_ok());
        assert!(parse(json!({"HostConfig": {"DeviceCgroupRules": ["c 10:229 rwm"]}})).is_ok());
        for rule in [
            "a *:* rwm",
            "b 254:0 rwm",
            "c *:* rwm",
            "c 1:1 rwm",
            "c 10:229",
            "c 10:229 rwx",
            "c 10:229 rwm extra",
        ] {
            assert!(
                parse(json!({"HostConfig": {"DeviceCgroupRules": [rule]}})).is_err(),
                "{rule}"
            );
        }
    }

    #[test]
    fn bind_sources_are_collected() {
        let r = parse(json!({"HostConfig": {
            "Binds": ["/etc:/x", "/mnt/host/a:/y:ro,z", "named:/z", "/anon", "/var/run/docker.sock:/var/run/docker.sock"],
            "Mounts": [
                {"Type": "bind", "Source": "/srv", "Target": "/srv"},
                {"Type": "volume", "Source": "v1", "Target": "/v"},
                {"Type": "volume", "Target": "/w", "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": {"type": "none", "o": "bind", "device": "/etc"}}}},
                {"Type": "tmpfs", "Target": "/t"}
            ],
            "VolumesFrom": ["other:ro", "third"]
        }}))
        .unwrap();
        let srcs: Vec<(BindLocation, &str)> = r
            .binds
            .iter()
            .map(|b| (b.location, b.source.as_str()))
            .collect();
        assert_eq!(
            srcs,
            vec![
                (BindLocation::Binds(0), "/etc"),
                (BindLocation::Binds(1), "/mnt/host/a"),
                (BindLocation::Binds(4), "/var/run/docker.sock"),
                (BindLocation::Mount(0), "/srv"),
                (BindLocation::VolumeDevice(2), "/etc"),
            ]
        );
        assert_eq!(r.named_volumes, vec!["named", "v1"]);
        assert_eq!(r.volumes_from, vec!["other", "third"]);
    }

    #[test]
    fn bind_sources_can_be_rewritten() {
        let mut r = parse(json!({"HostConfig": {
            "Binds": ["/home/me/src:/src:ro"],
            "Mounts": [
                {"Type": "bind", "Source": "/home/me/x", "Target": "/x"},
                {"Type": "volume", "Target": "/w", "VolumeOptions": {"DriverConfig": {"Options": {"o": "bind", "device": "/home/me/y"}}}}
            ]
        }}))
        .unwrap();
        r.set_bind_source(0, "/mnt/host/home/me/src").unwrap();
        r.set_bind_source(1, "/mnt/host/home/me/x").unwrap();
        r.set_bind_source(2, "/mnt/host/home/me/y").unwrap();
        let b = r.body();
        assert_eq!(b["HostConfig"]["Binds"][0], "/mnt/host/home/me/src:/src:ro");
        assert_eq!(
            b["HostConfig"]["Mounts"][0]["Source"],
            "/mnt/host/home/me/x"
        );
        assert_eq!(
            b["HostConfig"]["Mounts"][1]["VolumeOptions"]["DriverConfig"]["Options"]["device"],
            "/mnt/host/home/me/y"
        );
        assert!(r.set_bind_source(0, "/a:b").is_err());
        assert!(r.set_bind_source(9, "/a").is_err());
        r.pin_image("sha256:abc");
        assert_eq!(r.body()["Image"], "sha256:abc");
    }

    #[test]
    fn mount_and_volume_rules() {
        assert!(parse(json!({"HostConfig": {"Binds": ["/mnt/host/a:/a:rshared"]}})).is_err());
        assert!(parse(json!({"HostConfig": {"Binds": ["/mnt/host/a:/a:ro,shared"]}})).is_err());
        assert!(parse(json!({"HostConfig": {"Binds": ["/mnt/host/a:/a:rslave"]}})).is_ok());
        assert!(parse(json!({"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/a", "Target": "/a", "BindOptions": {"Propagation": "rshared"}}]}})).is_err());
        assert!(parse(
            json!({"HostConfig": {"Mounts": [{"Type": "npipe", "Source": "x", "Target": "/a"}]}})
        )
        .is_err());
        assert!(parse(
            json!({"HostConfig": {"Mounts": [{"Type": "BIND", "Source": "/etc", "Target": "/a"}]}})
        )
        .is_err());
        assert!(parse(json!({"HostConfig": {"VolumeDriver": "sshfs"}})).is_err());
        for opts in [
            json!({"type": "ext4", "device": "/dev/vda"}),
            json!({"type": "overlay", "o": "lowerdir=/etc,upperdir=/tmp/u,workdir=/tmp/w"}),
            json!({"type": "nfs", "o": "addr=10.0.2.2", "device": ":/export"}),
            json!({"type": "tmpfs", "o": "move"}),
            json!({"o": "bind"}),
        ] {
            let body = json!({"HostConfig": {"Mounts": [{"Type": "volume", "Target": "/w", "VolumeOptions": {"DriverConfig": {"Options": opts}}}]}});
            assert!(parse(body).is_err(), "{opts}");
        }
        let body = json!({"HostConfig": {"Mounts": [{"Type": "volume", "Target": "/w", "VolumeOptions": {"DriverConfig": {"Name": "rexray"}}}]}});
        assert!(parse(body).is_err());
        let body = json!({"HostConfig": {"Mounts": [{"Type": "volume", "Target": "/w", "VolumeOptions": {"DriverConfig": {"Options": {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}}}}]}});
        assert!(parse(body).unwrap().binds.is_empty());
    }

    #[test]
    fn other_hardening() {
        assert!(parse(json!({"HostConfig": {"LogConfig": {"Type": "syslog", "Config": {"syslog-address": "unix:///run/docker.sock"}}}})).is_err());
        assert!(parse(json!({"HostConfig": {"LogConfig": {"Type": "syslog", "Config": {"syslog-tls-ca-cert": "/etc/shadow"}}}})).is_err());
        assert!(parse(json!({"HostConfig": {"LogConfig": {"Type": "json-file", "Config": {"max-size": "10m"}}}})).is_ok());
        assert!(parse(json!({"HostConfig": {"Annotations": {"dev.hull.policy": "off"}}})).is_err());
        assert!(parse(json!({"HostConfig": {"Annotations": {"org.example": "x"}}})).is_ok());
        assert!(parse(json!({"HostConfig": {"CgroupParent": "../../"}})).is_err());
    }

    #[test]
    fn go_case_folding_cannot_smuggle_fields() {
        for body in [
            r#"{"HostConfig": {"binds": ["/:/host"]}}"#,
            r#"{"HostConfig": {"BINDS": ["/:/host"]}}"#,
            r#"{"HostConfig": {"Bindſ": ["/:/host"]}}"#,
            r#"{"HostConfig": {"pidmode": "host"}}"#,
            r#"{"HostConfig": {"Binds": [], "binds": ["/:/host"]}}"#,
            r#"{"hostconfig": {"Binds": ["/:/host"]}}"#,
            r#"{"HostConfig": {"Mounts": [{"type": "bind", "Source": "/", "Target": "/h"}]}}"#,
            r#"{"HostConfig": {"Mounts": [{"Type": "bind", "source": "/", "Target": "/h"}]}}"#,
            r#"{"HostConfig": {"Devices": [{"pathonhost": "/dev/vda"}]}}"#,
            "{\"HostConfig\": {\"\u{17f}ecurityOpt\": [\"seccomp=unconfined\"]}}",
            "{\"HostConfig\": {\"Networ\u{212a}Mode\": \"host\"}}",
            r#"{"NetworkingConfig": {"endpointsconfig": {"host": {}}}}"#,
        ] {
            let e = parse_str(body).unwrap_err();
            assert_eq!(e.status.code(), 400, "{body}: {e}");
        }
        // Non-ASCII keys that Go cannot fold onto a field are just unknown.
        assert!(parse_str(r#"{"HostConfig": {"Bïnds": 1}, "Ïmage": 2}"#).is_ok());
    }

    #[test]
    fn duplicate_keys_refused() {
        for body in [
            r#"{"HostConfig": {"Binds": [], "Binds": ["/:/host"]}}"#,
            r#"{"HostConfig": {}, "HostConfig": {"PidMode": "host"}}"#,
            r#"{"Image": "a", "Image": "b"}"#,
            r#"{"Labels": {"a": "1", "a": "2"}}"#,
        ] {
            assert_eq!(parse_str(body).unwrap_err().status.code(), 400, "{body}");
        }
    }

    #[test]
    fn top_level_host_config_fields_are_dropped_as_the_engine_ignores_them() {
        for (body, key) in [
            (r#"{"Image": "x", "Binds": ["/:/host"]}"#, "Binds"),
            (r#"{"Image": "x", "PidMode": "host"}"#, "PidMode"),
            (r#"{"Image": "x", "Memory": 1}"#, "Memory"),
            (r#"{"Image": "x", "privileged": true}"#, "privileged"),
            (r#"{"Image": "x", "Runtime": "runc"}"#, "Runtime"),
        ] {
            let r = parse_str(body).unwrap();
            let fwd: Value = serde_json::from_slice(&r.to_bytes()).unwrap();
            assert!(fwd.get(key).is_none(), "{body} forwarded {fwd}");
            assert!(r.binds.is_empty() && r.joins.is_empty(), "{body}");
            assert_eq!(fwd["HostConfig"]["Runtime"], "hull");
            assert!(r.notes.iter().any(|n| n.contains(key)), "{:?}", r.notes);
        }
        assert!(parse_str(r#"{"Image": "x", "Cpuset": "0"}"#).is_ok());
    }

    #[test]
    fn wrong_types_and_hostile_bodies() {
        for body in [
            r#"[]"#,
            r#""x""#,
            r#"{"HostConfig": []}"#,
            r#"{"HostConfig": {"Binds": "/:/host"}}"#,
            r#"{"HostConfig": {"Binds": [1]}}"#,
            r#"{"HostConfig": {"PidMode": 1}}"#,
            r#"{"HostConfig": {"Mounts": {}}}"#,
            r#"{"Image": 1}"#,
            r#"{"HostConfig": {}} {}"#,
            "{\"Image\": \"\u{0}\"",
        ] {
            assert_eq!(parse_str(body).unwrap_err().status.code(), 400, "{body}");
        }
        assert!(CreateRequest::parse(b"{\"Image\": \"\xff\"}", &CTX).is_err());
        let deep = format!("{{\"Labels\": {}{}}}", "[".repeat(1000), "]".repeat(1000));
        assert!(parse_str(&deep).is_err());
        let huge = format!("{{\"Env\": [\"{}\"]}}", "a".repeat(5 * 1024 * 1024));
        assert!(parse_str(&huge).is_err());
        let big_ok = format!("{{\"Env\": [\"{}\"]}}", "a".repeat(1024 * 1024));
        assert!(parse_str(&big_ok).is_ok());
    }

    #[test]
    fn forwarded_body_matches_checked_body() {
        let r = parse_str(r#"{"Image": "busybox", "Cmd": ["sh"], "HostConfig": {"Binds": ["/mnt/host/a:/a"], "Memory": 1048576}, "Labels": {"k": "v"}}"#).unwrap();
        let fwd: Value = serde_json::from_slice(&r.to_bytes()).unwrap();
        assert_eq!(&fwd, r.body());
        assert_eq!(fwd["HostConfig"]["Memory"], 1048576);
        assert_eq!(fwd["Labels"]["k"], "v");
    }

    #[test]
    fn numbers_survive_the_round_trip() {
        // Found by the create_body fuzzer: without correctly rounded float
        // parsing, re-serialising changed 5e39 on every pass.
        let r = parse_str(
            r#"{"Image": "x", "A": 5e39, "B": 0.1, "C": 1e-7, "D": 9007199254740993, "E": -0}"#,
        )
        .unwrap();
        let again = CreateRequest::parse(&r.to_bytes(), &CTX).unwrap();
        assert_eq!(again.body(), r.body());
        assert_eq!(r.body()["A"].as_f64(), Some("5e39".parse::<f64>().unwrap()));
        assert_eq!(r.body()["D"].as_u64(), Some(9007199254740993));
    }

    #[test]
    fn volume_create() {
        let v = VolumeCreateRequest::parse(br#"{"Name": "x", "Driver": "local", "DriverOpts": {"type": "none", "o": "bind", "device": "/etc"}}"#).unwrap();
        assert_eq!(v.bind_source.as_deref(), Some("/etc"));
        let mut v = VolumeCreateRequest::parse(
            br#"{"Name": "x", "DriverOpts": {"o": "rbind,ro", "device": "/home/me/d"}}"#,
        )
        .unwrap();
        v.set_bind_source("/mnt/host/home/me/d");
        let fwd: Value = serde_json::from_slice(&v.to_bytes()).unwrap();
        assert_eq!(fwd["DriverOpts"]["device"], "/mnt/host/home/me/d");
        assert!(VolumeCreateRequest::parse(br#"{"Name": "x"}"#)
            .unwrap()
            .bind_source
            .is_none());
        assert!(VolumeCreateRequest::parse(
            br#"{"Name": "x", "DriverOpts": {"type": "ext4", "device": "/dev/vda"}}"#
        )
        .is_err());
        assert!(VolumeCreateRequest::parse(br#"{"Name": "x", "Driver": "sshfs"}"#).is_err());
        assert!(VolumeCreateRequest::parse(
            br#"{"Name": "x", "driveropts": {"o": "bind", "device": "/"}}"#
        )
        .is_err());
        assert!(VolumeCreateRequest::parse(
            br#"{"Name": "x", "DriverOpts": {}, "DriverOpts": {"o": "bind", "device": "/"}}"#
        )
        .is_err());
        // Existing volumes, as `GET /volumes/<name>` reports them.
        let opts = [
            ("type", "none"),
            ("o", "bind"),
            ("device", "/var/lib/docker"),
        ];
        assert_eq!(
            volume_options_bind_source(Some("local"), opts.iter().copied())
                .unwrap()
                .as_deref(),
            Some("/var/lib/docker")
        );
    }
}
