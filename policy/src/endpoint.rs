//! Docker Engine API requests: canonical paths, routes and command names.
//!
//! # How a request target is canonicalised
//!
//! The engine (moby with gorilla/mux) percent-decodes the path once, answers
//! `301` for any path that `path.Clean` would change, strips an optional
//! `/v<digits and dots>` prefix and then tries its routes in registration
//! order, where `{name:.*}` segments may span slashes. [`classify`] mirrors
//! that and refuses (400) whatever it cannot map with certainty:
//!
//! 1. The method must be one of `GET HEAD POST PUT DELETE OPTIONS`, exactly
//!    (methods are case-sensitive in Go).
//! 2. The target must be in origin form (start with `/`), at most 8 KiB,
//!    made only of printable ASCII, and contain no `#`.
//! 3. The path (before the first `?`) is percent-decoded once; an invalid
//!    escape, a decoded byte below 0x20 or 0x7f, a decoded `%` (double
//!    encoding), a backslash, or non-UTF-8 result is refused.
//! 4. The decoded path must already be clean: no empty segment (`//`), no
//!    `.` or `..` segment (including `%2e%2e`). One trailing `/` is dropped
//!    (the engine only routes such paths to the same `{name:.*}` routes).
//! 5. A first segment `v<digits and dots>` is the API version and is
//!    removed; one that starts with `V` followed by a digit or `.` is
//!    refused (the engine would 404 it; nobody legitimate sends it).
//! 6. The query is split on `&`; `;` anywhere is refused (Go drops such
//!    pairs), each key and value is decoded with `+` as space; invalid
//!    escapes are refused. A key that the policy reads (`fromImage`,
//!    `networkmode`, ...) may appear once only, compared case-insensitively.
//! 7. A `Content-Type` of `application/x-www-form-urlencoded` or
//!    `multipart/form-data` is refused on every request: Go's `ParseForm`
//!    would merge body fields into the parameters the policy read from the
//!    query (e.g. `networkmode=host` in a `/build` body).
//!
//! The gate should forward the original target unchanged: everything that
//! passes these rules decodes to the same path in the engine.

use crate::refusal::Refusal;

/// Longest request target accepted.
pub const MAX_TARGET: usize = 8 * 1024;

/// What the gate knows about a request before reading its body.
#[derive(Debug, Clone, Copy)]
pub struct ApiRequest<'a> {
    /// HTTP method as received.
    pub method: &'a str,
    /// Request target as received (path and query).
    pub target: &'a str,
    /// The `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
}

/// Groups that the `container*`-style wildcards name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    Container,
    Image,
    Volume,
    Network,
    Build,
    System,
    Plugin,
    Swarm,
    /// Commands outside the management groups (`version`, `login`).
    Other,
}

impl Group {
    /// The management command name (`docker <name> --help`).
    pub fn name(self) -> &'static str {
        match self {
            Group::Container => "container",
            Group::Image => "image",
            Group::Volume => "volume",
            Group::Network => "network",
            Group::Build => "build",
            Group::System => "system",
            Group::Plugin => "plugin",
            Group::Swarm => "swarm",
            Group::Other => "",
        }
    }
}

/// One engine route (one row of the route table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RouteId {
    CheckpointList,
    CheckpointCreate,
    CheckpointDelete,
    ContainerArchiveHead,
    ContainerList,
    ContainerExport,
    ContainerChanges,
    ContainerInspect,
    ContainerTop,
    ContainerLogs,
    ContainerStats,
    ContainerAttachWs,
    ExecInspect,
    ContainerArchiveGet,
    ContainerCreate,
    ContainerKill,
    ContainerPause,
    ContainerUnpause,
    ContainerRestart,
    ContainerStart,
    ContainerStop,
    ContainerWait,
    ContainerResize,
    ContainerAttach,
    ExecCreate,
    ExecStart,
    ExecResize,
    ContainerRename,
    ContainerUpdate,
    ContainerPrune,
    Commit,
    ContainerArchivePut,
    ContainerDelete,
    ImageList,
    ImageSearch,
    ImageSaveMany,
    ImageSave,
    ImageHistory,
    ImageInspect,
    ImageLoad,
    ImageCreate,
    ImagePush,
    ImageTag,
    ImagePrune,
    ImageDelete,
    Options,
    Ping,
    PingHead,
    Events,
    Info,
    Version,
    SystemDf,
    Auth,
    VolumeList,
    VolumeInspect,
    VolumeCreate,
    VolumePrune,
    VolumeUpdate,
    VolumeDelete,
    Build,
    BuildPrune,
    BuildCancel,
    Session,
    SwarmInit,
    SwarmJoin,
    SwarmLeave,
    SwarmInspect,
    SwarmUnlockKey,
    SwarmUpdate,
    SwarmUnlock,
    ServiceList,
    ServiceInspect,
    ServiceCreate,
    ServiceUpdate,
    ServiceDelete,
    ServiceLogs,
    NodeList,
    NodeInspect,
    NodeDelete,
    NodeUpdate,
    TaskList,
    TaskInspect,
    TaskLogs,
    SecretList,
    SecretCreate,
    SecretDelete,
    SecretInspect,
    SecretUpdate,
    ConfigList,
    ConfigCreate,
    ConfigDelete,
    ConfigInspect,
    ConfigUpdate,
    PluginList,
    PluginInspect,
    PluginPrivileges,
    PluginDelete,
    PluginEnable,
    PluginDisable,
    PluginPull,
    PluginPush,
    PluginUpgrade,
    PluginSet,
    PluginCreate,
    DistributionInspect,
    Grpc,
    NetworkList,
    NetworkInspect,
    NetworkCreate,
    NetworkConnect,
    NetworkDisconnect,
    NetworkPrune,
    NetworkDelete,
    /// `/debug/...`: pprof and expvar of the engine.
    Debug,
}

/// Path pattern tokens, mirroring gorilla/mux variables.
#[derive(Debug, Clone, Copy)]
enum Tok {
    Lit(&'static str),
    /// `{name:.*}`: any run, possibly empty, possibly with slashes.
    Any,
    /// `{id:.+}`: a non-empty run, possibly with slashes.
    Some,
    /// `{id}`: a non-empty run without slashes.
    Seg,
}

struct RouteDef {
    id: RouteId,
    method: &'static str,
    pattern: &'static [Tok],
    group: Group,
    /// Command names this endpoint *is* (matched by allow- and deny-lists).
    names: &'static [&'static str],
    /// Commands that need this endpoint to work (allow-lists only).
    needed_by: &'static [&'static str],
    /// Why the endpoint is refused on every channel, if it is.
    refused: Option<&'static str>,
}

use Tok::{Any, Lit, Seg};

const PLUGINS_REFUSED: &str =
    "plugins run with the VM's privileges outside the container policy, so hull does not install, enable or configure them";
const SWARM_REFUSED: &str =
    "swarm services create containers without going through the container policy, so hull does not run swarm";
const CHECKPOINT_REFUSED: &str = "checkpoint/restore is not supported by hull";
const DEBUG_REFUSED: &str = "the engine's debug endpoints are not exposed";

macro_rules! r {
    ($id:ident, $m:literal, [$($t:expr),*], $g:ident, [$($n:literal),*], [$($nb:literal),*]) => {
        RouteDef { id: RouteId::$id, method: $m, pattern: &[$($t),*], group: Group::$g,
                   names: &[$($n),*], needed_by: &[$($nb),*], refused: None }
    };
    ($id:ident, $m:literal, [$($t:expr),*], $g:ident, [$($n:literal),*], [$($nb:literal),*], $why:expr) => {
        RouteDef { id: RouteId::$id, method: $m, pattern: &[$($t),*], group: Group::$g,
                   names: &[$($n),*], needed_by: &[$($nb),*], refused: Some($why) }
    };
}

/// The engine's routes in moby's registration order (docker 26.1): the
/// first match wins, exactly as in the engine's router.
static ROUTES: &[RouteDef] = &[
    // checkpoint router (registered first)
    r!(
        CheckpointList,
        "GET",
        [Lit("/containers/"), Any, Lit("/checkpoints")],
        Container,
        ["checkpoint ls"],
        [],
        CHECKPOINT_REFUSED
    ),
    r!(
        CheckpointCreate,
        "POST",
        [Lit("/containers/"), Any, Lit("/checkpoints")],
        Container,
        ["checkpoint create"],
        [],
        CHECKPOINT_REFUSED
    ),
    r!(
        CheckpointDelete,
        "DELETE",
        [Lit("/containers/"), Seg, Lit("/checkpoints/"), Seg],
        Container,
        ["checkpoint rm"],
        [],
        CHECKPOINT_REFUSED
    ),
    // container router
    r!(
        ContainerArchiveHead,
        "HEAD",
        [Lit("/containers/"), Any, Lit("/archive")],
        Container,
        ["cp"],
        []
    ),
    r!(
        ContainerList,
        "GET",
        [Lit("/containers/json")],
        Container,
        ["ps"],
        []
    ),
    r!(
        ContainerExport,
        "GET",
        [Lit("/containers/"), Any, Lit("/export")],
        Container,
        ["export"],
        []
    ),
    r!(
        ContainerChanges,
        "GET",
        [Lit("/containers/"), Any, Lit("/changes")],
        Container,
        ["diff"],
        []
    ),
    r!(
        ContainerInspect,
        "GET",
        [Lit("/containers/"), Any, Lit("/json")],
        Container,
        ["inspect", "container inspect"],
        ["run", "start", "attach", "exec", "logs"]
    ),
    r!(
        ContainerTop,
        "GET",
        [Lit("/containers/"), Any, Lit("/top")],
        Container,
        ["top"],
        []
    ),
    r!(
        ContainerLogs,
        "GET",
        [Lit("/containers/"), Any, Lit("/logs")],
        Container,
        ["logs"],
        []
    ),
    r!(
        ContainerStats,
        "GET",
        [Lit("/containers/"), Any, Lit("/stats")],
        Container,
        ["stats"],
        []
    ),
    r!(
        ContainerAttachWs,
        "GET",
        [Lit("/containers/"), Any, Lit("/attach/ws")],
        Container,
        ["attach"],
        ["run", "start"]
    ),
    r!(
        ExecInspect,
        "GET",
        [Lit("/exec/"), Any, Lit("/json")],
        Container,
        ["exec"],
        []
    ),
    r!(
        ContainerArchiveGet,
        "GET",
        [Lit("/containers/"), Any, Lit("/archive")],
        Container,
        ["cp"],
        []
    ),
    r!(
        ContainerCreate,
        "POST",
        [Lit("/containers/create")],
        Container,
        ["create", "run"],
        []
    ),
    r!(
        ContainerKill,
        "POST",
        [Lit("/containers/"), Any, Lit("/kill")],
        Container,
        ["kill"],
        ["run", "start", "attach"]
    ),
    r!(
        ContainerPause,
        "POST",
        [Lit("/containers/"), Any, Lit("/pause")],
        Container,
        ["pause"],
        []
    ),
    r!(
        ContainerUnpause,
        "POST",
        [Lit("/containers/"), Any, Lit("/unpause")],
        Container,
        ["unpause"],
        []
    ),
    r!(
        ContainerRestart,
        "POST",
        [Lit("/containers/"), Any, Lit("/restart")],
        Container,
        ["restart"],
        []
    ),
    r!(
        ContainerStart,
        "POST",
        [Lit("/containers/"), Any, Lit("/start")],
        Container,
        ["start"],
        ["run"]
    ),
    r!(
        ContainerStop,
        "POST",
        [Lit("/containers/"), Any, Lit("/stop")],
        Container,
        ["stop"],
        []
    ),
    r!(
        ContainerWait,
        "POST",
        [Lit("/containers/"), Any, Lit("/wait")],
        Container,
        ["wait"],
        ["run", "start"]
    ),
    r!(
        ContainerResize,
        "POST",
        [Lit("/containers/"), Any, Lit("/resize")],
        Container,
        ["attach"],
        ["run", "start", "exec"]
    ),
    r!(
        ContainerAttach,
        "POST",
        [Lit("/containers/"), Any, Lit("/attach")],
        Container,
        ["attach"],
        ["run", "start"]
    ),
    r!(
        ExecCreate,
        "POST",
        [Lit("/containers/"), Any, Lit("/exec")],
        Container,
        ["exec"],
        []
    ),
    r!(
        ExecStart,
        "POST",
        [Lit("/exec/"), Any, Lit("/start")],
        Container,
        ["exec"],
        []
    ),
    r!(
        ExecResize,
        "POST",
        [Lit("/exec/"), Any, Lit("/resize")],
        Container,
        ["exec"],
        []
    ),
    r!(
        ContainerRename,
        "POST",
        [Lit("/containers/"), Any, Lit("/rename")],
        Container,
        ["rename"],
        []
    ),
    r!(
        ContainerUpdate,
        "POST",
        [Lit("/containers/"), Any, Lit("/update")],
        Container,
        ["update"],
        []
    ),
    r!(
        ContainerPrune,
        "POST",
        [Lit("/containers/prune")],
        Container,
        ["container prune"],
        ["system prune"]
    ),
    r!(Commit, "POST", [Lit("/commit")], Container, ["commit"], []),
    r!(
        ContainerArchivePut,
        "PUT",
        [Lit("/containers/"), Any, Lit("/archive")],
        Container,
        ["cp"],
        []
    ),
    r!(
        ContainerDelete,
        "DELETE",
        [Lit("/containers/"), Any],
        Container,
        ["rm"],
        []
    ),
    // image router
    r!(
        ImageList,
        "GET",
        [Lit("/images/json")],
        Image,
        ["images", "image ls"],
        []
    ),
    r!(
        ImageSearch,
        "GET",
        [Lit("/images/search")],
        Image,
        ["search"],
        []
    ),
    r!(
        ImageSaveMany,
        "GET",
        [Lit("/images/get")],
        Image,
        ["save"],
        []
    ),
    r!(
        ImageSave,
        "GET",
        [Lit("/images/"), Any, Lit("/get")],
        Image,
        ["save"],
        []
    ),
    r!(
        ImageHistory,
        "GET",
        [Lit("/images/"), Any, Lit("/history")],
        Image,
        ["history"],
        []
    ),
    r!(
        ImageInspect,
        "GET",
        [Lit("/images/"), Any, Lit("/json")],
        Image,
        ["inspect", "image inspect"],
        ["run", "create", "pull"]
    ),
    r!(
        ImageLoad,
        "POST",
        [Lit("/images/load")],
        Image,
        ["load"],
        []
    ),
    // names are decided from the query: pull or import
    r!(ImageCreate, "POST", [Lit("/images/create")], Image, [], []),
    r!(
        ImagePush,
        "POST",
        [Lit("/images/"), Any, Lit("/push")],
        Image,
        ["push"],
        []
    ),
    r!(
        ImageTag,
        "POST",
        [Lit("/images/"), Any, Lit("/tag")],
        Image,
        ["tag"],
        []
    ),
    r!(
        ImagePrune,
        "POST",
        [Lit("/images/prune")],
        Image,
        ["image prune"],
        ["system prune"]
    ),
    r!(
        ImageDelete,
        "DELETE",
        [Lit("/images/"), Any],
        Image,
        ["rmi"],
        []
    ),
    // system router
    r!(Options, "OPTIONS", [Lit("/"), Any], Other, [], []),
    r!(Ping, "GET", [Lit("/_ping")], Other, [], []),
    r!(PingHead, "HEAD", [Lit("/_ping")], Other, [], []),
    r!(Events, "GET", [Lit("/events")], System, ["events"], []),
    r!(Info, "GET", [Lit("/info")], System, ["info"], []),
    r!(Version, "GET", [Lit("/version")], Other, ["version"], []),
    r!(
        SystemDf,
        "GET",
        [Lit("/system/df")],
        System,
        ["system df"],
        []
    ),
    r!(Auth, "POST", [Lit("/auth")], Other, ["login"], []),
    // volume router
    r!(
        VolumeList,
        "GET",
        [Lit("/volumes")],
        Volume,
        ["volume ls"],
        []
    ),
    r!(
        VolumeInspect,
        "GET",
        [Lit("/volumes/"), Any],
        Volume,
        ["volume inspect"],
        []
    ),
    r!(
        VolumeCreate,
        "POST",
        [Lit("/volumes/create")],
        Volume,
        ["volume create"],
        ["run", "create"]
    ),
    r!(
        VolumePrune,
        "POST",
        [Lit("/volumes/prune")],
        Volume,
        ["volume prune"],
        ["system prune"]
    ),
    r!(
        VolumeUpdate,
        "PUT",
        [Lit("/volumes/"), Any],
        Volume,
        ["volume update"],
        []
    ),
    r!(
        VolumeDelete,
        "DELETE",
        [Lit("/volumes/"), Any],
        Volume,
        ["volume rm"],
        []
    ),
    // build router, session router
    r!(Build, "POST", [Lit("/build")], Build, ["build"], []),
    r!(
        BuildPrune,
        "POST",
        [Lit("/build/prune")],
        Build,
        ["builder prune"],
        ["system prune"]
    ),
    r!(
        BuildCancel,
        "POST",
        [Lit("/build/cancel")],
        Build,
        ["build"],
        []
    ),
    r!(Session, "POST", [Lit("/session")], Build, ["build"], []),
    // swarm router
    r!(
        SwarmInit,
        "POST",
        [Lit("/swarm/init")],
        Swarm,
        ["swarm init"],
        [],
        SWARM_REFUSED
    ),
    r!(
        SwarmJoin,
        "POST",
        [Lit("/swarm/join")],
        Swarm,
        ["swarm join"],
        [],
        SWARM_REFUSED
    ),
    r!(
        SwarmLeave,
        "POST",
        [Lit("/swarm/leave")],
        Swarm,
        ["swarm leave"],
        []
    ),
    r!(
        SwarmInspect,
        "GET",
        [Lit("/swarm")],
        Swarm,
        ["swarm inspect"],
        []
    ),
    r!(
        SwarmUnlockKey,
        "GET",
        [Lit("/swarm/unlockkey")],
        Swarm,
        ["swarm unlock-key"],
        []
    ),
    r!(
        SwarmUpdate,
        "POST",
        [Lit("/swarm/update")],
        Swarm,
        ["swarm update"],
        []
    ),
    r!(
        SwarmUnlock,
        "POST",
        [Lit("/swarm/unlock")],
        Swarm,
        ["swarm unlock"],
        []
    ),
    r!(
        ServiceList,
        "GET",
        [Lit("/services")],
        Swarm,
        ["service ls"],
        []
    ),
    r!(
        ServiceInspect,
        "GET",
        [Lit("/services/"), Seg],
        Swarm,
        ["service inspect"],
        []
    ),
    r!(
        ServiceCreate,
        "POST",
        [Lit("/services/create")],
        Swarm,
        ["service create"],
        [],
        SWARM_REFUSED
    ),
    r!(
        ServiceUpdate,
        "POST",
        [Lit("/services/"), Seg, Lit("/update")],
        Swarm,
        ["service update"],
        [],
        SWARM_REFUSED
    ),
    r!(
        ServiceDelete,
        "DELETE",
        [Lit("/services/"), Seg],
        Swarm,
        ["service rm"],
        []
    ),
    r!(
        ServiceLogs,
        "GET",
        [Lit("/services/"), Seg, Lit("/logs")],
        Swarm,
        ["service logs"],
        []
    ),
    r!(NodeList, "GET", [Lit("/nodes")], Swarm, ["node ls"], []),
    r!(
        NodeInspect,
        "GET",
        [Lit("/nodes/"), Seg],
        Swarm,
        ["node inspect"],
        []
    ),
    r!(
        NodeDelete,
        "DELETE",
        [Lit("/nodes/"), Seg],
        Swarm,
        ["node rm"],
        []
    ),
    r!(
        NodeUpdate,
        "POST",
        [Lit("/nodes/"), Seg, Lit("/update")],
        Swarm,
        ["node update"],
        []
    ),
    r!(TaskList, "GET", [Lit("/tasks")], Swarm, ["service ps"], []),
    r!(
        TaskInspect,
        "GET",
        [Lit("/tasks/"), Seg],
        Swarm,
        ["service ps"],
        []
    ),
    r!(
        TaskLogs,
        "GET",
        [Lit("/tasks/"), Seg, Lit("/logs")],
        Swarm,
        ["service logs"],
        []
    ),
    r!(
        SecretList,
        "GET",
        [Lit("/secrets")],
        Swarm,
        ["secret ls"],
        []
    ),
    r!(
        SecretCreate,
        "POST",
        [Lit("/secrets/create")],
        Swarm,
        ["secret create"],
        []
    ),
    r!(
        SecretDelete,
        "DELETE",
        [Lit("/secrets/"), Seg],
        Swarm,
        ["secret rm"],
        []
    ),
    r!(
        SecretInspect,
        "GET",
        [Lit("/secrets/"), Seg],
        Swarm,
        ["secret inspect"],
        []
    ),
    r!(
        SecretUpdate,
        "POST",
        [Lit("/secrets/"), Seg, Lit("/update")],
        Swarm,
        ["secret update"],
        []
    ),
    r!(
        ConfigList,
        "GET",
        [Lit("/configs")],
        Swarm,
        ["config ls"],
        []
    ),
    r!(
        ConfigCreate,
        "POST",
        [Lit("/configs/create")],
        Swarm,
        ["config create"],
        []
    ),
    r!(
        ConfigDelete,
        "DELETE",
        [Lit("/configs/"), Seg],
        Swarm,
        ["config rm"],
        []
    ),
    r!(
        ConfigInspect,
        "GET",
        [Lit("/configs/"), Seg],
        Swarm,
        ["config inspect"],
        []
    ),
    r!(
        ConfigUpdate,
        "POST",
        [Lit("/configs/"), Seg, Lit("/update")],
        Swarm,
        ["config update"],
        []
    ),
    // plugin router
    r!(
        PluginList,
        "GET",
        [Lit("/plugins")],
        Plugin,
        ["plugin ls"],
        []
    ),
    r!(
        PluginInspect,
        "GET",
        [Lit("/plugins/"), Any, Lit("/json")],
        Plugin,
        ["plugin inspect"],
        []
    ),
    r!(
        PluginPrivileges,
        "GET",
        [Lit("/plugins/privileges")],
        Plugin,
        ["plugin install"],
        []
    ),
    r!(
        PluginDelete,
        "DELETE",
        [Lit("/plugins/"), Any],
        Plugin,
        ["plugin rm"],
        []
    ),
    r!(
        PluginEnable,
        "POST",
        [Lit("/plugins/"), Any, Lit("/enable")],
        Plugin,
        ["plugin enable"],
        [],
        PLUGINS_REFUSED
    ),
    r!(
        PluginDisable,
        "POST",
        [Lit("/plugins/"), Any, Lit("/disable")],
        Plugin,
        ["plugin disable"],
        []
    ),
    r!(
        PluginPull,
        "POST",
        [Lit("/plugins/pull")],
        Plugin,
        ["plugin install"],
        [],
        PLUGINS_REFUSED
    ),
    r!(
        PluginPush,
        "POST",
        [Lit("/plugins/"), Any, Lit("/push")],
        Plugin,
        ["plugin push"],
        []
    ),
    r!(
        PluginUpgrade,
        "POST",
        [Lit("/plugins/"), Any, Lit("/upgrade")],
        Plugin,
        ["plugin upgrade"],
        [],
        PLUGINS_REFUSED
    ),
    r!(
        PluginSet,
        "POST",
        [Lit("/plugins/"), Any, Lit("/set")],
        Plugin,
        ["plugin set"],
        [],
        PLUGINS_REFUSED
    ),
    r!(
        PluginCreate,
        "POST",
        [Lit("/plugins/create")],
        Plugin,
        ["plugin create"],
        [],
        PLUGINS_REFUSED
    ),
    // distribution router: the registry's view of an image
    r!(
        DistributionInspect,
        "GET",
        [Lit("/distribution/"), Any, Lit("/json")],
        Image,
        ["pull"],
        []
    ),
    // grpc router (BuildKit controller used by buildx)
    r!(Grpc, "POST", [Lit("/grpc")], Build, ["build"], []),
    // network router
    r!(
        NetworkList,
        "GET",
        [Lit("/networks")],
        Network,
        ["network ls"],
        []
    ),
    // The engine also registers `GET /networks/`; the trailing slash is
    // dropped before matching, so `GET /networks` covers it.
    r!(
        NetworkInspect,
        "GET",
        [Lit("/networks/"), Tok::Some],
        Network,
        ["network inspect"],
        ["run", "create"]
    ),
    r!(
        NetworkCreate,
        "POST",
        [Lit("/networks/create")],
        Network,
        ["network create"],
        []
    ),
    r!(
        NetworkConnect,
        "POST",
        [Lit("/networks/"), Any, Lit("/connect")],
        Network,
        ["network connect"],
        ["run", "create"]
    ),
    r!(
        NetworkDisconnect,
        "POST",
        [Lit("/networks/"), Any, Lit("/disconnect")],
        Network,
        ["network disconnect"],
        []
    ),
    r!(
        NetworkPrune,
        "POST",
        [Lit("/networks/prune")],
        Network,
        ["network prune"],
        ["system prune"]
    ),
    r!(
        NetworkDelete,
        "DELETE",
        [Lit("/networks/"), Any],
        Network,
        ["network rm"],
        []
    ),
];

/// Management command names accepted on their own (meaning every command of
/// the group, like the wildcard).
const GROUP_NAMES: &[(&str, Group)] = &[
    ("container", Group::Container),
    ("image", Group::Image),
    ("volume", Group::Volume),
    ("network", Group::Network),
    ("builder", Group::Build),
    ("system", Group::System),
    ("plugin", Group::Plugin),
    ("swarm", Group::Swarm),
];

/// The wildcards ECI documents.
const WILDCARDS: &[(&str, Group)] = &[
    ("container*", Group::Container),
    ("image*", Group::Image),
    ("volume*", Group::Volume),
    ("network*", Group::Network),
    ("build*", Group::Build),
    ("system*", Group::System),
];

/// Names that only appear as "needed by" in the table but are commands.
const EXTRA_NAMES: &[&str] = &["system prune"];

/// `true` if `name` is a command name, management command or wildcard that
/// a command list may contain.
pub fn is_known_command(name: &str) -> bool {
    WILDCARDS.iter().any(|(w, _)| *w == name)
        || GROUP_NAMES.iter().any(|(g, _)| *g == name)
        || EXTRA_NAMES.contains(&name)
        || ROUTES
            .iter()
            .any(|r| r.names.contains(&name) || r.needed_by.contains(&name))
        || matches!(name, "pull" | "import")
}

/// All command names a command list may contain, sorted (for help texts).
pub fn known_commands() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = WILDCARDS
        .iter()
        .map(|(w, _)| *w)
        .chain(GROUP_NAMES.iter().map(|(g, _)| *g))
        .chain(EXTRA_NAMES.iter().copied())
        .chain(
            ROUTES
                .iter()
                .flat_map(|r| r.names.iter().chain(r.needed_by).copied()),
        )
        .chain(["pull", "import"])
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// One thing a request does, named as `docker` commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// Group for the wildcards.
    pub group: Group,
    /// Command names this action is (either list type matches these).
    pub names: &'static [&'static str],
    /// Commands that use this action (only allow-lists match these).
    pub needed_by: &'static [&'static str],
}

/// A request mapped onto the engine's routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `Some(route)` if the engine would route it; `None` if the engine
    /// would answer 404/405.
    pub route: Option<RouteId>,
    /// API version from the path prefix, if any (`"1.43"`).
    pub version: Option<String>,
    /// Decoded path without the version prefix and trailing slash.
    pub path: String,
    /// Decoded query parameters in order.
    pub query: Vec<(String, String)>,
    /// What the request does (empty for unknown routes and for always
    /// allowed ones such as `/_ping`).
    pub actions: Vec<Action>,
    /// The target as received, for messages and audit.
    pub raw_target: String,
    /// Set when the route is refused on every channel.
    pub refused: Option<&'static str>,
}

impl Endpoint {
    /// First value of a query parameter, compared exactly (as Go does).
    pub fn query_value(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All values of parameters whose key equals `key` ignoring ASCII case.
    pub fn query_values_ci<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// `true` for requests every command list lets through (`/_ping`, CORS
    /// preflight): the docker CLI needs `/_ping` to negotiate the version.
    pub fn always_allowed(&self) -> bool {
        matches!(
            self.route,
            Some(RouteId::Ping | RouteId::PingHead | RouteId::Options)
        )
    }
}

/// Query keys the policy reads; each may appear only once.
const INSPECTED_KEYS: &[&str] = &[
    "fromImage",
    "fromSrc",
    "networkmode",
    "cgroupparent",
    "securityopt",
    "checkpoint",
    "checkpoint-dir",
    "remote",
];

fn bad(msg: impl Into<String>) -> Refusal {
    Refusal::bad_request(msg)
}

/// Maps a request onto the engine's route table (see the module docs for
/// the exact canonicalisation). Errors are 400 refusals for requests whose
/// meaning is ambiguous.
pub fn classify(req: &ApiRequest<'_>) -> Result<Endpoint, Refusal> {
    const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"];
    if !METHODS.contains(&req.method) {
        return Err(bad(format!(
            "hull: HTTP method \"{}\" is not used by the Docker API",
            crate::json::escape_for_message(req.method)
        )));
    }
    if let Some(ct) = req.content_type {
        let media = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if media == "application/x-www-form-urlencoded" || media == "multipart/form-data" {
            return Err(bad(format!(
                "hull: request bodies of type {media} are refused (the engine would read them as parameters)"
            )));
        }
    }
    let target = req.target;
    if target.len() > MAX_TARGET {
        return Err(bad("hull: request target too long"));
    }
    if !target.starts_with('/') {
        return Err(bad("hull: request target must be an absolute path"));
    }
    if let Some(b) = target.bytes().find(|&b| !(0x21..=0x7e).contains(&b)) {
        return Err(bad(format!("hull: request target contains byte 0x{b:02x}")));
    }
    if target.contains('#') {
        return Err(bad("hull: request target contains '#'"));
    }
    let (raw_path, raw_query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let decoded = percent_decode(raw_path.as_bytes(), false)
        .ok_or_else(|| bad("hull: invalid percent-encoding in the request path"))?;
    let path = String::from_utf8(decoded)
        .map_err(|_| bad("hull: request path is not UTF-8 after decoding"))?;
    if path.chars().any(|c| c.is_control()) {
        return Err(bad("hull: request path contains control characters"));
    }
    if path.contains('%') {
        return Err(bad(
            "hull: request path contains an encoded '%' (double encoding is refused)",
        ));
    }
    if path.contains('\\') {
        return Err(bad("hull: request path contains a backslash"));
    }
    // Only the last segment may be empty (one trailing slash).
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        if (seg.is_empty() && i != last) || *seg == "." || *seg == ".." {
            return Err(bad("hull: request path has an empty, '.' or '..' segment"));
        }
    }
    let mut p = path.as_str();
    if p.len() > 1 && p.ends_with('/') {
        p = &p[..p.len() - 1];
    }
    // API version prefix.
    let mut version = None;
    let mut rest = p;
    if let Some(after) = p.strip_prefix("/v").or_else(|| p.strip_prefix("/V")) {
        let end = after.find('/').unwrap_or(after.len());
        let seg = &after[..end];
        let is_version = !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if is_version {
            if p.as_bytes()[1] == b'V' {
                return Err(bad("hull: API version prefix must be a lower-case 'v'"));
            }
            version = Some(seg.to_string());
            rest = &after[end..];
            if rest.is_empty() {
                rest = "/";
            }
        }
    }
    let query = match raw_query {
        Some(q) => parse_query(q)?,
        None => Vec::new(),
    };
    for key in INSPECTED_KEYS {
        if query
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .count()
            > 1
        {
            return Err(bad(format!(
                "hull: query parameter \"{key}\" given more than once"
            )));
        }
    }

    let mut ep = Endpoint {
        route: None,
        version,
        path: rest.to_string(),
        query,
        actions: Vec::new(),
        raw_target: target.to_string(),
        refused: None,
    };
    // The engine registers /debug/* without a version prefix only.
    if ep.version.is_none() && (rest == "/debug" || rest.starts_with("/debug/")) {
        ep.route = Some(RouteId::Debug);
        ep.refused = Some(DEBUG_REFUSED);
        ep.actions.push(Action {
            group: Group::System,
            names: &[],
            needed_by: &[],
        });
        return Ok(ep);
    }
    let def = ROUTES
        .iter()
        .find(|r| r.method == req.method && matches(r.pattern, rest));
    if let Some(def) = def {
        ep.route = Some(def.id);
        ep.refused = def.refused;
        let names: &'static [&'static str] = if def.id == RouteId::ImageCreate {
            // The engine pulls when fromImage is non-empty, else imports.
            if ep.query_value("fromImage").is_some_and(|v| !v.is_empty()) {
                &["pull"]
            } else {
                &["import"]
            }
        } else {
            def.names
        };
        let needed_by: &'static [&'static str] =
            if def.id == RouteId::ImageCreate && names == ["pull"] {
                &["run", "create"]
            } else {
                def.needed_by
            };
        if !ep.always_allowed() {
            ep.actions.push(Action {
                group: def.group,
                names,
                needed_by,
            });
        }
    }
    Ok(ep)
}

fn matches(pattern: &[Tok], s: &str) -> bool {
    match pattern.split_first() {
        None => s.is_empty(),
        Some((Tok::Lit(l), rest)) => s.strip_prefix(l).is_some_and(|r| matches(rest, r)),
        Some((var, rest)) => {
            // Greedy like the engine's regexps: try the longest run first.
            // A `{id}` run stops at the first slash.
            let max_end = match var {
                Tok::Seg => s.find('/').unwrap_or(s.len()),
                _ => s.len(),
            };
            let min_end = usize::from(!matches!(var, Tok::Any));
            (min_end..=max_end)
                .rev()
                .filter(|&end| s.is_char_boundary(end))
                .any(|end| matches(rest, &s[end..]))
        }
    }
}

/// Percent-decodes like Go's `url.PathUnescape` (`plus_space == false`) or
/// `url.QueryUnescape` (`plus_space == true`); `None` on an invalid escape.
fn percent_decode(s: &[u8], plus_space: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                let h = hex_val(*s.get(i + 1)?)?;
                let l = hex_val(*s.get(i + 2)?)?;
                out.push(h * 16 + l);
                i += 3;
            }
            b'+' if plus_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn parse_query(q: &str) -> Result<Vec<(String, String)>, Refusal> {
    if q.contains(';') {
        return Err(bad("hull: ';' in the query string is refused"));
    }
    let mut out = Vec::new();
    for pair in q.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k.as_bytes(), true)
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| bad("hull: invalid encoding in the query string"))?;
        let v = percent_decode(v.as_bytes(), true)
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| bad("hull: invalid encoding in the query string"))?;
        out.push((k, v));
    }
    Ok(out)
}

pub(crate) fn group_of_name(name: &str) -> Option<Group> {
    WILDCARDS
        .iter()
        .chain(GROUP_NAMES)
        .find(|(n, _)| *n == name)
        .map(|(_, g)| *g)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(method: &str, target: &str) -> Endpoint {
        classify(&ApiRequest {
            method,
            target,
            content_type: None,
        })
        .unwrap()
    }

    fn route(method: &str, target: &str) -> Option<RouteId> {
        ep(method, target).route
    }

    fn refused(method: &str, target: &str) -> bool {
        classify(&ApiRequest {
            method,
            target,
            content_type: None,
        })
        .is_err()
    }

    #[test]
    fn versions_and_plain_paths() {
        assert_eq!(
            route("POST", "/v1.43/images/x/push"),
            Some(RouteId::ImagePush)
        );
        assert_eq!(route("POST", "/images/x/push"), Some(RouteId::ImagePush));
        assert_eq!(
            route("POST", "/v1.24/images/x/push?tag=latest"),
            Some(RouteId::ImagePush)
        );
        assert_eq!(
            route("POST", "/v1..4/images/x/push"),
            Some(RouteId::ImagePush)
        );
        assert_eq!(ep("GET", "/v1.43/_ping").version.as_deref(), Some("1.43"));
        assert!(ep("GET", "/v1.43/_ping").always_allowed());
        assert_eq!(route("GET", "/v1.43"), None);
        assert_eq!(route("GET", "/"), None);
    }

    #[test]
    fn encoded_slash_is_decoded_like_the_engine() {
        // The engine decodes %2F before routing, so this is a push of "x".
        assert_eq!(
            route("POST", "/v1.43/images/x%2Fpush"),
            Some(RouteId::ImagePush)
        );
        assert_eq!(
            route("POST", "/v1.43/images%2Fx%2fpush"),
            Some(RouteId::ImagePush)
        );
        assert_eq!(
            route("POST", "/v1.43/%69mages/x/push"),
            Some(RouteId::ImagePush)
        );
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for t in [
            "/v1.43/images/x/../y/push",
            "/v1.43/images/x/%2e%2e/push",
            "/v1.43/images/x/%2E%2E/push",
            "/v1.43/images/./x/push",
            "/v1.43//images/x/push",
            "/v1.43/images//push",
            "//",
            "/v1.43//",
            "/images/x//",
            "/V1.43/images/x/push",
            "/v1.43/images/x%252Fpush",
            "/v1.43/images/x%2",
            "/v1.43/images/x%zzpush",
            "/v1.43/images/x%00/push",
            "/v1.43/images/x%0a/push",
            "/v1.43/images/x%5cpush",
            "/v1.43/images/x/push#frag",
            "/v1.43/images/x/push?tag=a;b",
            "/v1.43/images/%ff/push",
            "images/x/push",
            "http://localhost/v1.43/images/x/push",
            "*",
            "/v1.43/images/x push",
            "/v1.43/images/x/push?fromImage=a&fromimage=b",
        ] {
            assert!(refused("POST", t), "{t} should be refused");
        }
        assert!(refused("post", "/images/x/push"));
        assert!(refused("PATCH", "/images/x/push"));
        assert!(refused("POST", &format!("/{}", "a".repeat(MAX_TARGET))));
    }

    #[test]
    fn form_bodies_are_refused() {
        for ct in [
            "application/x-www-form-urlencoded",
            "Application/X-WWW-Form-Urlencoded; charset=utf-8",
            "multipart/form-data; boundary=x",
        ] {
            assert!(classify(&ApiRequest {
                method: "POST",
                target: "/build",
                content_type: Some(ct)
            })
            .is_err());
        }
        assert!(classify(&ApiRequest {
            method: "POST",
            target: "/build",
            content_type: Some("application/x-tar")
        })
        .is_ok());
    }

    #[test]
    fn trailing_slash_is_dropped() {
        assert_eq!(route("DELETE", "/images/x/"), Some(RouteId::ImageDelete));
        assert_eq!(route("GET", "/networks/"), Some(RouteId::NetworkList));
    }

    #[test]
    fn first_match_wins_like_the_engine() {
        // DELETE /containers/{name:.*} also matches paths that look like
        // other routes; the engine deletes a container named "x/kill".
        assert_eq!(
            route("DELETE", "/containers/x/kill"),
            Some(RouteId::ContainerDelete)
        );
        // Image names with slashes.
        assert_eq!(
            route("POST", "/images/a/b/c/push"),
            Some(RouteId::ImagePush)
        );
        assert_eq!(
            route("GET", "/images/x/push/json"),
            Some(RouteId::ImageInspect)
        );
        assert_eq!(
            route("GET", "/images/get/json"),
            Some(RouteId::ImageInspect)
        );
        assert_eq!(route("GET", "/images/get"), Some(RouteId::ImageSaveMany));
        // Checkpoint router is registered first.
        assert_eq!(
            route("DELETE", "/containers/x/checkpoints/y"),
            Some(RouteId::CheckpointDelete)
        );
        assert_eq!(
            route("DELETE", "/containers/x/y/checkpoints/z"),
            Some(RouteId::ContainerDelete)
        );
        assert_eq!(
            route("GET", "/containers/json"),
            Some(RouteId::ContainerList)
        );
        assert_eq!(
            route("GET", "/containers/abc/json"),
            Some(RouteId::ContainerInspect)
        );
        assert_eq!(
            route("POST", "/containers/create"),
            Some(RouteId::ContainerCreate)
        );
        assert_eq!(route("POST", "/containers/x/create"), None);
        assert_eq!(route("GET", "/services/a/b"), None);
        assert_eq!(route("GET", "/networks/a/b"), Some(RouteId::NetworkInspect));
        assert_eq!(route("OPTIONS", "/anything/at/all"), Some(RouteId::Options));
    }

    #[test]
    fn images_create_is_pull_or_import() {
        let e = ep("POST", "/v1.43/images/create?fromImage=busybox&tag=latest");
        assert_eq!(e.actions[0].names, &["pull"]);
        let e = ep("POST", "/v1.43/images/create?fromSrc=-&repo=x");
        assert_eq!(e.actions[0].names, &["import"]);
        let e = ep("POST", "/v1.43/images/create?fromImage=&fromSrc=-");
        assert_eq!(e.actions[0].names, &["import"]);
        let e = ep("POST", "/v1.43/images/create?fromImage=a%20b+c");
        assert_eq!(e.query_value("fromImage"), Some("a b c"));
    }

    #[test]
    fn debug_is_refused_everywhere() {
        let e = ep("GET", "/debug/pprof/");
        assert_eq!(e.route, Some(RouteId::Debug));
        assert!(e.refused.is_some());
        assert_eq!(route("GET", "/v1.43/debug/vars"), None);
    }

    #[test]
    fn refused_routes() {
        assert!(ep("POST", "/plugins/pull?remote=x").refused.is_some());
        assert!(ep("POST", "/v1.43/swarm/init").refused.is_some());
        assert!(ep("POST", "/services/create").refused.is_some());
        assert!(ep("POST", "/containers/x/checkpoints").refused.is_some());
        assert!(ep("GET", "/plugins").refused.is_none());
    }

    #[test]
    fn vocabulary() {
        for n in [
            "push",
            "build",
            "run",
            "create",
            "exec",
            "pull",
            "images",
            "ps",
            "logs",
            "attach",
            "cp",
            "commit",
            "rm",
            "rmi",
            "volume",
            "network",
            "system",
            "version",
            "info",
            "events",
            "container*",
            "image*",
            "volume*",
            "network*",
            "build*",
            "system*",
            "import",
            "load",
            "save",
            "system prune",
            "volume create",
        ] {
            assert!(is_known_command(n), "{n}");
        }
        assert!(!is_known_command("pussh"));
        assert!(!is_known_command("plugin*"));
        assert!(known_commands().len() > 50);
    }

    #[test]
    fn every_route_is_reachable() {
        // Each route in the table must be the first match for some path,
        // otherwise the table order is wrong.
        for r in ROUTES {
            let path: String = r
                .pattern
                .iter()
                .map(|t| match t {
                    Tok::Lit(l) => *l,
                    Tok::Any | Tok::Some | Tok::Seg => "n1",
                })
                .collect();
            let e = ep(r.method, &path);
            assert_eq!(e.route, Some(r.id), "{} {path}", r.method);
        }
    }
}
