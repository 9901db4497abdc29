//! hull-guard: the daemon that vets every mount-family call of every
//! container (seccomp user notification), emulates the procfs files the
//! kernel does not namespace, and serves the exclusive id ranges.
//!
//! It is its own crate because it is its own daemon, with its own privileges
//! and attack surface: it shares nothing with hull-runtime but the protocol
//! (`hull-guard-proto`). `src/bin/hull-guard.rs` is the CLI edge.
//!
//! Layout: `server` (main process: socket, workers, audit, id ranges),
//! `worker` (one process per container, in its user namespace: vets and
//! performs), `freshfs` (builds masked proc/sysfs), `procfs` (FUSE emulation),
//! and the pure pieces `policy`, `knowledge`, `mountinfo`.

pub mod audit;
pub mod control;
pub mod freshfs;
pub mod knowledge;
pub mod limits;
pub mod memory;
pub mod mountinfo;
pub mod notify;
pub mod policy;
pub mod procfs;
pub mod server;
pub mod sys;
pub mod sysx;
pub mod worker;
