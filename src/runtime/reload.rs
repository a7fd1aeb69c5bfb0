//! The shell's half of `rinit ctl reload` (SPEC section 11): re-read and
//! validate the file rinit was started with, plan the change by name
//! (`config::diff`), bind any moved socket before anything changes, match
//! the new services to the core's slots, and hand the core one
//! `Event::Reload`. Nothing here blocks: the file must be a regular file
//! (a FIFO in its place would stall PID 1), binds are non-blocking, and a
//! probe host the new file adds is resolved only from /etc/hosts or as an
//! IP literal (the system resolver is asked only before supervision).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::Duration;

use super::Shell;
use crate::config::diff::{self, Change, Planned};
use crate::config::{self, Config, ReadyCheck};
use crate::core::types::{ChangeKind, Event, Reload, Reply, RequestId, SlotChange};
use crate::core::Supervisor;
use crate::io::{Cmd, HealthSwap};
use crate::os::sys;

/// One core slot as the shell knows it.
pub(super) struct Slot {
    pub(super) svc: config::Service,
    /// Removed by a reload: kept for its name and stop while the core
    /// stops it; never matched by name again.
    pub(super) removed: bool,
}

/// The slots at start: one per service, in file order.
pub(super) fn slots_of(cfg: Option<&Config>) -> Vec<Slot> {
    cfg.map(|c| {
        c.services
            .iter()
            .map(|svc| Slot {
                svc: svc.clone(),
                removed: false,
            })
            .collect()
    })
    .unwrap_or_default()
}

/// Sockets bound for a reload, not yet in use (closed if the reload goes
/// no further).
#[derive(Default)]
struct Rebind {
    health: Option<(Option<SocketAddr>, Option<TcpListener>)>,
    control: Option<(Option<PathBuf>, Option<UnixListener>)>,
}

fn reply(id: RequestId, ok: bool, refused: Option<String>, lines: Vec<String>) -> Reply {
    Reply {
        id,
        ok,
        refused,
        services: Vec::new(),
        lines,
    }
}

impl Shell {
    /// The file rinit was started with, read and validated as `rinit
    /// check` does; Err: the lines to answer with (nothing changes).
    fn load_current(&self) -> Result<Config, Vec<String>> {
        let Some(old) = self.spec.config.as_ref() else {
            return Err(vec![
                "rinit runs without a config file: nothing to reload".into()
            ]);
        };
        if !std::fs::metadata(&old.path).is_ok_and(|m| m.is_file()) {
            return Err(vec![format!(
                "{}: not a readable regular file",
                old.path.display()
            )]);
        }
        let new = config::load(&old.path).map_err(|errors| {
            let mut lines: Vec<String> = errors.to_string().lines().map(String::from).collect();
            let n = errors.errors.len();
            lines.push(format!(
                "{n} error{} in {}; nothing was changed",
                if n == 1 { "" } else { "s" },
                old.path.display()
            ));
            lines
        })?;
        super::preflight::check(&new).map_err(|e| vec![e, "nothing was changed".into()])?;
        Ok(new)
    }

    /// `rinit ctl reload --dry-run`: what a reload would do, per service
    /// and why. Nothing changes.
    pub(super) fn reload_plan(&self, id: RequestId) -> Reply {
        let out = match self.load_current() {
            Ok(new) => {
                let plan = self.spec.config.as_ref().map(|old| diff::plan(old, &new));
                let mut lines: Vec<String> =
                    plan.iter().flatten().map(ToString::to_string).collect();
                lines.extend(self.socket_moves(&new));
                lines.push("dry run: nothing was changed".into());
                reply(id, true, None, lines)
            }
            Err(lines) => reply(id, false, None, lines),
        };
        log::info!("control: reload --dry-run: {}", out.lines.join("; "));
        out
    }

    /// `rinit ctl reload`: the event for the core, or None once answered
    /// here (refused, a bad file, a socket that cannot be bound).
    pub(super) fn reload(
        &mut self,
        sup: &Supervisor,
        id: RequestId,
        timeout: Duration,
    ) -> Option<Event> {
        if let Some(why) = sup.reload_refusal() {
            self.reply(reply(id, false, Some(why.into()), Vec::new()));
            return None;
        }
        let new = match self.load_current() {
            Ok(new) => new,
            Err(lines) => {
                log::error!("control: reload rejected: {}", lines.join("; "));
                self.reply(reply(id, false, None, lines));
                return None;
            }
        };
        let rebind = match self.bind_moved(&new) {
            Ok(r) => r,
            Err(e) => {
                let lines = vec![e, "reload rejected; nothing was changed".into()];
                log::error!("control: {}", lines.join("; "));
                self.reply(reply(id, false, None, lines));
                return None;
            }
        };
        let old = self.spec.config.as_ref()?;
        let plan = diff::plan(old, &new);
        let buffer_changed = new.runtime.log_buffer != old.runtime.log_buffer;
        let changes = self.assign_slots(&plan, &new);
        let mut lines = self.commit_rebind(rebind);
        if buffer_changed {
            self.io.send(Cmd::LogBuffer(new.runtime.log_buffer));
            lines.push(format!("logs.buffer: {} bytes", new.runtime.log_buffer));
        }
        for slot in 0..self.slots.len() {
            self.sync_notify_socket(slot);
        }
        if self.health_addr.is_some() {
            // The health server leaves descriptors to every service.
            self.io
                .send(Cmd::Health(HealthSwap::Limits(self.health_limits())));
        }
        self.reload_lines = Some((id, lines));
        let event = Event::Reload(Box::new(Reload {
            id,
            changes,
            drain: new.drain,
            shutdown_timeout: self.spec.grace.unwrap_or(new.timeout),
            timeout,
        }));
        self.spec.config = Some(new);
        Some(event)
    }

    /// The core's answer to a reload, with what the shell did itself.
    pub(super) fn with_reload_lines(&mut self, mut r: Reply) -> Reply {
        if self
            .reload_lines
            .as_ref()
            .is_some_and(|(id, _)| *id == r.id)
        {
            if let Some((_, mut lines)) = self.reload_lines.take() {
                lines.append(&mut r.lines);
                r.lines = lines;
            }
        }
        r
    }

    /// Matches the plan to slots: a kept service keeps its slot, an added
    /// one takes the next free slot, a removed one's slot is marked. Every
    /// `depends_on` is rewritten from the new file's indices to slots.
    fn assign_slots(&mut self, plan: &[Planned], new: &Config) -> Vec<SlotChange> {
        let mut by_name: HashMap<String, usize> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.removed)
            .map(|(i, s)| (s.svc.name.clone(), i))
            .collect();
        let added = plan.iter().filter(|p| p.change == Change::Start);
        for (slot, p) in (self.slots.len()..).zip(added) {
            by_name.insert(p.name.clone(), slot);
        }
        let slot_of_new: Vec<usize> = new
            .services
            .iter()
            .map(|s| by_name.get(&s.name).copied().unwrap_or(usize::MAX))
            .collect();
        let mut changes = Vec::with_capacity(plan.len());
        for p in plan {
            let Some(&slot) = by_name.get(&p.name) else {
                continue;
            };
            let (kind, why) = match &p.change {
                Change::Unchanged => (ChangeKind::Unchanged, String::new()),
                Change::InPlace(keys) => (ChangeKind::InPlace, changed(keys)),
                Change::Restart(keys) => (ChangeKind::Restart, changed(keys)),
                Change::Start => (ChangeKind::Start, "added".to_string()),
                Change::Stop => (ChangeKind::Stop, "removed".to_string()),
            };
            let svc = new.services.iter().find(|s| s.name == p.name).map(|s| {
                let mut svc = s.clone();
                svc.policy.depends_on = s
                    .policy
                    .depends_on
                    .iter()
                    .filter_map(|&d| slot_of_new.get(d).copied())
                    .collect();
                svc
            });
            let policy = svc.as_ref().map(|s| s.policy.clone());
            match (kind, svc) {
                (ChangeKind::Stop, _) => {
                    if let Some(s) = self.slots.get_mut(slot) {
                        s.removed = true;
                    }
                }
                (ChangeKind::Start, Some(svc)) => self.slots.push(Slot {
                    svc,
                    removed: false,
                }),
                (_, Some(svc)) => {
                    if let Some(s) = self.slots.get_mut(slot) {
                        s.svc = svc;
                    }
                }
                (_, None) => continue,
            }
            changes.push(SlotChange {
                slot,
                kind,
                why,
                policy,
            });
        }
        changes
    }

    /// `health.listen` and `control.socket` as the new file would have
    /// them, unless given on the command line.
    fn wanted_sockets(&self, new: &Config) -> (Option<SocketAddr>, Option<PathBuf>) {
        let health = if self.spec.pinned.health {
            self.health_addr
        } else {
            new.health_listen
        };
        let control = if self.spec.pinned.control {
            self.control_path.clone()
        } else {
            let env_dir = crate::control::socket::env_runtime_dir();
            new.runtime.control_path(env_dir.as_deref())
        };
        (health, control)
    }

    /// For the dry run: the sockets a reload would move.
    fn socket_moves(&self, new: &Config) -> Vec<String> {
        let (health, control) = self.wanted_sockets(new);
        let mut lines = Vec::new();
        if health != self.health_addr {
            lines.push(health_moved(&self.health_addr, &health));
        }
        if control != self.control_path {
            lines.push(control_moved(&self.control_path, &control));
        }
        lines
    }

    /// Binds what moved, before anything changes; Err names what could
    /// not be bound (the whole reload is then rejected).
    fn bind_moved(&self, new: &Config) -> Result<Rebind, String> {
        let (health, control) = self.wanted_sockets(new);
        let mut rebind = Rebind::default();
        if health != self.health_addr {
            // Made non-blocking here, so that putting it in use cannot fail.
            let listener = match health {
                Some(addr) => Some(
                    crate::health::bind(addr)
                        .and_then(|l| l.set_nonblocking(true).map(|()| l))
                        .map_err(|e| format!("health.listen: cannot listen on {addr}: {e}"))?,
                ),
                None => None,
            };
            rebind.health = Some((health, listener));
        }
        if control != self.control_path {
            let listener = match &control {
                Some(path) => Some(open_control(path)?),
                None => None,
            };
            rebind.control = Some((control, listener));
        }
        Ok(rebind)
    }

    /// Puts the new sockets in use and closes the old ones; returns the
    /// lines for the reply.
    fn commit_rebind(&mut self, rebind: Rebind) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some((addr, listener)) = rebind.health {
            let swap = match (listener, self.published.clone()) {
                (None, _) => Some(HealthSwap::Off),
                (Some(l), _) if self.health_addr.is_some() => Some(HealthSwap::Listener(l)),
                (Some(l), Some(published)) => self.new_health_server(l, published),
                (Some(_), None) => None,
            };
            if let Some(swap) = swap {
                self.io.send(Cmd::Health(swap));
                lines.push(health_moved(&self.health_addr, &addr));
                self.health_addr = addr;
            }
        }
        if let Some((path, listener)) = rebind.control {
            self.io.send(Cmd::ControlListener(listener));
            lines.push(control_moved(&self.control_path, &path));
            if let Some(old) = std::mem::replace(&mut self.control_path, path) {
                crate::control::socket::remove(&old);
            }
        }
        for line in &lines {
            log::info!("reload: {line}");
        }
        lines
    }

    fn new_health_server(
        &self,
        listener: TcpListener,
        published: std::sync::Arc<crate::health::Published>,
    ) -> Option<HealthSwap> {
        match crate::health::server::Server::new(listener, published, self.health_limits()) {
            Ok(server) => Some(HealthSwap::Server(Box::new(server))),
            Err(e) => {
                log::error!("reload: cannot serve health: {e}");
                None
            }
        }
    }

    /// The health server's bounds for the services the file has now (the
    /// removed ones give their descriptors back as they stop).
    fn health_limits(&self) -> crate::health::Limits {
        super::health_limits(self.slots.iter().filter(|s| !s.removed).count())
    }

    /// Gives slot `slot` the notify socket its config asks for: one bound
    /// for an sd_notify service (SPEC section 12) under
    /// `<runtime_dir>/notify/`, owned by its user when rinit switches to
    /// it; closed and removed for a service that no longer needs one.
    pub(super) fn sync_notify_socket(&mut self, slot: usize) {
        if self.notify_sockets.len() < self.slots.len() {
            self.notify_sockets.resize(self.slots.len(), None);
        }
        let Some(s) = self.slots.get(slot) else {
            return;
        };
        // `policy.notify` also covers `ready: {fd: N}`, which has its pipe
        // and no socket.
        let wants = !s.removed && s.svc.ready == Some(ReadyCheck::Notify);
        let has = self.notify_sockets.get(slot).is_some_and(Option::is_some);
        if wants == has {
            return;
        }
        if !wants {
            self.io.send(Cmd::NotifyClose { service: slot });
            if let Some(address) = self.notify_sockets.get_mut(slot).and_then(Option::take) {
                if !address.starts_with('@') {
                    let _ = std::fs::remove_file(address);
                }
            }
            return;
        }
        let Some(cfg) = self.spec.config.as_ref() else {
            return;
        };
        let env_dir = crate::control::socket::env_runtime_dir();
        let dir = cfg.runtime.runtime_dir(env_dir.as_deref()).join("notify");
        let owner = s
            .svc
            .user
            .as_ref()
            .filter(|_| sys::euid() == 0)
            .map(|u| (u.uid, u.gid));
        match crate::os::notify::bind(&dir, &s.svc.name, owner) {
            Ok(bound) => {
                self.io.send(Cmd::Notify {
                    service: slot,
                    fd: bound.fd,
                });
                if let Some(entry) = self.notify_sockets.get_mut(slot) {
                    *entry = Some(bound.address);
                }
            }
            Err(e) => log::error!(
                "{}: no notify socket ({e}): it cannot say READY=1",
                s.svc.name
            ),
        }
    }
}

fn changed(keys: &[&str]) -> String {
    format!("{} changed", keys.join(", "))
}

/// The moved control socket, bound and non-blocking (so that putting it in
/// use cannot fail); Err is the reason the reload is rejected.
fn open_control(path: &std::path::Path) -> Result<UnixListener, String> {
    let listener =
        crate::control::socket::open(path).map_err(|e| format!("control.socket: {e}"))?;
    if let Err(e) = listener.set_nonblocking(true) {
        crate::control::socket::remove(path);
        return Err(format!(
            "control.socket: cannot make {} non-blocking: {e}",
            path.display()
        ));
    }
    Ok(listener)
}

/// The reply's line for a moved health socket, dry run or done.
fn health_moved(from: &Option<SocketAddr>, to: &Option<SocketAddr>) -> String {
    let show = |a: &Option<SocketAddr>| a.map_or("off".to_string(), |a| a.to_string());
    format!("health: {} -> {}", show(from), show(to))
}

/// The reply's line for a moved control socket, dry run or done.
fn control_moved(from: &Option<PathBuf>, to: &Option<PathBuf>) -> String {
    let show = |p: &Option<PathBuf>| {
        p.as_ref()
            .map_or("off".to_string(), |p| p.display().to_string())
    };
    format!("control: {} -> {}", show(from), show(to))
}
