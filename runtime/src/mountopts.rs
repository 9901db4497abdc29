//! OCI mount options split into mount attributes and filesystem data.

use crate::sys::*;

#[derive(Debug, Default, Clone)]
pub struct Parsed {
    /// MOUNT_ATTR_* to set.
    pub attrs: u64,
    pub bind: bool,
    pub recursive: bool,
    /// Filesystem parameters: (key, Some(value)) or (flag, None).
    pub data: Vec<(String, Option<String>)>,
    pub readonly: bool,
}

pub fn parse(options: &[String]) -> Parsed {
    let mut p = Parsed::default();
    for o in options {
        match o.as_str() {
            "ro" => {
                p.attrs |= MOUNT_ATTR_RDONLY;
                p.readonly = true;
            }
            "rw" => {
                p.attrs &= !MOUNT_ATTR_RDONLY;
                p.readonly = false;
            }
            "nosuid" => p.attrs |= MOUNT_ATTR_NOSUID,
            "nodev" => p.attrs |= MOUNT_ATTR_NODEV,
            "noexec" => p.attrs |= MOUNT_ATTR_NOEXEC,
            "suid" => p.attrs &= !MOUNT_ATTR_NOSUID,
            "dev" => p.attrs &= !MOUNT_ATTR_NODEV,
            "exec" => p.attrs &= !MOUNT_ATTR_NOEXEC,
            "noatime" => p.attrs = (p.attrs & !MOUNT_ATTR__ATIME) | MOUNT_ATTR_NOATIME,
            "strictatime" => p.attrs = (p.attrs & !MOUNT_ATTR__ATIME) | MOUNT_ATTR_STRICTATIME,
            "relatime" => p.attrs &= !MOUNT_ATTR__ATIME,
            "nodiratime" => p.attrs |= MOUNT_ATTR_NODIRATIME,
            "bind" => p.bind = true,
            "rbind" => {
                p.bind = true;
                p.recursive = true;
            }
            // Propagation: hull keeps every container mount private (a shared
            // mount would let the container's mounts reach the VM or another
            // container), so these are accepted and ignored.
            "private" | "rprivate" | "slave" | "rslave" | "shared" | "rshared" | "unbindable"
            | "runbindable" => {}
            "defaults" | "async" | "atime" | "diratime" | "norelatime" | "nostrictatime"
            | "loud" | "silent" => {}
            // Idmap requests: hull idmaps every bind already.
            "idmap" | "ridmap" => {}
            other => match other.split_once('=') {
                Some((k, v)) => p.data.push((k.to_string(), Some(v.to_string()))),
                None => p.data.push((other.to_string(), None)),
            },
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_flags_and_data() {
        let p = parse(&[
            "rbind".into(),
            "ro".into(),
            "nosuid".into(),
            "mode=755".into(),
            "newinstance".into(),
        ]);
        assert!(p.bind && p.recursive && p.readonly);
        assert_eq!(p.attrs, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID);
        assert_eq!(
            p.data,
            vec![
                ("mode".into(), Some("755".into())),
                ("newinstance".into(), None)
            ]
        );
    }
}
