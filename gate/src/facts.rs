//! Gathering what `hull_policy::socket_mount_decision` needs from the
//! engine, exactly as `hull_policy::images` documents: the image's
//! `Id`/`RepoTags`/`RepoDigests`/`RootFS.Layers` and parent chain, each
//! allow-list reference resolved at the registry when it answers (else
//! locally), and with `allowDerivedImages` the local images that could be
//! allowed bases.

use std::time::{Duration, Instant};

use hull_policy::images::{Evidence, ImageFacts, Resolution, ResolvedEntry, SocketGrant};
use hull_policy::{socket_mount_decision, ImageRef};
use hyper::StatusCode;
use serde_json::Value;

use crate::engine::{encode, EngineError};
use crate::reject::Reject;
use crate::state::{CachedResolution, Gate};

/// How long an unreachable registry is not asked again (the local
/// resolution is used meanwhile). Answers are never cached: a tag that
/// moved at the registry must be seen at once (the old image would stay
/// allowed, the new one refused).
const REGISTRY_FAILURE_TTL: Duration = Duration::from_secs(30);
/// Longest parent chain followed.
const MAX_PARENTS: usize = 256;

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn string(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// `ImageFacts` from `GET /images/<x>/json` (without the parent chain).
pub fn facts_from_inspect(v: &Value) -> ImageFacts {
    ImageFacts {
        id: string(v, "Id"),
        repo_tags: strings(v, "RepoTags"),
        repo_digests: strings(v, "RepoDigests"),
        layers: v
            .get("RootFS")
            .map(|r| strings(r, "Layers"))
            .unwrap_or_default(),
        parent_ids: Vec::new(),
    }
}

/// The image a create request names, with its parent chain; `None` if the
/// engine has no such image.
pub async fn image_facts(gate: &Gate, image: &str) -> Result<Option<ImageFacts>, EngineError> {
    let Some(v) = gate
        .engine
        .get_json(&format!("/images/{}/json", encode(image)))
        .await?
    else {
        return Ok(None);
    };
    let mut facts = facts_from_inspect(&v);
    let mut parent = string(&v, "Parent");
    while !parent.is_empty() && facts.parent_ids.len() < MAX_PARENTS {
        if facts.parent_ids.contains(&parent) {
            break;
        }
        facts.parent_ids.push(parent.clone());
        parent = match gate
            .engine
            .get_json(&format!("/images/{}/json", encode(&parent)))
            .await?
        {
            Some(p) => string(&p, "Parent"),
            None => String::new(),
        };
    }
    Ok(Some(facts))
}

async fn registry_digest(gate: &Gate, reference: &str) -> Option<String> {
    if let Ok(cache) = gate.registry_cache.lock() {
        if let Some(c) = cache.get(reference) {
            if c.digest.is_none() && c.at.elapsed() < REGISTRY_FAILURE_TTL {
                return None;
            }
        }
    }
    let path = format!("/distribution/{}/json", encode(reference));
    let digest = match gate.engine.get_json(&path).await {
        Ok(Some(v)) => v
            .get("Descriptor")
            .and_then(|d| d.get("digest"))
            .and_then(Value::as_str)
            .map(str::to_string),
        Ok(None) => None,
        Err(e) => {
            tracing::info!("registry resolution of {reference}: {e}");
            None
        }
    };
    if let Ok(mut cache) = gate.registry_cache.lock() {
        if digest.is_none() {
            cache.insert(
                reference.to_string(),
                CachedResolution {
                    at: Instant::now(),
                    digest: None,
                },
            );
        } else {
            cache.remove(reference);
        }
    }
    digest
}

async fn evidence(gate: &Gate) -> Result<Evidence, EngineError> {
    let list = gate.settings.image_allow_list();
    let mut ev = Evidence::default();
    for reference in list.references_to_resolve() {
        let canonical = reference.canonical();
        let resolution = match registry_digest(gate, &canonical).await {
            Some(digest) => Some(Resolution::Registry { digest }),
            None => gate
                .engine
                .get_json(&format!("/images/{}/json", encode(&canonical)))
                .await?
                .map(|v| Resolution::Local {
                    id: string(&v, "Id"),
                    repo_digests: strings(&v, "RepoDigests"),
                }),
        };
        if let Some(resolution) = resolution {
            ev.resolved.push(ResolvedEntry {
                reference,
                resolution,
            });
        }
    }
    if list.allow_derived {
        let images = gate
            .engine
            .get_json("/images/json")
            .await?
            .unwrap_or(Value::Null);
        for summary in images.as_array().map(Vec::as_slice).unwrap_or_default() {
            let candidate = ImageFacts {
                id: string(summary, "Id"),
                repo_tags: strings(summary, "RepoTags"),
                repo_digests: strings(summary, "RepoDigests"),
                layers: Vec::new(),
                parent_ids: Vec::new(),
            };
            if candidate.repo_digests.is_empty() || !list.may_be_base(&candidate, &ev) {
                continue;
            }
            if let Some(v) = gate
                .engine
                .get_json(&format!("/images/{}/json", encode(&candidate.id)))
                .await?
            {
                ev.bases.push(facts_from_inspect(&v));
            }
        }
    }
    Ok(ev)
}

/// Decides a Docker socket mount for a container of `requested` (the
/// create request's `Image`). On a grant, returns it with the image id to
/// pin. An image the engine does not have is answered like the engine
/// would (404 "No such image"), so `docker run` pulls it and retries.
pub async fn decide_socket_mount(
    gate: &Gate,
    requested: &str,
) -> Result<(SocketGrant, String), Reject> {
    let list = gate.settings.image_allow_list();
    if list.patterns.is_empty() {
        return Err(hull_policy::images::socket_mount_denied(requested).into());
    }
    let valid = hull_policy::reference::is_image_id(requested)
        || ImageRef::parse(requested).is_ok()
        || (requested.len() >= 12 && requested.bytes().all(|b| b.is_ascii_hexdigit()));
    if !valid {
        return Err(hull_policy::images::socket_mount_denied(requested).into());
    }
    let facts = match image_facts(gate, requested).await {
        Ok(Some(f)) => f,
        Ok(None) => {
            return Err(Reject::plain(
                StatusCode::NOT_FOUND,
                format!("No such image: {requested}"),
            ))
        }
        Err(e) => return Err(Reject::engine(&e)),
    };
    let ev = evidence(gate).await.map_err(|e| Reject::engine(&e))?;
    let grant = socket_mount_decision(&list, requested, &facts, &ev)?;
    Ok((grant, facts.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_documents() {
        let v = serde_json::json!({
            "Id": "sha256:aa",
            "RepoTags": ["localhost:5000/x:1"],
            "RepoDigests": ["localhost:5000/x@sha256:bb"],
            "RootFS": {"Type": "layers", "Layers": ["sha256:l1", "sha256:l2"]},
            "Parent": ""
        });
        let f = facts_from_inspect(&v);
        assert_eq!(f.id, "sha256:aa");
        assert_eq!(f.layers.len(), 2);
        assert_eq!(f.repo_digests, vec!["localhost:5000/x@sha256:bb"]);
        let empty = facts_from_inspect(&serde_json::json!({"RepoTags": null}));
        assert!(empty.repo_tags.is_empty() && empty.layers.is_empty());
    }
}
