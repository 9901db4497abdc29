//! Attaching and cloning mount trees: move_mount(2) (the source may move,
//! the target may be mounted on) and open_tree(2) (runs as the caller: a
//! clone keeps every kernel lock, and its uses are vetted).

use super::*;

impl Worker {
    pub(super) fn move_mount(
        &mut self,
        c: &mut Caller,
        fdir: i32,
        fpath: &[u8],
        tdir: i32,
        tpath: &[u8],
        flags: u32,
    ) -> Outcome {
        const F_SYMLINKS: u32 = 1;
        const F_EMPTY: u32 = 4;
        const T_SYMLINKS: u32 = 0x10;
        const T_EMPTY: u32 = 0x40;
        let from = match self.resolve(
            c,
            fdir,
            fpath,
            flags & F_SYMLINKS != 0,
            flags & F_EMPTY != 0,
        ) {
            Ok(f) => f,
            Err(e) => return Outcome::Done(Err(errno_of(&e)), "source does not resolve".into()),
        };
        let to = match self.resolve(
            c,
            tdir,
            tpath,
            flags & T_SYMLINKS != 0,
            flags & T_EMPTY != 0,
        ) {
            Ok(f) => f,
            Err(e) => return Outcome::Done(Err(errno_of(&e)), "target does not resolve".into()),
        };
        let detached = match self.movable(from.as_fd()) {
            Ok(d) => d,
            Err(why) => return deny(why),
        };
        let t = match sysx::statx_fd(to.as_fd()) {
            Ok(t) => t,
            Err(e) => return Outcome::Error(errno_of(&e), "statx".into()),
        };
        if let Err(why) = self.target_ok(to.as_fd(), &t) {
            return deny(why);
        }
        match sysx::move_mount_fds(from.as_fd(), to.as_fd(), flags & sysx::MOVE_MOUNT_BENEATH) {
            Ok(()) => {
                // A detached mount of a superblock neither initial nor a
                // mask is the caller's own fsmount (the guard did not see it
                // created: fsmount runs as the caller).
                if let Some(dev) = detached {
                    if !self.known.initial_devs.contains(&dev)
                        && !self.known.no_mount_devs.contains(&dev)
                    {
                        self.known.created.insert(dev);
                    }
                }
                Outcome::Done(Ok(0), "move_mount within the container".into())
            }
            Err(e) => Outcome::Done(Err(errno_of(&e)), "move_mount".into()),
        }
    }

    /// open_tree(2) also returns an O_PATH fd ADDFD cannot install, so the
    /// caller makes the call itself after the guard looked at what it names.
    /// The guard has no open_tree rule stricter than the kernel's: a clone
    /// keeps every lock (read-only stays locked read-only, masks stay locked
    /// children, a non-recursive clone over locked children is refused), and
    /// what the clone is used for next (mount_setattr, move_mount) is vetted.
    /// So a path rewritten after the check gains nothing.
    pub(super) fn open_tree(
        &mut self,
        c: &mut Caller,
        dir: i32,
        path: &[u8],
        flags: u32,
    ) -> Outcome {
        const AT_SYMLINK_NOFOLLOW: u32 = 0x100;
        const AT_EMPTY_PATH: u32 = 0x1000;
        let follow = flags & AT_SYMLINK_NOFOLLOW == 0;
        if let Err(e) = self.resolve(c, dir, path, follow, flags & AT_EMPTY_PATH != 0) {
            return Outcome::Done(Err(errno_of(&e)), "path does not resolve".into());
        }
        Outcome::Continue(
            "open_tree (a clone keeps the kernel's locks; its uses are vetted)".into(),
        )
    }
}
