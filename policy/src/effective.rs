//! The settings in force: admin and user settings merged, with locking.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::commands::CommandList;
use crate::json::{self, Limits};
use crate::reference::ImagePattern;
use crate::settings::{AdminSettings, AllowedDirectory, UserSettings};

/// Version of the [`Effective`] JSON format (the blob delivered to the VM).
pub const EFFECTIVE_FORMAT: u32 = 1;

/// Where the VM mounts the host directories the user shares: host path
/// `/home/me/src` is visible in the VM as `/mnt/host/home/me/src`.
pub const HOST_SHARE_MOUNT_POINT: &str = "/mnt/host";

/// VM paths that bind mounts may come from, by default:
/// - `/mnt/host`: the host directories the user shared (only those are
///   mounted there);
/// - `/var/lib/docker/volumes/*/_data`: the data of named volumes, one
///   component wildcard so that the volume store's own `metadata.db`
///   (which holds every volume's mount options) is *not* reachable.
pub const DEFAULT_MOUNT_ROOTS: &[&str] =
    &[HOST_SHARE_MOUNT_POINT, "/var/lib/docker/volumes/*/_data"];

/// Where a value in force came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The admin settings file.
    Admin,
    /// The user's settings file.
    User,
    /// hull's built-in default.
    Default,
}

/// A value in force and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Its origin.
    pub source: Source,
    /// `true` when the admin locked it: no user setting can change it.
    pub locked: bool,
}

/// A user setting that was not applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Ignored {
    /// Field path, e.g. `enhancedContainerIsolation.value`.
    pub field: String,
    /// What the user asked for.
    pub user_value: Value,
    /// What is in force instead (the admin's value, or what bounds it).
    pub admin_value: Value,
    /// Why it was ignored.
    pub reason: String,
}

/// Facts about the host that settings may refer to (`$HOME`, `$TMP`,
/// `$TEMP`). The caller reads them; this crate never touches the
/// environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostContext {
    /// The user's home directory.
    pub home: Option<String>,
    /// The temporary directory (`$TMP` and `$TEMP`).
    pub tmp: Option<String>,
}

/// The settings in force. Serialises to the JSON blob the host delivers to
/// the VM; [`Effective::canonical_json`] is its stable form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Effective {
    /// [`EFFECTIVE_FORMAT`].
    pub format: u32,
    /// `enhancedContainerIsolation.value`. hull has no unprotected mode: the
    /// gate should enforce its rules whatever this says (see the README).
    pub enhanced_container_isolation: Sourced<bool>,
    /// `dockerSocketMount.imageList.images`: who may mount the engine socket.
    pub socket_mount_images: Sourced<Vec<ImagePattern>>,
    /// `dockerSocketMount.imageList.allowDerivedImages`.
    pub allow_derived_images: Sourced<bool>,
    /// `dockerSocketMount.commandList`: what they may do with it.
    pub command_list: Sourced<CommandList>,
    /// `blockDockerLoad.value`: refuse `docker load` (`POST /images/load`).
    pub block_docker_load: Sourced<bool>,
    /// The admin's `filesharingAllowedDirectories`; `None` when the admin
    /// set no limit.
    pub filesharing_allowed_directories: Option<Vec<AllowedDirectory>>,
    /// Host directories shared with the VM (mounted under
    /// [`HOST_SHARE_MOUNT_POINT`]).
    pub shared_directories: Vec<Sourced<String>>,
    /// VM paths bind mounts may come from ([`DEFAULT_MOUNT_ROOTS`]; `*`
    /// stands for exactly one path component).
    pub mount_roots: Sourced<Vec<String>>,
    /// User settings that were not applied, and why.
    pub ignored: Vec<Ignored>,
    /// Admin settings hull does not apply (Docker Desktop's `proxy`, ...).
    pub unsupported_admin_settings: Vec<String>,
    /// Other notes for `hull settings` (e.g. `locked` in the user file).
    pub warnings: Vec<String>,
    /// Set when these are the fail-closed settings, with the reason.
    pub fail_closed: Option<String>,
    /// How the host started the VM and which admin file it read; set by the
    /// host after the merge, `None` from [`merge_with`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostOrigin>,
}

/// Where the settings came from on the host: the VM's mode and the admin
/// file's path and SHA-256 (of its bytes, `None` when there was no file).
/// In system mode only root can have changed that file, so an admin can
/// check a machine against the file they wrote; in user mode the user
/// controls the VM and this is a claim, not a proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostOrigin {
    /// `system` or `user`.
    pub mode: String,
    /// The admin file hull read (whether or not it existed).
    pub admin_file: String,
    /// `sha256:<hex>` of the admin file's bytes.
    pub admin_sha256: Option<String>,
}

/// Why an effective-settings blob was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EffectiveError {
    /// Not valid JSON (or duplicate keys, too deep, too large).
    #[error("effective settings: {0}")]
    Json(#[from] json::JsonError),
    /// Valid JSON of the wrong shape.
    #[error("effective settings: {0}")]
    Shape(String),
    /// A format this build does not understand.
    #[error("effective settings: format {0} is not supported (expected {EFFECTIVE_FORMAT})")]
    Format(u32),
}

fn sourced<T>(value: T, source: Source, locked: bool) -> Sourced<T> {
    Sourced {
        value,
        source,
        locked,
    }
}

fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Picks one value according to Docker's locking rules: a locked admin
/// value wins and a different user value is reported; an unlocked admin
/// value is only a default that the user may override.
fn pick<T: Clone + PartialEq + Serialize>(
    field: &str,
    admin_locked: bool,
    admin: Option<T>,
    user: Option<T>,
    default: T,
    ignored: &mut Vec<Ignored>,
) -> Sourced<T> {
    // The settings-lock-off build (`cargo xtask vm-test --weaken
    // settings-lock`, never shipped) treats every admin value as a default.
    if admin_locked && !cfg!(feature = "weaken-settings-lock") {
        let (value, source) = match admin {
            Some(a) => (a, Source::Admin),
            None => (default, Source::Default),
        };
        if let Some(u) = user {
            if u != value {
                ignored.push(Ignored {
                    field: field.to_string(),
                    user_value: to_json(&u),
                    admin_value: to_json(&value),
                    reason: "locked by the admin".to_string(),
                });
            }
        }
        return sourced(value, source, true);
    }
    match (user, admin) {
        (Some(u), _) => sourced(u, Source::User, false),
        (None, Some(a)) => sourced(a, Source::Admin, false),
        (None, None) => sourced(default, Source::Default, false),
    }
}

/// Merges admin and user settings (see [`merge_with`]); `$HOME`-style
/// variables stay unexpanded.
pub fn merge(admin: Option<&AdminSettings>, user: Option<&UserSettings>) -> Effective {
    merge_with(admin, user, &HostContext::default())
}

/// Merges admin and user settings.
///
/// - `enhancedContainerIsolation` is one group: when the admin locks it,
///   `value` and all of `dockerSocketMount` are the admin's (or hull's
///   default where the admin left a value out), and each different user
///   value is listed in [`Effective::ignored`].
/// - `blockDockerLoad` has its own lock.
/// - `filesharingAllowedDirectories` always binds: user directories outside
///   it are ignored (and listed). Without a user list, the admin's
///   `sharedByDefault` directories are shared, or (Docker Desktop's
///   defaults) `$HOME`, `/tmp` and `$TMP` when the admin set no list.
/// - Defaults: isolation on, no image may mount the socket, no derived
///   images, an empty deny-list, `docker load` allowed, roots
///   [`DEFAULT_MOUNT_ROOTS`].
pub fn merge_with(
    admin: Option<&AdminSettings>,
    user: Option<&UserSettings>,
    host: &HostContext,
) -> Effective {
    let mut ignored = Vec::new();
    let a_eci = admin.and_then(|a| a.eci.as_ref());
    let u_eci = user.and_then(|u| u.eci.as_ref());
    let locked = a_eci.is_some_and(|e| e.locked);

    let a_sm = a_eci.and_then(|e| e.docker_socket_mount.as_ref());
    let u_sm = u_eci.and_then(|e| e.docker_socket_mount.as_ref());
    let a_il = a_sm.and_then(|s| s.image_list.as_ref());
    let u_il = u_sm.and_then(|s| s.image_list.as_ref());

    const ECI: &str = "enhancedContainerIsolation";
    let enhanced_container_isolation = pick(
        &format!("{ECI}.value"),
        locked,
        a_eci.and_then(|e| e.value),
        u_eci.and_then(|e| e.value),
        true,
        &mut ignored,
    );
    let socket_mount_images = pick(
        &format!("{ECI}.dockerSocketMount.imageList.images"),
        locked,
        a_il.and_then(|l| l.images.clone()),
        u_il.and_then(|l| l.images.clone()),
        Vec::new(),
        &mut ignored,
    );
    let allow_derived_images = pick(
        &format!("{ECI}.dockerSocketMount.imageList.allowDerivedImages"),
        locked,
        a_il.and_then(|l| l.allow_derived_images),
        u_il.and_then(|l| l.allow_derived_images),
        false,
        &mut ignored,
    );
    let command_list = pick(
        &format!("{ECI}.dockerSocketMount.commandList"),
        locked,
        a_sm.and_then(|s| s.command_list.clone()),
        u_sm.and_then(|s| s.command_list.clone()),
        CommandList::deny_nothing(),
        &mut ignored,
    );
    let a_bdl = admin.and_then(|a| a.block_docker_load);
    let block_docker_load = pick(
        "blockDockerLoad.value",
        a_bdl.is_some_and(|b| b.locked),
        a_bdl.and_then(|b| b.value),
        user.and_then(|u| u.block_docker_load),
        false,
        &mut ignored,
    );

    let allowed = admin.and_then(|a| a.filesharing_allowed_directories.clone());
    let allowed_expanded: Option<Vec<String>> = allowed
        .as_ref()
        .map(|dirs| dirs.iter().map(|d| expand(&d.path, host)).collect());
    let mut shared_directories: Vec<Sourced<String>> = Vec::new();
    let add = |path: String, source: Source, list: &mut Vec<Sourced<String>>| {
        if !list.iter().any(|s| s.value == path) {
            list.push(sourced(path, source, false));
        }
    };
    match user.and_then(|u| u.filesharing_directories.as_ref()) {
        Some(dirs) => {
            for (i, d) in dirs.iter().enumerate() {
                let path = expand(d, host);
                let permitted = match &allowed_expanded {
                    None => true,
                    Some(roots) => roots.iter().any(|r| path_within(&path, r)),
                };
                if permitted {
                    add(path, Source::User, &mut shared_directories);
                } else {
                    ignored.push(Ignored {
                        field: format!("filesharingDirectories[{i}]"),
                        user_value: Value::String(d.clone()),
                        admin_value: to_json(&allowed),
                        reason: "not under a directory the admin allows for file sharing"
                            .to_string(),
                    });
                }
            }
        }
        None => match &allowed {
            Some(dirs) => {
                for d in dirs.iter().filter(|d| d.shared_by_default) {
                    add(
                        expand(&d.path, host),
                        Source::Admin,
                        &mut shared_directories,
                    );
                }
            }
            // Docker Desktop's defaults on a Linux host: the home, /tmp,
            // and the temporary directory when it is elsewhere.
            None => {
                for d in ["$HOME", "/tmp", "$TMP"] {
                    let path = expand(d, host);
                    if path.starts_with('/') {
                        add(path, Source::Default, &mut shared_directories);
                    }
                }
            }
        },
    }

    let mut warnings = user.map(|u| u.warnings.clone()).unwrap_or_default();
    if !enhanced_container_isolation.value {
        warnings.push(
            "enhancedContainerIsolation.value is false, but hull has no unprotected mode: isolation stays on"
                .to_string(),
        );
    }

    Effective {
        format: EFFECTIVE_FORMAT,
        enhanced_container_isolation,
        socket_mount_images,
        allow_derived_images,
        command_list,
        block_docker_load,
        filesharing_allowed_directories: allowed,
        shared_directories,
        mount_roots: sourced(
            DEFAULT_MOUNT_ROOTS.iter().map(|s| s.to_string()).collect(),
            Source::Default,
            false,
        ),
        ignored,
        unsupported_admin_settings: admin.map(|a| a.unsupported.clone()).unwrap_or_default(),
        warnings,
        fail_closed: None,
        host: None,
    }
}

fn expand(path: &str, host: &HostContext) -> String {
    for (var, value) in [
        ("$HOME", &host.home),
        ("$TMP", &host.tmp),
        ("$TEMP", &host.tmp),
    ] {
        if let Some(v) = value {
            if path == var {
                return v.clone();
            }
            if let Some(rest) = path.strip_prefix(var).filter(|r| r.starts_with('/')) {
                return format!("{}{}", v.trim_end_matches('/'), rest);
            }
        }
    }
    path.to_string()
}

/// Lexical containment on `/`-separated paths: `child` equals `parent` or
/// lies below it (`/a/bc` is not below `/a/b`). Empty and `.` segments are
/// ignored; callers must have refused `..`.
pub(crate) fn path_within(child: &str, parent: &str) -> bool {
    let segs = |p: &str| -> Vec<String> {
        p.split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .map(str::to_string)
            .collect()
    };
    let (c, p) = (segs(child), segs(parent));
    child.starts_with('/') == parent.starts_with('/') && c.len() >= p.len() && c[..p.len()] == p[..]
}

impl Effective {
    /// The settings in force when the VM has no usable settings: isolation
    /// on, nothing may mount the socket, an allow-list allowing nothing,
    /// `docker load` refused, no shared directories and no bind-mount roots
    /// at all. Everything is marked locked.
    pub fn fail_closed(reason: impl Into<String>) -> Effective {
        Effective {
            format: EFFECTIVE_FORMAT,
            enhanced_container_isolation: sourced(true, Source::Default, true),
            socket_mount_images: sourced(Vec::new(), Source::Default, true),
            allow_derived_images: sourced(false, Source::Default, true),
            command_list: sourced(CommandList::allow_nothing(), Source::Default, true),
            block_docker_load: sourced(true, Source::Default, true),
            filesharing_allowed_directories: Some(Vec::new()),
            shared_directories: Vec::new(),
            mount_roots: sourced(Vec::new(), Source::Default, true),
            ignored: Vec::new(),
            unsupported_admin_settings: Vec::new(),
            warnings: Vec::new(),
            fail_closed: Some(reason.into()),
            host: None,
        }
    }

    /// Canonical JSON: compact, object keys sorted at every level, arrays in
    /// order. Two equal `Effective`s give the same bytes on any build (it
    /// does not depend on serde_json's `preserve_order` feature).
    pub fn canonical_json(&self) -> String {
        let mut out = String::new();
        write_canonical(&to_json(self), &mut out);
        out
    }

    /// SHA-256 of [`Effective::canonical_json`], lower-case hex.
    pub fn digest(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(self.canonical_json().as_bytes()))
    }

    /// Reads the JSON blob (any key order; duplicate keys, unknown fields,
    /// invalid image patterns or command names and other formats refused).
    pub fn from_json(text: &[u8]) -> Result<Effective, EffectiveError> {
        let node = json::parse(text, Limits::SETTINGS)?;
        let value = node.to_value()?;
        if let Some(f) = value.get("format").and_then(Value::as_u64) {
            if f != u64::from(EFFECTIVE_FORMAT) {
                return Err(EffectiveError::Format(u32::try_from(f).unwrap_or(u32::MAX)));
            }
        }
        serde_json::from_value(value).map_err(|e| EffectiveError::Shape(e.to_string()))
    }

    /// The VM path at which a host path is visible, if it lies in a shared
    /// directory: `/home/me/src/x` → `/mnt/host/home/me/src/x`. The host
    /// path must be absolute and free of `..`.
    pub fn vm_path_for_host_path(&self, host_path: &str) -> Option<String> {
        if !host_path.starts_with('/') || host_path.split('/').any(|s| s == "..") {
            return None;
        }
        self.shared_directories
            .iter()
            .any(|d| d.value.starts_with('/') && path_within(host_path, &d.value))
            .then(|| format!("{HOST_SHARE_MOUNT_POINT}{host_path}"))
    }
}

impl Effective {
    /// The settings that decide what is shared, for messages:
    /// `filesharingDirectories: a, b; the admin's filesharingAllowedDirectories: c`.
    fn sharing_summary(&self) -> String {
        let list = |v: Vec<&str>| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        let shared = list(
            self.shared_directories
                .iter()
                .map(|d| d.value.as_str())
                .collect(),
        );
        let allowed = match &self.filesharing_allowed_directories {
            None => String::new(),
            Some(a) => format!(
                "; the admin's filesharingAllowedDirectories: {}",
                list(a.iter().map(|d| d.path.as_str()).collect())
            ),
        };
        format!("filesharingDirectories: {shared}{allowed}")
    }

    /// Why a client's host path cannot be bound, when it lies in no shared
    /// directory: names the settings that decide it, so the user knows
    /// what to change (or whom to ask). For a path that is also a VM path,
    /// after ECI's restricted-mount message.
    pub fn not_shared_note(&self, host_path: &str) -> Option<String> {
        if self.vm_path_for_host_path(host_path).is_some() {
            return None;
        }
        Some(format!(
            "{} is not in a directory shared with the VM ({})",
            crate::json::escape_for_message(host_path),
            self.sharing_summary()
        ))
    }

    /// Docker Desktop's kind of answer for a host path that is not shared
    /// and means nothing in the VM either, with how to share it.
    pub fn not_shared_message(&self, host_path: &str) -> String {
        format!(
            "mounts denied: the path {} is not shared from the host and is not known to Docker; share it by adding it (or a directory above it) to filesharingDirectories in hull's settings.json, then `hull down` and `hull up` ({})",
            crate::json::escape_for_message(host_path),
            self.sharing_summary()
        )
    }
}

impl Default for Effective {
    /// No admin and no user settings: hull's defaults.
    fn default() -> Self {
        merge(None, None)
    }
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(child) = map.get(*k) {
                    write_canonical(child, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::ListType;
    use crate::settings::{parse_admin, parse_user};

    const ECI_EXAMPLE: &str = r#"{"configurationFileVersion": 2, "enhancedContainerIsolation": {"locked": true, "value": true, "dockerSocketMount": {"imageList": {"images": ["docker.io/localstack/localstack:*", "docker.io/testcontainers/ryuk:*", "docker:cli"], "allowDerivedImages": true}, "commandList": {"type": "deny", "commands": ["push", "build"]}}}}"#;

    fn admin(s: &str) -> AdminSettings {
        parse_admin(s.as_bytes()).unwrap()
    }
    fn user(s: &str) -> UserSettings {
        parse_user(s.as_bytes()).unwrap()
    }

    #[test]
    fn defaults() {
        let e = Effective::default();
        assert!(e.enhanced_container_isolation.value);
        assert_eq!(e.enhanced_container_isolation.source, Source::Default);
        assert!(e.socket_mount_images.value.is_empty());
        assert!(!e.allow_derived_images.value);
        assert_eq!(e.command_list.value.kind, ListType::Deny);
        assert_eq!(e.mount_roots.value, DEFAULT_MOUNT_ROOTS);
        // No host context: nothing to expand, so only /tmp.
        let dirs = |e: &Effective| -> Vec<String> {
            e.shared_directories
                .iter()
                .map(|d| d.value.clone())
                .collect()
        };
        assert_eq!(dirs(&e), ["/tmp"]);
        assert!(e.ignored.is_empty());
        // Docker Desktop's defaults: home, /tmp, and $TMP when elsewhere.
        let host = |tmp: &str| HostContext {
            home: Some("/home/me".into()),
            tmp: Some(tmp.into()),
        };
        assert_eq!(
            dirs(&merge_with(None, None, &host("/tmp"))),
            ["/home/me", "/tmp"]
        );
        assert_eq!(
            dirs(&merge_with(None, None, &host("/var/tmp/me"))),
            ["/home/me", "/tmp", "/var/tmp/me"]
        );
        assert!(merge_with(None, None, &host("/tmp"))
            .shared_directories
            .iter()
            .all(|d| d.source == Source::Default));
    }

    #[test]
    fn locked_admin_wins_and_user_attempts_are_reported() {
        let a = admin(ECI_EXAMPLE);
        let u = user(
            r#"{"enhancedContainerIsolation": {"value": false, "dockerSocketMount": {"imageList": {"images": ["*"]}, "commandList": {"type": "deny", "commands": []}}}}"#,
        );
        let e = merge(Some(&a), Some(&u));
        assert!(e.enhanced_container_isolation.value);
        assert!(e.enhanced_container_isolation.locked);
        assert_eq!(e.enhanced_container_isolation.source, Source::Admin);
        assert_eq!(e.socket_mount_images.value.len(), 3);
        assert_eq!(e.command_list.value.commands.len(), 2);
        let fields: Vec<&str> = e.ignored.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "enhancedContainerIsolation.value",
                "enhancedContainerIsolation.dockerSocketMount.imageList.images",
                "enhancedContainerIsolation.dockerSocketMount.commandList",
            ]
        );
        assert_eq!(e.ignored[0].user_value, Value::Bool(false));
        assert_eq!(e.ignored[0].admin_value, Value::Bool(true));
        assert_eq!(e.ignored[1].user_value, serde_json::json!(["*"]));
        assert_eq!(e.ignored[0].reason, "locked by the admin");
    }

    #[test]
    fn locked_group_without_values_locks_defaults() {
        let a = admin(
            r#"{"configurationFileVersion": 2, "enhancedContainerIsolation": {"locked": true}}"#,
        );
        let u = user(
            r#"{"enhancedContainerIsolation": {"dockerSocketMount": {"imageList": {"images": ["docker:cli"], "allowDerivedImages": true}}}}"#,
        );
        let e = merge(Some(&a), Some(&u));
        assert!(e.socket_mount_images.value.is_empty());
        assert!(e.socket_mount_images.locked);
        assert_eq!(e.socket_mount_images.source, Source::Default);
        assert!(!e.allow_derived_images.value);
        assert_eq!(e.ignored.len(), 2);
    }

    #[test]
    fn same_user_value_is_not_reported() {
        let a = admin(ECI_EXAMPLE);
        let u = user(r#"{"enhancedContainerIsolation": {"value": true}}"#);
        assert!(merge(Some(&a), Some(&u)).ignored.is_empty());
    }

    #[test]
    fn unlocked_admin_is_a_default() {
        let a = admin(
            r#"{"configurationFileVersion": 2, "enhancedContainerIsolation": {"locked": false, "dockerSocketMount": {"imageList": {"images": ["docker:cli"]}}}}"#,
        );
        let e = merge(Some(&a), None);
        assert_eq!(e.socket_mount_images.source, Source::Admin);
        assert!(!e.socket_mount_images.locked);
        let u = user(
            r#"{"enhancedContainerIsolation": {"dockerSocketMount": {"imageList": {"images": []}}}}"#,
        );
        let e = merge(Some(&a), Some(&u));
        assert_eq!(e.socket_mount_images.source, Source::User);
        assert!(e.socket_mount_images.value.is_empty());
        assert!(e.ignored.is_empty());
    }

    #[test]
    fn user_only() {
        let u = user(
            r#"{"enhancedContainerIsolation": {"value": false}, "blockDockerLoad": {"value": true}}"#,
        );
        let e = merge(None, Some(&u));
        assert!(!e.enhanced_container_isolation.value);
        assert_eq!(e.enhanced_container_isolation.source, Source::User);
        assert!(e.warnings.iter().any(|w| w.contains("no unprotected mode")));
        assert!(e.block_docker_load.value);
    }

    #[test]
    fn block_docker_load_has_its_own_lock() {
        let a = admin(
            r#"{"configurationFileVersion": 2, "blockDockerLoad": {"locked": true, "value": true}}"#,
        );
        let u = user(r#"{"blockDockerLoad": {"value": false}}"#);
        let e = merge(Some(&a), Some(&u));
        assert!(e.block_docker_load.value);
        assert_eq!(e.ignored[0].field, "blockDockerLoad.value");
    }

    #[test]
    fn file_sharing() {
        let host = HostContext {
            home: Some("/home/me".into()),
            tmp: Some("/tmp".into()),
        };
        let a = admin(
            r#"{"configurationFileVersion": 2, "filesharingAllowedDirectories": [{"path": "$HOME", "sharedByDefault": true}, {"path": "$TMP", "sharedByDefault": false}]}"#,
        );
        let e = merge_with(Some(&a), None, &host);
        assert_eq!(e.shared_directories.len(), 1);
        assert_eq!(e.shared_directories[0].value, "/home/me");
        assert_eq!(e.shared_directories[0].source, Source::Admin);
        let u = user(r#"{"filesharingDirectories": ["$HOME/src", "/tmp/x", "/etc", "/home/meX"]}"#);
        let e = merge_with(Some(&a), Some(&u), &host);
        let dirs: Vec<&str> = e
            .shared_directories
            .iter()
            .map(|d| d.value.as_str())
            .collect();
        assert_eq!(dirs, vec!["/home/me/src", "/tmp/x"]);
        let ign: Vec<&str> = e.ignored.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(
            ign,
            vec!["filesharingDirectories[2]", "filesharingDirectories[3]"]
        );
        assert_eq!(
            e.vm_path_for_host_path("/home/me/src/a").as_deref(),
            Some("/mnt/host/home/me/src/a")
        );
        assert_eq!(e.vm_path_for_host_path("/home/me/other"), None);
        assert_eq!(e.vm_path_for_host_path("/home/me/src/../../x"), None);
        assert_eq!(e.not_shared_note("/home/me/src/a"), None);
        assert_eq!(
            e.not_shared_note("/etc").as_deref(),
            Some("/etc is not in a directory shared with the VM (filesharingDirectories: /home/me/src, /tmp/x; the admin's filesharingAllowedDirectories: $HOME, $TMP)")
        );
    }

    #[test]
    fn fail_closed_is_strictest() {
        let e = Effective::fail_closed("malformed blob");
        assert!(e.enhanced_container_isolation.value);
        assert!(e.socket_mount_images.value.is_empty());
        assert_eq!(e.command_list.value.kind, ListType::Allow);
        assert!(e.command_list.value.commands.is_empty());
        assert!(e.mount_roots.value.is_empty());
        assert!(e.block_docker_load.value);
        assert_eq!(e.fail_closed.as_deref(), Some("malformed blob"));
    }

    #[test]
    fn json_round_trip_and_canonical_form() {
        let a = admin(ECI_EXAMPLE);
        let u = user(r#"{"enhancedContainerIsolation": {"value": false}}"#);
        let e = merge(Some(&a), Some(&u));
        let pretty = serde_json::to_string_pretty(&e).unwrap();
        let back = Effective::from_json(pretty.as_bytes()).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.canonical_json(), e.canonical_json());
        assert_eq!(back.digest(), e.digest());
        assert_eq!(e.digest().len(), 64);
        // Keys are sorted at every level, no whitespace.
        let c = e.canonical_json();
        assert!(c.starts_with("{\"allowDerivedImages\":"));
        assert!(!c.contains(' ') || c.contains("locked by the admin"));
        // A different value gives a different digest.
        assert_ne!(Effective::default().digest(), e.digest());
        // The digest of the defaults is stable across runs.
        assert_eq!(Effective::default().digest(), merge(None, None).digest());
    }

    #[test]
    fn from_json_is_strict() {
        let good = serde_json::to_string(&Effective::default()).unwrap();
        let unknown = good.replacen('{', "{\"extra\":1,", 1);
        assert!(Effective::from_json(unknown.as_bytes()).is_err());
        let dup = good.replacen('{', "{\"format\":1,", 1);
        assert!(Effective::from_json(dup.as_bytes()).is_err());
        let fmt2 = good.replace("\"format\":1", "\"format\":2");
        assert!(matches!(
            Effective::from_json(fmt2.as_bytes()),
            Err(EffectiveError::Format(2))
        ));
        let bad_cmd = serde_json::to_string(&Effective::fail_closed("x"))
            .unwrap()
            .replace("\"commands\":[]", "\"commands\":[\"nope\"]");
        assert!(Effective::from_json(bad_cmd.as_bytes()).is_err());
        assert!(Effective::from_json(b"not json").is_err());
    }

    #[test]
    fn containment() {
        assert!(path_within("/a/b", "/a"));
        assert!(path_within("/a", "/a/"));
        assert!(path_within("/a/b", "/"));
        assert!(!path_within("/ab", "/a"));
        assert!(!path_within("a/b", "/a"));
    }
}
