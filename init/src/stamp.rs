//! The data disk's stamp: which hull, and which data format, last laid out
//! the disk. Init knows the format before it writes anything, so a disk from
//! a newer hull (a format this init does not know) is refused untouched
//! instead of being "repaired", resized or migrated by code that does not
//! understand it. The format is kept twice: in the ext4 volume label
//! (`hull-data.f<N>`, read from the superblock without mounting) and in the
//! stamp file (with the hull version and build, read once mounted). The
//! label is raised before a migration's first write, the file after its
//! last; a newer format in either refuses the disk.

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

/// The ext4 volume label's prefix for a disk in a known data format: the
/// label is `hull-data.f<format>`. The label lives in the superblock, which
/// init has read anyway to recognise the disk, so on a cleanly stopped disk
/// the format is known before anything is mounted or written.
pub const LABEL_PREFIX: &str = "hull-data.f";
/// ext4's label field: 16 bytes, NUL-padded (no NUL needed when full).
pub const LABEL_MAX: usize = 16;

/// The label for a disk in `format`; Err when it does not fit ext4's 16 bytes.
pub fn label(format: u32) -> Result<String, String> {
    let l = format!("{LABEL_PREFIX}{format}");
    if l.len() > LABEL_MAX {
        return Err(format!(
            "data format {format} makes the label {l:?}, longer than ext4's {LABEL_MAX} bytes"
        ));
    }
    Ok(l)
}

/// The data format a volume label names. Ok(None): the label names none
/// (a disk from before labels, `hull-data`, or one relabelled by hand): its
/// stamp file must be read instead. Err: the label is in hull's own form but
/// its number cannot be read, so which hull wrote it is unknown: refused.
pub fn label_format(label: &str) -> Result<Option<u32>, String> {
    let Some(n) = label.strip_prefix(LABEL_PREFIX) else {
        return Ok(None);
    };
    // parse::<u32> takes a leading '+', which hull never writes.
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "its ext4 label {label:?} names no data format hull can read: refusing to mount a disk hull cannot identify"
        ));
    }
    n.parse().map(Some).map_err(|e| {
        format!("its ext4 label {label:?} names no data format hull can read ({e}): refusing to mount a disk hull cannot identify")
    })
}

/// Reads a stamp file's text; Err is a refusal (never mount, never write).
pub fn parse(text: &str) -> Result<Stamp, String> {
    serde_json::from_str(text).map_err(|e| {
        format!(
            "its stamp /{FILE} is unreadable ({e}): refusing to mount a disk hull cannot identify"
        )
    })
}

/// What init knows of the disk's format: its label's (None: the label names
/// none) and its stamp file's (None: not read yet, or no stamp).
#[derive(Debug, Clone, Copy, Default)]
pub struct Evidence<'a> {
    pub label: Option<(&'a str, u32)>,
    pub stamp: Option<&'a Stamp>,
}

/// What to do with a disk whose format init may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Same format: use it as it is.
    Use,
    /// An older format: use it after the steps from `from` (a disk from
    /// before stamps and labels is format 1).
    Migrate { from: u32 },
}

/// Decides; `Err` is a refusal. A format newer than `current` in EITHER the
/// label or the stamp refuses the disk: the label is raised before a
/// migration's first write and the stamp after its last, so the larger of
/// the two is the newest hull that may have written to the disk.
pub fn plan(ev: Evidence, current: u32) -> Result<Plan, String> {
    if let Some(s) = ev.stamp.filter(|s| s.format > current) {
        return Err(newer(
            &format!("it was laid out by hull {} (build {})", s.hull, s.build),
            s.format,
            current,
        ));
    }
    if let Some((l, f)) = ev.label.filter(|(_, f)| *f > current) {
        return Err(newer(&format!("its ext4 label {l} says it is"), f, current));
    }
    // The stamp says which format the data was left in (a migration
    // interrupted after the label was raised is redone from there); without
    // one, the label; without either, a disk from before stamps: format 1.
    let from = ev
        .stamp
        .map(|s| s.format)
        .or(ev.label.map(|(_, f)| f))
        .unwrap_or(1);
    Ok(if from == current {
        Plan::Use
    } else {
        Plan::Migrate { from }
    })
}

fn newer(by: &str, format: u32, current: u32) -> String {
    format!(
        "{by} in data format {format}, newer than this hull {VERSION} (build {BUILD}) understands (format {current}): \
         not mounting it, so nothing on it changes. Boot an image of that hull or newer (`hull up --image <dir>`)"
    )
}

/// When the label and the stamp name different formats, why (for the log);
/// None when they agree or one is missing.
pub fn disagreement(ev: Evidence) -> Option<String> {
    let ((l, lf), s) = (ev.label?, ev.stamp?);
    (lf != s.format).then(|| {
        let why = if lf > s.format {
            "a migration was interrupted after the label was raised; it is redone from the stamp's format"
        } else {
            "the label was not raised with the stamp; the stamp's format counts"
        };
        format!(
            "the data disk's ext4 label {l} says format {lf} but its stamp /{FILE} says format {} (hull {} build {}): {why}",
            s.format, s.hull, s.build
        )
    })
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

    fn ev<'a>(label: Option<(&'a str, u32)>, stamp: Option<&'a Stamp>) -> Evidence<'a> {
        Evidence { label, stamp }
    }

    fn st(format: u32) -> Stamp {
        parse(&stamp(format)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn unstamped_unlabelled_disks_are_format_one_and_adopted() {
        assert_eq!(plan(ev(None, None), 1), Ok(Plan::Use));
        assert_eq!(plan(ev(None, None), 2), Ok(Plan::Migrate { from: 1 }));
    }

    #[test]
    fn same_format_is_used_older_is_migrated() {
        let one = st(1);
        assert_eq!(plan(ev(None, Some(&one)), 1), Ok(Plan::Use));
        assert_eq!(plan(ev(Some(("hull-data.f1", 1)), None), 1), Ok(Plan::Use));
        assert_eq!(
            plan(ev(Some(("hull-data.f1", 1)), None), 2),
            Ok(Plan::Migrate { from: 1 })
        );
        assert_eq!(
            plan(ev(Some(("hull-data.f1", 1)), Some(&one)), 2),
            Ok(Plan::Migrate { from: 1 })
        );
    }

    #[test]
    fn an_interrupted_migration_is_redone_from_the_stamp() {
        // Label raised to 2, stamp still 1: the steps from 1 run again.
        let one = st(1);
        let e = ev(Some(("hull-data.f2", 2)), Some(&one));
        assert_eq!(plan(e, 2), Ok(Plan::Migrate { from: 1 }));
        let d = disagreement(e).unwrap_or_default();
        assert!(
            d.contains("label hull-data.f2 says format 2 but its stamp"),
            "{d}"
        );
        assert!(d.contains("interrupted"), "{d}");
        // And an older hull is kept off it by the label alone.
        let r = plan(e, 1).unwrap_err();
        assert!(
            r.contains(
                "its ext4 label hull-data.f2 says it is in data format 2, newer than this hull"
            ),
            "{r}"
        );
    }

    #[test]
    fn newer_in_either_label_or_stamp_is_refused() {
        let three = st(3);
        let e = plan(ev(None, Some(&three)), 2).unwrap_err();
        assert!(e.contains("data format 3"), "{e}");
        assert!(e.contains("hull 9.9.9 (build x)"), "{e}");
        assert!(e.contains("not mounting"), "{e}");
        let e = plan(ev(Some(("hull-data.f3", 3)), None), 2).unwrap_err();
        assert!(
            e.contains("its ext4 label hull-data.f3 says it is in data format 3"),
            "{e}"
        );
        // A stamp newer than its label (never written so by hull) is refused too.
        let e = plan(ev(Some(("hull-data.f2", 2)), Some(&three)), 2).unwrap_err();
        assert!(e.contains("hull 9.9.9 (build x) in data format 3"), "{e}");
        assert_eq!(
            disagreement(ev(Some(("hull-data.f2", 2)), Some(&st(2)))),
            None
        );
    }

    #[test]
    fn unreadable_stamps_are_refused() {
        let e = parse("{\"format\": ").unwrap_err();
        assert!(e.contains("unreadable"), "{e}");
    }

    #[test]
    fn labels_carry_the_format() {
        assert_eq!(label(1).as_deref(), Ok("hull-data.f1"));
        assert!(label(99_999).is_ok_and(|l| l.len() == LABEL_MAX));
        assert!(label(100_000).is_err());
        assert_eq!(label_format("hull-data.f1"), Ok(Some(1)));
        assert_eq!(label_format("hull-data.f12"), Ok(Some(12)));
        // Disks from before labels, or relabelled: the stamp decides.
        assert_eq!(label_format("hull-data"), Ok(None));
        assert_eq!(label_format(""), Ok(None));
        assert_eq!(label_format("mydisk"), Ok(None));
        for bad in [
            "hull-data.f",
            "hull-data.f+2",
            "hull-data.fx",
            "hull-data.f2\u{fffd}",
            "hull-data.f99999999999",
        ] {
            let e = label_format(bad).unwrap_err();
            assert!(
                e.contains("names no data format hull can read"),
                "{bad}: {e}"
            );
        }
    }
}
