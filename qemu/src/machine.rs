//! QEMU's command line for a hull VM. Pure: builds argv from a description,
//! so it can be unit-tested and shared by `hull up` and the test harness.

use std::path::{Path, PathBuf};

use crate::accel::Accel;
use crate::arch::Arch;
use crate::shares::{HostShare, ShareFs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MachineKind {
    /// virtio-mmio, no PCI, no firmware tables to speak of: boots ~1 s faster.
    #[default]
    Microvm,
    /// The classic PC with virtio-pci, for when microvm misbehaves.
    Pc,
}

#[derive(Debug, Clone)]
pub enum Console {
    /// Serial console appended to a file (the VM runs in the background).
    File(PathBuf),
    /// Serial console on QEMU's stdio (foreground runs and tests).
    Stdio,
}

#[derive(Debug, Clone)]
pub struct Machine {
    /// The guest's architecture: arm64 boots QEMU's `virt` machine (with
    /// virtio-mmio devices, as microvm) whatever `kind` says.
    pub arch: Arch,
    pub kind: MachineKind,
    pub accel: Accel,
    pub cpus: u32,
    pub memory_mib: u32,
    pub kernel: PathBuf,
    /// The erofs root, attached read-only, its dm-verity tree appended.
    pub root: PathBuf,
    /// The root's verity figures (image.json): the kernel maps the root
    /// through dm-verity with them before init runs. Not optional: an
    /// image without them does not boot ([`RootVerity::load`]).
    pub root_verity: RootVerity,
    /// The kernel command line's fixed words, from the image's boot.json
    /// (the manifest's `[boot]`): not optional either ([`BootConfig::load`]).
    pub boot: BootConfig,
    /// The data disk (qcow2), mounted by init at /var/lib.
    pub data: Option<PathBuf>,
    /// vhost-user socket of a running vhost-device-vsock.
    pub vsock: Option<PathBuf>,
    /// File whose bytes reach the guest as fw_cfg `opt/dev.hull/settings`.
    pub settings: Option<PathBuf>,
    pub console: Console,
    pub tsc_khz: u64,
    /// QMP control socket (for forced stops and queries).
    pub qmp: Option<PathBuf>,
    pub pidfile: Option<PathBuf>,
    /// Host directories shared into the VM (virtiofs, or 9p for the
    /// benchmark's comparison), and the file that tells init which tag is
    /// which path.
    pub shares: Vec<ShareDevice>,
    pub shares_map: Option<PathBuf>,
    /// The user's Docker Engine settings (checked), for init to merge.
    pub engine: Option<PathBuf>,
    /// Extra kernel command-line words (`hull.*` keys for init in tests,
    /// benchmark switches checked by [`check_bench_kernel_word`] in `hull up`).
    pub cmdline: Vec<String>,
}

/// The kernel hardening switches a benchmark may flip at boot, each with the
/// values it may take (`None`: a bare word). Only these: init reads its own
/// `hull.*` keys from the command line, and root/init/console words decide
/// what boots, so an open list would let a benchmark flag change more than
/// the option being priced. Settings travel through fw_cfg, never here.
const BENCH_KERNEL_WORDS: &[(&str, Option<&[&str]>)] = &[
    ("init_on_alloc", Some(&["0", "1"])),
    ("init_on_free", Some(&["0", "1"])),
    ("slab_nomerge", None),
    ("slab_merge", None),
    ("randomize_kstack_offset", Some(&["on", "off"])),
    ("page_table_check", Some(&["on", "off"])),
    (
        "proc_mem.force_override",
        Some(&["always", "ptrace", "never"]),
    ),
    ("sysctl.vm.mmap_min_addr", Some(&["4096", "65536"])),
    ("sysctl.dev.tty.legacy_tiocsti", Some(&["0", "1"])),
];

/// `Ok(word)` if `word` is one of [`BENCH_KERNEL_WORDS`]; otherwise an error
/// naming the word and the accepted list.
pub fn check_bench_kernel_word(word: &str) -> Result<&str, String> {
    let (key, value) = match word.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (word, None),
    };
    let ok = BENCH_KERNEL_WORDS.iter().any(|(k, vals)| {
        *k == key
            && match (vals, value) {
                (None, None) => true,
                (Some(vals), Some(v)) => vals.contains(&v),
                _ => false,
            }
    });
    if ok {
        return Ok(word);
    }
    let accepted: Vec<String> = BENCH_KERNEL_WORDS
        .iter()
        .map(|(k, vals)| match vals {
            None => k.to_string(),
            Some(v) => format!("{k}={}", v.join("|")),
        })
        .collect();
    Err(format!(
        "kernel word {word:?} is not a benchmark switch; accepted: {}",
        accepted.join(", ")
    ))
}

pub const SHARES_FW_CFG: &str = "opt/dev.hull/shares";
pub const ENGINE_FW_CFG: &str = "opt/dev.hull/engine";

/// A shared directory as QEMU sees it: virtiofs through the vhost-user
/// socket of its virtiofsd, 9p from QEMU itself.
#[derive(Debug, Clone)]
pub struct ShareDevice {
    pub share: HostShare,
    /// virtiofsd's socket (unused for 9p).
    pub socket: PathBuf,
}

pub const SETTINGS_FW_CFG: &str = "opt/dev.hull/settings";

/// The image's description, beside vmlinuz and root.erofs.
pub const IMAGE_JSON: &str = "image.json";
/// The kernel command line's fixed words, beside vmlinuz (written by
/// hull-image's `vmconf` from the manifest's `[boot]`).
pub const BOOT_JSON: &str = "boot.json";

/// Kernel parameters this side computes; boot.json may not carry them.
const COMPUTED_KERNEL_KEYS: &[&str] = &[
    "dm-mod.create",
    "tsc_early_khz",
    "console",
    "8250.nr_uarts",
    "page_reporting.page_reporting_order",
];

/// The smallest free block (as a power of two of 4 KiB pages) the guest
/// reports to the balloon. The kernel's default is a pageblock (order 9,
/// 2 MiB), and this kernel has no compaction: after a workload much of the
/// free memory is split finer than that and never reported (measured: ~100
/// MiB of an idle VM's guest RAM was free in the guest yet still held on
/// the host). Order 3 (32 KiB) reaches those blocks while keeping the
/// number of reports, and of host page faults when the guest reuses a
/// reported block, well below page-sized reporting.
pub const PAGE_REPORTING_ORDER: u32 = 3;

/// The fixed part of the kernel command line, as the image defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootConfig {
    pub cmdline: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BootJson {
    format: u32,
    cmdline: Vec<String>,
}

/// Reads and parses the file `name` of the image folder `image`, failing
/// closed with an error that names the file; `must` says what the image
/// needs it for.
fn load_image_file<T>(
    image: &Path,
    name: &str,
    must: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, String> {
    let path = image.join(name);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{}: {e}: the image must {must} (rebuild it with `cargo xtask image`)",
            path.display()
        )
    })?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

impl BootConfig {
    /// Reads boot.json of the image folder `image`. Fails closed like
    /// [`RootVerity::load`]: a missing or malformed file is refused, naming
    /// it; the kernel never boots with a command line made up here.
    pub fn load(image: &Path) -> Result<BootConfig, String> {
        load_image_file(
            image,
            BOOT_JSON,
            "carry its kernel command line",
            Self::parse,
        )
    }

    pub fn parse(text: &str) -> Result<BootConfig, String> {
        let b: BootJson = serde_json::from_str(text).map_err(|e| format!("malformed: {e}"))?;
        if b.format != 1 {
            return Err(format!("format {} (this hull reads format 1)", b.format));
        }
        for need in ["root=", "init="] {
            if !b.cmdline.iter().any(|w| w.starts_with(need)) {
                return Err(format!("`cmdline` has no `{need}` word"));
            }
        }
        for w in &b.cmdline {
            // Words are joined with spaces and nothing is quoted: one word
            // must stay one kernel parameter.
            if w.is_empty()
                || !w
                    .bytes()
                    .all(|c| c.is_ascii_graphic() && c != b'"' && c != b'\'')
            {
                return Err(format!(
                    "`cmdline` word {w:?} is not printable ASCII without spaces or quotes"
                ));
            }
            let key = w.split_once('=').map_or(w.as_str(), |(k, _)| k);
            if COMPUTED_KERNEL_KEYS.contains(&key) {
                return Err(format!(
                    "`cmdline` word {w:?}: `{key}` is computed by hull at boot"
                ));
            }
        }
        Ok(BootConfig { cmdline: b.cmdline })
    }
}

/// MiB of TCG's translation cache (QEMU's default is 1 GiB). It is never
/// given back, so an idle VM holds all of it once a workload has filled it
/// (measured: 332 MiB of QEMU's own RSS after a 1 GiB workload at 256).
pub const TCG_TB_MIB: u32 = 128;

/// The device-mapper name of the verified root (init checks it).
pub const ROOT_DM_NAME: &str = "hull-root";

/// The `verity` object of image.json (written by hull-image's `Verity`):
/// where root.erofs's hash tree is and the root hash it must match.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct RootVerity {
    pub algorithm: String,
    pub data_block_size: u64,
    pub hash_block_size: u64,
    pub data_blocks: u64,
    pub hash_offset: u64,
    pub hash_start_block: u64,
    pub salt: String,
    pub root_hash: String,
}

impl RootVerity {
    /// Reads the verity figures of the image folder `image`. Fails closed:
    /// a folder whose image.json is missing, unreadable or has no (valid)
    /// `verity` object is refused, naming the file; the root is never
    /// attached unverified.
    pub fn load(image: &Path) -> Result<RootVerity, String> {
        load_image_file(image, IMAGE_JSON, "say how to verify its root", Self::parse)
    }

    pub fn parse(image_json: &str) -> Result<RootVerity, String> {
        let v: serde_json::Value =
            serde_json::from_str(image_json).map_err(|e| format!("not JSON: {e}"))?;
        let Some(obj) = v.get("verity") else {
            return Err(
                "no `verity` object: an image from before the verified root; rebuild it with `cargo xtask image`"
                    .into(),
            );
        };
        let r: RootVerity = serde_json::from_value(obj.clone())
            .map_err(|e| format!("`verity` is malformed: {e}"))?;
        r.check()?;
        Ok(r)
    }

    /// Only values that make a well-formed table: the figures end up inside
    /// a quoted kernel parameter, so no stray character may reach it.
    fn check(&self) -> Result<(), String> {
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        if self.algorithm != "sha256" {
            return Err(format!(
                "`verity.algorithm` is {:?}; this hull verifies sha256 trees only",
                self.algorithm
            ));
        }
        if self.data_block_size != 4096 || self.hash_block_size != 4096 {
            return Err("`verity` block sizes must be 4096".into());
        }
        if !hex(&self.root_hash, 64) {
            return Err(format!(
                "`verity.root_hash` {:?} is not 64 hex digits",
                self.root_hash
            ));
        }
        if !hex(&self.salt, 64) {
            return Err(format!(
                "`verity.salt` {:?} is not 64 hex digits",
                self.salt
            ));
        }
        if self.data_blocks == 0
            || self.hash_offset != self.data_blocks * self.data_block_size
            || self.hash_start_block * self.hash_block_size != self.hash_offset
        {
            return Err(format!(
                "`verity` figures disagree: {} data blocks, hash tree at byte {}, hash start block {}",
                self.data_blocks, self.hash_offset, self.hash_start_block
            ));
        }
        Ok(())
    }

    /// The `dm-mod.create` table: a read-only verity device over /dev/vda
    /// (data and tree on the same disk). `panic_on_corruption`: a block that
    /// does not match is never served, and the panic (with `panic=-1` and
    /// QEMU's -no-reboot) ends the VM at once, leaving the kernel's reason on
    /// the console; `restart_on_corruption` would end it the same way but
    /// as a "restart", which a supervisor could mistake for a normal reboot.
    pub fn dm_create(&self) -> String {
        let sectors = self.data_blocks * self.data_block_size / 512;
        format!(
            "dm-mod.create=\"{ROOT_DM_NAME},,,ro,0 {sectors} verity 1 /dev/vda /dev/vda {} {} {} {} {} {} {} 1 panic_on_corruption\"",
            self.data_block_size,
            self.hash_block_size,
            self.data_blocks,
            self.hash_start_block,
            self.algorithm,
            self.root_hash,
            self.salt
        )
    }
}

impl Machine {
    /// The image's fixed words (boot.json), then what is computed: the
    /// verity table of this image's root, this host's TSC, benchmark words.
    pub fn kernel_cmdline(&self) -> String {
        let mut c = vec![format!("console={}", self.arch.console())];
        if self.arch == Arch::X86_64 {
            c.push("8250.nr_uarts=1".into());
        }
        c.extend(self.boot.cmdline.iter().cloned());
        c.push(self.root_verity.dm_create());
        // arm64 needs no counterpart: its architected timer tells the
        // guest its frequency (CNTFRQ_EL0), nothing is calibrated.
        if self.arch == Arch::X86_64
            && (self.kind == MachineKind::Microvm || self.accel == Accel::Tcg)
        {
            // Without it a microvm guest hangs calibrating its TSC under TCG.
            c.push(format!("tsc_early_khz={}", self.tsc_khz));
        }
        // The balloon with free page reporting is always attached (argv).
        c.push(format!(
            "page_reporting.page_reporting_order={PAGE_REPORTING_ORDER}"
        ));
        c.extend(self.cmdline.iter().cloned());
        c.join(" ")
    }

    pub fn argv(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "-nodefaults".into(),
            "-no-user-config".into(),
            "-no-reboot".into(),
            "-display".into(),
            "none".into(),
        ];
        let mem = self.memory_mib;
        let (blk, net, rng, vsock, p9, vfs) = match (self.arch, self.kind) {
            // QEMU's `virt` board: GICv3, PSCI, PL011, fw_cfg over MMIO,
            // and virtio on its PCIe host bridge. Not its virtio-mmio
            // transports: virt hands command-line devices out from the
            // highest transport down, so the guest finds the last disk
            // first and /dev/vda would be the data disk, not the root
            // (seen: dm-verity failing on the data disk's blocks). PCI slots
            // follow the command line.
            (Arch::Arm64, _) => {
                a.push("-M".into());
                a.push("virt,gic-version=3,memory-backend=mem".into());
                (
                    "virtio-blk-pci",
                    "virtio-net-pci",
                    "virtio-rng-pci",
                    "vhost-user-vsock-pci",
                    "virtio-9p-pci",
                    "vhost-user-fs-pci",
                )
            }
            (Arch::X86_64, MachineKind::Microvm) => {
                a.push("-M".into());
                a.push("microvm,pit=off,pic=off,isa-serial=on,rtc=on,memory-backend=mem".into());
                (
                    "virtio-blk-device",
                    "virtio-net-device",
                    "virtio-rng-device",
                    "vhost-user-vsock-device",
                    "virtio-9p-device",
                    "vhost-user-fs-device",
                )
            }
            (Arch::X86_64, MachineKind::Pc) => {
                a.push("-M".into());
                a.push("pc,memory-backend=mem".into());
                (
                    "virtio-blk-pci",
                    "virtio-net-pci",
                    "virtio-rng-pci",
                    "vhost-user-vsock-pci",
                    "virtio-9p-pci",
                    "vhost-user-fs-pci",
                )
            }
        };
        a.push("-accel".into());
        a.push(match self.accel {
            // TCG's translated-code cache defaults to 1 GiB and is never
            // given back: after a workload it was ~600 of an idle VM's
            // 960 MiB. At 128 MiB (from 256) QEMU's own RSS after a 1 GiB
            // workload fell 332 -> 188 MiB and `docker run` was not slower
            // in the same-machine runs (KVM has no such cache).
            Accel::Tcg => format!("tcg,tb-size={TCG_TB_MIB}"),
            Accel::Kvm => self.accel.as_str().into(),
        });
        a.push("-cpu".into());
        a.push(match (self.accel, self.arch) {
            (Accel::Kvm, _) => "host".into(),
            (Accel::Tcg, Arch::X86_64) => "max".into(),
            // Every feature TCG emulates (PAC, BTI, PAN, E0PD...), with
            // QEMU's own cheap pointer-authentication hash instead of the
            // architected QARMA one, which costs TCG dearly on every call
            // and return; the guest cannot tell the difference.
            (Accel::Tcg, Arch::Arm64) => "max,pauth-impdef=on".into(),
        });
        a.push("-smp".into());
        a.push(self.cpus.to_string());
        a.push("-m".into());
        a.push(format!("{mem}M"));
        // vhost-user needs guest memory the backend can map: a shared memfd.
        a.push("-object".into());
        a.push(format!("memory-backend-memfd,id=mem,size={mem}M,share=on"));
        a.push("-kernel".into());
        a.push(self.kernel.display().to_string());
        a.push("-append".into());
        a.push(self.kernel_cmdline());

        a.push("-drive".into());
        a.push(format!(
            "id=root,file={},format=raw,if=none,readonly=on",
            self.root.display()
        ));
        a.push("-device".into());
        a.push(format!("{blk},drive=root,serial=hull-root"));
        if let Some(d) = &self.data {
            a.push("-drive".into());
            a.push(format!(
                "id=data,file={},format=qcow2,if=none,discard=unmap",
                d.display()
            ));
            a.push("-device".into());
            a.push(format!("{blk},drive=data,serial=hull-data"));
        }
        a.push("-netdev".into());
        a.push("user,id=net0".into());
        a.push("-device".into());
        a.push(format!("{net},netdev=net0"));
        a.push("-device".into());
        a.push(rng.into());
        // Free page reporting: the guest tells QEMU which 2 MiB blocks it
        // has freed and QEMU punches them out of the memfd, so the host gets
        // back what a finished workload used (an idle VM otherwise keeps
        // every page it ever touched). No inflation: nothing asks for memory.
        a.push("-device".into());
        a.push(
            match self.kind {
                MachineKind::Microvm => "virtio-balloon-device,free-page-reporting=on",
                MachineKind::Pc => "virtio-balloon-pci,free-page-reporting=on",
            }
            .into(),
        );
        if let Some(v) = &self.vsock {
            a.push("-chardev".into());
            a.push(format!("socket,id=vsock0,path={}", v.display()));
            a.push("-device".into());
            a.push(format!("{vsock},chardev=vsock0"));
        }
        if let Some(s) = &self.settings {
            a.push("-fw_cfg".into());
            a.push(format!("name={SETTINGS_FW_CFG},file={}", s.display()));
        }
        for (i, d) in self.shares.iter().enumerate() {
            let tag = &d.share.tag;
            match d.share.fs {
                ShareFs::Virtiofs => {
                    a.push("-chardev".into());
                    a.push(format!(
                        "socket,id=vfs{i},path={}",
                        qemu_escape(&d.socket.display().to_string())
                    ));
                    a.push("-device".into());
                    a.push(format!("{vfs},chardev=vfs{i},tag={tag},queue-size=1024"));
                }
                ShareFs::NineP => {
                    // security_model=none: the VM acts on shared files with
                    // the rights of the user running QEMU, never more.
                    a.push("-fsdev".into());
                    a.push(format!(
                        "local,id=fs{i},path={},security_model=none,multidevs=remap",
                        qemu_escape(&d.share.path.display().to_string())
                    ));
                    a.push("-device".into());
                    a.push(format!("{p9},fsdev=fs{i},mount_tag={tag}"));
                }
            }
        }
        if let Some(m) = &self.shares_map {
            a.push("-fw_cfg".into());
            a.push(format!("name={SHARES_FW_CFG},file={}", m.display()));
        }
        if let Some(e) = &self.engine {
            a.push("-fw_cfg".into());
            a.push(format!("name={ENGINE_FW_CFG},file={}", e.display()));
        }
        match &self.console {
            Console::File(p) => {
                a.push("-chardev".into());
                a.push(format!("file,id=con0,path={},append=on", p.display()));
                a.push("-serial".into());
                a.push("chardev:con0".into());
            }
            Console::Stdio => {
                a.push("-serial".into());
                a.push("stdio".into());
            }
        }
        if let Some(q) = &self.qmp {
            a.push("-qmp".into());
            a.push(format!("unix:{},server=on,wait=off", q.display()));
        }
        if let Some(p) = &self.pidfile {
            a.push("-pidfile".into());
            a.push(p.display().to_string());
        }
        a
    }
}

/// QEMU option values escape a comma by doubling it.
fn qemu_escape(v: &str) -> String {
    v.replace(',', ",,")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> Machine {
        Machine {
            arch: Arch::X86_64,
            kind: MachineKind::Microvm,
            accel: Accel::Tcg,
            cpus: 2,
            memory_mib: 2048,
            kernel: "/k".into(),
            root: "/r.erofs".into(),
            root_verity: RootVerity::parse(IMAGE_JSON_EXAMPLE).unwrap(),
            boot: BootConfig::parse(BOOT_JSON_EXAMPLE).unwrap(),
            data: Some("/d.qcow2".into()),
            vsock: Some("/v.sock".into()),
            settings: Some("/s.json".into()),
            console: Console::File("/c.log".into()),
            tsc_khz: 2_400_000,
            qmp: None,
            pidfile: None,
            shares: vec![
                ShareDevice {
                    share: HostShare {
                        tag: "hullshare0".into(),
                        path: "/home/me".into(),
                        fs: ShareFs::Virtiofs,
                        hidden: vec![],
                    },
                    socket: "/h/virtiofs0.sock".into(),
                },
                ShareDevice {
                    share: HostShare {
                        tag: "hullshare1".into(),
                        path: "/tmp/a,b".into(),
                        fs: ShareFs::NineP,
                        hidden: vec![],
                    },
                    socket: PathBuf::new(),
                },
            ],
            shares_map: Some("/shares.json".into()),
            engine: None,
            cmdline: vec!["hull.selftest=1".into()],
        }
    }

    #[test]
    fn microvm_under_tcg_gets_tsc_and_shared_memory() {
        let a = m().argv();
        let j = a.join(" ");
        assert!(j.contains("tsc_early_khz=2400000"));
        assert!(j.contains("memory-backend-memfd,id=mem,size=2048M,share=on"));
        assert!(j.contains("-accel tcg,tb-size=128"));
        assert!(j.contains("vhost-user-vsock-device,chardev=vsock0"));
        assert!(j.contains("virtio-balloon-device,free-page-reporting=on"));
        assert!(j.contains("name=opt/dev.hull/settings,file=/s.json"));
        assert!(j.ends_with("append=on -serial chardev:con0"));
        assert!(j.contains("hull.selftest=1"));
    }

    #[test]
    fn shares_are_virtiofs_devices_and_9p_only_when_asked() {
        let j = m().argv().join(" ");
        assert!(j.contains("socket,id=vfs0,path=/h/virtiofs0.sock"));
        assert!(j.contains("vhost-user-fs-device,chardev=vfs0,tag=hullshare0"));
        assert!(
            !j.contains("path=/home/me"),
            "virtiofs needs no path in QEMU: {j}"
        );
        assert!(j.contains("local,id=fs1,path=/tmp/a,,b,security_model=none"));
        assert!(j.contains("virtio-9p-device,fsdev=fs1,mount_tag=hullshare1"));
        assert!(j.contains("name=opt/dev.hull/shares,file=/shares.json"));
    }

    const IMAGE_JSON_EXAMPLE: &str = r#"{"suite": "trixie", "verity": {
        "algorithm": "sha256", "data_block_size": 4096, "hash_block_size": 4096,
        "data_blocks": 43340, "hash_offset": 177520640, "hash_start_block": 43340,
        "salt": "86f7802f387411451c4225381d9ec20aa3fecddc77d70bccee69fac6671af13e",
        "root_hash": "caeaeccfaa31cedcbfcb63ef3c8b87c24d9ff593a3a50f1bd5ea414c5b7565aa"}}"#;

    const BOOT_JSON_EXAMPLE: &str = r#"{"format": 1, "cmdline": [
        "dm-mod.waitfor=/dev/vda", "root=/dev/dm-0", "rootfstype=erofs", "ro",
        "init=/sbin/hull-init", "panic=-1"]}"#;

    #[test]
    fn cmdline_is_the_image_words_then_the_computed_ones() {
        let c = m().kernel_cmdline();
        assert!(
            c.starts_with("console=ttyS0 8250.nr_uarts=1 dm-mod.waitfor=/dev/vda root=/dev/dm-0 rootfstype=erofs ro init=/sbin/hull-init panic=-1 dm-mod.create="),
            "{c}"
        );
        assert!(
            c.ends_with(
                " tsc_early_khz=2400000 page_reporting.page_reporting_order=3 hull.selftest=1"
            ),
            "{c}"
        );
    }

    #[test]
    fn a_bad_boot_json_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let e = BootConfig::load(dir.path()).unwrap_err();
        assert!(
            e.contains("boot.json") && e.contains("cargo xtask image"),
            "{e}"
        );
        for (bad, needle) in [
            (
                BOOT_JSON_EXAMPLE.replace("\"format\": 1", "\"format\": 2"),
                "format 2",
            ),
            (
                BOOT_JSON_EXAMPLE.replace("init=/sbin/hull-init", "quiet"),
                "no `init=` word",
            ),
            (
                BOOT_JSON_EXAMPLE.replace("\"ro\"", "\"ro init=/bin/sh\""),
                "without spaces",
            ),
            (
                BOOT_JSON_EXAMPLE.replace("\"ro\"", "\"tsc_early_khz=1\""),
                "computed by hull",
            ),
            (
                BOOT_JSON_EXAMPLE.replace("\"ro\"", "\"page_reporting.page_reporting_order=0\""),
                "computed by hull",
            ),
            (
                BOOT_JSON_EXAMPLE.replace("\"ro\"", "\"console=hvc0\""),
                "computed by hull",
            ),
            (
                BOOT_JSON_EXAMPLE.replace("\"ro\"", "\"x=\\\"y\""),
                "without spaces or quotes",
            ),
            ("{\"cmdline\": []}".to_string(), "malformed"),
        ] {
            let e = BootConfig::parse(&bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
        std::fs::write(dir.path().join(BOOT_JSON), "{").unwrap();
        let e = BootConfig::load(dir.path()).unwrap_err();
        assert!(e.contains("boot.json: malformed"), "{e}");
    }

    #[test]
    fn root_is_the_verity_mapping_of_vda() {
        let c = m().kernel_cmdline();
        assert!(c.contains(
            "dm-mod.create=\"hull-root,,,ro,0 346720 verity 1 /dev/vda /dev/vda 4096 4096 43340 43340 sha256 \
             caeaeccfaa31cedcbfcb63ef3c8b87c24d9ff593a3a50f1bd5ea414c5b7565aa \
             86f7802f387411451c4225381d9ec20aa3fecddc77d70bccee69fac6671af13e 1 panic_on_corruption\" "
        ), "{c}");
        assert!(c.contains(" root=/dev/dm-0 "), "{c}");
        assert!(!c.contains("root=/dev/vda"), "{c}");
    }

    #[test]
    fn an_image_without_verity_is_refused() {
        let e = RootVerity::parse(r#"{"suite": "trixie"}"#).unwrap_err();
        assert!(e.contains("no `verity` object"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = RootVerity::load(dir.path()).unwrap_err();
        assert!(e.contains("image.json"), "{e}");
        let bad = IMAGE_JSON_EXAMPLE.replace("caeaecc", "caeae;c");
        let e = RootVerity::parse(&bad).unwrap_err();
        assert!(e.contains("root_hash"), "{e}");
        let bad =
            IMAGE_JSON_EXAMPLE.replace("\"hash_start_block\": 43340", "\"hash_start_block\": 1");
        assert!(RootVerity::parse(&bad).is_err());
    }

    #[test]
    fn root_is_read_only_and_first() {
        let a = m().argv();
        let root = a.iter().position(|x| x.starts_with("id=root")).unwrap();
        let data = a.iter().position(|x| x.starts_with("id=data")).unwrap();
        assert!(root < data);
        assert!(a[root].contains("readonly=on"));
    }

    #[test]
    fn bench_kernel_words_are_a_closed_list() {
        assert!(check_bench_kernel_word("init_on_free=0").is_ok());
        assert!(check_bench_kernel_word("slab_merge").is_ok());
        assert!(check_bench_kernel_word("sysctl.vm.mmap_min_addr=4096").is_ok());
        for bad in [
            "hull.selftest=1",
            "init=/bin/sh",
            "init_on_free",
            "slab_merge=1",
            "lockdown=none",
            "sysctl.vm.mmap_min_addr=0",
            "init_on_free=0 init=/bin/sh",
        ] {
            let e = check_bench_kernel_word(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn arm64_boots_virt_with_pci_devices_and_its_own_console() {
        let mut x = m();
        x.arch = Arch::Arm64;
        let a = x.argv();
        let j = a.join(" ");
        assert!(
            j.contains("-M virt,gic-version=3,memory-backend=mem"),
            "{j}"
        );
        assert!(j.contains("-cpu max,pauth-impdef=on"), "{j}");
        assert!(j.contains("vhost-user-vsock-pci,chardev=vsock0"), "{j}");
        let root = a
            .iter()
            .position(|x| x.starts_with("virtio-blk-pci,drive=root"))
            .unwrap();
        let data = a
            .iter()
            .position(|x| x.starts_with("virtio-blk-pci,drive=data"))
            .unwrap();
        assert!(root < data, "the root must be the first disk (/dev/vda)");
        assert!(j.contains("memory-backend-memfd,id=mem,size=2048M,share=on"));
        assert!(j.contains("name=opt/dev.hull/settings,file=/s.json"));
        let c = x.kernel_cmdline();
        assert!(c.starts_with("console=ttyAMA0 "), "{c}");
        assert!(!c.contains("tsc_early_khz"), "{c}");
        assert!(!c.contains("8250"), "{c}");
        assert!(c.contains(" root=/dev/dm-0 "), "{c}");
    }

    #[test]
    fn pc_uses_pci_devices() {
        let mut x = m();
        x.kind = MachineKind::Pc;
        let j = x.argv().join(" ");
        assert!(j.contains("virtio-blk-pci"));
        assert!(j.contains("vhost-user-vsock-pci"));
    }
}
