//! The library's error type. Messages are what the user sees (through the
//! shim's log.json), so each one says what failed and on which object.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid bundle: {0}")]
    Bundle(String),
    /// A bundle that asks for something hull never grants.
    #[error("{0}")]
    Refused(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container with id {0} already exists")]
    Exists(String),
    #[error("container {id} is {status}: {what}")]
    BadState {
        id: String,
        status: String,
        what: String,
    },
    #[error("user id ranges exhausted: all {0} ranges of 65536 ids are in use")]
    RangesExhausted(usize),
    #[error("hull-guard: {0}")]
    Guard(String),
    /// No guard to connect to (yet): the socket is missing or refuses.
    #[error("hull-guard: {0}")]
    GuardAbsent(String),
    #[error("seccomp: {0}")]
    Seccomp(String),
    #[error("cgroup {path}: {msg}")]
    Cgroup { path: PathBuf, msg: String },
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Attach a context to an io::Error.
pub trait Context<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: what().into(),
            source,
        })
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::Io {
            context: what().into(),
            source: std::io::Error::from(e),
        })
    }
}
