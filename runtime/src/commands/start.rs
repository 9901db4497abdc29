//! `start`: release the init waiting in create, then run poststart hooks.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use crate::config::RuntimeConfig;
use crate::error::{Context, Error, Result};
use crate::hooks;
use crate::state::{self, State, Status, START_SOCK};

pub fn start(cfg: &RuntimeConfig, id: &str) -> Result<()> {
    let st = State::load(&cfg.root, id)?;
    match st.status(&cfg.root) {
        Status::Created => {}
        s => {
            return Err(Error::BadState {
                id: id.into(),
                status: s.as_str().into(),
                what: "cannot start a container that is not created".into(),
            })
        }
    }
    let sdir = state::dir(&cfg.root, id);
    // Relative connect: the state dir may be deep, a sun_path is 108 bytes.
    let cwd = std::env::current_dir().ok();
    nix::unistd::chdir(&sdir).ctx(|| format!("chdir {}", sdir.display()))?;
    let conn = UnixStream::connect(START_SOCK);
    let _ = std::fs::remove_file(START_SOCK);
    if let Some(c) = cwd {
        let _ = nix::unistd::chdir(&c);
    }
    let mut s = conn.map_err(|e| Error::Other(format!("container {id} init is gone ({e})")))?;
    s.write_all(b"1").ctx(|| "signal start")?;
    let mut b = [0u8; 1];
    // The init answers, or closes the socket by exec'ing (close-on-exec).
    let _ = s.read(&mut b);
    if let Some(h) = crate::spec::saved_hooks(&sdir) {
        if let Err(e) = hooks::run(
            "poststart",
            h.poststart().as_deref().unwrap_or_default(),
            &st.hook_json("running"),
        ) {
            tracing::warn!("{e}");
        }
    }
    Ok(())
}
