//! Logging in runc's shape: with `--log-format json` every event becomes one
//! `{"level":"error","msg":"...","time":"..."}` line in the `--log` file, which is
//! where containerd's shim looks for the reason a command failed.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

pub struct LineLayer {
    out: Mutex<Box<dyn Write + Send>>,
    json: bool,
    max: Level,
}

#[derive(Default)]
struct Fields {
    msg: String,
    extra: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.msg, "{value:?}");
        } else {
            let _ = write!(self.extra, " {}={:?}", field.name(), value);
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg.push_str(value);
        } else {
            let _ = write!(self.extra, " {}={}", field.name(), value);
        }
    }
}

impl<S: Subscriber> Layer<S> for LineLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > self.max {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        let msg = format!("{}{}", f.msg, f.extra);
        let lvl = match level {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        let line = if self.json {
            serde_json::json!({"level": lvl, "msg": msg, "time": rfc3339_now()}).to_string()
        } else {
            format!("{} {lvl}: {msg}", rfc3339_now())
        };
        // One write per line: the runtime, its mount builder and the
        // container's init log to one stderr at once, and a line written in
        // pieces would interleave with theirs.
        let line = format!("{line}\n");
        if let Ok(mut o) = self.out.lock() {
            let _ = o.write_all(line.as_bytes());
            let _ = o.flush();
        }
    }
}

/// Install the subscriber. Errors go to the log file when one is given (as the
/// shim expects) and always to stderr too, so a person running the CLI sees them.
pub fn init(log: Option<&Path>, json: bool, debug: bool) {
    let max = if debug { Level::DEBUG } else { Level::INFO };
    let file: Option<Box<dyn Write + Send>> = log.and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
            .map(|f| Box::new(f) as Box<dyn Write + Send>)
    });
    let stderr_max = if debug { Level::DEBUG } else { Level::WARN };
    let stderr_layer = LineLayer {
        out: Mutex::new(Box::new(std::io::stderr())),
        json: false,
        max: stderr_max,
    };
    let registry = tracing_subscriber::registry();
    match file {
        Some(f) => {
            let file_layer = LineLayer {
                out: Mutex::new(f),
                json,
                max,
            };
            // The shim passes a log file and reads it; stderr only carries errors then.
            let stderr_layer = LineLayer {
                max: Level::ERROR,
                ..stderr_layer
            };
            let _ = registry.with(file_layer).with(stderr_layer).try_init();
        }
        None => {
            let _ = registry.with(stderr_layer).try_init();
        }
    }
}

/// Current UTC time as RFC 3339 with nanoseconds (what runc's logrus writes).
pub fn rfc3339_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    // Civil-from-days (Howard Hinnant's algorithm), proleptic Gregorian.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(super::rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            super::rfc3339(1_709_251_200, 5),
            "2024-03-01T00:00:00.000000005Z"
        );
    }
}
