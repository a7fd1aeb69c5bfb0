//! The config loader and validator on arbitrary bytes (see
//! `src/checks.rs::config` for what must hold).

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[path = "../src/checks.rs"]
mod checks;

/// A fixed /etc (passwd, group), so that `user:` resolves alike everywhere.
const ETC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/etc");

fuzz_target!(|data: &[u8]| {
    static SCRATCH: OnceLock<PathBuf> = OnceLock::new();
    let scratch = SCRATCH.get_or_init(checks::scratch_file);
    checks::config(data, Path::new(ETC), scratch);
});
