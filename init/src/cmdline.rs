//! The kernel command line: init reads only the `hull.*` keys.

use std::collections::BTreeMap;

/// The command line is at most a few KiB; anything longer is not ours to trust.
const MAX_LEN: usize = 16 * 1024;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cmdline {
    keys: BTreeMap<String, String>,
}

impl Cmdline {
    /// Parses `hull.key=value` and bare `hull.flag` words; other words are the kernel's.
    pub fn parse(text: &[u8]) -> Self {
        let text = String::from_utf8_lossy(&text[..text.len().min(MAX_LEN)]);
        let mut keys = BTreeMap::new();
        for word in text.split_ascii_whitespace() {
            let Some(rest) = word.strip_prefix("hull.") else {
                continue;
            };
            let (k, v) = rest.split_once('=').unwrap_or((rest, "1"));
            if k.is_empty()
                || !k
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                continue;
            }
            keys.insert(k.to_string(), v.to_string());
        }
        Cmdline { keys }
    }

    pub fn read() -> Self {
        match std::fs::read("/proc/cmdline") {
            Ok(b) => Self::parse(&b),
            Err(e) => {
                crate::error!("reading /proc/cmdline: {e}");
                Self::default()
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.keys.get(key).map(String::as_str)
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("1" | "yes" | "true" | "on"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_flags() {
        let c = Cmdline::parse(b"console=ttyS0 hull.selftest hull.log=debug hull.x=a=b ro\n");
        assert!(c.flag("selftest"));
        assert_eq!(c.get("log"), Some("debug"));
        assert_eq!(c.get("x"), Some("a=b"));
        assert_eq!(c.get("console"), None);
    }

    #[test]
    fn hostile_input() {
        let c = Cmdline::parse(&[0xff, 0xfe, b' ', b'h']);
        assert_eq!(c, Cmdline::default());
        let huge = vec![b'a'; 1 << 20];
        assert_eq!(Cmdline::parse(&huge), Cmdline::default());
        let c = Cmdline::parse(b"hull.= hull.../x=1 hull.a\x00b=2");
        assert_eq!(c, Cmdline::default());
        let mut trunc = b"hull.ok=1 ".to_vec();
        trunc.extend(std::iter::repeat_n(b'x', MAX_LEN));
        trunc.extend(b" hull.late=1");
        let c = Cmdline::parse(&trunc);
        assert!(c.flag("ok"));
        assert!(!c.flag("late"));
    }
}
