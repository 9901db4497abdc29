//! The settings files: Docker Desktop's `admin-settings.json` (the parts
//! hull applies) and the user's own settings file.
//!
//! # Admin file
//!
//! ```json
//! {"configurationFileVersion": 2,
//!  "enhancedContainerIsolation": {"locked": true, "value": true,
//!    "dockerSocketMount": {
//!      "imageList": {"images": ["docker.io/testcontainers/ryuk:*", "docker:cli"],
//!                    "allowDerivedImages": true},
//!      "commandList": {"type": "deny", "commands": ["push", "build"]}}},
//!  "blockDockerLoad": {"locked": true, "value": true},
//!  "filesharingAllowedDirectories": [{"path": "$HOME", "sharedByDefault": true}]}
//! ```
//!
//! - `configurationFileVersion` is required and must be 1 or 2.
//! - Other top-level keys are settings of Docker Desktop that hull does not
//!   apply (`proxy`, `kubernetes`, ...). They are tolerated, so one file can
//!   serve both, and listed in [`AdminSettings::unsupported`] so that
//!   `hull settings` can show them.
//! - Inside `enhancedContainerIsolation`, `blockDockerLoad` and
//!   `filesharingAllowedDirectories`, unknown keys are refused: a misspelt
//!   `comandList` would otherwise silently allow every command.
//! - `null` is refused wherever a value is expected.
//!
//! # User file
//!
//! Same shape, minus what only an admin can set:
//! `enhancedContainerIsolation` (`value`, `dockerSocketMount`),
//! `blockDockerLoad` (`value`) and `filesharingDirectories` (the host
//! directories the user shares with the VM). `locked` is accepted but has no
//! effect (a warning says so). Unknown keys are refused everywhere: the file
//! is hull's own. `configurationFileVersion` is optional.
//!
//! Errors name the line, column and field path, e.g.
//! `line 7, column 11: enhancedContainerIsolation.dockerSocketMount.imageList.images[2]: expected a string`.

use std::fmt;

use crate::commands::{CommandList, CommandName, ListType};
use crate::json::{self, Limits, Node, NodeValue};
use crate::reference::ImagePattern;

/// A settings file that could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SettingsError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Field path such as `enhancedContainerIsolation.value`; empty for
    /// syntax errors.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}: ", self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl From<json::JsonError> for SettingsError {
    fn from(e: json::JsonError) -> Self {
        SettingsError {
            line: e.line,
            column: e.column,
            path: String::new(),
            message: e.message,
        }
    }
}

/// `dockerSocketMount.imageList`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageListSettings {
    /// `images`, if given.
    pub images: Option<Vec<ImagePattern>>,
    /// `allowDerivedImages`, if given.
    pub allow_derived_images: Option<bool>,
}

/// `dockerSocketMount`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DockerSocketMount {
    /// `imageList`, if given.
    pub image_list: Option<ImageListSettings>,
    /// `commandList`, if given.
    pub command_list: Option<CommandList>,
}

/// `enhancedContainerIsolation`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EciSettings {
    /// `locked` (admin file only; false when absent).
    pub locked: bool,
    /// `value`: isolation on or off, if given.
    pub value: Option<bool>,
    /// `dockerSocketMount`, if given.
    pub docker_socket_mount: Option<DockerSocketMount>,
}

/// A `{"locked": .., "value": ..}` boolean setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LockedBool {
    /// `locked` (false when absent).
    pub locked: bool,
    /// `value`, if given.
    pub value: Option<bool>,
}

/// One `filesharingAllowedDirectories` entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AllowedDirectory {
    /// Host path; may start with `$HOME`, `$TMP` or `$TEMP`.
    pub path: String,
    /// Shared without the user asking for it.
    pub shared_by_default: bool,
}

/// The parts of `admin-settings.json` hull applies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdminSettings {
    /// `configurationFileVersion`.
    pub configuration_file_version: u32,
    /// `enhancedContainerIsolation`, if present.
    pub eci: Option<EciSettings>,
    /// `blockDockerLoad`, if present.
    pub block_docker_load: Option<LockedBool>,
    /// `filesharingAllowedDirectories`, if present: the only host
    /// directories users may share.
    pub filesharing_allowed_directories: Option<Vec<AllowedDirectory>>,
    /// Top-level keys hull tolerates but does not apply, in file order.
    pub unsupported: Vec<String>,
}

/// The user's own settings file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserSettings {
    /// `enhancedContainerIsolation`, if present (`locked` is ignored).
    pub eci: Option<EciSettings>,
    /// `blockDockerLoad.value`, if present.
    pub block_docker_load: Option<bool>,
    /// `filesharingDirectories`: host directories to share with the VM.
    pub filesharing_directories: Option<Vec<String>>,
    /// Things accepted but without effect, for `hull settings` to show.
    pub warnings: Vec<String>,
}

/// Parses `admin-settings.json`.
pub fn parse_admin(text: &[u8]) -> Result<AdminSettings, SettingsError> {
    let root = json::parse(text, Limits::SETTINGS)?;
    let members = object(&root, "")?;
    let mut out = AdminSettings::default();
    let version = members
        .iter()
        .find(|(k, _)| k == "configurationFileVersion")
        .map(|(_, v)| v)
        .ok_or_else(|| SettingsError {
            line: root.line,
            column: root.column,
            path: "configurationFileVersion".into(),
            message: "missing (expected 2)".into(),
        })?;
    out.configuration_file_version = file_version(version, "configurationFileVersion")?;
    for (key, node) in members {
        match key.as_str() {
            "configurationFileVersion" => {}
            "enhancedContainerIsolation" => {
                out.eci = Some(eci(
                    node,
                    "enhancedContainerIsolation",
                    true,
                    &mut Vec::new(),
                )?)
            }
            "blockDockerLoad" => {
                out.block_docker_load =
                    Some(locked_bool(node, "blockDockerLoad", true, &mut Vec::new())?)
            }
            "filesharingAllowedDirectories" => {
                let path = "filesharingAllowedDirectories";
                let mut dirs = Vec::new();
                for (i, item) in array(node, path)?.iter().enumerate() {
                    dirs.push(allowed_directory(item, &format!("{path}[{i}]"))?);
                }
                out.filesharing_allowed_directories = Some(dirs);
            }
            other => out.unsupported.push(other.to_string()),
        }
    }
    Ok(out)
}

/// Parses the user's settings file.
pub fn parse_user(text: &[u8]) -> Result<UserSettings, SettingsError> {
    let root = json::parse(text, Limits::SETTINGS)?;
    let members = object(&root, "")?;
    let mut out = UserSettings::default();
    for (key, node) in members {
        match key.as_str() {
            "configurationFileVersion" => {
                file_version(node, "configurationFileVersion")?;
            }
            "enhancedContainerIsolation" => {
                out.eci = Some(eci(
                    node,
                    "enhancedContainerIsolation",
                    false,
                    &mut out.warnings,
                )?)
            }
            "blockDockerLoad" => {
                out.block_docker_load =
                    locked_bool(node, "blockDockerLoad", false, &mut out.warnings)?.value
            }
            "filesharingDirectories" => {
                let path = "filesharingDirectories";
                let mut dirs = Vec::new();
                for (i, item) in array(node, path)?.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    dirs.push(host_path(item, &p)?);
                }
                out.filesharing_directories = Some(dirs);
            }
            other => {
                return Err(unknown_key(
                    node,
                    "",
                    other,
                    &[
                        "configurationFileVersion",
                        "enhancedContainerIsolation",
                        "blockDockerLoad",
                        "filesharingDirectories",
                    ],
                ))
            }
        }
    }
    Ok(out)
}

fn err(node: &Node, path: &str, message: impl Into<String>) -> SettingsError {
    SettingsError {
        line: node.line,
        column: node.column,
        path: path.to_string(),
        message: message.into(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn unknown_key(node: &Node, path: &str, key: &str, allowed: &[&str]) -> SettingsError {
    err(
        node,
        &join(path, &json::escape_for_message(key)),
        format!("unknown setting (expected one of: {})", allowed.join(", ")),
    )
}

fn expected(node: &Node, path: &str, what: &str) -> SettingsError {
    err(
        node,
        path,
        format!("expected {what}, found {}", node.value.kind()),
    )
}

fn object<'a>(node: &'a Node, path: &str) -> Result<&'a [(String, Node)], SettingsError> {
    match &node.value {
        NodeValue::Object(m) => Ok(m),
        _ => Err(expected(node, path, "an object")),
    }
}

fn array<'a>(node: &'a Node, path: &str) -> Result<&'a [Node], SettingsError> {
    match &node.value {
        NodeValue::Array(a) => Ok(a),
        _ => Err(expected(node, path, "an array")),
    }
}

fn boolean(node: &Node, path: &str) -> Result<bool, SettingsError> {
    match node.value {
        NodeValue::Bool(b) => Ok(b),
        _ => Err(expected(node, path, "true or false")),
    }
}

fn string<'a>(node: &'a Node, path: &str) -> Result<&'a str, SettingsError> {
    match &node.value {
        NodeValue::String(s) => Ok(s),
        _ => Err(expected(node, path, "a string")),
    }
}

fn file_version(node: &Node, path: &str) -> Result<u32, SettingsError> {
    match &node.value {
        NodeValue::Number(n) if n == "1" || n == "2" => Ok(if n == "1" { 1 } else { 2 }),
        NodeValue::Number(n) => Err(err(
            node,
            path,
            format!(
                "unsupported version {} (expected 2)",
                json::escape_for_message(n)
            ),
        )),
        _ => Err(expected(node, path, "the number 2")),
    }
}

fn locked_bool(
    node: &Node,
    path: &str,
    admin: bool,
    warnings: &mut Vec<String>,
) -> Result<LockedBool, SettingsError> {
    let mut out = LockedBool::default();
    for (key, v) in object(node, path)? {
        let p = join(path, key);
        match key.as_str() {
            "locked" => {
                out.locked = boolean(v, &p)?;
                if !admin {
                    warnings.push(format!("{p} has no effect in the user settings file"));
                    out.locked = false;
                }
            }
            "value" => out.value = Some(boolean(v, &p)?),
            other => return Err(unknown_key(v, path, other, &["locked", "value"])),
        }
    }
    Ok(out)
}

fn eci(
    node: &Node,
    path: &str,
    admin: bool,
    warnings: &mut Vec<String>,
) -> Result<EciSettings, SettingsError> {
    let mut out = EciSettings::default();
    for (key, v) in object(node, path)? {
        let p = join(path, key);
        match key.as_str() {
            "locked" => {
                let locked = boolean(v, &p)?;
                if admin {
                    out.locked = locked;
                } else {
                    warnings.push(format!("{p} has no effect in the user settings file"));
                }
            }
            "value" => out.value = Some(boolean(v, &p)?),
            "dockerSocketMount" => out.docker_socket_mount = Some(socket_mount(v, &p)?),
            other => {
                return Err(unknown_key(
                    v,
                    path,
                    other,
                    &["locked", "value", "dockerSocketMount"],
                ))
            }
        }
    }
    Ok(out)
}

fn socket_mount(node: &Node, path: &str) -> Result<DockerSocketMount, SettingsError> {
    let mut out = DockerSocketMount::default();
    for (key, v) in object(node, path)? {
        let p = join(path, key);
        match key.as_str() {
            "imageList" => out.image_list = Some(image_list(v, &p)?),
            "commandList" => out.command_list = Some(command_list(v, &p)?),
            other => return Err(unknown_key(v, path, other, &["imageList", "commandList"])),
        }
    }
    Ok(out)
}

fn image_list(node: &Node, path: &str) -> Result<ImageListSettings, SettingsError> {
    let mut out = ImageListSettings::default();
    for (key, v) in object(node, path)? {
        let p = join(path, key);
        match key.as_str() {
            "images" => {
                let mut images = Vec::new();
                for (i, item) in array(v, &p)?.iter().enumerate() {
                    let ip = format!("{p}[{i}]");
                    let s = string(item, &ip)?;
                    let pattern =
                        ImagePattern::parse(s).map_err(|e| err(item, &ip, e.to_string()))?;
                    images.push(pattern);
                }
                out.images = Some(images);
            }
            "allowDerivedImages" => out.allow_derived_images = Some(boolean(v, &p)?),
            other => {
                return Err(unknown_key(
                    v,
                    path,
                    other,
                    &["images", "allowDerivedImages"],
                ))
            }
        }
    }
    Ok(out)
}

fn command_list(node: &Node, path: &str) -> Result<CommandList, SettingsError> {
    let mut kind = None;
    let mut commands = None;
    for (key, v) in object(node, path)? {
        let p = join(path, key);
        match key.as_str() {
            "type" => {
                kind = Some(match string(v, &p)? {
                    "allow" => ListType::Allow,
                    "deny" => ListType::Deny,
                    other => {
                        return Err(err(
                            v,
                            &p,
                            format!(
                                "expected \"allow\" or \"deny\", found \"{}\"",
                                json::escape_for_message(other)
                            ),
                        ))
                    }
                })
            }
            "commands" => {
                let mut list = Vec::new();
                for (i, item) in array(v, &p)?.iter().enumerate() {
                    let ip = format!("{p}[{i}]");
                    let s = string(item, &ip)?;
                    list.push(CommandName::parse(s).map_err(|e| {
                        err(
                            item,
                            &ip,
                            format!("{e} (see `docker --help`; wildcards: container*, image*, volume*, network*, build*, system*)"),
                        )
                    })?);
                }
                commands = Some(list);
            }
            other => return Err(unknown_key(v, path, other, &["type", "commands"])),
        }
    }
    let kind = kind.ok_or_else(|| {
        err(
            node,
            &join(path, "type"),
            "missing (expected \"allow\" or \"deny\")",
        )
    })?;
    Ok(CommandList {
        kind,
        commands: commands.unwrap_or_default(),
    })
}

fn host_path(node: &Node, path: &str) -> Result<String, SettingsError> {
    let s = string(node, path)?;
    let ok_start = s.starts_with('/')
        || ["$HOME", "$TMP", "$TEMP"]
            .iter()
            .any(|v| s == *v || s.starts_with(&format!("{v}/")));
    if !ok_start {
        return Err(err(
            node,
            path,
            "expected an absolute path or one starting with $HOME, $TMP or $TEMP",
        ));
    }
    if s.chars().any(|c| c.is_control()) {
        return Err(err(node, path, "control character in path"));
    }
    if s.split('/').any(|seg| seg == "..") {
        return Err(err(node, path, "'..' is not allowed in a shared path"));
    }
    Ok(s.to_string())
}

fn allowed_directory(node: &Node, path: &str) -> Result<AllowedDirectory, SettingsError> {
    let mut dir_path = None;
    let mut shared = false;
    for (key, v) in object(node, path)? {
        let p = join(path, key);
        match key.as_str() {
            "path" => dir_path = Some(host_path(v, &p)?),
            "sharedByDefault" => shared = boolean(v, &p)?,
            other => return Err(unknown_key(v, path, other, &["path", "sharedByDefault"])),
        }
    }
    let dir_path = dir_path.ok_or_else(|| err(node, &join(path, "path"), "missing"))?;
    Ok(AllowedDirectory {
        path: dir_path,
        shared_by_default: shared,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const ECI_EXAMPLE: &str = r#"{"configurationFileVersion": 2, "enhancedContainerIsolation": {"locked": true, "value": true, "dockerSocketMount": {"imageList": {"images": ["docker.io/localstack/localstack:*", "docker.io/testcontainers/ryuk:*", "docker:cli"], "allowDerivedImages": true}, "commandList": {"type": "deny", "commands": ["push", "build"]}}}}"#;

    #[test]
    fn parses_the_eci_example() {
        let a = parse_admin(ECI_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(a.configuration_file_version, 2);
        let e = a.eci.unwrap();
        assert!(e.locked);
        assert_eq!(e.value, Some(true));
        let sm = e.docker_socket_mount.unwrap();
        let il = sm.image_list.unwrap();
        assert_eq!(il.images.unwrap().len(), 3);
        assert_eq!(il.allow_derived_images, Some(true));
        let cl = sm.command_list.unwrap();
        assert_eq!(cl.kind, ListType::Deny);
        assert_eq!(cl.commands.len(), 2);
    }

    #[test]
    fn error_names_line_column_and_path() {
        let text = "{\n  \"configurationFileVersion\": 2,\n  \"enhancedContainerIsolation\": {\n    \"dockerSocketMount\": {\n      \"imageList\": {\n        \"images\": [\"a\", \"b\", 3]\n      }\n    }\n  }\n}";
        let e = parse_admin(text.as_bytes()).unwrap_err();
        assert_eq!(
            e.path,
            "enhancedContainerIsolation.dockerSocketMount.imageList.images[2]"
        );
        assert_eq!((e.line, e.column), (6, 30));
        assert_eq!(
            e.to_string(),
            "line 6, column 30: enhancedContainerIsolation.dockerSocketMount.imageList.images[2]: expected a string, found a number"
        );
    }

    #[test]
    fn unknown_keys_inside_eci_refused_but_tolerated_at_top_level() {
        let e = parse_admin(
            br#"{"configurationFileVersion": 2, "enhancedContainerIsolation": {"dockerSocketMount": {"comandList": {}}}}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.path,
            "enhancedContainerIsolation.dockerSocketMount.comandList"
        );
        let a = parse_admin(
            br#"{"configurationFileVersion": 2, "proxy": {"locked": true}, "kubernetes": {}}"#,
        )
        .unwrap();
        assert_eq!(a.unsupported, vec!["proxy", "kubernetes"]);
    }

    #[test]
    fn version_required_and_checked() {
        assert!(parse_admin(b"{}").unwrap_err().path == "configurationFileVersion");
        assert!(parse_admin(br#"{"configurationFileVersion": 3}"#).is_err());
        assert!(parse_admin(br#"{"configurationFileVersion": 2.0}"#).is_err());
        assert!(parse_admin(br#"{"configurationFileVersion": "2"}"#).is_err());
        assert!(parse_admin(br#"{"configurationFileVersion": 1}"#).is_ok());
        assert!(parse_user(b"{}").is_ok());
    }

    #[test]
    fn duplicate_keys_refused() {
        let e = parse_admin(
            br#"{"configurationFileVersion": 2, "enhancedContainerIsolation": {"locked": true, "locked": false}}"#,
        )
        .unwrap_err();
        assert!(e.message.contains("duplicate key"));
        assert!(
            parse_admin(br#"{"configurationFileVersion": 2, "configurationFileVersion": 2}"#)
                .is_err()
        );
    }

    #[test]
    fn bad_values() {
        for (text, path) in [
            (
                r#"{"configurationFileVersion": 2, "enhancedContainerIsolation": {"locked": "yes"}}"#,
                "enhancedContainerIsolation.locked",
            ),
            (
                r#"{"configurationFileVersion": 2, "enhancedContainerIsolation": {"value": null}}"#,
                "enhancedContainerIsolation.value",
            ),
            (
                r#"{"configurationFileVersion": 2, "enhancedContainerIsolation": {"dockerSocketMount": {"commandList": {"type": "block", "commands": []}}}}"#,
                "enhancedContainerIsolation.dockerSocketMount.commandList.type",
            ),
            (
                r#"{"configurationFileVersion": 2, "enhancedContainerIsolation": {"dockerSocketMount": {"commandList": {"commands": []}}}}"#,
                "enhancedContainerIsolation.dockerSocketMount.commandList.type",
            ),
            (
                r#"{"configurationFileVersion": 2, "enhancedContainerIsolation": {"dockerSocketMount": {"commandList": {"type": "deny", "commands": ["pussh"]}}}}"#,
                "enhancedContainerIsolation.dockerSocketMount.commandList.commands[0]",
            ),
            (
                r#"{"configurationFileVersion": 2, "enhancedContainerIsolation": {"dockerSocketMount": {"imageList": {"images": ["Docker:cli"]}}}}"#,
                "enhancedContainerIsolation.dockerSocketMount.imageList.images[0]",
            ),
            (
                r#"{"configurationFileVersion": 2, "filesharingAllowedDirectories": [{"path": "relative"}]}"#,
                "filesharingAllowedDirectories[0].path",
            ),
            (
                r#"{"configurationFileVersion": 2, "filesharingAllowedDirectories": [{"sharedByDefault": true}]}"#,
                "filesharingAllowedDirectories[0].path",
            ),
            (
                r#"{"configurationFileVersion": 2, "blockDockerLoad": {"value": 1}}"#,
                "blockDockerLoad.value",
            ),
            (r#"[]"#, ""),
        ] {
            let e = parse_admin(text.as_bytes()).unwrap_err();
            assert_eq!(e.path, path, "{text}: {e}");
        }
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse_admin(b"{\n \"configurationFileVersion\": 2,\n}").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.path.is_empty());
        assert!(parse_admin(b"\xff").is_err());
    }

    #[test]
    fn user_file() {
        let u = parse_user(
            br#"{"enhancedContainerIsolation": {"locked": true, "value": false, "dockerSocketMount": {"imageList": {"images": ["*"]}}}, "filesharingDirectories": ["$HOME/src", "/data"], "blockDockerLoad": {"value": false}}"#,
        )
        .unwrap();
        let e = u.eci.unwrap();
        assert!(!e.locked);
        assert_eq!(e.value, Some(false));
        assert_eq!(u.warnings.len(), 1);
        assert_eq!(
            u.filesharing_directories.unwrap(),
            vec!["$HOME/src", "/data"]
        );
        assert_eq!(u.block_docker_load, Some(false));
        let e = parse_user(br#"{"proxy": {}}"#).unwrap_err();
        assert_eq!(e.path, "proxy");
        assert!(parse_user(br#"{"filesharingDirectories": ["/a/../b"]}"#).is_err());
        assert!(parse_user(br#"{"filesharingDirectories": ["$HOMEX"]}"#).is_err());
    }

    #[test]
    fn hostile_settings() {
        let deep = format!(
            "{{\"configurationFileVersion\": 2, \"x\": {}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(parse_admin(deep.as_bytes()).is_err());
        let many: String = (0..50_000).map(|i| format!("\"k{i}\": 0,")).collect();
        let text = format!("{{{many}\"configurationFileVersion\": 2}}");
        let a = parse_admin(text.as_bytes()).unwrap();
        assert_eq!(a.unsupported.len(), 50_000);
    }
}
