//! Who may mount the engine socket: `dockerSocketMount.imageList`, matched
//! by digest.
//!
//! # What the gate must gather
//!
//! 1. [`ImageFacts`] of the container's image: `GET /images/<Image>/json`
//!    (`Id`, `RepoTags`, `RepoDigests`, `RootFS.Layers`), plus the `Id`s of
//!    its `Parent` chain (empty for BuildKit builds; that is fine).
//! 2. For every reference in [`ImageAllowList::references_to_resolve`]
//!    (entries naming one repository and one tag), a [`Resolution`]:
//!    preferably [`Resolution::Registry`] from
//!    `GET /distribution/<ref>/json` (the registry's current digest — the
//!    only source a local `docker tag` cannot influence), else
//!    [`Resolution::Local`] from `GET /images/<ref>/json`.
//! 3. With `allowDerivedImages`, [`ImageFacts`] of local images that may be
//!    bases: images whose `RepoDigests` fall under an allow-list entry
//!    ([`ImageAllowList::may_be_base`] filters them).
//!
//! # Why a re-tagged image fails
//!
//! `RepoDigests` are written by the engine only when it pulls from or pushes
//! to a registry; `docker tag` changes `RepoTags` only. Every rule below
//! therefore demands a repository digest: an image re-tagged as
//! `docker:cli` has no `docker.io/library/docker@sha256:...` digest (or
//! not the registry's current one) and is refused.
//!
//! | entry | the image must have |
//! |---|---|
//! | `*` | nothing (any image) |
//! | `name@sha256:D` | repo digest `name@sha256:D` |
//! | `name:*` | a repo digest in repository `name` |
//! | `name:tag`, registry resolution D | repo digest `name@D` |
//! | `name:tag`, local resolution | a repo digest in `name` that the locally resolved image also has |
//! | `name:tag`, no resolution | tag `name:tag` and a repo digest in `name` |
//! | `ns/*:tag` | a tag `ns/x:tag` and a repo digest in that `ns/x` |
//! | derived (`allowDerivedImages`) | a base matching one of the rows above whose `RootFS.Layers` are a prefix of the image's, or whose id is in its `Parent` chain |

use serde::{Deserialize, Serialize};

use crate::effective::Effective;
use crate::reference::{display_image, ImagePattern, ImageRef};
use crate::refusal::Refusal;

/// What the engine says about one local image (`GET /images/{name}/json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageFacts {
    /// `Id`: `sha256:` + the image config digest.
    pub id: String,
    /// `RepoTags`.
    pub repo_tags: Vec<String>,
    /// `RepoDigests` (`name@sha256:...`).
    pub repo_digests: Vec<String>,
    /// `RootFS.Layers`: layer diff ids, bottom first.
    pub layers: Vec<String>,
    /// `Id`s of the `Parent` chain, nearest first.
    pub parent_ids: Vec<String>,
}

/// What an allow-list reference currently points to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "source")]
pub enum Resolution {
    /// From the registry (`GET /distribution/<ref>/json`,
    /// `Descriptor.digest`): authoritative.
    Registry {
        /// Manifest or index digest.
        digest: String,
    },
    /// From the local engine (`GET /images/<ref>/json`): a local tag, so
    /// only its `RepoDigests` count as evidence.
    Local {
        /// `Id` of the local image.
        id: String,
        /// Its `RepoDigests`.
        repo_digests: Vec<String>,
    },
}

/// A resolution of one [`ImageAllowList::references_to_resolve`] entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedEntry {
    /// The reference as returned by `references_to_resolve`.
    pub reference: ImageRef,
    /// What it points to.
    pub resolution: Resolution,
}

/// Everything the gate learnt from the engine for one decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Resolutions of allow-list references.
    pub resolved: Vec<ResolvedEntry>,
    /// Candidate base images (for `allowDerivedImages`).
    pub bases: Vec<ImageFacts>,
}

/// Why an image was allowed (for the audit log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchKind {
    /// The `*` entry.
    Any,
    /// A pinned digest.
    Digest,
    /// The registry's current digest for the tag.
    RegistryTag,
    /// The local tag, backed by a repository digest.
    LocalTag,
    /// Any tag of a repository the image was pulled from.
    Repository,
    /// Built from an allowed base image.
    Derived {
        /// `Id` of the base.
        base_id: String,
    },
}

/// A socket mount the policy allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketGrant {
    /// The allow-list entry that matched, as written.
    pub entry: String,
    /// How it matched.
    pub kind: MatchKind,
}

/// `dockerSocketMount.imageList` in force.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageAllowList {
    /// The entries.
    pub patterns: Vec<ImagePattern>,
    /// `allowDerivedImages`.
    pub allow_derived: bool,
}

impl Effective {
    /// The image allow-list in force.
    pub fn image_allow_list(&self) -> ImageAllowList {
        ImageAllowList {
            patterns: self.socket_mount_images.value.clone(),
            allow_derived: self.allow_derived_images.value,
        }
    }
}

fn parse_refs(list: &[String]) -> Vec<ImageRef> {
    // Unparsable entries (e.g. "<none>@<none>") are simply not evidence.
    list.iter()
        .filter_map(|s| ImageRef::parse(s).ok())
        .collect()
}

impl ImageAllowList {
    /// References the gate should resolve (one per `name:tag` entry),
    /// deduplicated, as `domain/path:tag`.
    pub fn references_to_resolve(&self) -> Vec<ImageRef> {
        let mut out: Vec<ImageRef> = Vec::new();
        for r in self.patterns.iter().filter_map(ImagePattern::resolvable) {
            if !out.contains(&r) {
                out.push(r);
            }
        }
        out
    }

    /// Whether a local image could serve as an allowed base (it matches an
    /// entry directly), so the gate need only pass such images as bases.
    pub fn may_be_base(&self, base: &ImageFacts, evidence: &Evidence) -> bool {
        self.direct_match(base, &evidence.resolved).is_some()
    }

    fn direct_match(&self, image: &ImageFacts, resolved: &[ResolvedEntry]) -> Option<SocketGrant> {
        let digests = parse_refs(&image.repo_digests);
        let tags = parse_refs(&image.repo_tags);
        for entry in &self.patterns {
            if let Some(kind) = entry_matches(entry, &digests, &tags, resolved) {
                return Some(SocketGrant {
                    entry: entry.as_str().to_string(),
                    kind,
                });
            }
        }
        None
    }
}

fn entry_matches(
    entry: &ImagePattern,
    digests: &[ImageRef],
    tags: &[ImageRef],
    resolved: &[ResolvedEntry],
) -> Option<MatchKind> {
    if entry.is_any() {
        return Some(MatchKind::Any);
    }
    if let Some(d) = entry.digest() {
        return digests
            .iter()
            .any(|r| entry.repo_matches(&r.domain, &r.path) && r.digest.as_deref() == Some(d))
            .then_some(MatchKind::Digest);
    }
    let Some(tag) = entry.tag() else {
        return digests
            .iter()
            .any(|r| entry.repo_matches(&r.domain, &r.path))
            .then_some(MatchKind::Repository);
    };
    if let Some(reference) = entry.resolvable() {
        let mine: Vec<&ResolvedEntry> = resolved
            .iter()
            .filter(|r| r.reference == reference)
            .collect();
        if let Some(registry_digest) = mine.iter().find_map(|r| match &r.resolution {
            Resolution::Registry { digest } => Some(digest),
            Resolution::Local { .. } => None,
        }) {
            // The registry is authoritative: a stale or foreign local
            // image under this tag does not match.
            return digests
                .iter()
                .any(|r| {
                    r.domain == reference.domain
                        && r.path == reference.path
                        && r.digest.as_ref() == Some(registry_digest)
                })
                .then_some(MatchKind::RegistryTag);
        }
        let locals: Vec<&Vec<String>> = mine
            .iter()
            .filter_map(|r| match &r.resolution {
                Resolution::Local { repo_digests, .. } => Some(repo_digests),
                Resolution::Registry { .. } => None,
            })
            .collect();
        if !locals.is_empty() {
            let ok = locals.iter().any(|rd| {
                parse_refs(rd).iter().any(|l| {
                    l.domain == reference.domain
                        && l.path == reference.path
                        && l.digest.is_some()
                        && digests.contains(l)
                })
            });
            return ok.then_some(MatchKind::LocalTag);
        }
        // No resolution: the image's own tag, backed by a digest of the
        // same repository.
        let tagged = tags.iter().any(|t| {
            t.domain == reference.domain && t.path == reference.path && t.tag_or_latest() == tag
        });
        let pulled = digests
            .iter()
            .any(|r| r.domain == reference.domain && r.path == reference.path);
        return (tagged && pulled).then_some(MatchKind::LocalTag);
    }
    // A globbed repository with a specific tag.
    tags.iter()
        .any(|t| {
            entry.repo_matches(&t.domain, &t.path)
                && t.tag_or_latest() == tag
                && digests
                    .iter()
                    .any(|r| r.domain == t.domain && r.path == t.path)
        })
        .then_some(MatchKind::Repository)
}

fn is_derived_from(image: &ImageFacts, base: &ImageFacts) -> bool {
    let by_parent = !base.id.is_empty() && image.parent_ids.contains(&base.id);
    let by_layers = !base.layers.is_empty()
        && base.layers.len() <= image.layers.len()
        && image.layers[..base.layers.len()] == base.layers[..];
    by_parent || by_layers
}

/// ECI's refusal for a socket mount from an image not on the list.
pub fn socket_mount_denied(requested_image: &str) -> Refusal {
    Refusal::forbidden(format!(
        "enhanced container isolation: docker socket mount denied for container with image \"{}\"; image is not in the allowed list",
        display_image(requested_image)
    ))
}

/// Decides a bind of the engine socket into a container whose create
/// request names `requested_image` (the `Image` field, used for the
/// message) and whose image the engine describes as `image`.
pub fn socket_mount_decision(
    list: &ImageAllowList,
    requested_image: &str,
    image: &ImageFacts,
    evidence: &Evidence,
) -> Result<SocketGrant, Refusal> {
    if let Some(grant) = list.direct_match(image, &evidence.resolved) {
        return Ok(grant);
    }
    if list.allow_derived {
        for base in &evidence.bases {
            if is_derived_from(image, base) {
                if let Some(g) = list.direct_match(base, &evidence.resolved) {
                    return Ok(SocketGrant {
                        entry: g.entry,
                        kind: MatchKind::Derived {
                            base_id: base.id.clone(),
                        },
                    });
                }
            }
        }
    }
    Err(socket_mount_denied(requested_image))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D_CLI: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D_DIND: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const D_EVIL: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
    const D_RYUK: &str = "sha256:4444444444444444444444444444444444444444444444444444444444444444";

    fn list(entries: &[&str], derived: bool) -> ImageAllowList {
        ImageAllowList {
            patterns: entries
                .iter()
                .map(|e| ImagePattern::parse(e).unwrap())
                .collect(),
            allow_derived: derived,
        }
    }

    fn genuine_cli() -> ImageFacts {
        ImageFacts {
            id: "sha256:c11".into(),
            repo_tags: vec!["docker:cli".into()],
            repo_digests: vec![format!("docker@{D_CLI}")],
            layers: vec!["sha256:l1".into(), "sha256:l2".into()],
            parent_ids: vec![],
        }
    }

    /// `docker tag evil docker:cli`: the tag moves, no docker.io digest.
    fn retagged_evil() -> ImageFacts {
        ImageFacts {
            id: "sha256:e71".into(),
            repo_tags: vec!["docker:cli".into(), "evil/x:latest".into()],
            repo_digests: vec![format!("evil/x@{D_EVIL}")],
            layers: vec!["sha256:e1".into()],
            parent_ids: vec![],
        }
    }

    fn local_resolution(of: &ImageFacts) -> Evidence {
        Evidence {
            resolved: vec![ResolvedEntry {
                reference: ImageRef::parse("docker.io/library/docker:cli").unwrap(),
                resolution: Resolution::Local {
                    id: of.id.clone(),
                    repo_digests: of.repo_digests.clone(),
                },
            }],
            bases: vec![],
        }
    }

    fn registry_resolution(digest: &str) -> Evidence {
        Evidence {
            resolved: vec![ResolvedEntry {
                reference: ImageRef::parse("docker:cli").unwrap(),
                resolution: Resolution::Registry {
                    digest: digest.into(),
                },
            }],
            bases: vec![],
        }
    }

    #[test]
    fn default_refuses_with_eci_message() {
        let e = socket_mount_decision(
            &ImageAllowList::default(),
            "docker",
            &genuine_cli(),
            &Evidence::default(),
        )
        .unwrap_err();
        assert_eq!(e.status.code(), 403);
        assert_eq!(
            e.message,
            "enhanced container isolation: docker socket mount denied for container with image \"docker.io/library/docker\"; image is not in the allowed list"
        );
    }

    #[test]
    fn genuine_image_allowed_every_way() {
        let l = list(&["docker:cli"], false);
        let img = genuine_cli();
        assert_eq!(
            socket_mount_decision(&l, "docker:cli", &img, &registry_resolution(D_CLI))
                .unwrap()
                .kind,
            MatchKind::RegistryTag
        );
        assert_eq!(
            socket_mount_decision(&l, "docker:cli", &img, &local_resolution(&img))
                .unwrap()
                .kind,
            MatchKind::LocalTag
        );
        assert_eq!(
            socket_mount_decision(&l, "docker:cli", &img, &Evidence::default())
                .unwrap()
                .kind,
            MatchKind::LocalTag
        );
        assert_eq!(
            l.references_to_resolve()[0].canonical(),
            "docker.io/library/docker:cli"
        );
    }

    #[test]
    fn retag_attack_is_refused() {
        let l = list(&["docker:cli", "docker.io/testcontainers/ryuk:*"], false);
        let evil = retagged_evil();
        // Local resolution now points at the evil image itself.
        assert!(socket_mount_decision(&l, "docker:cli", &evil, &local_resolution(&evil)).is_err());
        assert!(
            socket_mount_decision(&l, "docker:cli", &evil, &registry_resolution(D_CLI)).is_err()
        );
        assert!(socket_mount_decision(&l, "docker:cli", &evil, &Evidence::default()).is_err());
        // Re-tagged into a wildcard repository: still no ryuk digest.
        let mut evil2 = retagged_evil();
        evil2.repo_tags.push("testcontainers/ryuk:0.5.1".into());
        assert!(socket_mount_decision(
            &l,
            "testcontainers/ryuk:0.5.1",
            &evil2,
            &Evidence::default()
        )
        .is_err());
    }

    #[test]
    fn retag_of_another_genuine_image_of_the_repository() {
        // `docker tag docker:dind docker:cli`: a genuine docker image, but
        // not the one the tag names at the registry.
        let dind = ImageFacts {
            id: "sha256:d1d".into(),
            repo_tags: vec!["docker:cli".into(), "docker:dind".into()],
            repo_digests: vec![format!("docker@{D_DIND}")],
            ..Default::default()
        };
        let l = list(&["docker:cli"], false);
        assert!(
            socket_mount_decision(&l, "docker:cli", &dind, &registry_resolution(D_CLI)).is_err()
        );
        // The locally resolved docker:cli is the genuine cli image; dind
        // does not share its digest.
        assert!(
            socket_mount_decision(&l, "docker:cli", &dind, &local_resolution(&genuine_cli()))
                .is_err()
        );
    }

    #[test]
    fn stale_local_copy_against_registry() {
        let l = list(&["docker:cli"], false);
        // The registry moved on: ECI asks to re-pull in that case.
        assert!(socket_mount_decision(
            &l,
            "docker:cli",
            &genuine_cli(),
            &registry_resolution(D_DIND)
        )
        .is_err());
    }

    #[test]
    fn any_tag_and_digest_entries() {
        let ryuk = ImageFacts {
            id: "sha256:r".into(),
            repo_tags: vec!["testcontainers/ryuk:0.5.1".into()],
            repo_digests: vec![format!("testcontainers/ryuk@{D_RYUK}")],
            ..Default::default()
        };
        let l = list(&["docker.io/testcontainers/ryuk:*"], false);
        assert_eq!(
            socket_mount_decision(&l, "testcontainers/ryuk:0.5.1", &ryuk, &Evidence::default())
                .unwrap()
                .kind,
            MatchKind::Repository
        );
        let l = list(&["testcontainers/*:*"], false);
        assert!(socket_mount_decision(&l, "x", &ryuk, &Evidence::default()).is_ok());
        let l = list(&[&format!("testcontainers/ryuk@{D_RYUK}")], false);
        assert_eq!(
            socket_mount_decision(&l, "x", &ryuk, &Evidence::default())
                .unwrap()
                .kind,
            MatchKind::Digest
        );
        let l = list(&[&format!("testcontainers/ryuk@{D_CLI}")], false);
        assert!(socket_mount_decision(&l, "x", &ryuk, &Evidence::default()).is_err());
        let l = list(&["testcontainers/*:0.5.1"], false);
        assert!(socket_mount_decision(&l, "x", &ryuk, &Evidence::default()).is_ok());
        let l = list(&["testcontainers/*:0.6"], false);
        assert!(socket_mount_decision(&l, "x", &ryuk, &Evidence::default()).is_err());
        let l = list(&["*"], false);
        assert_eq!(
            socket_mount_decision(&l, "x", &retagged_evil(), &Evidence::default())
                .unwrap()
                .kind,
            MatchKind::Any
        );
    }

    #[test]
    fn derived_images() {
        let base = genuine_cli();
        let built = ImageFacts {
            id: "sha256:b17".into(),
            repo_tags: vec!["mytool:latest".into()],
            repo_digests: vec![],
            layers: vec!["sha256:l1".into(), "sha256:l2".into(), "sha256:l3".into()],
            parent_ids: vec![],
        };
        let mut ev = registry_resolution(D_CLI);
        ev.bases.push(base.clone());
        let off = list(&["docker:cli"], false);
        assert!(socket_mount_decision(&off, "mytool", &built, &ev).is_err());
        let on = list(&["docker:cli"], true);
        assert_eq!(
            socket_mount_decision(&on, "mytool", &built, &ev)
                .unwrap()
                .kind,
            MatchKind::Derived {
                base_id: base.id.clone()
            }
        );
        assert!(on.may_be_base(&base, &ev));
        // Classic builder: the Parent chain names the base.
        let mut classic = built.clone();
        classic.layers = vec!["sha256:other".into()];
        classic.parent_ids = vec!["sha256:mid".into(), base.id.clone()];
        assert!(socket_mount_decision(&on, "mytool", &classic, &ev).is_ok());
        // Not built on the base's layers.
        let mut unrelated = built.clone();
        unrelated.layers = vec!["sha256:l2".into(), "sha256:l1".into(), "sha256:l3".into()];
        assert!(socket_mount_decision(&on, "mytool", &unrelated, &ev).is_err());
        // A base that is itself a re-tagged image does not count.
        let evil = retagged_evil();
        let mut on_evil = built.clone();
        on_evil.layers = vec!["sha256:e1".into(), "sha256:x".into()];
        let ev2 = Evidence {
            resolved: local_resolution(&evil).resolved,
            bases: vec![evil],
        };
        assert!(socket_mount_decision(&on, "mytool", &on_evil, &ev2).is_err());
        // A base with no layers must not match everything.
        let mut empty_base = base;
        empty_base.layers.clear();
        empty_base.id.clear();
        let ev3 = Evidence {
            resolved: ev.resolved.clone(),
            bases: vec![empty_base],
        };
        assert!(socket_mount_decision(&on, "mytool", &unrelated, &ev3).is_err());
    }

    #[test]
    fn odd_facts_are_ignored_not_trusted() {
        let img = ImageFacts {
            id: "sha256:x".into(),
            repo_tags: vec!["<none>:<none>".into(), "docker:cli".into()],
            repo_digests: vec!["<none>@<none>".into(), "docker@sha256:short".into()],
            ..Default::default()
        };
        let l = list(&["docker:cli"], false);
        assert!(socket_mount_decision(&l, "docker:cli", &img, &Evidence::default()).is_err());
    }
}
