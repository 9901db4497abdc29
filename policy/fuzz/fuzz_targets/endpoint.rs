//! The endpoint mapper and request checks: no panics, and the canonical
//! path never keeps an ambiguous segment.
#![no_main]

use hull_policy::commands::{CommandList, CommandName, ListType};
use hull_policy::{check_request, classify, ApiRequest, Channel, Effective};
use libfuzzer_sys::fuzz_target;

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "get", "PATCH"];
const CONTENT_TYPES: &[Option<&str>] = &[
    None,
    Some("application/json"),
    Some("application/x-tar"),
    Some("application/x-www-form-urlencoded"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let method = METHODS[usize::from(sel) % METHODS.len()];
    let content_type = CONTENT_TYPES[usize::from(sel >> 4) % CONTENT_TYPES.len()];
    let target = String::from_utf8_lossy(rest);
    let req = ApiRequest { method, target: &target, content_type };
    let Ok(ep) = classify(&req) else { return };
    assert!(ep.path.starts_with('/'));
    if ep.path != "/" {
        for seg in ep.path[1..].split('/') {
            assert!(!seg.is_empty() && seg != "." && seg != "..", "{:?}", ep.path);
        }
        assert!(!ep.path.ends_with('/'));
    }
    assert!(!ep.path.contains('%'));
    // Deterministic.
    assert_eq!(classify(&req).ok(), Some(ep.clone()));

    let defaults = Effective::default();
    let strict = Effective::fail_closed("fuzz");
    let _ = check_request(&defaults, &ep, Channel::Host);
    let _ = check_request(&defaults, &ep, Channel::ContainerSocket);
    let denied = check_request(&strict, &ep, Channel::ContainerSocket);
    // Under the empty allow-list only always-allowed requests pass.
    if denied.is_ok() {
        assert!(ep.always_allowed(), "{target:?}");
    }
    let deny_all = CommandList {
        kind: ListType::Deny,
        commands: ["container*", "image*", "volume*", "network*", "build*", "system*"]
            .iter()
            .map(|n| CommandName::parse(n).expect("known"))
            .collect(),
    };
    if !ep.actions.is_empty() && ep.actions.iter().all(|a| a.group != hull_policy::endpoint::Group::Other
        && a.group != hull_policy::endpoint::Group::Plugin
        && a.group != hull_policy::endpoint::Group::Swarm)
    {
        assert!(!deny_all.permits(&ep), "{target:?}");
    }
});
