//! Decisions on a whole request before its body is read.

use crate::effective::Effective;
use crate::endpoint::{Endpoint, RouteId};
use crate::json::escape_for_message;
use crate::refusal::Refusal;

/// Which door a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The host CLI's channel: the user's own `docker`.
    Host,
    /// A per-container socket given to a container allowed to mount the
    /// engine socket: the command list applies.
    ContainerSocket,
}

/// What the gate must do with the body of a request that passed
/// [`check_request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyPolicy {
    /// Forward the body unchanged.
    None,
    /// Parse with [`crate::create::CreateRequest::parse`] and forward its
    /// output.
    ContainerCreate,
    /// Parse with [`crate::create::VolumeCreateRequest::parse`] and forward
    /// its output.
    VolumeCreate,
}

impl Endpoint {
    /// How the body of this request must be handled.
    pub fn body_policy(&self) -> BodyPolicy {
        match self.route {
            Some(RouteId::ContainerCreate) => BodyPolicy::ContainerCreate,
            Some(RouteId::VolumeCreate) => BodyPolicy::VolumeCreate,
            _ => BodyPolicy::None,
        }
    }
}

/// Everything decided from the method, path and query: routes refused on
/// every channel (plugin install, swarm, checkpoints, debug), `docker load`
/// under `blockDockerLoad`, checkpoint restore on start, the build policy,
/// and — on per-container sockets — the command list.
pub fn check_request(eff: &Effective, ep: &Endpoint, channel: Channel) -> Result<(), Refusal> {
    if let Some(why) = ep.refused {
        return Err(Refusal::forbidden(format!("hull: {why}")));
    }
    match ep.route {
        Some(RouteId::ImageLoad) if eff.block_docker_load.value => {
            return Err(Refusal::forbidden(
                "hull: docker load is blocked by the admin settings (blockDockerLoad)",
            ));
        }
        // Restoring a checkpoint reads a directory of the VM.
        Some(RouteId::ContainerStart)
            if ep.query.iter().any(|(k, v)| {
                k.to_ascii_lowercase().starts_with("checkpoint") && !v.is_empty()
            }) =>
        {
            return Err(Refusal::forbidden(
                "hull: checkpoint/restore is not supported by hull",
            ));
        }
        Some(RouteId::Build) => check_build(ep)?,
        _ => {}
    }
    if channel == Channel::ContainerSocket {
        eff.command_list.value.check(ep)?;
    }
    Ok(())
}

/// Refuses to start (or share namespaces or volumes with) a container that
/// was not created under hull's policy, e.g. one created while isolation was
/// off: its `HostConfig.Runtime` (from `GET /containers/<id>/json`) is not
/// the hull runtime. Such a container could hold host namespaces or VM
/// binds that the create policy would have refused.
pub fn check_container_runtime(
    container: &str,
    runtime: &str,
    hull_runtime: &str,
) -> Result<(), Refusal> {
    if runtime == hull_runtime {
        return Ok(());
    }
    let name = escape_for_message(container.trim_start_matches('/'));
    Err(Refusal::forbidden(format!(
        "hull: container {name} was not created under hull's isolation policy (runtime \"{}\"); remove it with `docker rm {name}` and create it again",
        escape_for_message(runtime)
    )))
}

/// The build policy on `POST /build` parameters: `networkmode=host` and
/// `networkmode=container:<id>`, any `cgroupparent`, the
/// entitlements `network.host` and `security.insecure` wherever a
/// parameter names them, `seccomp`/`systempaths` `unconfined` in
/// `securityopt` (classic builder), and remote contexts other than
/// `http(s)://`, `git://`, `git@` and `github.com/` URLs (no local paths,
/// no `ext::` or `file:` transports) are refused. Parameter keys are
/// compared ignoring case.
///
/// Builds driven by buildx over `/grpc` carry their entitlements inside
/// gRPC, which the gate cannot see: the VM's `daemon.json` must set
/// `"builder": {"entitlements": {"network-host": false, "security-insecure": false}}`
/// (dockerd 26 allows `network-host` unless told otherwise).
pub fn check_build(ep: &Endpoint) -> Result<(), Refusal> {
    for v in ep.query_values_ci("networkmode") {
        if v.trim().eq_ignore_ascii_case("host") {
            return Err(Refusal::forbidden(
                "hull: docker build --network=host is not allowed (containers never share the VM's network namespace)",
            ));
        }
        let prefix = v.trim().get(..10).unwrap_or("");
        if prefix.eq_ignore_ascii_case("container:") {
            return Err(Refusal::forbidden(
                "hull: docker build --network=container:<id> is not allowed (build steps never join another container's namespaces)",
            ));
        }
    }
    // The classic builder puts its step containers at `<cgroupparent>/<id>`:
    // anywhere in the VM's cgroup hierarchy.
    if ep.query_values_ci("cgroupparent").any(|v| !v.is_empty()) {
        return Err(Refusal::forbidden(
            "hull: docker build --cgroup-parent is not allowed (build steps' cgroups stay where the engine puts them)",
        ));
    }
    for (k, v) in &ep.query {
        let lv = v.to_ascii_lowercase();
        let key = k.to_ascii_lowercase();
        if (key.contains("entitlement") || key == "allow" || key == "networkmode")
            && (lv.contains("network.host") || lv.contains("security.insecure"))
        {
            return Err(Refusal::forbidden(format!(
                "hull: build entitlement \"{}\" is not allowed",
                escape_for_message(v)
            )));
        }
        if key == "securityopt" {
            let (opt_key, opt_val) = v
                .split_once('=')
                .or_else(|| v.split_once(':'))
                .unwrap_or((v.as_str(), ""));
            let opt_key = opt_key.trim().to_ascii_lowercase();
            if ((opt_key == "seccomp" || opt_key == "systempaths")
                && opt_val.trim().eq_ignore_ascii_case("unconfined"))
                || lv.contains("insecure")
            {
                return Err(Refusal::forbidden(format!(
                    "hull: build security option \"{}\" is not allowed",
                    escape_for_message(v)
                )));
            }
        }
    }
    for remote in ep.query_values_ci("remote") {
        if remote.is_empty() {
            continue;
        }
        let lower = remote.to_ascii_lowercase();
        let ok_prefix = ["http://", "https://", "git://", "git@", "github.com/"]
            .iter()
            .any(|p| lower.starts_with(p));
        if !ok_prefix || lower.contains("ext::") || lower.contains("file:") {
            return Err(Refusal::forbidden(format!(
                "hull: build context \"{}\" is not allowed (use an http(s) or git URL)",
                escape_for_message(remote)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::{CommandList, CommandName, ListType};
    use crate::endpoint::{classify, ApiRequest};

    fn ep(method: &str, target: &str) -> Endpoint {
        classify(&ApiRequest {
            method,
            target,
            content_type: None,
        })
        .unwrap()
    }

    fn check(eff: &Effective, method: &str, target: &str, ch: Channel) -> Result<(), Refusal> {
        check_request(eff, &ep(method, target), ch)
    }

    #[test]
    fn build_policy() {
        let eff = Effective::default();
        for t in [
            "/v1.43/build?networkmode=host",
            "/v1.43/build?networkmode=HOST",
            "/v1.43/build?NetworkMode=host",
            "/v1.43/build?networkmode=%68ost",
            "/v1.43/build?entitlements=network.host",
            "/v1.43/build?allow=security.insecure",
            "/v1.43/build?securityopt=seccomp%3Dunconfined",
            "/v1.43/build?securityopt=seccomp:unconfined",
            "/v1.43/build?securityopt=insecure",
            "/v1.43/build?remote=/etc",
            "/v1.43/build?remote=file:///etc",
            "/v1.43/build?remote=ext::sh%20-c%20id",
            "/v1.43/build?remote=git@x:ext::sh",
            "/v1.43/build?remote=-uhttps://x",
        ] {
            let e = check(&eff, "POST", t, Channel::Host).unwrap_err();
            assert_eq!(e.status.code(), 403, "{t}");
        }
        for t in [
            "/v1.43/build?networkmode=default&t=a&t=b",
            "/v1.43/build?networkmode=none",
            "/v1.43/build?remote=https://github.com/x/y.git",
            "/v1.43/build?buildargs=%7B%22A%22%3A%22network.host%22%7D",
        ] {
            assert!(check(&eff, "POST", t, Channel::Host).is_ok(), "{t}");
        }
        // Duplicated inspected keys never reach the check.
        assert!(classify(&ApiRequest {
            method: "POST",
            target: "/build?networkmode=default&networkmode=host",
            content_type: None
        })
        .is_err());
    }

    #[test]
    fn build_cgroup_parent_and_container_network_refused() {
        let eff = Effective::default();
        for (t, want) in [
            ("/v1.43/build?cgroupparent=/", "--cgroup-parent"),
            ("/v1.43/build?CgroupParent=/docker/x", "--cgroup-parent"),
            ("/v1.43/build?cgroupparent=%2Fhull", "--cgroup-parent"),
            (
                "/v1.43/build?networkmode=container:abc",
                "--network=container:",
            ),
            (
                "/v1.43/build?networkmode=CONTAINER%3Aabc",
                "--network=container:",
            ),
            (
                "/v1.43/build?NetworkMode=%20container:abc",
                "--network=container:",
            ),
        ] {
            let e = check(&eff, "POST", t, Channel::Host).unwrap_err();
            assert_eq!(e.status.code(), 403, "{t}");
            assert!(e.message.contains(want), "{t}: {}", e.message);
        }
        assert!(check(&eff, "POST", "/v1.43/build?cgroupparent=", Channel::Host).is_ok());
        assert!(check(
            &eff,
            "POST",
            "/v1.43/build?networkmode=mynet",
            Channel::Host
        )
        .is_ok());
    }

    #[test]
    fn refused_routes_and_load() {
        let eff = Effective::default();
        assert!(check(
            &eff,
            "POST",
            "/plugins/pull?remote=vieux/sshfs",
            Channel::Host
        )
        .is_err());
        assert!(check(&eff, "POST", "/swarm/init", Channel::Host).is_err());
        assert!(check(&eff, "POST", "/images/load", Channel::Host).is_ok());
        let strict = Effective::fail_closed("x");
        let e = check(&strict, "POST", "/images/load", Channel::Host).unwrap_err();
        assert!(e.message.contains("blockDockerLoad"));
        assert!(check(
            &eff,
            "POST",
            "/containers/x/start?checkpoint=c1",
            Channel::Host
        )
        .is_err());
        assert!(check(
            &eff,
            "POST",
            "/containers/x/start?checkpoint-dir=/etc",
            Channel::Host
        )
        .is_err());
        assert!(check(&eff, "POST", "/containers/x/start", Channel::Host).is_ok());
    }

    #[test]
    fn command_list_only_on_container_sockets() {
        let mut eff = Effective::default();
        eff.command_list.value = CommandList {
            kind: ListType::Deny,
            commands: vec![CommandName::parse("push").unwrap()],
        };
        assert!(check(&eff, "POST", "/images/x/push", Channel::Host).is_ok());
        assert!(check(&eff, "POST", "/images/x/push", Channel::ContainerSocket).is_err());
        let strict = Effective::fail_closed("x");
        assert!(check(&strict, "GET", "/containers/json", Channel::ContainerSocket).is_err());
        assert!(check(&strict, "GET", "/_ping", Channel::ContainerSocket).is_ok());
    }

    #[test]
    fn foreign_containers() {
        assert!(check_container_runtime("/web", "hull", "hull").is_ok());
        let e = check_container_runtime("/web", "runc", "hull").unwrap_err();
        assert_eq!(e.status.code(), 403);
        assert!(e.message.contains("docker rm web"));
        assert!(check_container_runtime("web", "", "hull").is_err());
    }

    #[test]
    fn body_policies() {
        assert_eq!(
            ep("POST", "/v1.43/containers/create?name=x").body_policy(),
            BodyPolicy::ContainerCreate
        );
        assert_eq!(
            ep("POST", "/volumes/create").body_policy(),
            BodyPolicy::VolumeCreate
        );
        assert_eq!(
            ep("POST", "/containers/x/start").body_policy(),
            BodyPolicy::None
        );
    }
}
