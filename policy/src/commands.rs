//! `dockerSocketMount.commandList`: which engine commands a container that
//! mounted the socket may use.

use crate::endpoint::{group_of_name, is_known_command, Action, Endpoint};
use crate::refusal::Refusal;

/// Whether the list names what is allowed or what is denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListType {
    /// Only the listed commands are allowed; unknown endpoints are denied.
    Allow,
    /// The listed commands are denied; everything else passes.
    Deny,
}

/// A validated command-list entry: a `docker --help` command name (`push`,
/// `ps`), a management subcommand (`volume create`), a management command
/// (`volume`, meaning all of it) or one of the wildcards `container*`,
/// `image*`, `volume*`, `network*`, `build*`, `system*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommandName(String);

/// Why a command name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown docker command \"{0}\"")]
pub struct UnknownCommand(pub String);

impl CommandName {
    /// Validates a name against the commands hull knows. Unknown names are
    /// refused so that a typo in a deny-list cannot silently allow a command.
    pub fn parse(name: &str) -> Result<CommandName, UnknownCommand> {
        if is_known_command(name) {
            Ok(CommandName(name.to_string()))
        } else {
            Err(UnknownCommand(crate::json::escape_for_message(name)))
        }
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn covers(&self, action: &Action, allow_list: bool) -> bool {
        if let Some(g) = group_of_name(&self.0) {
            return action.group == g;
        }
        action.names.contains(&self.0.as_str())
            || (allow_list && action.needed_by.contains(&self.0.as_str()))
    }
}

impl serde::Serialize for CommandName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for CommandName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CommandName::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `{"type": "allow"|"deny", "commands": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandList {
    /// Allow- or deny-list.
    #[serde(rename = "type")]
    pub kind: ListType,
    /// The entries.
    pub commands: Vec<CommandName>,
}

impl CommandList {
    /// A deny-list denying nothing (the default when the admin sets none).
    pub fn deny_nothing() -> Self {
        CommandList {
            kind: ListType::Deny,
            commands: Vec::new(),
        }
    }

    /// An allow-list allowing nothing but `/_ping` (the fail-closed value).
    pub fn allow_nothing() -> Self {
        CommandList {
            kind: ListType::Allow,
            commands: Vec::new(),
        }
    }

    /// Whether a request on a per-container socket may reach the engine.
    ///
    /// Allow-list: every action of the request must be covered by an entry
    /// (by name, by a command that needs it, or by its group); requests the
    /// engine would not route are denied. Deny-list: the request is denied if
    /// any action is named by an entry or is in a listed group (`run` denies
    /// `POST /containers/create`, not `start`). `/_ping` and `OPTIONS` always
    /// pass, since the CLI cannot talk to the engine without them.
    pub fn permits(&self, ep: &Endpoint) -> bool {
        if ep.always_allowed() {
            return true;
        }
        match self.kind {
            ListType::Allow => {
                !ep.actions.is_empty()
                    && ep
                        .actions
                        .iter()
                        .all(|a| self.commands.iter().any(|c| c.covers(a, true)))
            }
            ListType::Deny => !ep
                .actions
                .iter()
                .any(|a| self.commands.iter().any(|c| c.covers(a, false))),
        }
    }

    /// [`CommandList::permits`] as a refusal carrying ECI's message.
    pub fn check(&self, ep: &Endpoint) -> Result<(), Refusal> {
        if self.permits(ep) {
            Ok(())
        } else {
            Err(Refusal::forbidden(format!(
                "enhanced container isolation: docker command \"{}\" is blocked; if you wish to allow it, configure the docker socket command list in the hull admin settings",
                crate::json::escape_for_message(&ep.raw_target)
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::{classify, ApiRequest};

    fn list(kind: ListType, names: &[&str]) -> CommandList {
        CommandList {
            kind,
            commands: names
                .iter()
                .map(|n| CommandName::parse(n).unwrap())
                .collect(),
        }
    }

    fn ep(method: &str, target: &str) -> Endpoint {
        classify(&ApiRequest {
            method,
            target,
            content_type: None,
        })
        .unwrap()
    }

    #[test]
    fn eci_example_deny_push_and_build() {
        let l = list(ListType::Deny, &["push", "build"]);
        for (m, t) in [
            ("POST", "/v1.43/images/myimage/push?tag=latest"),
            ("POST", "/images/myimage/push"),
            ("POST", "/v1.41/images/x%2Fpush"),
            ("POST", "/v1.43/build?t=x"),
            ("POST", "/v1.43/grpc"),
            ("POST", "/session"),
            ("POST", "/v1.43/build/cancel?id=1"),
        ] {
            let e = ep(m, t);
            assert!(!l.permits(&e), "{m} {t}");
            let r = l.check(&e).unwrap_err();
            assert_eq!(r.status.code(), 403);
            assert!(r
                .message
                .starts_with("enhanced container isolation: docker command \""));
        }
        for (m, t) in [
            ("GET", "/v1.43/containers/json"),
            ("POST", "/v1.43/containers/create"),
            ("GET", "/_ping"),
            ("POST", "/v1.43/images/create?fromImage=busybox"),
            ("GET", "/v1.43/nonexistent"),
        ] {
            assert!(l.permits(&ep(m, t)), "{m} {t}");
        }
    }

    #[test]
    fn message_names_the_raw_target() {
        let l = list(ListType::Deny, &["push"]);
        let r = l
            .check(&ep("POST", "/v1.43/images/myimage/push?tag=latest"))
            .unwrap_err();
        assert_eq!(
            r.message,
            "enhanced container isolation: docker command \"/v1.43/images/myimage/push?tag=latest\" is blocked; if you wish to allow it, configure the docker socket command list in the hull admin settings"
        );
    }

    #[test]
    fn allow_list_denies_unknown_and_unlisted() {
        let l = list(ListType::Allow, &["ps", "container*", "volume*"]);
        assert!(l.permits(&ep("GET", "/containers/json")));
        assert!(l.permits(&ep("POST", "/containers/create")));
        assert!(l.permits(&ep("POST", "/exec/abc/start")));
        assert!(l.permits(&ep("POST", "/volumes/create")));
        assert!(l.permits(&ep("HEAD", "/_ping")));
        assert!(!l.permits(&ep("POST", "/images/x/push")));
        assert!(!l.permits(&ep("GET", "/images/json")));
        assert!(!l.permits(&ep("GET", "/v1.43/nonexistent")));
        assert!(!l.permits(&ep("POST", "/images/create?fromImage=x")));
        assert!(!l.permits(&ep("GET", "/info")));
    }

    #[test]
    fn run_in_an_allow_list_covers_what_run_needs() {
        let l = list(ListType::Allow, &["run"]);
        for (m, t) in [
            ("POST", "/containers/create"),
            ("POST", "/containers/x/start"),
            ("POST", "/containers/x/attach?stream=1"),
            ("POST", "/containers/x/wait"),
            ("POST", "/containers/x/resize?h=1&w=2"),
            ("POST", "/images/create?fromImage=busybox"),
        ] {
            assert!(l.permits(&ep(m, t)), "{m} {t}");
        }
        assert!(!l.permits(&ep("POST", "/images/create?fromSrc=-")));
        assert!(!l.permits(&ep("DELETE", "/containers/x")));
    }

    #[test]
    fn run_in_a_deny_list_denies_create_only() {
        let l = list(ListType::Deny, &["run"]);
        assert!(!l.permits(&ep("POST", "/containers/create")));
        assert!(l.permits(&ep("POST", "/containers/x/start")));
    }

    #[test]
    fn wildcards_and_group_names() {
        let l = list(ListType::Deny, &["image*"]);
        assert!(!l.permits(&ep("POST", "/images/x/push")));
        assert!(!l.permits(&ep("POST", "/images/load")));
        assert!(!l.permits(&ep("GET", "/distribution/x/json")));
        assert!(l.permits(&ep("GET", "/containers/json")));
        let l = list(ListType::Deny, &["system*"]);
        assert!(!l.permits(&ep("GET", "/info")));
        assert!(!l.permits(&ep("GET", "/events")));
        assert!(!l.permits(&ep("GET", "/system/df")));
        assert!(l.permits(&ep("GET", "/version")));
        let l = list(ListType::Deny, &["volume"]);
        assert!(!l.permits(&ep("DELETE", "/volumes/x")));
        let l = list(ListType::Deny, &["pull"]);
        assert!(!l.permits(&ep("POST", "/images/create?fromImage=x")));
        assert!(l.permits(&ep("POST", "/images/create?fromSrc=-")));
    }

    #[test]
    fn unknown_names_refused() {
        assert!(CommandName::parse("pussh").is_err());
        assert!(CommandName::parse("Push").is_err());
        assert!(CommandName::parse("").is_err());
    }

    #[test]
    fn serde_round_trip() {
        let l = list(ListType::Deny, &["push", "build"]);
        let s = serde_json::to_string(&l).unwrap();
        assert_eq!(s, r#"{"type":"deny","commands":["push","build"]}"#);
        let back: CommandList = serde_json::from_str(&s).unwrap();
        assert_eq!(back, l);
        assert!(
            serde_json::from_str::<CommandList>(r#"{"type":"deny","commands":["nope"]}"#).is_err()
        );
    }
}
