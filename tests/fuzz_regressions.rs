//! Replays every input the fuzzers ever crashed on (`fuzz/regressions/
//! TARGET/`), and the seed corpus (`fuzz/seeds/TARGET/`), through the very
//! checks the fuzz targets run (`fuzz/src/checks.rs`), on stable: CI runs
//! this, never the fuzzers themselves.

use std::path::{Path, PathBuf};
use std::time::Instant;

#[path = "../fuzz/src/checks.rs"]
mod checks;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every file of `fuzz/<kind>/<target>/`, sorted, as (name, bytes).
fn inputs(kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = format!(
                "{kind}/{target}/{}",
                p.file_name().unwrap().to_string_lossy()
            );
            (name, std::fs::read(&p).expect("readable input"))
        })
        .collect()
}

/// Runs `check` on each input; a failing property panics, and with
/// `panic = "abort"` that ends the test binary, so name the input first.
fn replay(target: &str, check: impl Fn(&[u8])) {
    let mut all = inputs("regressions", target);
    all.extend(inputs("seeds", target));
    assert!(!all.is_empty(), "no inputs for {target}");
    for (name, bytes) in &all {
        eprintln!("replaying {name} ({} bytes)", bytes.len());
        check(bytes);
    }
}

#[test]
fn config_inputs_never_panic_and_errors_have_positions() {
    let etc = fuzz_dir().join("etc");
    let scratch = checks::scratch_file();
    replay("config", |data| checks::config(data, &etc, &scratch));
    let _ = std::fs::remove_file(&scratch);
}

#[test]
fn http_head_inputs_never_panic_and_responses_are_framed() {
    let now = Instant::now();
    let snap = checks::snapshot(now);
    replay("http_head", |data| checks::http_head(data, &snap, now));
}

#[test]
fn notify_inputs_never_panic_and_parse_consistently() {
    replay("notify", checks::notify);
}
