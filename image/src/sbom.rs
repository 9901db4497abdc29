//! The image's SBOM (`sbom.cdx.json`, CycloneDX 1.5 JSON, written with the
//! `cyclonedx-bom` crate): every Debian package of the locked set and every
//! Rust crate compiled into the image's binaries.
//!
//! Same inputs, same bytes: the timestamp is the manifest's
//! `source_date_epoch` and the serial number is derived from the contents.

use std::path::Path;
use std::str::FromStr;

use cyclonedx_bom::models::component::Classification;
use cyclonedx_bom::models::hash::{Hash, HashAlgorithm, HashValue, Hashes};
use cyclonedx_bom::models::property::{Properties, Property};
use cyclonedx_bom::prelude::*;
use sha2::{Digest, Sha256};

use crate::lock::LockSet;
use crate::{io_err, Error, Result};

/// File name in the image output folder.
pub const FILE: &str = "sbom.cdx.json";

/// A Rust crate compiled into a shipped binary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Crate {
    pub name: String,
    pub version: String,
    /// True for crates.io crates; false for hull's own (workspace) crates.
    pub registry: bool,
}

/// Percent-encodes what a purl version may not carry literally.
fn purl_part(s: &str) -> String {
    s.replace('%', "%25")
        .replace(':', "%3A")
        .replace('+', "%2B")
        .replace('~', "%7E")
}

fn deb_component(e: &crate::lock::Entry) -> Component {
    let purl = format!(
        "pkg:deb/debian/{}@{}?arch={}&distro=debian-13",
        e.name,
        purl_part(&e.version),
        e.arch
    );
    let mut c = Component::new(
        Classification::Library,
        &e.name,
        &e.version,
        Some(purl.clone()),
    );
    c.purl = Purl::from_str(&purl).ok();
    c.hashes = Some(Hashes(vec![Hash {
        alg: HashAlgorithm::SHA_256,
        content: HashValue(e.sha256.clone()),
    }]));
    c.properties = Some(Properties(vec![Property::new("hull:kind", "debian")]));
    c
}

fn crate_component(k: &Crate) -> Component {
    let purl = format!("pkg:cargo/{}@{}", k.name, purl_part(&k.version));
    let mut c = Component::new(
        Classification::Library,
        &k.name,
        &k.version,
        Some(purl.clone()),
    );
    if k.registry {
        c.purl = Purl::from_str(&purl).ok();
    }
    c.properties = Some(Properties(vec![Property::new("hull:kind", "crate")]));
    c
}

/// The SBOM as JSON bytes.
pub fn render(
    image_name: &str,
    version: &str,
    epoch: u64,
    set: &LockSet,
    crates: &[Crate],
) -> Result<Vec<u8>> {
    let mut crates = crates.to_vec();
    crates.sort();
    crates.dedup();
    let mut components: Vec<Component> = set.packages.iter().map(deb_component).collect();
    components.extend(crates.iter().map(crate_component));
    let mut seed = Sha256::new();
    seed.update(set.hash().as_bytes());
    for k in &crates {
        seed.update(format!("{} {} {}\n", k.name, k.version, k.registry).as_bytes());
    }
    let d = seed.finalize();
    let h = hex::encode(&d[..16]);
    let serial = format!(
        "urn:uuid:{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    );
    let metadata = Metadata {
        timestamp: DateTime::try_from(iso8601(epoch)).ok(),
        component: Some(Component::new(
            Classification::OperatingSystem,
            image_name,
            version,
            Some(image_name.to_string()),
        )),
        ..Metadata::default()
    };
    let bom = Bom {
        serial_number: UrnUuid::new(serial).ok(),
        metadata: Some(metadata),
        components: Some(Components(components)),
        ..Bom::default()
    };
    let v = bom.validate_version(SpecVersion::V1_5);
    if !v.passed() {
        return Err(Error::Other(format!("the SBOM does not validate: {v:?}")));
    }
    let mut out = Vec::new();
    bom.output_as_json(&mut out, SpecVersion::V1_5)
        .map_err(|e| Error::Other(format!("writing the SBOM: {e}")))?;
    out.push(b'\n');
    Ok(out)
}

/// Writes [`FILE`] into `out_dir`.
pub fn write(
    out_dir: &Path,
    image_name: &str,
    version: &str,
    epoch: u64,
    set: &LockSet,
    crates: &[Crate],
) -> Result<std::path::PathBuf> {
    let p = out_dir.join(FILE);
    let bytes = render(image_name, version, epoch, set, crates)?;
    std::fs::write(&p, bytes).map_err(io_err(&p))?;
    Ok(p)
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time (civil-from-days, proleptic
/// Gregorian), so no clock is read.
fn iso8601(t: u64) -> String {
    let days = (t / 86400) as i64;
    let s = t % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::Entry;

    #[test]
    fn dates_are_iso8601() {
        assert_eq!(iso8601(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400 + 3661), "2000-02-29T01:01:01Z");
    }

    #[test]
    fn every_package_and_crate_is_a_component() {
        let set = LockSet {
            sources: vec![],
            requested: vec![],
            packages: vec![Entry {
                name: "zlib1g".into(),
                version: "1:1.3.dfsg+really1.3.1-1+b1".into(),
                arch: "amd64".into(),
                sha256: "ab".repeat(32),
            }],
        };
        let crates = vec![Crate {
            name: "libc".into(),
            version: "0.2.170".into(),
            registry: true,
        }];
        let a = render("hull", "0.1.0", 1, &set, &crates).unwrap();
        assert_eq!(a, render("hull", "0.1.0", 1, &set, &crates).unwrap());
        let v: serde_json::Value = serde_json::from_slice(&a).unwrap();
        let comps = v["components"].as_array().unwrap();
        assert_eq!(comps.len(), 2);
        assert_eq!(comps[0]["version"], "1:1.3.dfsg+really1.3.1-1+b1");
        assert_eq!(
            comps[0]["purl"],
            "pkg:deb/debian/zlib1g@1%3A1.3.dfsg%2Breally1.3.1-1%2Bb1?arch=amd64&distro=debian-13"
        );
        assert_eq!(comps[0]["hashes"][0]["content"], "ab".repeat(32));
        assert_eq!(comps[1]["purl"], "pkg:cargo/libc@0.2.170");
        assert_eq!(v["metadata"]["timestamp"], "1970-01-01T00:00:01Z");
    }
}
