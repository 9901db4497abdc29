//! `POST /containers/create` and `POST /volumes/create`: the policy's
//! parse, then everything it leaves to the gate — bind sources mapped and
//! resolved in the VM, existing volumes and other containers inspected,
//! the Docker socket decided — and the re-serialised body to forward.

use std::sync::Arc;

use hull_policy::create::volume_options_bind_source;
use hull_policy::mounts::restricted_mount;
use hull_policy::{
    check_container_runtime, classify_bind, BindClass, BindLocation, CreateContext, CreateRequest,
    Refusal, VolumeCreateRequest,
};
use hyper::StatusCode;
use serde_json::Value;

use crate::audit::Verdict;
use crate::engine::encode;
use crate::paths::{self, ResolveError};
use crate::reject::Reject;
use crate::state::{Gate, Peer, ENGINE_SOCKET_PATHS, HULL_RUNTIME};

/// A create request ready to forward.
pub struct Plan {
    pub body: Vec<u8>,
    /// A per-container socket made for this container (token), to be
    /// attached to the container id the engine answers, or closed if the
    /// create fails.
    pub socket: Option<String>,
}

/// Whose path a bind source is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Written by the client: a host path when it lies in a shared
    /// directory, else a VM path.
    Client,
    /// Read from the engine (an existing volume's options): a VM path.
    Engine,
}

/// A bind source after resolution.
struct Resolved {
    given: String,
    path: String,
    engine_socket: bool,
    /// Why the client's path is no host share (None: it is one, or the
    /// path came from the engine).
    not_shared: Option<String>,
    /// Docker Desktop's "not shared" answer, for a client path in no share
    /// and outside the VM's system directories (so it can only be meant
    /// as a host path); ECI's restricted-mount message stays for VM paths.
    unknown_host_path: Option<String>,
}

/// The VM path a bind source names before resolution: a client's path in
/// a directory shared from the host is where the VM sees it
/// (`/mnt/host/<path>`, after lexical cleaning, as the host would read
/// `..`); any other path is a VM path already.
fn vm_source(eff: &hull_policy::Effective, given: &str, origin: Origin) -> String {
    match origin {
        Origin::Client if given.starts_with('/') => {
            let clean = paths::clean(given);
            eff.vm_path_for_host_path(&clean).unwrap_or(clean)
        }
        _ => given.to_string(),
    }
}

/// Maps (for client paths) and resolves sources, on a blocking thread:
/// resolution walks the filesystem, which may be a slow shared mount.
async fn resolve_all(
    gate: &Arc<Gate>,
    sources: Vec<(String, Origin)>,
) -> Result<Vec<Result<Resolved, ResolveError>>, Reject> {
    // Most creates bind nothing: no trip to a blocking thread (a wake-up
    // across vCPUs under TCG) for an empty list.
    if sources.is_empty() {
        return Ok(Vec::new());
    }
    let g = gate.clone();
    tokio::task::spawn_blocking(move || {
        sources
            .into_iter()
            .map(|(given, origin)| {
                let vm = vm_source(&g.settings, &given, origin);
                let path = paths::resolve(&vm)?;
                let engine_socket = g.is_engine_socket(&path);
                let not_shared = match origin {
                    Origin::Client => g.settings.not_shared_note(&paths::clean(&given)),
                    Origin::Engine => None,
                };
                let unknown_host_path = not_shared
                    .as_ref()
                    .filter(|_| !vm_system_path(&paths::clean(&given)) && !vm_system_path(&path))
                    .map(|_| g.settings.not_shared_message(&paths::clean(&given)));
                Ok(Resolved {
                    given,
                    path,
                    engine_socket,
                    not_shared,
                    unknown_host_path,
                })
            })
            .collect()
    })
    .await
    .map_err(|e| Reject::plain(StatusCode::INTERNAL_SERVER_ERROR, format!("hull: {e}")))
}

/// The VM's own system directories: a path under one of them (or `/`)
/// names the VM, and gets ECI's restricted-mount answer; any other path in
/// no share (`/home/...`, `/tmp/...`, `/mnt/...`) can only mean the host.
const VM_SYSTEM_DIRS: &[&str] = &[
    "bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32", "opt", "proc", "run", "sbin",
    "sys", "usr", "var",
];

fn vm_system_path(clean: &str) -> bool {
    let first = clean
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    first.is_empty() || VM_SYSTEM_DIRS.contains(&first)
}

fn restricted(r: &Resolved) -> Refusal {
    if let Some(m) = &r.unknown_host_path {
        return Refusal::forbidden(m.clone());
    }
    let mut refusal = restricted_mount(&r.given);
    if paths::clean(&r.given) != r.path {
        refusal.message.push_str(&format!(
            " (it resolves to {} in the VM)",
            hull_policy::json::escape_for_message(&r.path)
        ));
    }
    if let Some(note) = &r.not_shared {
        refusal.message.push_str(": ");
        refusal.message.push_str(note);
    }
    refusal
}

fn unresolvable(given: &str, e: &ResolveError) -> Refusal {
    Refusal::forbidden(format!(
        "hull: can't mount {}: {}",
        hull_policy::json::escape_for_message(given),
        hull_policy::json::escape_for_message(&e.to_string())
    ))
}

/// Judges one resolved source: `Ok(true)` if it is the engine socket.
fn judge(gate: &Gate, r: &Resolved) -> Result<bool, Refusal> {
    let own = [r.path.as_str()];
    let sockets: &[&str] = if r.engine_socket {
        &own
    } else {
        ENGINE_SOCKET_PATHS
    };
    match classify_bind(&r.path, &gate.settings.mount_roots.value, sockets) {
        Ok(BindClass::DockerSocket) => Ok(true),
        Ok(BindClass::Allowed) => Ok(false),
        Err(_) => Err(restricted(r)),
    }
}

/// The engine's view of container `id`, refused unless it was created under
/// hull's policy (hull-runtime); `Ok(None)` when there is no such container.
pub(crate) async fn inspect_hull_created(gate: &Gate, id: &str) -> Result<Option<Value>, Reject> {
    let info = match gate.engine.inspect_container(id).await {
        Ok(Some(v)) => v,
        Ok(None) => return Ok(None),
        Err(e) => return Err(Reject::engine(&e)),
    };
    let runtime = info
        .pointer("/HostConfig/Runtime")
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = info.get("Name").and_then(Value::as_str).unwrap_or(id);
    check_container_runtime(name, runtime, HULL_RUNTIME)?;
    Ok(Some(info))
}

/// Refuses to inherit from or join a container that was not created under
/// hull's policy, or whose mounts include a per-container socket (that
/// would hand its Docker socket to an image nobody checked). Returns the
/// checked container's full id, which the forwarded body is pinned to.
async fn check_other_container(gate: &Gate, name: &str, inherit: bool) -> Result<String, Reject> {
    // No such container: refused here rather than left to the engine, which
    // would resolve the name again later (a container made meanwhile under
    // that name would be joined unchecked).
    let Some(info) = inspect_hull_created(gate, name).await? else {
        return Err(Refusal::bad_request(format!(
            "hull: no such container: {}",
            hull_policy::json::escape_for_message(name)
        ))
        .into());
    };
    let shown = info.get("Name").and_then(Value::as_str).unwrap_or(name);
    if inherit && holds_socket(gate, &info) {
        return Err(Refusal::forbidden(format!(
            "hull: --volumes-from {} is not allowed: that container holds a Docker socket",
            hull_policy::json::escape_for_message(shown.trim_start_matches('/'))
        ))
        .into());
    }
    match info.get("Id").and_then(Value::as_str) {
        Some(id) if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(id.to_string())
        }
        _ => Err(Reject::plain(
            StatusCode::BAD_GATEWAY,
            format!(
                "hull: the engine gave no container id for {}",
                hull_policy::json::escape_for_message(name)
            ),
        )),
    }
}

/// Whether a container's mounts include one of the gate's sockets.
pub fn holds_socket(gate: &Gate, info: &Value) -> bool {
    socket_tokens(gate, info).next().is_some()
}

/// Tokens of the per-container sockets a container mounts.
pub fn socket_tokens<'a>(gate: &'a Gate, info: &'a Value) -> impl Iterator<Item = String> + 'a {
    let mounts = info
        .get("Mounts")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let binds = info
        .pointer("/HostConfig/Binds")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    mounts
        .iter()
        .filter_map(|m| m.get("Source").and_then(Value::as_str))
        .chain(
            binds
                .iter()
                .filter_map(Value::as_str)
                .map(|b| b.split(':').next().unwrap_or("")),
        )
        .filter_map(|s| gate.sockets.token_of(s))
}

/// The create policy, end to end (see the module docs).
pub async fn container_create(
    gate: &Arc<Gate>,
    peer: &Peer,
    method: &str,
    target: &str,
    body: &[u8],
) -> Result<Plan, Reject> {
    let mut req = CreateRequest::parse(
        body,
        &CreateContext {
            runtime: HULL_RUNTIME,
        },
    )?;

    // Bind sources.
    let sources = req
        .binds
        .iter()
        .map(|b| (b.source.clone(), Origin::Client))
        .collect();
    let resolved = resolve_all(gate, sources).await?;
    let mut socket_binds = Vec::new();
    for (i, r) in resolved.into_iter().enumerate() {
        let r = r.map_err(|e| unresolvable(&req.binds[i].source, &e))?;
        if judge(gate, &r)? {
            if matches!(req.binds[i].location, BindLocation::VolumeDevice(_)) {
                // A volume would keep the socket beyond this decision.
                return Err(restricted(&r).into());
            }
            socket_binds.push(i);
        } else {
            req.set_bind_source(i, &r.path)?;
        }
    }

    // Existing named volumes: their options may bind a VM path.
    for name in req.named_volumes.clone() {
        check_existing_volume(gate, &name).await?;
    }

    // Each container is pinned to the id that was checked.
    let mut pins = Vec::new();
    for name in &req.volumes_from {
        pins.push((name.clone(), check_other_container(gate, name, true).await?));
    }
    for join in &req.joins {
        let id = check_other_container(gate, &join.container, false).await?;
        pins.push((join.container.clone(), id));
    }
    for (name, id) in pins {
        req.pin_container(&name, &id);
    }

    let mut socket = None;
    if !socket_binds.is_empty() {
        let (grant, image_id) = crate::facts::decide_socket_mount(gate, &req.image).await?;
        req.pin_image(&image_id);
        let (token, path) = gate.sockets.open(gate, None, None).map_err(|e| {
            Reject::plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("hull: can't make the container's docker socket: {e}"),
            )
        })?;
        let path = path.to_string_lossy().into_owned();
        for i in socket_binds {
            if let Err(e) = req.set_bind_source(i, &path) {
                gate.sockets.close(&token);
                return Err(e.into());
            }
        }
        gate.audit_request(
            peer,
            method,
            target,
            Verdict::SocketGranted,
            None,
            &format!(
                "docker socket mount granted to image \"{}\" ({image_id}) by allow-list entry \"{}\" ({:?}); per-container socket {path}",
                req.image, grant.entry, grant.kind
            ),
        );
        socket = Some(token);
    }
    for note in &req.notes {
        tracing::info!(target, "create: {note}");
    }
    Ok(Plan {
        body: req.to_bytes(),
        socket,
    })
}

async fn check_existing_volume(gate: &Arc<Gate>, name: &str) -> Result<(), Reject> {
    let v = match gate
        .engine
        .get_json(&format!("/volumes/{}", encode(name)))
        .await
    {
        Ok(Some(v)) => v,
        // A new volume: the engine makes a plain local one.
        Ok(None) => return Ok(()),
        Err(e) => return Err(Reject::engine(&e)),
    };
    let driver = v.get("Driver").and_then(Value::as_str);
    let options: Vec<(String, String)> = v
        .get("Options")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let device = volume_options_bind_source(
        driver,
        options.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )?;
    let Some(device) = device else {
        return Ok(());
    };
    let r = resolve_all(gate, vec![(device.clone(), Origin::Engine)])
        .await?
        .pop()
        .ok_or_else(|| Reject::plain(StatusCode::INTERNAL_SERVER_ERROR, "hull: resolve"))?
        .map_err(|e| unresolvable(&device, &e))?;
    if judge(gate, &r)? {
        return Err(restricted(&r).into());
    }
    Ok(())
}

/// `POST /volumes/create`: a bind volume's device is judged like a bind
/// source (and may never be the engine socket).
pub async fn volume_create(gate: &Arc<Gate>, body: &[u8]) -> Result<Vec<u8>, Reject> {
    let mut req = VolumeCreateRequest::parse(body)?;
    if let Some(src) = req.bind_source.clone() {
        let r = resolve_all(gate, vec![(src.clone(), Origin::Client)])
            .await?
            .pop()
            .ok_or_else(|| Reject::plain(StatusCode::INTERNAL_SERVER_ERROR, "hull: resolve"))?
            .map_err(|e| unresolvable(&src, &e))?;
        if judge(gate, &r)? {
            return Err(restricted(&r).into());
        }
        req.set_bind_source(&r.path);
    }
    Ok(req.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hull_policy::{Effective, Source, Sourced};

    #[test]
    fn host_paths_map_into_the_share() {
        let eff = Effective {
            shared_directories: vec![Sourced {
                value: "/home/me".into(),
                source: Source::User,
                locked: false,
            }],
            ..Effective::default()
        };
        let m = |p: &str| vm_source(&eff, p, Origin::Client);
        assert_eq!(m("/home/me/src"), "/mnt/host/home/me/src");
        assert!(vm_system_path("/") && vm_system_path("/etc/docker/daemon.json"));
        assert!(vm_system_path("/var/lib/docker") && vm_system_path("/run"));
        assert!(!vm_system_path("/home/me/x") && !vm_system_path("/tmp/x"));
        assert!(!vm_system_path("/etcetera") && !vm_system_path("/mnt/data"));
        assert_eq!(m("/home/me/src/../x"), "/mnt/host/home/me/x");
        assert_eq!(m("/home/me/../../etc"), "/etc");
        assert_eq!(m("/home/meX"), "/home/meX");
        assert_eq!(m("/var/run/docker.sock"), "/var/run/docker.sock");
        assert_eq!(vm_source(&eff, "/home/me/x", Origin::Engine), "/home/me/x");
    }
}
