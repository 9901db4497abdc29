//! The control port's requests: what the host may ask PID 1 for, and the
//! one function that turns a request frame into one. It lives in the
//! library half of the crate so that init/fuzz runs the code PID 1 runs;
//! serving them is `control.rs` of the binary.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    Status,
    Logs {
        name: String,
        #[serde(default)]
        follow: bool,
    },
    Shutdown,
    /// Digests and values the escape suite compares before and after.
    Integrity,
    /// Sockets listening in the VM's own network namespace.
    Listening,
    /// Signals a service's main process (the host is trusted; containers
    /// cannot reach this port).
    Kill {
        service: String,
        signal: String,
    },
    #[cfg(feature = "bench")]
    /// Benchmark: round trips on dockerd's socket from inside the VM:
    /// `GET /_ping`, or with `create` a container create (of that image,
    /// each removed after it is timed); on one keep-alive connection, or
    /// with `fresh` a new connection per request.
    EnginePing {
        count: u32,
        #[serde(default)]
        fresh: bool,
        #[serde(default)]
        create: Option<String>,
    },
    #[cfg(feature = "bench")]
    /// Benchmark: a one-shot vsock sink on `port` for `bytes` bytes (raw,
    /// or as channel frames when `framed`).
    Sink {
        port: u32,
        bytes: u64,
        #[serde(default)]
        framed: bool,
    },
    #[cfg(feature = "bench")]
    /// Benchmark: a one-shot vsock echo on `port`.
    Echo {
        port: u32,
    },
    /// Test: a one-shot TCP listener on the VM's loopback (`port` ≥ 1024)
    /// that writes `hull-listener` to the first connection within
    /// `seconds` (at most 120) and then closes; answers
    /// `{"listening": port}` once bound. The VM tier uses it to show that
    /// the gate's forward never reaches a loopback port no container
    /// publishes.
    LoopbackListen {
        port: u16,
        seconds: u64,
    },
    #[cfg(feature = "bench")]
    /// Benchmark: hull-runtime vs runc vs crun, create to delete.
    BenchRuntimes {
        iterations: u32,
        /// Also run hull-runtime with `--debug` and return its stage log.
        #[serde(default)]
        trace: bool,
    },
    /// Benchmark: which binary dockerd's runtime `hull` runs from now on
    /// (`hull`: hull-runtime, `crun`: Debian's crun), so `docker run` end
    /// to end is measured with both in one boot. Only while no container
    /// runs.
    #[cfg(feature = "bench")]
    BenchEngineRuntime {
        runtime: String,
    },
    /// Benchmark: the engine's floor. Stops containerd, dockerd and the
    /// gate, clears their state (a first start, as at boot), then starts
    /// containerd and dockerd by hand with the service table's argv and
    /// times exec -> containerd's socket and exec -> dockerd's `/_ping`;
    /// stops them and hands the services back to the supervisor.
    #[cfg(feature = "bench")]
    BenchEngineFloor,
}

/// The operations only the bench image's init serves (`bench` feature).
pub const BENCH_OPS: &[&str] = &[
    "engine-ping",
    "sink",
    "echo",
    "bench-runtimes",
    "bench-engine-runtime",
    "bench-engine-floor",
];

/// The request in the first data frame of a control connection: one JSON
/// object naming its `op`. Unknown ops are refused, and so are unknown
/// fields of ops that take fields; serde ignores extra fields beside an op
/// that takes none (`{"op":"status","x":1}` is a status request).
pub fn parse(frame: &[u8]) -> Result<Request, serde_json::Error> {
    serde_json::from_slice(frame)
}

/// A service or log name that is safe as a file name (`logs` requests name
/// a file under the log folder).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_ops_and_fields_are_refused() {
        assert!(matches!(parse(br#"{"op":"status"}"#), Ok(Request::Status)));
        let e = parse(br#"{"op":"reboot"}"#).unwrap_err().to_string();
        assert!(e.contains("unknown variant `reboot`"), "{e}");
        let e = parse(br#"{"op":"logs","name":"init","x":1}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `x`"), "{e}");
        // What serde does with extra fields beside a field-less op.
        assert!(matches!(
            parse(br#"{"op":"status","x":1}"#),
            Ok(Request::Status)
        ));
    }

    /// The shipped init's control port: status, logs, shutdown, and the
    /// test and CLI operations below; a benchmark operation is an unknown
    /// request, refused by the parser before anything runs.
    #[cfg(not(feature = "bench"))]
    #[test]
    fn the_shipped_init_refuses_benchmark_operations() {
        let reqs = [
            r#"{"op":"engine-ping","count":3}"#,
            r#"{"op":"sink","port":5000,"bytes":10}"#,
            r#"{"op":"echo","port":5100}"#,
            r#"{"op":"bench-runtimes","iterations":1}"#,
            r#"{"op":"bench-engine-runtime","runtime":"crun"}"#,
            r#"{"op":"bench-engine-floor"}"#,
        ];
        assert_eq!(reqs.len(), BENCH_OPS.len());
        for (req, op) in reqs.iter().zip(BENCH_OPS) {
            let e = parse(req.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(&format!("unknown variant `{op}`")), "{req}: {e}");
            // The refusal lists what the port does offer, and no bench op.
            assert!(e.contains("`status`") && e.contains("`shutdown`"), "{e}");
        }
        for ok in [
            r#"{"op":"status"}"#,
            r#"{"op":"logs","name":"init"}"#,
            r#"{"op":"shutdown"}"#,
        ] {
            assert!(parse(ok.as_bytes()).is_ok(), "{ok}");
        }
    }

    #[cfg(feature = "bench")]
    #[test]
    fn the_bench_init_parses_benchmark_operations() {
        assert!(matches!(
            parse(br#"{"op":"echo","port":5100}"#),
            Ok(Request::Echo { port: 5100 })
        ));
        assert!(matches!(
            parse(br#"{"op":"bench-engine-runtime","runtime":"crun"}"#),
            Ok(Request::BenchEngineRuntime { .. })
        ));
        assert!(matches!(
            parse(br#"{"op":"bench-engine-floor"}"#),
            Ok(Request::BenchEngineFloor)
        ));
        let e = parse(br#"{"op":"echo","port":1,"x":1}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `x`"), "{e}");
    }

    #[test]
    fn log_names_cannot_leave_the_log_folder() {
        assert!(valid_name("dockerd"));
        assert!(!valid_name("../etc/shadow"));
        assert!(!valid_name(""));
        assert!(!valid_name(&"a".repeat(65)));
    }
}
