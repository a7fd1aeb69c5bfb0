//! The io thread's side of sd_notify: every service's notify socket in the
//! poll set; each datagram parsed and reported with its sender's session,
//! for the supervisor to accept or ignore.

use std::os::fd::{AsRawFd, OwnedFd};

use crate::core::notify::{self, Notice};
use crate::os::notify::{receive, Received};
use crate::os::procs::session_of;

/// At most this many datagrams per socket per turn of the loop, so that a
/// flooding sender cannot starve the rest of the io thread.
const MAX_PER_TURN: usize = 64;

/// One datagram, as the supervisor gets it.
pub struct NotifyDone {
    pub service: usize,
    pub session: Option<i32>,
    /// None: over 4 KiB or unreadable.
    pub notice: Option<Notice>,
}

#[derive(Default)]
pub struct NotifySockets {
    sockets: Vec<(usize, OwnedFd)>,
    done: Vec<NotifyDone>,
}

impl NotifySockets {
    pub fn add(&mut self, service: usize, fd: OwnedFd) {
        self.sockets.push((service, fd));
    }

    pub fn interest(&self, fds: &mut Vec<libc::pollfd>) {
        for (_, fd) in &self.sockets {
            fds.push(libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
    }

    pub fn on_ready(&mut self, revents: &[libc::c_short]) {
        for (k, (service, fd)) in self.sockets.iter().enumerate() {
            if revents.get(k).is_none_or(|&r| r == 0) {
                continue;
            }
            for _ in 0..MAX_PER_TURN {
                let (pid, notice) = match receive(fd) {
                    Received::Empty => break,
                    Received::Unreadable => (None, None),
                    Received::Datagram { pid, bytes } => (pid, Some(notify::parse(&bytes))),
                };
                self.done.push(NotifyDone {
                    service: *service,
                    session: pid.and_then(session_of),
                    notice,
                });
            }
        }
    }

    pub fn take_done(&mut self) -> Vec<NotifyDone> {
        std::mem::take(&mut self.done)
    }
}
