//! The library half of hull-init: the parsers of what reaches PID 1 from
//! outside, so that fuzz targets (init/fuzz) call the very code PID 1 runs.
//! Everything else of PID 1 is the binary (src/main.rs).

pub mod request;
