//! The user's Docker Engine settings (`$HULL_HOME/engine.json`): the part
//! of dockerd's `daemon.json` a Docker Desktop user may edit. Only keys that
//! cannot weaken isolation are accepted — registries, DNS, logging level,
//! address pools, download concurrency; anything else (runtimes, hosts,
//! userns-remap, `default-runtime`, `exec-opts`, ...) is refused by name,
//! so the file can never be used to step around hull.

use serde_json::{Map, Value};

use crate::json::{self, Limits, Node, NodeValue};
use crate::settings::SettingsError;

/// Keys accepted, with a check of their value.
const ALLOWED: &[(&str, Kind)] = &[
    ("insecure-registries", Kind::Strings),
    ("registry-mirrors", Kind::Strings),
    ("dns", Kind::Strings),
    ("dns-search", Kind::Strings),
    ("debug", Kind::Bool),
    ("log-level", Kind::LogLevel),
    ("max-concurrent-downloads", Kind::Count),
    ("max-concurrent-uploads", Kind::Count),
    ("default-address-pools", Kind::Pools),
    // json-file's own options (hull keeps the log driver): rotation,
    // compression and the metadata it records.
    ("log-opts", Kind::LogOpts),
];

/// The json-file options a user may set in `log-opts`.
const LOG_OPTS: &[&str] = &[
    "max-size",
    "max-file",
    "compress",
    "labels",
    "labels-regex",
    "env",
    "env-regex",
    "tag",
];

#[derive(Clone, Copy)]
enum Kind {
    Strings,
    Bool,
    LogLevel,
    Count,
    Pools,
    LogOpts,
}

fn err(n: &Node, path: &str, message: impl Into<String>) -> SettingsError {
    SettingsError {
        line: n.line,
        column: n.column,
        path: path.to_string(),
        message: message.into(),
    }
}

fn short_string(n: &Node, path: &str) -> Result<(), SettingsError> {
    match &n.value {
        NodeValue::String(s)
            if !s.is_empty() && s.len() <= 512 && !s.chars().any(char::is_control) =>
        {
            Ok(())
        }
        NodeValue::String(_) => Err(err(
            n,
            path,
            "must be a non-empty string of at most 512 printable characters",
        )),
        v => Err(err(
            n,
            path,
            format!("expected a string, found {}", v.kind()),
        )),
    }
}

fn check(kind: Kind, n: &Node, path: &str) -> Result<(), SettingsError> {
    match (kind, &n.value) {
        (Kind::Strings, NodeValue::Array(items)) => {
            if items.len() > 64 {
                return Err(err(n, path, "at most 64 entries"));
            }
            for (i, it) in items.iter().enumerate() {
                short_string(it, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (Kind::Bool, NodeValue::Bool(_)) => Ok(()),
        (Kind::LogLevel, NodeValue::String(s)) => match s.as_str() {
            "debug" | "info" | "warn" | "error" | "fatal" => Ok(()),
            _ => Err(err(n, path, "one of debug, info, warn, error, fatal")),
        },
        (Kind::Count, NodeValue::Number(num)) => match num.parse::<u32>() {
            Ok(v) if (1..=64).contains(&v) => Ok(()),
            _ => Err(err(n, path, "a whole number from 1 to 64")),
        },
        (Kind::Pools, NodeValue::Array(items)) => {
            for (i, it) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                let NodeValue::Object(members) = &it.value else {
                    return Err(err(
                        it,
                        &p,
                        "expected an object {\"base\": ..., \"size\": ...}",
                    ));
                };
                for (k, v) in members {
                    match k.as_str() {
                        "base" => short_string(v, &format!("{p}.base"))?,
                        "size" => {
                            check(Kind::Count, v, &format!("{p}.size")).or_else(|_| {
                                match &v.value {
                                    NodeValue::Number(x)
                                        if x.parse::<u32>()
                                            .is_ok_and(|s| (8..=30).contains(&s)) =>
                                    {
                                        Ok(())
                                    }
                                    _ => Err(err(
                                        v,
                                        &format!("{p}.size"),
                                        "a prefix length from 8 to 30",
                                    )),
                                }
                            })?
                        }
                        other => return Err(err(v, &format!("{p}.{other}"), "unknown key")),
                    }
                }
            }
            Ok(())
        }
        (Kind::LogOpts, NodeValue::Object(members)) => {
            for (k, v) in members {
                if !LOG_OPTS.contains(&k.as_str()) {
                    return Err(err(
                        v,
                        &format!("{path}.{k}"),
                        format!(
                            "is not a json-file log option hull allows ({})",
                            LOG_OPTS.join(", ")
                        ),
                    ));
                }
                short_string(v, &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (_, v) => Err(err(n, path, format!("unexpected {}", v.kind()))),
    }
}

/// Parses and checks the user's engine settings; returns the object to merge
/// into dockerd's configuration.
pub fn parse_engine(text: &[u8]) -> Result<Map<String, Value>, SettingsError> {
    let root = json::parse(text, Limits::SETTINGS).map_err(|e| SettingsError {
        line: e.line,
        column: e.column,
        path: String::new(),
        message: e.message,
    })?;
    let NodeValue::Object(members) = &root.value else {
        return Err(err(&root, "", "the engine settings must be a JSON object"));
    };
    for (k, v) in members {
        match ALLOWED.iter().find(|(name, _)| name == k) {
            Some((_, kind)) => check(*kind, v, k)?,
            None => {
                return Err(err(
                    v,
                    k,
                    format!(
                        "is not an engine setting hull lets users change (allowed: {})",
                        ALLOWED
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
        }
    }
    match root.to_value() {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(err(&root, "", "the engine settings must be a JSON object")),
        Err(e) => Err(SettingsError {
            line: e.line,
            column: e.column,
            path: String::new(),
            message: e.message,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_keys_pass() {
        let m = parse_engine(
            br#"{"insecure-registries": ["10.0.2.2:5000"], "debug": true, "log-level": "warn",
                 "default-address-pools": [{"base": "10.10.0.0/16", "size": 24}], "max-concurrent-downloads": 3}"#,
        )
        .unwrap();
        assert_eq!(m["insecure-registries"][0], "10.0.2.2:5000");
        let m = parse_engine(br#"{"log-opts": {"max-size": "10m", "max-file": "3"}}"#).unwrap();
        assert_eq!(m["log-opts"]["max-file"], "3");
    }

    #[test]
    fn log_opts_are_json_file_options_only() {
        // syslog-address and fluentd-address would make dockerd open VM
        // sockets; a number is not what dockerd reads.
        for bad in [
            r#"{"log-opts": {"syslog-address": "unix:///run/hull/docker.sock"}}"#,
            r#"{"log-opts": {"max-size": 10}}"#,
            r#"{"log-opts": ["max-size"]}"#,
        ] {
            let e = parse_engine(bad.as_bytes()).unwrap_err();
            assert!(e.path.starts_with("log-opts"), "{bad}: {e}");
        }
    }

    #[test]
    fn keys_that_touch_isolation_are_refused_by_name() {
        for k in [
            "runtimes",
            "default-runtime",
            "hosts",
            "userns-remap",
            "exec-opts",
            "no-new-privileges",
            "seccomp-profile",
            "icc",
            "group",
            "data-root",
        ] {
            let text = format!("{{\"{k}\": 1}}");
            let e = parse_engine(text.as_bytes()).unwrap_err();
            assert_eq!(e.path, k, "{e}");
            assert!(e.message.contains("not an engine setting"), "{e}");
        }
    }

    #[test]
    fn bad_values_name_their_place() {
        let e = parse_engine(b"{\n \"insecure-registries\": [\"ok\", 5]}").unwrap_err();
        assert_eq!((e.line, e.path.as_str()), (2, "insecure-registries[1]"));
        assert!(parse_engine(br#"{"log-level": "trace"}"#).is_err());
        assert!(parse_engine(br#"{"max-concurrent-downloads": 0}"#).is_err());
        assert!(parse_engine(br#"{"debug": true, "debug": false}"#).is_err());
        assert!(parse_engine(b"[1]").is_err());
        assert!(parse_engine(b"{").is_err());
    }
}
