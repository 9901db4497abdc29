//! hull's host side. The `hull` binary is a thin CLI over these modules.

pub mod accel;
pub mod arch;
pub mod bundle;
pub mod control;
pub mod daemon;
pub mod home;
pub mod hvsock;
pub mod lifecycle;
pub mod machine;
pub mod phases;
pub mod ports;
pub mod settings;
pub mod shares;
pub mod state;
pub mod system;
pub mod tsc;
