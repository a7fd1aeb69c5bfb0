//! rinit: a PID 1 for containers.

mod config;
mod core;
mod health;

fn main() {
    let _ = config::load(std::path::Path::new("/etc/rinit.yaml"));
}
