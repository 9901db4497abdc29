//! The guard's decoding of a trapped mount call's arguments, on hostile
//! input: the flag words (mount(2) flags, mount_setattr's set and clear),
//! the filesystem type, the legacy option string with its overlay layer
//! lists, and the mountinfo text the guard reads back, whose names the
//! container chooses. Never a panic, and:
//! - options split at unescaped commas and re-joined split the same way;
//! - layer lists escaped and split give back the same layers;
//! - a name escaped as the kernel escapes mountinfo comes back unchanged.
#![no_main]

use hull_guard::mountinfo::{self, Flags};
use hull_guard::policy::{self, MountOp};
use libfuzzer_sys::fuzz_target;

fn word(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    for (k, x) in w.iter_mut().enumerate() {
        *x = b.get(i * 8 + k).copied().unwrap_or(0);
    }
    u64::from_le_bytes(w)
}

/// How the kernel writes a name into /proc/self/mountinfo (`mangle`).
fn kernel_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let (flags, set, clr) = (word(data, 0), word(data, 1), word(data, 2));
    let rest = data.get(24..).unwrap_or_default();
    let mut parts = rest.split(|b| *b == 0);
    let fstype = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let options = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let name = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();

    // Flag words.
    let op = policy::classify(flags);
    assert_eq!(op, policy::classify(policy::strip_magic(flags)));
    if let MountOp::New | MountOp::Remount = op {
        let f = policy::flags_of_ms(flags);
        let attrs = policy::attrs_of_ms(flags);
        // The per-mount bits mean the same in both encodings.
        assert_eq!(policy::apply_attrs(Flags::default(), attrs, 0), f);
    }
    let now = policy::flags_of_ms(flags);
    let after = policy::apply_attrs(now, set, clr);
    // Setting a bit always wins; a bit neither set nor cleared stays.
    if set & policy::MOUNT_ATTR_RDONLY != 0 {
        assert!(after.rdonly);
    } else if clr & policy::MOUNT_ATTR_RDONLY == 0 {
        assert_eq!(after.rdonly, now.rdonly);
    }

    // The filesystem type: only the allow-list passes.
    if policy::filesystem(&fstype).is_ok() {
        assert!(policy::ALLOWED_FS.contains(&fstype.as_str()));
    }

    // The option string.
    let opts = policy::split_options(&options);
    assert!(opts.iter().all(|o| !o.is_empty()));
    assert_eq!(policy::split_options(&opts.join(",")), opts);
    for o in &opts {
        let Some((k, v)) = o.split_once('=') else {
            continue;
        };
        if policy::overlay_path_key(k) {
            let layers = policy::split_layers(v);
            assert!(!layers.is_empty());
            let escaped: Vec<String> = layers
                .iter()
                .map(|l| l.replace('\\', "\\\\").replace(':', "\\:"))
                .collect();
            assert_eq!(policy::split_layers(&escaped.join(":")), layers);
        }
    }

    // mountinfo: the raw text never panics; a kernel-escaped name
    // round-trips. Roots and mount points are absolute paths (which is
    // why the first " - " is the separator the parser splits at).
    let _ = mountinfo::parse(&options);
    let esc = kernel_escape(&name);
    assert_eq!(mountinfo::unescape(&esc), name);
    let path = format!("/{name}");
    let pesc = kernel_escape(&path);
    let line = format!("36 35 98:0 {pesc} {pesc} rw,nosuid shared:7 - tmpfs {esc} rw");
    let e = mountinfo::parse_line(&line).expect("a well-formed line parses");
    assert_eq!(e.root, path);
    assert_eq!(e.mountpoint, path);
    assert_eq!(e.source, name);
    assert!(e.flags.nosuid && !e.flags.rdonly);
    assert!(mountinfo::is_within(&path, &path));
    assert!(mountinfo::is_within(&format!("{path}/x"), &path));
    assert!(!mountinfo::is_within(&format!("{path}x"), &path) || path == "/");
});
