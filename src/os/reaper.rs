//! The reaper: the only code in rinit that waits for children. One thread
//! blocks in `waitpid(-1)` and reports every exit, known child or adopted
//! orphan alike. When no child is left it reports that, then parks until
//! the next spawn; it never polls.

use std::sync::{Arc, Condvar, Mutex};

use super::sys;
use crate::core::types::ExitStatus;

/// Counts spawns so that a "no children" report made before a spawn can
/// be recognised as stale, and wakes the parked reaper.
#[derive(Default)]
pub struct SpawnCounter {
    count: Mutex<u64>,
    wake: Condvar,
}

impl SpawnCounter {
    pub fn current(&self) -> u64 {
        *self.count.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Call after every fork.
    pub fn bump(&self) {
        let mut c = self.count.lock().unwrap_or_else(|p| p.into_inner());
        *c += 1;
        self.wake.notify_all();
    }

    fn wait_past(&self, seen: u64) {
        let mut c = self.count.lock().unwrap_or_else(|p| p.into_inner());
        while *c == seen {
            c = self.wake.wait(c).unwrap_or_else(|p| p.into_inner());
        }
    }
}

pub enum Reaped {
    Exit {
        pid: i32,
        status: ExitStatus,
    },
    /// No child was left after `spawns` spawns.
    NoChildren {
        spawns: u64,
    },
}

/// Starts the reaper thread; `report` gets every exit.
pub fn start(
    counter: Arc<SpawnCounter>,
    report: impl Fn(Reaped) + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("reaper".into())
        .stack_size(64 * 1024)
        .spawn(move || loop {
            let seen = counter.current();
            match sys::wait_any() {
                Ok((pid, raw)) => {
                    let status = match sys::decode_status(raw) {
                        Ok(code) => ExitStatus::Code(code),
                        Err(sig) => ExitStatus::Signal(sig),
                    };
                    report(Reaped::Exit { pid, status });
                }
                Err(libc::EINTR) => {}
                Err(_) => {
                    // ECHILD (or something waitpid should never say): nothing
                    // to wait for until the supervisor forks again.
                    report(Reaped::NoChildren { spawns: seen });
                    counter.wait_past(seen);
                }
            }
        })
        .map(|_| ())
}
