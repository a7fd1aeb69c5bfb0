//! What the supervisor does with a service's sd_notify datagrams (SPEC
//! section 12): only the service's own session is heard; `READY=1` makes
//! it ready, `RELOADING=1` not ready until the next `READY=1`, `STATUS=`
//! is kept for `/status`, `WATCHDOG=1` feeds the watchdog, and
//! `EXTEND_TIMEOUT_USEC=` moves the start deadline once.

use std::time::{Duration, Instant};

use super::notify::Notice;
use super::supervisor::{Level, Supervisor};
use super::types::Action;

impl Supervisor {
    pub(super) fn on_notify(
        &mut self,
        i: usize,
        session: Option<i32>,
        notice: Option<Notice>,
        now: Instant,
        acts: &mut Vec<Action>,
    ) {
        let Some(s) = self.services.get(i) else {
            return;
        };
        // The service's processes are in the session its leader started
        // (rinit spawns every service with setsid): anything else writing
        // to the socket is another service, a probe or a stranger.
        let own = s.policy.notify && s.pid().is_some() && session == s.pid();
        let Some(notice) = notice.filter(|_| own) else {
            self.notify_ignored = self.notify_ignored.saturating_add(1);
            let text = format!(
                "{}: notify datagram ignored (from session {session:?}, not the service's, or over 4 KiB)",
                s.name()
            );
            self.note(Level::Debug, text);
            return;
        };
        let name = s.name().to_string();
        if let Some(pid) = notice.main_pid {
            let text =
                format!("{name}: MAINPID={pid} ignored: rinit follows the service's process group");
            self.note(Level::Debug, text);
        }
        if notice.stopping {
            self.note(
                Level::Info,
                format!("{name}: says it is stopping (STOPPING=1)"),
            );
        }
        let s = &mut self.services[i];
        if let Some(text) = notice.status {
            s.notify_status = Some(text);
        }
        if let Some(us) = notice.extend_timeout_usec {
            let extra = Duration::from_micros(us);
            if s.extend_start(now, extra) {
                self.note(
                    Level::Info,
                    format!("{name}: start deadline extended by {extra:?}"),
                );
            }
        }
        let s = &mut self.services[i];
        if notice.watchdog {
            s.feed_watchdog(now);
        }
        if notice.watchdog_trigger {
            return self.stop_unhealthy(i, "it asked for it (WATCHDOG=trigger)", now, acts);
        }
        // is_ready: running and not reloading already.
        if notice.reloading && s.is_ready() {
            s.reloading = true;
            self.note(
                Level::Info,
                format!("{name}: reloading (not ready until READY=1)"),
            );
        }
        let s = &mut self.services[i];
        if notice.ready {
            if std::mem::take(&mut s.reloading) {
                self.note(Level::Info, format!("{name}: reloaded, ready again"));
            } else if self.shutdown.is_none() && s.mark_ready(now) {
                self.note_ready(i);
            }
        }
    }

    /// A running service whose `WATCHDOG=1` did not come in time: as a
    /// liveness failure that restarts it at once.
    pub(super) fn watchdog_timer(&mut self, i: usize, now: Instant, acts: &mut Vec<Action>) {
        let Some(limit) = self
            .services
            .get_mut(i)
            .and_then(|s| s.watchdog_missed(now))
        else {
            return;
        };
        let why = format!("no WATCHDOG=1 for {limit:?}: watchdog");
        self.stop_unhealthy(i, &why, now, acts);
    }
}
