//! systemd's readiness protocol (`sd_notify(3)`), the datagram side: one
//! datagram holds newline-separated `KEY=VALUE` assignments. A pure parser
//! of hostile input (any bytes, from any process that can reach the
//! socket): it never fails, keeps what it understands and counts the rest.

/// The largest datagram taken (SPEC section 12); longer ones are ignored
/// whole, by the socket reader.
pub const MAX_DATAGRAM: usize = 4096;

/// `STATUS=` text is kept to this many characters (it lands in `/status`
/// and the log).
pub const MAX_STATUS_CHARS: usize = 200;

/// What one datagram says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notice {
    /// `READY=1`.
    pub ready: bool,
    /// `RELOADING=1`: not ready until the next `READY=1`.
    pub reloading: bool,
    /// `STOPPING=1`.
    pub stopping: bool,
    /// `WATCHDOG=1`: the watchdog is fed.
    pub watchdog: bool,
    /// `WATCHDOG=trigger`: the service asks to be treated as hung.
    pub watchdog_trigger: bool,
    /// `STATUS=...`: free text, control characters replaced, bounded.
    pub status: Option<String>,
    /// `EXTEND_TIMEOUT_USEC=N`: needs N more microseconds to start.
    pub extend_timeout_usec: Option<u64>,
    /// `MAINPID=N`: logged and ignored (rinit tracks the process group).
    pub main_pid: Option<u32>,
    /// Assignments not understood (unknown keys, bad values, no `=`).
    pub ignored: u32,
}

impl Notice {
    /// True when the datagram says anything rinit acts on.
    pub fn is_empty(&self) -> bool {
        !(self.ready
            || self.reloading
            || self.stopping
            || self.watchdog
            || self.watchdog_trigger
            || self.status.is_some()
            || self.extend_timeout_usec.is_some()
            || self.main_pid.is_some())
    }
}

pub fn parse(datagram: &[u8]) -> Notice {
    let mut n = Notice::default();
    for line in datagram.split(|&b| b == b'\n') {
        if line.is_empty() {
            continue;
        }
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            n.ignored = n.ignored.saturating_add(1);
            continue;
        };
        let (key, value) = (&line[..eq], &line[eq + 1..]);
        let understood = match key {
            b"READY" => flag(value, &mut n.ready),
            b"RELOADING" => flag(value, &mut n.reloading),
            b"STOPPING" => flag(value, &mut n.stopping),
            b"WATCHDOG" if value == b"trigger" => {
                n.watchdog_trigger = true;
                true
            }
            b"WATCHDOG" => flag(value, &mut n.watchdog),
            b"STATUS" => {
                n.status = Some(status_text(value));
                true
            }
            b"EXTEND_TIMEOUT_USEC" => number(value)
                .map(|v| n.extend_timeout_usec = Some(v))
                .is_some(),
            b"MAINPID" => number(value)
                .and_then(|v| u32::try_from(v).ok())
                .filter(|&p| p > 0)
                .map(|p| n.main_pid = Some(p))
                .is_some(),
            _ => false,
        };
        if !understood {
            n.ignored = n.ignored.saturating_add(1);
        }
    }
    n
}

/// `1` sets the flag; anything else is not understood (systemd only
/// defines `1`).
fn flag(value: &[u8], to: &mut bool) -> bool {
    if value == b"1" {
        *to = true;
        true
    } else {
        false
    }
}

/// A decimal number of at most 20 digits that fits u64.
fn number(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 20 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Lossy UTF-8, control characters as spaces, at most MAX_STATUS_CHARS.
fn status_text(value: &[u8]) -> String {
    String::from_utf8_lossy(value)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_STATUS_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_messages() {
        let n = parse(b"READY=1\nSTATUS=accepting connections\nMAINPID=42\n");
        assert!(n.ready && !n.reloading);
        assert_eq!(n.status.as_deref(), Some("accepting connections"));
        assert_eq!(n.main_pid, Some(42));
        assert_eq!(n.ignored, 0);
        let n = parse(b"RELOADING=1\nMONOTONIC_USEC=123");
        assert!(n.reloading);
        assert_eq!(n.ignored, 1, "MONOTONIC_USEC is not used");
        assert!(parse(b"WATCHDOG=1").watchdog);
        assert!(parse(b"WATCHDOG=trigger").watchdog_trigger);
        assert!(parse(b"STOPPING=1").stopping);
        assert_eq!(
            parse(b"EXTEND_TIMEOUT_USEC=5000000").extend_timeout_usec,
            Some(5_000_000)
        );
    }

    #[test]
    fn hostile_input_is_counted_not_trusted() {
        let n = parse(b"READY=0\nREADY\n=1\nREADY=11\nMAINPID=0\nMAINPID=-1\nEXTEND_TIMEOUT_USEC=99999999999999999999999\n");
        assert!(!n.ready);
        assert_eq!(n.main_pid, None);
        assert_eq!(n.extend_timeout_usec, None);
        assert_eq!(n.ignored, 7);
        assert!(n.is_empty());
        let n = parse(b"STATUS=a\x1b[31mred\x00\xff\n\n\n");
        assert_eq!(n.status.as_deref(), Some("a [31mred \u{fffd}"));
        let long = [b"STATUS=".as_slice(), &[b'x'; 5000]].concat();
        assert_eq!(parse(&long).status.map(|s| s.len()), Some(MAX_STATUS_CHARS));
        assert_eq!(parse(b""), Notice::default());
        // The last of repeated keys wins for text; flags stay set.
        let n = parse(b"STATUS=one\nSTATUS=two\nREADY=1\nREADY=0");
        assert_eq!(n.status.as_deref(), Some("two"));
        assert!(n.ready);
    }
}

/// rinit as a notify client of whoever started it (podman
/// `--sdnotify=container`, systemd): what it has said so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientState {
    ready_sent: bool,
    stopping_sent: bool,
    last_status: String,
}

impl ClientState {
    /// The datagrams to send after the supervisor published `snap`:
    /// `READY=1` once every service is ready (oneshots done) and the main
    /// command, if any, started; `STATUS=` when the summary changes;
    /// `STOPPING=1` when the shutdown starts. Each at most once.
    pub fn messages(&mut self, snap: &super::snapshot::Snapshot, has_main: bool) -> Vec<String> {
        let mut out = Vec::new();
        if snap.shutting_down {
            if !self.stopping_sent {
                self.stopping_sent = true;
                out.push("STOPPING=1\nSTATUS=shutting down".to_string());
            }
            return out;
        }
        let total = snap.services.len();
        let ready = snap.services.iter().filter(|s| s.ready).count();
        let main_up = !has_main || snap.main_pid.is_some();
        let mut status = format!("{ready}/{total} services ready");
        if has_main {
            status.push_str(if main_up {
                ", main command running"
            } else {
                ", main command not started"
            });
        }
        let mut msg = String::new();
        if !self.ready_sent && snap.ready() && main_up {
            self.ready_sent = true;
            msg.push_str("READY=1\n");
        }
        if status != self.last_status {
            msg.push_str("STATUS=");
            msg.push_str(&status);
            self.last_status = status;
        }
        if !msg.is_empty() {
            out.push(msg.trim_end().to_string());
        }
        out
    }
}

#[cfg(test)]
mod client_tests {
    use super::super::snapshot::{LivenessView, Phase, ServiceView, Snapshot};
    use super::ClientState;

    fn snap(ready: &[bool], main: Option<i32>, shutting_down: bool) -> Snapshot {
        let mut s = Snapshot::empty();
        s.main_pid = main;
        s.shutting_down = shutting_down;
        for (i, &r) in ready.iter().enumerate() {
            s.services.push(ServiceView {
                id: i,
                removed: false,
                name: format!("s{i}"),
                phase: if r { Phase::Running } else { Phase::Starting },
                pid: Some(10 + i as i32),
                restarts: 0,
                last_exit: None,
                since: None,
                critical: true,
                wanted_up: true,
                restarts_operator: 0,
                ready: r,
                ever_ready: r,
                liveness: LivenessView::None,
                liveness_failures_total: 0,
                notify_status: None,
            });
        }
        s
    }

    #[test]
    fn ready_once_everything_is_up_then_stopping_at_the_shutdown() {
        let mut c = ClientState::default();
        assert_eq!(
            c.messages(&snap(&[true, false], None, false), true),
            ["STATUS=1/2 services ready, main command not started"]
        );
        assert!(
            c.messages(&snap(&[true, false], None, false), true)
                .is_empty(),
            "no change, nothing sent"
        );
        assert_eq!(
            c.messages(&snap(&[true, true], Some(7), false), true),
            ["READY=1\nSTATUS=2/2 services ready, main command running"]
        );
        // A service restarting later changes the status, never READY again.
        assert_eq!(
            c.messages(&snap(&[true, false], Some(7), false), true),
            ["STATUS=1/2 services ready, main command running"]
        );
        assert_eq!(
            c.messages(&snap(&[true, true], Some(7), false), true),
            ["STATUS=2/2 services ready, main command running"]
        );
        assert_eq!(
            c.messages(&snap(&[true, true], Some(7), true), true),
            ["STOPPING=1\nSTATUS=shutting down"]
        );
        assert!(c
            .messages(&snap(&[true, true], Some(7), true), true)
            .is_empty());
    }

    #[test]
    fn services_only_are_ready_without_a_main_command() {
        let mut c = ClientState::default();
        assert_eq!(
            c.messages(&snap(&[true], None, false), false),
            ["READY=1\nSTATUS=1/1 services ready"]
        );
    }
}
