//! The HTTP health server (SPEC section 7) and the `rinit probe` client.
//!
//! Owns: the `Published` slot through which the supervisor hands each new
//! snapshot to the server, the server thread (`server`), the mapping from
//! requests to responses (`http`, `render`) and the probe client
//! (`probe_client`).
//!
//! Invariants: the server only ever reads snapshots; the supervisor never
//! waits on the server for longer than it takes to swap one `Arc` under a
//! lock that nobody holds across I/O or rendering.

pub mod http;
pub mod probe_client;
pub mod render;
pub mod server;

#[cfg(test)]
mod json_check;
#[cfg(test)]
mod server_tests;

use std::sync::{Arc, Mutex, MutexGuard};

use crate::core::snapshot::Snapshot;

pub use server::{bind, serve_with, Limits};

/// The latest snapshot, shared between the supervisor (writer) and the HTTP
/// server (reader). The lock is held only to clone or swap the `Arc`; the old
/// snapshot is dropped after the lock is released.
#[derive(Debug)]
pub struct Published {
    current: Mutex<Arc<Snapshot>>,
}

impl Published {
    pub fn new(initial: Snapshot) -> Self {
        Published {
            current: Mutex::new(Arc::new(initial)),
        }
    }

    /// Replace the published snapshot; the next request answers from it.
    pub fn publish(&self, snapshot: Arc<Snapshot>) {
        let old = std::mem::replace(&mut *self.slot(), snapshot);
        drop(old);
    }

    /// The snapshot to answer one request from.
    pub fn current(&self) -> Arc<Snapshot> {
        Arc::clone(&self.slot())
    }

    /// A poisoned lock still guards a valid `Arc` (nothing can panic while
    /// holding it: only a clone or a swap happens inside), so take it anyway.
    fn slot(&self) -> MutexGuard<'_, Arc<Snapshot>> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for Published {
    fn default() -> Self {
        Published::new(Snapshot::empty())
    }
}
