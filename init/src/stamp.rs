//! The data disk's stamp: which hull, and which data format, last laid out
//! the disk. Init reads it before it writes anything, so a disk from a newer
//! hull (a format this init does not know) is refused untouched instead of
//! being "repaired", resized or migrated by code that does not understand it.

use serde::{Deserialize, Serialize};

/// The file at the data disk's root (mounted on /var/lib).
pub const FILE: &str = "hull-disk.json";

/// The layout of the data disk this init writes and understands. Raise it
/// when a change to the disk's contents would confuse an older init, and add
/// the step from the previous format to [`plan`]'s caller.
///
/// A build may set another value (`cargo xtask image --data-format N`): the
/// VM tests make a real "newer hull" that way.
pub fn current_format() -> u32 {
    option_env!("HULL_DATA_FORMAT")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

/// This build's name beside its version (`cargo xtask image --build-id`):
/// two images of one version are told apart in the stamp and `hull status`.
pub const BUILD: &str = match option_env!("HULL_BUILD_ID") {
    Some(b) => b,
    None => "dev",
};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub format: u32,
    /// The hull version and build that wrote this stamp.
    pub hull: String,
    pub build: String,
}

impl Stamp {
    pub fn ours() -> Stamp {
        Stamp {
            format: current_format(),
            hull: VERSION.to_string(),
            build: BUILD.to_string(),
        }
    }
}

/// What to do with a disk, given its stamp file's text (None: no stamp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Same format: use it as it is.
    Use(Stamp),
    /// An older format (or no stamp: a disk from before stamps, format 1,
    /// adopted): use it and write our stamp once it is mounted.
    Migrate { from: u32, old: Option<Stamp> },
}

/// Reads a stamp and decides; `Err` is a refusal (never mount, never write).
pub fn plan(text: Option<&str>, current: u32) -> Result<Plan, String> {
    let Some(text) = text else {
        // A disk from before stamps is format 1; it gets its stamp now.
        return Ok(Plan::Migrate { from: 1, old: None });
    };
    let s: Stamp = serde_json::from_str(text).map_err(|e| {
        format!(
            "its stamp /{FILE} is unreadable ({e}): refusing to mount a disk hull cannot identify"
        )
    })?;
    if s.format > current {
        return Err(format!(
            "it was laid out by hull {} (build {}) in data format {}, newer than this hull {} (build {}) understands (format {current}): \
             not mounting it, so nothing on it changes. Boot an image of that hull or newer (`hull up --image <dir>`)",
            s.hull, s.build, s.format, VERSION, BUILD
        ));
    }
    if s.format == current {
        Ok(Plan::Use(s))
    } else {
        Ok(Plan::Migrate {
            from: s.format,
            old: Some(s),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(format: u32) -> String {
        serde_json::to_string(&Stamp {
            format,
            hull: "9.9.9".into(),
            build: "x".into(),
        })
        .unwrap_or_default()
    }

    #[test]
    fn unstamped_disks_are_format_one_and_adopted() {
        assert_eq!(plan(None, 1), Ok(Plan::Migrate { from: 1, old: None }));
        assert_eq!(plan(None, 2), Ok(Plan::Migrate { from: 1, old: None }));
    }

    #[test]
    fn same_format_is_used_older_is_migrated() {
        assert!(matches!(plan(Some(&stamp(1)), 1), Ok(Plan::Use(s)) if s.format == 1));
        assert!(matches!(
            plan(Some(&stamp(1)), 2),
            Ok(Plan::Migrate {
                from: 1,
                old: Some(_)
            })
        ));
    }

    #[test]
    fn newer_or_unreadable_stamps_are_refused() {
        let e = plan(Some(&stamp(3)), 2).unwrap_err();
        assert!(e.contains("data format 3"), "{e}");
        assert!(e.contains("hull 9.9.9 (build x)"), "{e}");
        assert!(e.contains("not mounting"), "{e}");
        let e = plan(Some("{\"format\": "), 1).unwrap_err();
        assert!(e.contains("unreadable"), "{e}");
    }
}
