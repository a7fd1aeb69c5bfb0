//! The plan of a reload (SPEC section 11): two validated configs in, per
//! service what must happen and why, by name. Pure: the supervisor applies
//! the plan; `rinit ctl reload --dry-run` prints it.
//!
//! Key classes: a change in how the process runs restarts it; a change in
//! policy only is applied in place; a service only in the new file starts,
//! one only in the old stops. A renamed service is a stop and a start.

use super::{Config, Service};

/// What a reload does to one service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Unchanged,
    /// Policy keys changed: applied in place, the process keeps running.
    InPlace(Vec<&'static str>),
    /// How-the-process-runs keys changed: stopped and started again.
    Restart(Vec<&'static str>),
    /// Only in the new file.
    Start,
    /// Only in the old file.
    Stop,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub name: String,
    pub change: Change,
}

impl std::fmt::Display for Planned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.name.as_str();
        match &self.change {
            Change::Unchanged => write!(f, "{name}: unchanged"),
            Change::InPlace(keys) => {
                write!(f, "{name}: updated in place ({} changed)", keys.join(", "))
            }
            Change::Restart(keys) => write!(f, "{name}: restart ({} changed)", keys.join(", ")),
            Change::Start => write!(f, "{name}: start (added)"),
            Change::Stop => write!(f, "{name}: stop (removed)"),
        }
    }
}

/// The plan: the old file's services in its order (unchanged, updated,
/// restarted or stopped), then the services the new file adds, in its
/// order.
pub fn plan(old: &Config, new: &Config) -> Vec<Planned> {
    let find = |cfg: &'_ Config, name: &str| cfg.services.iter().position(|s| s.name == name);
    let mut out: Vec<Planned> = old
        .services
        .iter()
        .map(|o| {
            let change = match find(new, &o.name) {
                None => Change::Stop,
                Some(j) => compare(old, o, new, &new.services[j]),
            };
            Planned {
                name: o.name.clone(),
                change,
            }
        })
        .collect();
    out.extend(
        new.services
            .iter()
            .filter(|n| find(old, &n.name).is_none())
            .map(|n| Planned {
                name: n.name.clone(),
                change: Change::Start,
            }),
    );
    out
}

fn compare(old_cfg: &Config, o: &Service, new_cfg: &Config, n: &Service) -> Change {
    let process = process_changes(o, n);
    if !process.is_empty() {
        return Change::Restart(process);
    }
    let policy = policy_changes(old_cfg, o, new_cfg, n);
    if policy.is_empty() {
        Change::Unchanged
    } else {
        Change::InPlace(policy)
    }
}

/// How the process runs: a difference here means a new process. `env`
/// covers `env_file` contents and the login variables of `user` too (they
/// are merged when the file is read).
fn process_changes(o: &Service, n: &Service) -> Vec<&'static str> {
    let (op, np) = (&o.policy, &n.policy);
    let checks = [
        ("command", o.command != n.command),
        ("env", o.env != n.env),
        ("user", o.user != n.user),
        ("workdir", o.workdir != n.workdir),
        ("output", o.output != n.output),
        ("umask", o.hardening.umask != n.hardening.umask),
        ("rlimits", o.hardening.rlimits != n.hardening.rlimits),
        (
            "no_new_privs",
            o.hardening.no_new_privs != n.hardening.no_new_privs,
        ),
        (
            "ready",
            o.ready != n.ready || op.probe != np.probe || op.notify != np.notify,
        ),
        ("oneshot", op.oneshot != np.oneshot),
    ];
    changed(&checks)
}

/// Policy only: what the supervisor decides with, applied in place.
/// `depends_on` compares names (indices move when services are added).
fn policy_changes(
    old_cfg: &Config,
    o: &Service,
    new_cfg: &Config,
    n: &Service,
) -> Vec<&'static str> {
    let (op, np) = (&o.policy, &n.policy);
    let names = |cfg: &Config, s: &Service| -> Vec<String> {
        s.policy
            .depends_on
            .iter()
            .filter_map(|&d| cfg.services.get(d).map(|x| x.name.clone()))
            .collect()
    };
    let checks = [
        ("restart", op.restart != np.restart),
        (
            "backoff",
            (op.backoff_initial, op.backoff_max) != (np.backoff_initial, np.backoff_max),
        ),
        (
            "max_restarts",
            (op.max_restarts, op.restart_window) != (np.max_restarts, np.restart_window),
        ),
        ("critical", op.critical != np.critical),
        ("success_codes", op.success_codes != np.success_codes),
        ("stop_signal", op.stop_signal != np.stop_signal),
        ("stop_timeout", op.stop_timeout != np.stop_timeout),
        ("start_timeout", op.start_timeout != np.start_timeout),
        (
            "liveness",
            op.liveness != np.liveness || o.liveness != n.liveness,
        ),
        ("watchdog", op.watchdog != np.watchdog),
        ("depends_on", names(old_cfg, o) != names(new_cfg, n)),
        ("forward", op.forward != np.forward),
    ];
    changed(&checks)
}

fn changed(checks: &[(&'static str, bool)]) -> Vec<&'static str> {
    checks.iter().filter(|(_, c)| *c).map(|(k, _)| *k).collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::users::tests::FakeEtc;

    const BASE: &str = r#"
services:
  db:
    command: [postgres, -D, /data]
    ready: { tcp: "127.0.0.1:5432" }
  web:
    command: [web, --port, "8080"]
    depends_on: [db]
"#;

    fn parse(text: &str) -> Config {
        let etc = FakeEtc::new("diff");
        crate::config::parse(Path::new("t.yaml"), text, &etc.0)
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// The plan line for `web` after appending `extra` to its block.
    fn web_after(extra: &str) -> String {
        let new = format!("{}{extra}", BASE.trim_end());
        let plan = plan(&parse(BASE), &parse(&new));
        plan.iter()
            .find(|p| p.name == "web")
            .map(|p| p.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn every_key_is_in_its_class() {
        let cases = [
            ("\n    env: { A: b }", "web: restart (env changed)"),
            ("\n    workdir: /tmp", "web: restart (workdir changed)"),
            ("\n    output: inherit", "web: restart (output changed)"),
            ("\n    umask: \"077\"", "web: restart (umask changed)"),
            (
                "\n    rlimits: { nofile: 1024 }",
                "web: restart (rlimits changed)",
            ),
            (
                "\n    no_new_privs: true",
                "web: restart (no_new_privs changed)",
            ),
            (
                "\n    ready: { tcp: \"127.0.0.1:8080\" }",
                "web: restart (ready changed)",
            ),
            ("\n    oneshot: true", "web: restart (oneshot changed)"),
            // The login variables (HOME, USER...) come with the user.
            ("\n    user: \"1000\"", "web: restart (env, user changed)"),
            (
                "\n    restart: never",
                "web: updated in place (restart changed)",
            ),
            (
                "\n    backoff: { initial: 1s }",
                "web: updated in place (backoff changed)",
            ),
            (
                "\n    max_restarts: { count: 3 }",
                "web: updated in place (max_restarts changed)",
            ),
            (
                "\n    critical: false",
                "web: updated in place (critical changed)",
            ),
            (
                "\n    success_codes: [0, 3]",
                "web: updated in place (success_codes changed)",
            ),
            (
                "\n    stop_signal: SIGINT",
                "web: updated in place (stop_signal changed)",
            ),
            (
                "\n    stop_timeout: 20s",
                "web: updated in place (stop_timeout changed)",
            ),
            (
                "\n    start_timeout: 1m",
                "web: updated in place (start_timeout changed)",
            ),
            (
                "\n    liveness: { tcp: \"127.0.0.1:8080\" }",
                "web: updated in place (liveness changed)",
            ),
            (
                "\n    forward: none",
                "web: updated in place (forward changed)",
            ),
            ("", "web: unchanged"),
        ];
        for (extra, want) in cases {
            assert_eq!(web_after(extra), want, "{extra:?}");
        }
    }

    #[test]
    fn a_process_change_wins_and_names_every_key() {
        assert_eq!(
            web_after("\n    workdir: /tmp\n    no_new_privs: true\n    critical: false"),
            "web: restart (workdir, no_new_privs changed)"
        );
    }

    #[test]
    fn adds_removes_renames_and_dependencies_by_name() {
        let new = r#"
services:
  cache:
    command: [redis-server]
  database:
    command: [postgres, -D, /data]
    ready: { tcp: "127.0.0.1:5432" }
  web:
    command: [web, --port, "8080"]
    depends_on: [database]
"#;
        let lines: Vec<String> = plan(&parse(BASE), &parse(new))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                "db: stop (removed)",
                "web: updated in place (depends_on changed)",
                "cache: start (added)",
                "database: start (added)",
            ]
        );
        // Indices move when a service is added in front; names do not.
        let shifted = format!(
            "services:\n  first:\n    command: [x]\n{}",
            &BASE["\nservices:\n".len()..]
        );
        let plan = plan(&parse(BASE), &parse(&shifted));
        assert!(
            plan.iter().any(|p| p.to_string() == "web: unchanged"),
            "{plan:?}"
        );
    }
}
