//! The dependency graph of the services: `depends_on` names resolved to
//! indices (unknown names, self-dependencies and cycles reported, the cycle
//! printed as `a -> b -> a`), the start plan in waves (wave n holds the
//! services whose dependencies all sit in waves < n, in file order), and the
//! plan as `rinit check` prints it.
//!
//! Everything here is linear in services + dependencies (hashed name
//! lookups, Kahn's algorithm for the waves, an iterative depth-first search
//! for cycles): a config of 100,000 services must not take minutes, and a
//! long chain must not overflow PID 1's stack through recursion.

use std::collections::{HashMap, HashSet};

use super::locate::Report;
use super::raw::did_you_mean;
use super::validate::show;
use super::Config;

/// Resolves `depends` (names per service, in list order) against `names`;
/// returns the dependency indices per service and the waves. Waves cover
/// every service only when no problem was found.
pub fn plan(
    names: &[String],
    depends: &[Vec<String>],
    report: &mut Report,
) -> (Vec<Vec<usize>>, Vec<Vec<usize>>) {
    let deps = resolve(names, depends, report);
    let (waves, stuck) = crate::core::waves::waves(&deps);
    if stuck.iter().any(|s| *s) {
        for cycle in cycles(&deps, &stuck) {
            report_cycle(&cycle, names, depends, report);
        }
    }
    (deps, waves)
}

fn resolve(names: &[String], depends: &[Vec<String>], report: &mut Report) -> Vec<Vec<usize>> {
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    // First definition wins; a duplicate name was reported already.
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(all.len());
    for (i, name) in all.iter().enumerate() {
        index.entry(name).or_insert(i);
    }
    let mut resolved = vec![Vec::new(); names.len()];
    for (i, (name, wanted)) in all.iter().zip(depends).enumerate() {
        let at = ["services", name, "depends_on"];
        let mut seen = HashSet::new();
        for (item, dep) in wanted.iter().enumerate() {
            match index.get(dep.as_str()).copied() {
                Some(j) if j == i => {
                    report.at_item(&at, item, format!("`{dep}` depends on itself"))
                }
                Some(j) if seen.insert(j) => resolved[i].push(j),
                Some(_) => {}
                None => report.at_item(&at, item, unknown_dependency(dep, &all)),
            }
        }
    }
    resolved
}

/// Above this many services no "did you mean" is computed for an unknown
/// dependency: it compares with every name, and one error per service
/// would make that quadratic.
const HINT_LIMIT: usize = 1000;

fn unknown_dependency(dep: &str, all: &[&str]) -> String {
    let hint = match all.len() {
        0..=HINT_LIMIT => did_you_mean(dep, all),
        _ => None,
    };
    let hint = hint.map_or(String::new(), |n| format!(" (did you mean `{n}`?)"));
    // Listing every service is useful for a handful, noise for thousands.
    let known = match all.len() {
        0 => "none".to_string(),
        1..=20 => all.join(", "),
        n => format!("{} and {} more", all[..20].join(", "), n - 20),
    };
    format!("depends on `{dep}`, which is not a service{hint}; services: {known}")
}

/// The cycles among the stuck services, each starting at its member that
/// comes first in the file; each entry depends on the next, the last on the
/// first.
fn cycles(deps: &[Vec<usize>], stuck: &[bool]) -> Vec<Vec<usize>> {
    let mut state = vec![Mark::New; deps.len()];
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    for (root, &is_stuck) in stuck.iter().enumerate() {
        if is_stuck && state[root] == Mark::New {
            search(root, deps, stuck, &mut state, &mut |cycle| {
                if seen.insert(cycle.clone()) {
                    found.push(cycle);
                }
            });
        }
    }
    found
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    New,
    /// On the search path, at this depth.
    OnStack(usize),
    Done,
}

/// Iterative depth-first search from `root` over stuck services; a
/// dependency that is on the path closes a cycle, given to `found`.
fn search(
    root: usize,
    deps: &[Vec<usize>],
    stuck: &[bool],
    state: &mut [Mark],
    found: &mut dyn FnMut(Vec<usize>),
) {
    // The path, each with how many of its dependencies were looked at.
    let mut path: Vec<(usize, usize)> = vec![(root, 0)];
    state[root] = Mark::OnStack(0);
    while let Some(&mut (i, ref mut next)) = path.last_mut() {
        let Some(&d) = deps[i].get(*next) else {
            state[i] = Mark::Done;
            path.pop();
            continue;
        };
        *next += 1;
        if !stuck[d] {
            continue;
        }
        match state[d] {
            Mark::New => {
                state[d] = Mark::OnStack(path.len());
                path.push((d, 0));
            }
            Mark::OnStack(depth) => {
                let mut cycle: Vec<usize> = path[depth..].iter().map(|&(s, _)| s).collect();
                let first = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
                cycle.rotate_left(first);
                found(cycle);
            }
            Mark::Done => {}
        }
    }
}

/// Reports a cycle at the first service's `depends_on` item naming the next.
fn report_cycle(cycle: &[usize], names: &[String], depends: &[Vec<String>], report: &mut Report) {
    let (Some(&first), Some(&next)) = (cycle.first(), cycle.get(1).or(cycle.first())) else {
        return;
    };
    let name = |i: usize| names.get(i).map_or("?", String::as_str);
    let mut text: Vec<&str> = cycle.iter().map(|&i| name(i)).collect();
    text.push(name(first));
    let wanted = depends.get(first).map_or(&[][..], Vec::as_slice);
    let item = wanted.iter().position(|d| d == name(next)).unwrap_or(0);
    let at = ["services", name(first), "depends_on"];
    report.at_item(
        &at,
        item,
        format!("dependency cycle: {}", text.join(" -> ")),
    );
}

/// The plan as `rinit check` prints it, one line each, newline-terminated.
pub fn describe_plan(cfg: &Config) -> String {
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let mut lines = vec![format!(
        "config {} is valid: {} in {}",
        cfg.path.display(),
        count(cfg.services.len(), "service"),
        count(cfg.waves.len(), "wave")
    )];
    for (n, wave) in cfg.waves.iter().enumerate() {
        let members: Vec<String> = wave.iter().map(|&i| describe_service(cfg, i)).collect();
        lines.push(format!("wave {}: {}", n + 1, members.join(", ")));
    }
    lines.push(match cfg.health_listen {
        Some(addr) => format!("health: {addr}"),
        None => "health: off".to_string(),
    });
    let stop: Vec<String> = cfg.waves.iter().rev().map(|w| names_of(cfg, w)).collect();
    let stop = if stop.is_empty() {
        "none".to_string()
    } else {
        stop.join(", then ")
    };
    lines.push(format!(
        "shutdown: drain {}, timeout {}; stop order: {stop}",
        show(cfg.drain),
        show(cfg.timeout)
    ));
    lines.push(match cfg.runtime.control_path(None) {
        Some(p) => format!(
            "control: {} (logs.buffer {} bytes per service)",
            p.display(),
            cfg.runtime.log_buffer
        ),
        None => "control: off".to_string(),
    });
    lines.push(String::new());
    lines.join("\n")
}

fn describe_service(cfg: &Config, i: usize) -> String {
    let Some(service) = cfg.services.get(i) else {
        return String::new();
    };
    let mut notes = Vec::new();
    if service.policy.oneshot {
        notes.push("oneshot".to_string());
    }
    if !service.policy.depends_on.is_empty() {
        notes.push(format!(
            "after {}",
            names_of(cfg, &service.policy.depends_on)
        ));
    }
    if notes.is_empty() {
        service.name.clone()
    } else {
        format!("{} ({})", service.name, notes.join(", "))
    }
}

fn names_of(cfg: &Config, indices: &[usize]) -> String {
    let names: Vec<&str> = indices
        .iter()
        .filter_map(|&i| cfg.services.get(i).map(|s| s.name.as_str()))
        .collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use crate::config::{describe_plan, parse, Config};
    use std::path::Path;

    fn load(yaml: &str) -> Result<Config, Vec<String>> {
        parse(Path::new("/x.yaml"), yaml, Path::new("/nonexistent")).map_err(|e| {
            let show = |e: &crate::config::ConfigError| {
                let service = e.service.as_deref().unwrap_or("-");
                format!("{}:{} {service} {}", e.line, e.column, e.message)
            };
            e.errors.iter().map(show).collect()
        })
    }

    const SPEC_EXAMPLE: &str = "\
health:
  listen: \"0.0.0.0:9090\"
services:
  migrate:
    command: [\"/app/migrate\", \"--up\"]
    oneshot: true
  db:
    command: [\"postgres\", \"-D\", \"/data\"]
  web:
    command: \"exec /app/server --port 8080\"
    depends_on: [db, migrate]
  worker:
    command: [work]
    depends_on: [web]
";

    #[test]
    fn waves_follow_dependencies_in_file_order() {
        let cfg = load(SPEC_EXAMPLE).unwrap();
        assert_eq!(cfg.waves, vec![vec![0, 1], vec![2], vec![3]]);
        assert_eq!(cfg.services[2].policy.depends_on, vec![1, 0]);
        assert_eq!(cfg.services[3].policy.depends_on, vec![2]);
    }

    #[test]
    fn describes_the_plan() {
        let cfg = load(SPEC_EXAMPLE).unwrap();
        assert_eq!(
            describe_plan(&cfg),
            "config /x.yaml is valid: 4 services in 3 waves\n\
             wave 1: migrate (oneshot), db\n\
             wave 2: web (after db, migrate)\n\
             wave 3: worker (after web)\n\
             health: 0.0.0.0:9090\n\
             shutdown: drain 0s, timeout 9s; stop order: worker, then web, then migrate, db\n\
             control: /run/rinit/control.sock (logs.buffer 65536 bytes per service)\n"
        );
        let one = load("shutdown: {drain: 1s, timeout: 1m30s}\nservices:\n  a: {command: x}\n");
        assert_eq!(
            describe_plan(&one.unwrap()),
            "config /x.yaml is valid: 1 service in 1 wave\nwave 1: a\nhealth: off\n\
             shutdown: drain 1s, timeout 1m30s; stop order: a\n\
             control: /run/rinit/control.sock (logs.buffer 65536 bytes per service)\n"
        );
        let empty = load("").unwrap();
        assert_eq!(
            describe_plan(&empty),
            "config /x.yaml is valid: 0 services in 0 waves\nhealth: off\n\
             shutdown: drain 0s, timeout 9s; stop order: none\n\
             control: /run/rinit/control.sock (logs.buffer 65536 bytes per service)\n"
        );
    }

    #[test]
    fn reports_unknown_and_self_dependencies() {
        let got = load("services:\n  db: {command: x}\n  web:\n    command: x\n    depends_on: [dbb, web, cache]\n").unwrap_err();
        assert_eq!(
            got,
            [
                "5:18 web depends on `dbb`, which is not a service (did you mean `db`?); services: db, web",
                "5:23 web `web` depends on itself",
                "5:28 web depends on `cache`, which is not a service; services: db, web",
            ]
        );
    }

    #[test]
    fn prints_each_cycle_from_its_first_service() {
        let yaml = "\
services:
  a:
    command: x
    depends_on: [b]
  b:
    command: x
    depends_on:
      - c
  c:
    command: x
    depends_on: [ok, a]
  ok:
    command: x
  d:
    command: x
    depends_on: [e, a]
  e:
    command: x
    depends_on: [d]
";
        let got = load(yaml).unwrap_err();
        assert_eq!(
            got,
            [
                "4:18 a dependency cycle: a -> b -> c -> a",
                "16:18 d dependency cycle: d -> e -> d",
            ]
        );
    }
}
