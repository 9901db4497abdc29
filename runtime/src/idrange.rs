//! Exclusive uid/gid ranges, one 65536-id block per running container. The
//! table is shared with hull-guard (which serves it over its socket), so it
//! lives in `hull-guard-proto`; this module names it for the runtime and
//! turns its errors into the runtime's.

pub use hull_guard_proto::idrange::{
    Allocator, IdRange, Owner, DEFAULT_MAX_RANGES, FIRST_ID, RANGE_LEN,
};

use crate::error::Error;

impl From<hull_guard_proto::idrange::Error> for Error {
    fn from(e: hull_guard_proto::idrange::Error) -> Self {
        use hull_guard_proto::idrange::Error as E;
        match e {
            E::Io { context, source } => Error::Io { context, source },
            E::Exhausted(n) => Error::RangesExhausted(n),
            other @ E::Corrupt { .. } => Error::Other(other.to_string()),
        }
    }
}
