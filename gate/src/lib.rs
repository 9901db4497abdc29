//! hull-gate as a library: the policy-enforcing proxy, so tests and
//! benchmarks can drive it without a VM.
//!
//! A request meets, in order: [`listen`] (vsock or unix) or a per-container
//! socket ([`sockets`]) → [`proxy`] (HTTP/1.1) → [`admit`] (hull-policy,
//! plus [`create`] and [`facts`] for what needs the engine or the VM's
//! filesystem) → dockerd. [`watch`] follows the engine's events;
//! [`audit`] records every refusal.

pub mod admit;
pub mod audit;
pub mod create;
pub mod engine;
pub mod facts;
pub mod hull_api;
pub mod listen;
pub mod paths;
pub mod proxy;
pub mod reject;
pub mod server;
pub mod settings;
pub mod sockets;
pub mod state;
pub mod watch;

pub use server::{run, run_with, Options};
pub use state::{Config, Gate, Peer};
