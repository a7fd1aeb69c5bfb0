//! The io thread's side of sd_notify: every service's notify socket in the
//! poll set; each datagram parsed and reported with its sender's session,
//! for the supervisor to accept or ignore. And the readiness pipes of
//! `ready: {fd: N}` (s6's notification-fd): the first newline is READY=1
//! from the process the pipe was made for.

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
    /// (service, the process it was made for, read end).
    pipes: Vec<(usize, i32, OwnedFd)>,
    done: Vec<NotifyDone>,
}

impl NotifySockets {
    pub fn add(&mut self, service: usize, fd: OwnedFd) {
        self.sockets.push((service, fd));
    }

    /// Closes the service's socket; its readiness pipes stay.
    pub fn remove(&mut self, service: usize) {
        self.sockets.retain(|(s, _)| *s != service);
    }

    pub fn add_ready_pipe(&mut self, service: usize, pid: i32, fd: OwnedFd) {
        if crate::os::sys::set_nonblocking(fd.as_raw_fd()) {
            self.pipes.push((service, pid, fd));
        }
    }

    pub fn interest(&self, fds: &mut Vec<libc::pollfd>) {
        let pipes = self.pipes.iter().map(|(_, _, fd)| fd);
        for fd in self.sockets.iter().map(|(_, fd)| fd).chain(pipes) {
            fds.push(libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
    }

    pub fn on_ready(&mut self, revents: &[libc::c_short]) {
        let (sockets, pipes) = revents.split_at(self.sockets.len().min(revents.len()));
        self.read_pipes(pipes);
        for (k, (service, fd)) in self.sockets.iter().enumerate() {
            if sockets.get(k).is_none_or(|&r| r == 0) {
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

    /// A newline: ready, and the pipe is done; EOF (or an error) without
    /// one: done, nothing said. Other bytes are read and dropped.
    fn read_pipes(&mut self, revents: &[libc::c_short]) {
        let mut k = 0;
        self.pipes.retain(|(service, pid, fd)| {
            let ready = revents.get(k).is_some_and(|&r| r != 0);
            k += 1;
            if !ready {
                return true;
            }
            let mut buf = [0u8; 512];
            match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
                Ok(n) if n > 0 && !buf[..n].contains(&b'\n') => true,
                Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => true,
                Ok(n) => {
                    if n > 0 {
                        let notice = Notice {
                            ready: true,
                            ..Notice::default()
                        };
                        self.done.push(NotifyDone {
                            service: *service,
                            session: Some(*pid),
                            notice: Some(notice),
                        });
                    }
                    false
                }
                Err(_) => false,
            }
        });
    }

    pub fn take_done(&mut self) -> Vec<NotifyDone> {
        std::mem::take(&mut self.done)
    }
}
