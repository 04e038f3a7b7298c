//! The process-wide switch for trace spans: off unless the server was told
//! where to send traces (`telemetry.otlp_endpoint`). Every crate that opens
//! spans on a hot path asks here first, so that an installation without
//! traces pays nothing for them. Owns the switch only.

use std::sync::atomic::{AtomicBool, Ordering};

static ON: AtomicBool = AtomicBool::new(false);

/// Open spans and propagate trace context from now on (once per process).
pub fn enable() {
    ON.store(true, Ordering::Relaxed);
}

/// Whether traces are on.
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}
