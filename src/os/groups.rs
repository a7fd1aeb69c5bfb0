//! Signalling only processes rinit still owns. Two records:
//! - the leaders it spawned, each with a pidfd when the kernel has them
//!   (Linux 5.3+), kept until the core has handled the leader's exit: a
//!   group is signalled only while its leader has not been reaped, so a
//!   reused pid is never hit (the reaper may have reaped a leader whose
//!   exit the core has not seen yet);
//! - the groups being drained (their leader was reaped, members may be
//!   left): signalled only while `kill(-pgid, 0)` finds members. Members
//!   are rinit's children (reparented to PID 1 or the subreaper) and stay
//!   in the group, as zombies, until rinit reaps them, so the pgid cannot
//!   be reused while the check says the group exists.

use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;

use super::sys::{self, Pid};

/// How rinit can tell that a leader it spawned is still unreaped.
enum Leader {
    Pidfd(OwnedFd),
    /// No pidfds here (ENOSYS, or out of descriptors): plain kill.
    NoPidfd,
    /// Reaped before the pidfd could be opened.
    Gone,
}

#[derive(Default)]
pub struct Groups {
    leaders: HashMap<Pid, Leader>,
    watched: HashSet<Pid>,
}

impl Groups {
    /// Right after a fork: remember the leader (its pidfd if possible).
    pub fn track(&mut self, pid: Pid) {
        let leader = match sys::pidfd_open(pid) {
            Ok(fd) => Leader::Pidfd(fd),
            Err(libc::ESRCH) => Leader::Gone,
            Err(_) => Leader::NoPidfd,
        };
        self.leaders.insert(pid, leader);
    }

    /// The core has handled the leader's exit: drop its pidfd.
    pub fn forget(&mut self, pid: Pid) {
        self.leaders.remove(&pid);
    }

    /// Signals the group of a leader that has not been reaped (or, if the
    /// leader left its group, the leader alone). A pid rinit never
    /// spawned (kept for safety) gets the plain group signal.
    pub fn signal_group(&self, pgid: Pid, sig: i32) {
        if pgid <= 0 {
            return;
        }
        if !self.unreaped(pgid) {
            log::debug!("not signalling group {pgid}: its leader has been reaped");
            return;
        }
        if sys::kill(-pgid, sig) == Err(libc::ESRCH) {
            let _ = match self.leaders.get(&pgid) {
                Some(Leader::Pidfd(fd)) => sys::pidfd_send_signal(fd, sig),
                _ => sys::kill(pgid, sig),
            };
        }
    }

    /// False when the leader `pid` is known to have been reaped (its pid
    /// may belong to someone else by now); true when it has not been, or
    /// when rinit cannot tell (no pidfds: the core's view is all there is).
    fn unreaped(&self, pid: Pid) -> bool {
        match self.leaders.get(&pid) {
            Some(Leader::Pidfd(fd)) => sys::pidfd_send_signal(fd, 0).is_ok(),
            Some(Leader::Gone) => false,
            Some(Leader::NoPidfd) | None => true,
        }
    }

    /// Starts watching a group whose leader was reaped. False when it is
    /// already empty (nothing to watch).
    pub fn watch(&mut self, pgid: Pid) -> bool {
        if !sys::group_exists(pgid) {
            return false;
        }
        self.watched.insert(pgid);
        true
    }

    /// Signals what is left of a watched group.
    pub fn signal_leftovers(&self, pgid: Pid, sig: i32) {
        if self.watched.contains(&pgid) && sys::group_exists(pgid) {
            let _ = sys::kill(-pgid, sig);
        }
    }

    /// The watched groups that have become empty (no longer watched).
    pub fn gone(&mut self) -> Vec<Pid> {
        let gone: Vec<Pid> = self
            .watched
            .iter()
            .copied()
            .filter(|&g| !sys::group_exists(g))
            .collect();
        for g in &gone {
            self.watched.remove(g);
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_group_is_not_watched() {
        let mut g = Groups::default();
        // A pgid no process can have (above pid_max's hard limit).
        assert!(!g.watch(1 << 30));
        assert!(g.gone().is_empty());
    }

    #[test]
    fn a_watched_group_is_reported_once_it_is_empty() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .process_group(0)
            .spawn()
            .expect("spawn sleep");
        let pgid = child.id() as Pid;
        let mut g = Groups::default();
        assert!(g.watch(pgid));
        assert!(g.gone().is_empty(), "its member runs");
        g.signal_leftovers(pgid, libc::SIGKILL);
        // A zombie is still a member: the group is gone once reaped.
        let _ = child.wait();
        assert_eq!(g.gone(), vec![pgid]);
        assert!(g.gone().is_empty(), "reported once");
    }

    #[test]
    fn a_reaped_leader_is_known_as_such() {
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id() as Pid;
        let mut g = Groups::default();
        g.track(pid);
        let pidfds = matches!(g.leaders.get(&pid), Some(Leader::Pidfd(_)));
        assert!(g.unreaped(pid));
        let _ = child.kill();
        let _ = child.wait();
        // With pidfds (Linux 5.3+) the reaped leader is known to be gone
        // and is never signalled; without, rinit falls back to the core's
        // view, which has not seen the exit yet.
        assert_eq!(g.unreaped(pid), !pidfds);
        g.signal_group(pid, libc::SIGTERM);
        g.forget(pid);
        assert!(g.leaders.is_empty());
    }
}
