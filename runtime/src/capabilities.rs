//! Capabilities of the container process. They are all relative to the
//! container's own user namespace: even `--privileged`'s full set gives no power
//! over the VM, because every namespace that matters is owned by that userns.

use std::collections::HashSet;
use std::str::FromStr;

use caps::{CapSet, Capability as Cap, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use crate::error::{Error, Result};

fn to_caps(set: &Option<Capabilities>) -> CapsHashSet {
    let mut out = HashSet::new();
    for c in set.clone().unwrap_or_default() {
        let name = serde_json::to_value(c)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        match Cap::from_str(&name) {
            Ok(cap) => {
                out.insert(cap);
            }
            Err(_) => tracing::warn!("capability {name} is unknown here; ignored"),
        }
    }
    out
}

pub struct Wanted {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub permitted: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub ambient: CapsHashSet,
}

impl Wanted {
    pub fn from_spec(c: Option<&LinuxCapabilities>) -> Self {
        match c {
            None => Wanted {
                bounding: HashSet::new(),
                effective: HashSet::new(),
                permitted: HashSet::new(),
                inheritable: HashSet::new(),
                ambient: HashSet::new(),
            },
            Some(c) => Wanted {
                bounding: to_caps(c.bounding()),
                effective: to_caps(c.effective()),
                permitted: to_caps(c.permitted()),
                inheritable: to_caps(c.inheritable()),
                ambient: to_caps(c.ambient()),
            },
        }
    }

    /// Keep only what the bounding set we inherited still has. Why: a VM or
    /// host may run us with a reduced bounding set; asking for more would fail
    /// with an opaque EPERM, and a capability missing there cannot be had anyway.
    pub fn intersect_available(&mut self) {
        let have = caps::read(None, CapSet::Bounding).unwrap_or_default();
        let missing: Vec<String> = self
            .bounding
            .difference(&have)
            .map(|c| c.to_string())
            .collect();
        if !missing.is_empty() {
            tracing::warn!(
                "capabilities not in the runtime's bounding set, not granted: {}",
                missing.join(",")
            );
        }
        for s in [
            &mut self.bounding,
            &mut self.effective,
            &mut self.permitted,
            &mut self.inheritable,
            &mut self.ambient,
        ] {
            s.retain(|c| have.contains(c));
        }
    }
}

fn ce(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Other(format!("unable to apply caps ({what}): {e}"))
}

/// Drop from the bounding set everything not wanted (needs CAP_SETPCAP, so it
/// runs before the uid change).
pub fn drop_bounding(w: &Wanted) -> Result<()> {
    let have = caps::read(None, CapSet::Bounding).map_err(|e| ce("read bounding", e))?;
    for c in have.difference(&w.bounding) {
        caps::drop(None, CapSet::Bounding, *c)
            .map_err(|e| ce(&format!("drop {c} from bounding"), e))?;
    }
    Ok(())
}

/// Set effective/permitted/inheritable and raise ambient (after the uid change).
pub fn apply_sets(w: &Wanted) -> Result<()> {
    caps::set(None, CapSet::Inheritable, &w.inheritable).map_err(|e| ce("inheritable", e))?;
    // Permitted first may drop what effective needs; set effective to the
    // intersection, then permitted, then effective exactly.
    let eff: CapsHashSet = w.effective.intersection(&w.permitted).copied().collect();
    caps::set(None, CapSet::Effective, &eff).map_err(|e| ce("effective", e))?;
    caps::set(None, CapSet::Permitted, &w.permitted).map_err(|e| ce("permitted", e))?;
    caps::set(None, CapSet::Effective, &eff).map_err(|e| ce("effective", e))?;
    caps::clear(None, CapSet::Ambient).ok();
    for c in &w.ambient {
        if w.permitted.contains(c) && w.inheritable.contains(c) {
            caps::raise(None, CapSet::Ambient, *c).map_err(|e| ce(&format!("ambient {c}"), e))?;
        }
    }
    Ok(())
}
