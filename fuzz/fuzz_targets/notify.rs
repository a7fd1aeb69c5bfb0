//! The sd_notify datagram parser on arbitrary bytes (see
//! `src/checks.rs::notify`): any process that can reach a notify socket
//! can send these.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::notify(data));
