//! Forwarding the signals that do not start a shutdown (SPEC section 6):
//! to the main command, and to each service whose `forward` lets the
//! signal through, with one log line naming who got it and who did not.

use super::signal;
use super::supervisor::{Level, MainState, Supervisor};
use super::types::Action;

impl Supervisor {
    /// Sends a non-shutdown signal to the main command and to every
    /// service whose `forward` lets it through, and says who got it.
    pub(super) fn forward(&mut self, sig: i32, acts: &mut Vec<Action>) {
        let mut reached = Vec::new();
        let mut not = Vec::new();
        if let MainState::Running { pid } = self.main {
            acts.push(Action::SignalGroup {
                pgid: pid,
                signal: sig,
            });
            reached.push("main command".to_string());
        }
        for s in &self.services {
            let Some(pid) = s.pid() else {
                continue;
            };
            if s.policy.forward.allows(sig) {
                acts.push(Action::SignalGroup {
                    pgid: pid,
                    signal: sig,
                });
                reached.push(s.name().to_string());
            } else {
                not.push(s.name().to_string());
            }
        }
        let name = signal::name(sig);
        let text = match (reached.is_empty(), not.is_empty()) {
            (true, true) => {
                return self.note(Level::Debug, format!("{name}: nothing to forward it to"))
            }
            (false, true) => format!("forwarded {name} to {}", reached.join(", ")),
            (true, false) => format!("forwarded {name} to nobody (not: {})", not.join(", ")),
            (false, false) => format!(
                "forwarded {name} to {} (not: {})",
                reached.join(", "),
                not.join(", ")
            ),
        };
        // With services, who got it matters (their `forward`); a lone
        // command gets everything, as under tini, without a line each.
        let level = if self.services.is_empty() {
            Level::Debug
        } else {
            Level::Info
        };
        self.note(level, text);
    }
}
