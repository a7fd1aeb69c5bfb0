//! The health server's request-head parser on arbitrary bytes, and the
//! response to whatever it accepts (see `src/checks.rs::http_head`).

#![no_main]

use std::sync::OnceLock;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use rinit_pid1::core::snapshot::Snapshot;

#[path = "../src/checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| {
    static SNAP: OnceLock<(Snapshot, Instant)> = OnceLock::new();
    let (snap, now) = SNAP.get_or_init(|| {
        let now = Instant::now();
        (checks::snapshot(now), now)
    });
    checks::http_head(data, snap, *now);
});
