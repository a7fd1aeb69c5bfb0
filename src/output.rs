//! The `prefix` output mode: one small thread per service stream turns the
//! bytes a service writes into whole lines `name | line` on rinit's own
//! stdout or stderr. Each line goes out in one locked write, so lines of
//! concurrent services never mix. A slow reader of rinit's output blocks
//! only these threads (and, through the pipe, the service), never the
//! supervisor or the reaper.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A line longer than this is cut into pieces of this size.
const MAX_LINE: usize = 16 * 1024;

#[derive(Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Counts live relay threads, per service, so rinit can let a service's
/// last lines out before it goes on (the shutdown's next wave, or exit).
#[derive(Default)]
pub struct Relays {
    live: Mutex<HashMap<String, usize>>,
    idle: Condvar,
}

impl Relays {
    /// Waits until every relay has written its last line, at most `limit`.
    pub fn drain(&self, limit: Duration) {
        self.wait_until(limit, |live| live.values().all(|&n| n == 0));
    }

    /// Waits until `name`'s relays have written their last line, at most
    /// `limit` (a process that inherited its stdout may hold it open).
    pub fn drain_service(&self, name: &str, limit: Duration) {
        self.wait_until(limit, |live| live.get(name).is_none_or(|&n| n == 0));
    }

    fn wait_until(&self, limit: Duration, done: impl Fn(&HashMap<String, usize>) -> bool) {
        let end = Instant::now() + limit;
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        while !done(&live) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            live = match self.idle.wait_timeout(live, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    fn add(&self, name: &str, n: isize) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let count = live.entry(name.to_string()).or_insert(0);
        *count = count.saturating_add_signed(n);
        self.idle.notify_all();
    }
}

/// Relays `fd` until EOF (when every writer, the service and whatever it
/// left behind, has closed it).
pub fn relay(relays: &Arc<Relays>, name: &str, fd: OwnedFd, stream: Stream) {
    let prefix = format!("{name} | ").into_bytes();
    let relays2 = Arc::clone(relays);
    let owner = name.to_string();
    relays.add(name, 1);
    let spawned = std::thread::Builder::new()
        .name(format!("out-{name}"))
        .stack_size(64 * 1024)
        .spawn(move || {
            pump(std::fs::File::from(fd), &prefix, stream);
            relays2.add(&owner, -1);
        });
    if let Err(e) = spawned {
        relays.add(name, -1);
        log::error!("cannot relay output of {name}: {e}");
    }
}

fn pump(mut src: std::fs::File, prefix: &[u8], stream: Stream) {
    let mut buf = vec![0u8; 8192];
    let mut line: Vec<u8> = Vec::with_capacity(256);
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        for chunk in buf[..n].split_inclusive(|&b| b == b'\n') {
            line.extend_from_slice(chunk);
            if line.ends_with(b"\n") || line.len() >= MAX_LINE {
                emit(prefix, &line, stream);
                line.clear();
            }
        }
    }
    if !line.is_empty() {
        emit(prefix, &line, stream);
    }
}

fn emit(prefix: &[u8], line: &[u8], stream: Stream) {
    let mut out = Vec::with_capacity(prefix.len() + line.len() + 1);
    out.extend_from_slice(prefix);
    out.extend_from_slice(line);
    if !line.ends_with(b"\n") {
        out.push(b'\n');
    }
    // Errors (a closed stdout) are dropped: the service must keep running.
    let _ = match stream {
        Stream::Stdout => std::io::stdout().lock().write_all(&out),
        Stream::Stderr => std::io::stderr().lock().write_all(&out),
    };
}
