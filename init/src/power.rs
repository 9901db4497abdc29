//! Power-off: flush, unmount what holds data, and ask the kernel to stop the
//! machine (ACPI on both microvm and pc, which ends QEMU with status 0).

use nix::mount::{umount2, MntFlags};
use nix::sys::reboot::{reboot, RebootMode};

/// Never returns: if the kernel refuses power-off, PID 1 sleeps forever rather
/// than exiting (an exiting PID 1 is a kernel panic).
pub fn power_off() -> ! {
    nix::unistd::sync();
    for target in ["/var/lib"] {
        if let Err(e) = umount2(target, MntFlags::empty()) {
            if e != nix::errno::Errno::EINVAL {
                crate::warn!("unmount {target}: {e}; remounting read-only");
                let _ = nix::mount::mount(
                    None::<&str>,
                    target,
                    None::<&str>,
                    nix::mount::MsFlags::MS_REMOUNT | nix::mount::MsFlags::MS_RDONLY,
                    None::<&str>,
                );
            }
        }
    }
    nix::unistd::sync();
    crate::info!("powering off");
    let Err(e) = reboot(RebootMode::RB_POWER_OFF);
    crate::error!("reboot(POWER_OFF) refused: {e}");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
