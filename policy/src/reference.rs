//! Docker image references and allow-list patterns.
//!
//! Normalisation follows Docker's rules so that every spelling of one image
//! compares equal: `busybox`, `library/busybox`, `docker.io/busybox` and
//! `index.docker.io/library/busybox:latest` are all
//! `docker.io/library/busybox:latest`. A first path component is a registry
//! only if it contains `.` or `:`, is `localhost`, or has an upper-case
//! letter; otherwise the registry is `docker.io`, and a one-component name on
//! `docker.io` gets `library/`. Repository paths must be lower case; tags are
//! `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`; digests are `sha256:` + 64, `sha384:`
//! + 96 or `sha512:` + 128 lower-case hex digits; the full name is at most 255
//!   characters.

use std::fmt;

/// Docker Hub's canonical registry name.
pub const DOCKER_HUB: &str = "docker.io";
const LEGACY_HUB: &str = "index.docker.io";
const MAX_NAME: usize = 255;
const MAX_TAG: usize = 128;

/// Why a reference or pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference \"{text}\": {reason}")]
pub struct ReferenceError {
    /// The text as given (shortened if very long).
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

fn ref_err(text: &str, reason: impl Into<String>) -> ReferenceError {
    ReferenceError {
        text: crate::json::escape_for_message(text),
        reason: reason.into(),
    }
}

/// A normalised image reference: `domain/path[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    /// Registry, e.g. `docker.io`, `localhost:5000`.
    pub domain: String,
    /// Repository path, e.g. `library/busybox`.
    pub path: String,
    /// Tag if one was given.
    pub tag: Option<String>,
    /// Digest (`algo:hex`) if one was given.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses and normalises a reference.
    pub fn parse(text: &str) -> Result<ImageRef, ReferenceError> {
        let raw = split(text, false)?;
        Ok(ImageRef {
            domain: raw.domain,
            path: raw.path,
            tag: raw.tag,
            digest: raw.digest,
        })
    }

    /// `domain/path`, e.g. `docker.io/library/busybox`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The tag, `latest` when none was given.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// The fully qualified form Docker resolves: with a digest
    /// `domain/path@digest`, otherwise `domain/path:tag` (tag defaulting to
    /// `latest`).
    pub fn canonical(&self) -> String {
        match &self.digest {
            Some(d) => format!("{}@{}", self.repository(), d),
            None => format!("{}:{}", self.repository(), self.tag_or_latest()),
        }
    }
}

/// The normalised name, keeping tag and digest only if they were given (the
/// form ECI shows in its messages, e.g. `docker.io/library/docker`).
impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Renders what a create request names as its image for messages: a
/// reference is normalised; an image id or anything unparsable is shown as
/// given (escaped).
pub fn display_image(text: &str) -> String {
    match ImageRef::parse(text) {
        Ok(r) => r.to_string(),
        Err(_) => crate::json::escape_for_message(text),
    }
}

/// `true` for strings the engine treats as an image id rather than a name:
/// `sha256:<64 hex>` or a bare 64-hex id.
pub fn is_image_id(text: &str) -> bool {
    let hex = text.strip_prefix("sha256:").unwrap_or(text);
    hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// One entry of `dockerSocketMount.imageList.images`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePattern {
    text: String,
    kind: PatternKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternKind {
    /// `"*"`: every image.
    Any,
    /// A repository (whose path may contain `*` globs within a component)
    /// with a tag rule and an optional digest.
    Repo {
        domain: String,
        path: String,
        /// `None` means any tag (`:*`).
        tag: Option<String>,
        digest: Option<String>,
    },
}

impl ImagePattern {
    /// Parses an allow-list entry: `name[:tag]` (no tag = `:latest`),
    /// `name:*` (any tag), `name@sha256:<digest>`, or `*` (any image).
    /// `*` may also stand for any run of characters inside one path
    /// component (`testcontainers/*:*`); it may not appear in the registry
    /// name, and a tag is either exact or exactly `*`.
    pub fn parse(text: &str) -> Result<ImagePattern, ReferenceError> {
        if text == "*" {
            return Ok(ImagePattern {
                text: text.to_string(),
                kind: PatternKind::Any,
            });
        }
        let raw = split(text, true)?;
        let tag = match raw.tag.as_deref() {
            Some("*") => None,
            Some(t) => Some(t.to_string()),
            None => Some("latest".to_string()),
        };
        Ok(ImagePattern {
            text: text.to_string(),
            kind: PatternKind::Repo {
                domain: raw.domain,
                path: raw.path,
                tag,
                digest: raw.digest,
            },
        })
    }

    /// The entry as the admin wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `true` for `"*"`.
    pub fn is_any(&self) -> bool {
        matches!(self.kind, PatternKind::Any)
    }

    /// For an entry naming one repository and one tag (no glob, no digest),
    /// the reference the gate should resolve, e.g.
    /// `docker.io/library/docker:cli`.
    pub fn resolvable(&self) -> Option<ImageRef> {
        match &self.kind {
            PatternKind::Repo {
                domain,
                path,
                tag: Some(tag),
                digest: None,
            } if !path.contains('*') => Some(ImageRef {
                domain: domain.clone(),
                path: path.clone(),
                tag: Some(tag.clone()),
                digest: None,
            }),
            _ => None,
        }
    }

    /// Whether `domain/path` is covered by this entry's repository part.
    pub(crate) fn repo_matches(&self, r_domain: &str, r_path: &str) -> bool {
        match &self.kind {
            PatternKind::Any => true,
            PatternKind::Repo { domain, path, .. } => {
                domain == r_domain && path_glob_matches(path, r_path)
            }
        }
    }

    /// The digest this entry pins, if any.
    pub(crate) fn digest(&self) -> Option<&str> {
        match &self.kind {
            PatternKind::Repo { digest, .. } => digest.as_deref(),
            PatternKind::Any => None,
        }
    }

    /// The exact tag this entry requires; `None` for any tag (or `"*"`).
    pub(crate) fn tag(&self) -> Option<&str> {
        match &self.kind {
            PatternKind::Repo { tag, .. } => tag.as_deref(),
            PatternKind::Any => None,
        }
    }
}

impl fmt::Display for ImagePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for ImagePattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for ImagePattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ImagePattern::parse(&s).map_err(serde::de::Error::custom)
    }
}

struct Raw {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

fn split(text: &str, pattern: bool) -> Result<Raw, ReferenceError> {
    if text.is_empty() {
        return Err(ref_err(text, "empty"));
    }
    if text.len() > 4 * MAX_NAME {
        return Err(ref_err(text, "too long"));
    }
    // The engine looks these up as image ids before trying names.
    if !pattern && is_image_id(text) {
        return Err(ref_err(text, "this is an image id, not a name"));
    }
    let (domain, remainder) = match text.find('/') {
        Some(i) => {
            let first = &text[..i];
            if first.contains(['.', ':']) || first == "localhost" || first.to_lowercase() != first {
                (first.to_string(), &text[i + 1..])
            } else {
                (DOCKER_HUB.to_string(), text)
            }
        }
        None => (DOCKER_HUB.to_string(), text),
    };
    let domain = if domain == LEGACY_HUB {
        DOCKER_HUB.to_string()
    } else {
        domain
    };
    validate_domain(text, &domain)?;

    let (name_and_tag, digest) = match remainder.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (remainder, None),
    };
    let (path, tag) = match name_and_tag.split_once(':') {
        Some((p, t)) => (p, Some(t)),
        None => (name_and_tag, None),
    };
    let path = if domain == DOCKER_HUB && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_string()
    };
    if path.is_empty() {
        return Err(ref_err(text, "empty repository name"));
    }
    for comp in path.split('/') {
        validate_component(text, comp, pattern)?;
    }
    if domain.len() + 1 + path.len() > MAX_NAME {
        return Err(ref_err(text, "repository name longer than 255 characters"));
    }
    let tag = match tag {
        None => None,
        Some("*") if pattern => Some("*".to_string()),
        Some(t) => {
            validate_tag(text, t)?;
            Some(t.to_string())
        }
    };
    let digest = match digest {
        None => None,
        Some(d) => {
            validate_digest(text, d)?;
            Some(d.to_string())
        }
    };
    if pattern && digest.is_some() && tag.as_deref() == Some("*") {
        return Err(ref_err(text, "a digest cannot be combined with the tag *"));
    }
    Ok(Raw {
        domain,
        path,
        tag,
        digest,
    })
}

fn validate_domain(text: &str, domain: &str) -> Result<(), ReferenceError> {
    if domain.contains('*') {
        return Err(ref_err(
            text,
            "wildcards are not allowed in the registry name",
        ));
    }
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        // IPv6 literal: [hex:...]:port
        let Some(end) = rest.find(']') else {
            return Err(ref_err(text, "unterminated IPv6 registry address"));
        };
        let inner = &rest[..end];
        if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(ref_err(text, "invalid IPv6 registry address"));
        }
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(ref_err(text, "invalid registry address")),
        };
        (None, port)
    } else {
        match domain.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(host) = host {
        if host.is_empty() {
            return Err(ref_err(text, "empty registry name"));
        }
        for label in host.split('.') {
            let ok = !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(ref_err(text, "invalid registry name"));
            }
        }
    }
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ref_err(text, "invalid registry port"));
        }
    }
    Ok(())
}

/// A path component: `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
/// In patterns `*` counts as an alphanumeric character.
fn validate_component(text: &str, comp: &str, pattern: bool) -> Result<(), ReferenceError> {
    let is_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || (pattern && b == b'*');
    let bytes = comp.as_bytes();
    if bytes.is_empty() {
        return Err(ref_err(text, "empty path component"));
    }
    if bytes.iter().any(|b| b.is_ascii_uppercase()) {
        return Err(ref_err(text, "repository name must be lowercase"));
    }
    if !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return Err(ref_err(text, "invalid repository name"));
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if is_alnum(b) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or "-"+, followed by alnum.
        let start = i;
        match b {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if bytes.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return Err(ref_err(text, "invalid character in repository name")),
        }
        if i == start || !bytes.get(i).is_some_and(|&c| is_alnum(c)) {
            return Err(ref_err(text, "invalid repository name"));
        }
    }
    Ok(())
}

fn validate_tag(text: &str, tag: &str) -> Result<(), ReferenceError> {
    let b = tag.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    if b.is_empty()
        || b.len() > MAX_TAG
        || !word(b[0])
        || !b.iter().all(|&c| word(c) || c == b'.' || c == b'-')
    {
        return Err(ref_err(text, "invalid tag"));
    }
    Ok(())
}

fn validate_digest(text: &str, digest: &str) -> Result<(), ReferenceError> {
    let Some((algo, hex)) = digest.split_once(':') else {
        return Err(ref_err(text, "invalid digest"));
    };
    let len = match algo {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(ref_err(text, "unsupported digest algorithm")),
    };
    if hex.len() != len
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(ref_err(text, "invalid digest"));
    }
    Ok(())
}

/// Matches a repository path against a pattern path component by component;
/// `*` matches any run of characters within one component.
fn path_glob_matches(pattern: &str, path: &str) -> bool {
    let pc: Vec<&str> = pattern.split('/').collect();
    let xc: Vec<&str> = path.split('/').collect();
    pc.len() == xc.len()
        && pc
            .iter()
            .zip(&xc)
            .all(|(p, x)| glob(p.as_bytes(), x.as_bytes()))
}

/// Wildcard match with `*` only; linear-time greedy with one backtrack point.
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        ImageRef::parse(s).unwrap().canonical()
    }

    #[test]
    fn normalises_docker_hub_spellings() {
        for s in [
            "busybox",
            "busybox:latest",
            "library/busybox",
            "docker.io/busybox",
            "docker.io/library/busybox:latest",
            "index.docker.io/library/busybox",
            "index.docker.io/busybox:latest",
        ] {
            assert_eq!(canon(s), "docker.io/library/busybox:latest", "{s}");
        }
        assert_eq!(canon("docker:cli"), "docker.io/library/docker:cli");
        assert_eq!(
            canon("testcontainers/ryuk"),
            "docker.io/testcontainers/ryuk:latest"
        );
    }

    #[test]
    fn registries_with_ports_and_localhost() {
        let r = ImageRef::parse("localhost:5000/x").unwrap();
        assert_eq!(
            (r.domain.as_str(), r.path.as_str()),
            ("localhost:5000", "x")
        );
        assert_eq!(canon("localhost/x:1"), "localhost/x:1");
        assert_eq!(
            canon("registry.example.com:443/a/b/c:v1.2"),
            "registry.example.com:443/a/b/c:v1.2"
        );
        assert_eq!(canon("[::1]:5000/x"), "[::1]:5000/x:latest");
        // Upper case in the first component makes it a registry name.
        assert_eq!(ImageRef::parse("Example/x").unwrap().domain, "Example");
    }

    #[test]
    fn digests() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.canonical(), format!("docker.io/library/busybox@{d}"));
        let r = ImageRef::parse(&format!("busybox:1@{d}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert!(ImageRef::parse("busybox@sha256:abc").is_err());
        assert!(ImageRef::parse(&format!("busybox@sha256:{}", "A".repeat(64))).is_err());
        assert!(ImageRef::parse(&format!("busybox@md5:{}", "a".repeat(32))).is_err());
    }

    #[test]
    fn display_keeps_given_parts() {
        assert_eq!(
            ImageRef::parse("docker").unwrap().to_string(),
            "docker.io/library/docker"
        );
        assert_eq!(
            ImageRef::parse("docker:cli").unwrap().to_string(),
            "docker.io/library/docker:cli"
        );
        assert_eq!(display_image("docker"), "docker.io/library/docker");
        let id = format!("sha256:{}", "b".repeat(64));
        assert_eq!(display_image(&id), id);
    }

    #[test]
    fn refuses_invalid() {
        for s in [
            "",
            "Busybox",
            "busy box",
            "a//b",
            "/a",
            "a/",
            "a:",
            "a:-x",
            "a@",
            "-a",
            "a--",
            "a...b",
            "a___b",
            "host:port/x",
            "exa_mple.com/x",
            "a:b:c",
            &"a".repeat(300),
            &"b".repeat(64),
            "x\u{0}y",
        ] {
            assert!(ImageRef::parse(s).is_err(), "{s:?} should be invalid");
        }
        assert!(ImageRef::parse(&format!("a:{}", "t".repeat(128))).is_ok());
        assert!(ImageRef::parse(&format!("a:{}", "t".repeat(129))).is_err());
        assert!(ImageRef::parse("a__b/c-d/e.f-----g:T_1.x-y").is_ok());
    }

    #[test]
    fn image_ids() {
        assert!(is_image_id(&"a".repeat(64)));
        assert!(is_image_id(&format!("sha256:{}", "0".repeat(64))));
        assert!(!is_image_id("busybox"));
        assert!(!is_image_id(&"A".repeat(64)));
    }

    #[test]
    fn patterns() {
        let any = ImagePattern::parse("*").unwrap();
        assert!(any.is_any());
        let p = ImagePattern::parse("docker:cli").unwrap();
        assert_eq!(
            p.resolvable().unwrap().canonical(),
            "docker.io/library/docker:cli"
        );
        let p = ImagePattern::parse("docker").unwrap();
        assert_eq!(p.tag(), Some("latest"));
        let p = ImagePattern::parse("docker.io/localstack/localstack:*").unwrap();
        assert_eq!(p.tag(), None);
        assert!(p.resolvable().is_none());
        assert!(p.repo_matches("docker.io", "localstack/localstack"));
        assert!(!p.repo_matches("docker.io", "localstack/localstack-pro"));
        let p = ImagePattern::parse("testcontainers/*:*").unwrap();
        assert!(p.repo_matches("docker.io", "testcontainers/ryuk"));
        assert!(!p.repo_matches("docker.io", "testcontainers/a/b"));
        assert!(!p.repo_matches("ghcr.io", "testcontainers/ryuk"));
        let p = ImagePattern::parse("your-registry.com/ci-tools/*:*").unwrap();
        assert!(p.repo_matches("your-registry.com", "ci-tools/x"));
        let p = ImagePattern::parse("*:*").unwrap();
        assert!(p.repo_matches("docker.io", "library/alpine"));
        assert!(!p.repo_matches("docker.io", "someone/alpine"));
        for bad in [
            "*.example.com/x:*",
            "docker:c*",
            "docker@sha256:*",
            "",
            "Docker",
        ] {
            assert!(ImagePattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn globbing() {
        assert!(glob(b"*", b""));
        assert!(glob(b"a*b*c", b"aXXbYYc"));
        assert!(!glob(b"a*b*c", b"aXXbYY"));
        assert!(glob(b"**", b"abc"));
        assert!(!glob(b"abc", b"abcd"));
        // Pathological input stays fast.
        let s = vec![b'a'; 255];
        let mut p = b"*a".repeat(60);
        p.push(b'b');
        assert!(!glob(&p, &s));
    }
}
