//! The dependency graph of the services: `depends_on` names resolved to
//! indices (unknown names, self-dependencies and cycles reported, the cycle
//! printed as `a -> b -> a`), the start plan in waves (wave n holds the
//! services whose dependencies all sit in waves < n, in file order), and the
//! plan as `rinit check` prints it.

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
    let (waves, stuck) = waves(&deps);
    if stuck.iter().any(|s| *s) {
        for cycle in cycles(&deps, &stuck) {
            report_cycle(&cycle, names, depends, report);
        }
    }
    (deps, waves)
}

fn resolve(names: &[String], depends: &[Vec<String>], report: &mut Report) -> Vec<Vec<usize>> {
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut resolved = vec![Vec::new(); names.len()];
    for (i, (name, wanted)) in all.iter().zip(depends).enumerate() {
        let at = ["services", name, "depends_on"];
        for (item, dep) in wanted.iter().enumerate() {
            match all.iter().position(|n| n == dep) {
                Some(j) if j == i => {
                    report.at_item(&at, item, format!("`{dep}` depends on itself"))
                }
                Some(j) if !resolved[i].contains(&j) => resolved[i].push(j),
                Some(_) => {}
                None => {
                    let hint = did_you_mean(dep, &all)
                        .map_or(String::new(), |n| format!(" (did you mean `{n}`?)"));
                    let known = if all.is_empty() {
                        "none".into()
                    } else {
                        all.join(", ")
                    };
                    let message = format!(
                        "depends on `{dep}`, which is not a service{hint}; services: {known}"
                    );
                    report.at_item(&at, item, message);
                }
            }
        }
    }
    resolved
}

/// The waves, and which services could not be placed (they sit on or
/// behind a cycle).
fn waves(deps: &[Vec<usize>]) -> (Vec<Vec<usize>>, Vec<bool>) {
    let mut placed = vec![false; deps.len()];
    let mut waves = Vec::new();
    loop {
        let wave: Vec<usize> = (0..deps.len())
            .filter(|&i| !placed[i] && deps[i].iter().all(|&d| placed[d]))
            .collect();
        if wave.is_empty() {
            break;
        }
        for &i in &wave {
            placed[i] = true;
        }
        waves.push(wave);
    }
    let stuck = placed.iter().map(|p| !p).collect();
    (waves, stuck)
}

/// The cycles among the stuck services, each starting at its member that
/// comes first in the file; each entry depends on the next, the last on the
/// first.
fn cycles(deps: &[Vec<usize>], stuck: &[bool]) -> Vec<Vec<usize>> {
    let mut search = CycleSearch {
        deps,
        stuck,
        state: vec![Mark::New; deps.len()],
        stack: Vec::new(),
        found: Vec::new(),
    };
    for (i, &is_stuck) in stuck.iter().enumerate() {
        if is_stuck && search.state[i] == Mark::New {
            search.visit(i);
        }
    }
    search.found
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    New,
    OnStack,
    Done,
}

struct CycleSearch<'a> {
    deps: &'a [Vec<usize>],
    stuck: &'a [bool],
    state: Vec<Mark>,
    stack: Vec<usize>,
    found: Vec<Vec<usize>>,
}

impl CycleSearch<'_> {
    /// Depth-first search; a dependency that is on the stack closes a cycle.
    fn visit(&mut self, i: usize) {
        self.state[i] = Mark::OnStack;
        self.stack.push(i);
        for &d in self.deps[i].iter().filter(|&&d| self.stuck[d]) {
            match self.state[d] {
                Mark::New => self.visit(d),
                Mark::OnStack => {
                    let start = self.stack.iter().position(|&s| s == d).unwrap_or(0);
                    let mut cycle = self.stack[start..].to_vec();
                    let first = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
                    cycle.rotate_left(first);
                    if !self.found.contains(&cycle) {
                        self.found.push(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        self.stack.pop();
        self.state[i] = Mark::Done;
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
             shutdown: drain 0s, timeout 9s; stop order: worker, then web, then migrate, db\n"
        );
        let one = load("shutdown: {drain: 1s, timeout: 1m30s}\nservices:\n  a: {command: x}\n");
        assert_eq!(
            describe_plan(&one.unwrap()),
            "config /x.yaml is valid: 1 service in 1 wave\nwave 1: a\nhealth: off\n\
             shutdown: drain 1s, timeout 1m30s; stop order: a\n"
        );
        let empty = load("").unwrap();
        assert_eq!(
            describe_plan(&empty),
            "config /x.yaml is valid: 0 services in 0 waves\nhealth: off\n\
             shutdown: drain 0s, timeout 9s; stop order: none\n"
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
