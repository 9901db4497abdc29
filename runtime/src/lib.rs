//! hull-runtime: a runc-compatible OCI runtime that hardens every container
//! (own user namespace with an exclusive id range, id-shifted rootfs, locked
//! protective mounts, seccomp with the mount family trapped for hull-guard).
//!
//! The library holds everything; `src/bin/hull-runtime.rs` is the CLI edge.
//! The guard daemon is its own crate (`guard/`, hull-guard); the runtime
//! shares only the protocol with it (`hull-guard-proto`: [`guard_proto`]
//! holds the client, [`idrange`] the shared id-range table).

pub mod bindroots;
pub mod capabilities;
pub mod cgroup;
pub mod cli;
pub mod commands;
pub mod config;
pub mod console;
pub mod devcg;
pub mod error;
pub mod guard_proto;
pub mod hardening;
pub mod hooks;
pub mod idrange;
pub mod logging;
pub mod mountopts;
pub mod namespaces;
pub mod overlay;
pub mod process;
pub mod rootfs;
pub mod safepath;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod sync;
pub mod sys;

pub use error::{Error, Result};
