//! Pure ECI policy decisions for hull: no I/O of any kind (no files,
//! sockets, environment or clocks). Callers pass text and facts in; the
//! crate answers with decisions, rewritten bodies and refusals whose
//! messages and HTTP statuses go straight back to the Docker client.
//!
//! The pieces, in the order a request meets them in the gate:
//!
//! 1. [`settings`]: parse `admin-settings.json` and the user's file;
//!    [`effective::merge`] them (locked admin values win, every overridden
//!    user value is reported); [`Effective`] is the JSON blob the VM gets,
//!    and [`Effective::fail_closed`] is what the VM uses without one.
//! 2. [`endpoint::classify`]: canonicalise method + target onto the
//!    engine's routes (ambiguous encodings refused).
//! 3. [`request::check_request`]: routes refused everywhere, `docker
//!    load`, the build policy and, on per-container sockets, the
//!    [`commands::CommandList`].
//! 4. [`create::CreateRequest::parse`] / [`create::VolumeCreateRequest::parse`]:
//!    the body policy, yielding the bind sources to resolve in the VM.
//! 5. [`mounts::classify_bind`]: each resolved source is allowed, refused
//!    as a restricted host mount, or the engine socket — which goes to
//!    [`images::socket_mount_decision`] (allow-list matched by digest).
//!
//! Every refusal is a [`Refusal`] (status 400 or 403, message); send
//! [`Refusal::to_docker_json`] as the body.

pub mod commands;
pub mod create;
pub mod effective;
pub mod endpoint;
pub mod engine;
pub mod images;
pub mod json;
pub mod mounts;
pub mod reference;
pub mod refusal;
pub mod request;
pub mod settings;

pub use commands::{CommandList, CommandName, ListType};
pub use create::{
    BindLocation, BindSource, CreateContext, CreateRequest, NamespaceJoin, VolumeCreateRequest,
};
pub use effective::{
    merge, merge_with, Effective, HostContext, HostOrigin, Ignored, Source, Sourced,
};
pub use endpoint::{classify, ApiRequest, Endpoint, RouteId};
pub use engine::parse_engine;
pub use images::{
    socket_mount_decision, Evidence, ImageAllowList, ImageFacts, Resolution, ResolvedEntry,
    SocketGrant,
};
pub use mounts::{check_bind, classify_bind, BindClass};
pub use reference::{ImagePattern, ImageRef};
pub use refusal::{Refusal, Status};
pub use request::{check_container_runtime, check_request, BodyPolicy, Channel};
pub use settings::{parse_admin, parse_user, AdminSettings, SettingsError, UserSettings};
