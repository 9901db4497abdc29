//! The guest architecture a hull VM is built for and booted as. Everything
//! that differs between x86_64 and arm64 is answered here, so the image
//! builder, `cargo xtask` and `hull up` cannot disagree on it.

use std::fmt;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    #[value(name = "x86_64", alias = "amd64")]
    #[serde(rename = "x86_64")]
    X86_64,
    #[value(name = "arm64", alias = "aarch64")]
    Arm64,
}

impl Arch {
    /// The machine this program runs on (the default everywhere: a host
    /// boots its own architecture's VM unless asked for the other one).
    pub fn host() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Arm64
        } else {
            Arch::X86_64
        }
    }

    /// The name used in hull's own paths and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// Debian's architecture name (mmdebstrap, .deb files).
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The Linux kernel's `ARCH=`.
    pub fn kernel(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// What `uname -m` says inside the VM.
    pub fn uname(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "aarch64",
        }
    }

    /// Rust's target triple for hull's guest binaries.
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// Debian's GNU triple (cross compilers, multiarch library folders).
    pub fn gnu_triple(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-linux-gnu",
            Arch::Arm64 => "aarch64-linux-gnu",
        }
    }

    /// The QEMU system emulator for this guest.
    pub fn qemu_binary(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Arm64 => "qemu-system-aarch64",
        }
    }

    /// The kernel's boot image inside its build tree (what QEMU's -kernel
    /// loads): bzImage on x86; the uncompressed Image on arm64, which QEMU
    /// loads directly (arm64 has no self-decompressing format).
    pub fn kernel_image(self) -> &'static str {
        match self {
            Arch::X86_64 => "arch/x86/boot/bzImage",
            Arch::Arm64 => "arch/arm64/boot/Image",
        }
    }

    /// The make target that builds [`Arch::kernel_image`].
    pub fn kernel_make_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "bzImage",
            Arch::Arm64 => "Image",
        }
    }

    /// The serial console's device name: the 8250 UART on x86, the PL011 on
    /// arm64's `virt` machine.
    pub fn console(self) -> &'static str {
        match self {
            Arch::X86_64 => "ttyS0",
            Arch::Arm64 => "ttyAMA0",
        }
    }
}

impl Arch {
    /// The architecture a kernel boot image is for, from its header: an
    /// arm64 `Image` carries the magic "ARM\x64" at byte 56, an x86
    /// bzImage "HdrS" at byte 0x202. `hull up` boots an image folder with
    /// the emulator its kernel needs, whatever folder it was given.
    pub fn of_kernel(path: &std::path::Path) -> Result<Arch, String> {
        use std::io::Read;
        let mut head = [0u8; 0x206];
        let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        f.read_exact(&mut head)
            .map_err(|e| format!("{}: too short for a kernel: {e}", path.display()))?;
        Self::of_kernel_header(&head).ok_or_else(|| {
            format!(
                "{}: neither an arm64 Image nor an x86 bzImage (no header magic)",
                path.display()
            )
        })
    }

    fn of_kernel_header(head: &[u8]) -> Option<Arch> {
        if head.get(56..60) == Some(b"ARM\x64") {
            Some(Arch::Arm64)
        } else if head.get(0x202..0x206) == Some(b"HdrS") {
            Some(Arch::X86_64)
        } else {
            None
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_are_told_apart_by_their_header() {
        let mut arm = vec![0u8; 0x206];
        arm[56..60].copy_from_slice(b"ARM\x64");
        assert_eq!(Arch::of_kernel_header(&arm), Some(Arch::Arm64));
        let mut x86 = vec![0u8; 0x206];
        x86[0x202..0x206].copy_from_slice(b"HdrS");
        assert_eq!(Arch::of_kernel_header(&x86), Some(Arch::X86_64));
        assert_eq!(Arch::of_kernel_header(&[0u8; 0x206]), None);
        let e = Arch::of_kernel(std::path::Path::new("/nonexistent/vmlinuz")).unwrap_err();
        assert!(e.contains("/nonexistent/vmlinuz"), "{e}");
    }

    #[test]
    fn names_agree_per_arch() {
        assert_eq!(Arch::Arm64.debian(), "arm64");
        assert_eq!(Arch::Arm64.uname(), "aarch64");
        assert_eq!(Arch::Arm64.rust_target(), "aarch64-unknown-linux-gnu");
        assert_eq!(Arch::X86_64.kernel_image(), "arch/x86/boot/bzImage");
        assert_eq!(serde_json::to_string(&Arch::X86_64).unwrap(), "\"x86_64\"");
    }
}
