//! Finding and signalling processes that are left over: as PID 1 that is
//! everything in the namespace (kill(-1)); otherwise only rinit's own
//! descendants, found through /proc, so a subreaper never touches a process
//! it does not own.

use std::collections::HashMap;

use super::sys;

pub fn is_pid1() -> bool {
    std::process::id() == 1
}

/// Sends `sig` to every process left; returns how many were signalled
/// (as PID 1: 1 if any, 0 if none).
pub fn signal_all(sig: i32) -> usize {
    if is_pid1() {
        return usize::from(sys::kill(-1, sig).is_ok());
    }
    if !sys::has_children() {
        // A subreaper with no child has no descendant either.
        return 0;
    }
    let mut n = 0;
    for pid in descendants(std::process::id() as i32) {
        if sys::kill(pid, sig).is_ok() {
            n += 1;
        }
    }
    n
}

/// Every process whose parent chain leads to `root`, from /proc.
pub fn descendants(root: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = read_ppid(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        if let Some(kids) = children.get(&p) {
            for &k in kids {
                if k != root && !out.contains(&k) {
                    out.push(k);
                    todo.push(k);
                }
            }
        }
    }
    out
}

/// Every process left (as PID 1: all others in the namespace; otherwise
/// rinit's descendants), each as `pid (name) state-letter`, for the log
/// line of a shutdown that gives up.
pub fn leftovers() -> Vec<String> {
    let own = std::process::id() as i32;
    let pids: Vec<i32> = if is_pid1() {
        all_pids().into_iter().filter(|&p| p != own).collect()
    } else {
        descendants(own)
    };
    pids.into_iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some(describe_stat(pid, &stat))
        })
        .collect()
}

fn all_pids() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect()
}

/// `pid (name) S` from /proc/PID/stat: the name in parentheses may hold
/// spaces and parentheses; the state letter follows the last `)`.
pub fn describe_stat(pid: i32, stat: &str) -> String {
    let (open, close) = (stat.find('('), stat.rfind(')'));
    let name = match (open, close) {
        (Some(o), Some(c)) if o < c => &stat[o + 1..c],
        _ => "?",
    };
    let state = close
        .and_then(|c| stat[c + 1..].split_whitespace().next())
        .unwrap_or("?");
    format!("{pid} ({name}) {state}")
}

fn read_ppid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_ppid(&stat)
}

/// The 4th field of /proc/PID/stat, after the command name in parentheses
/// (which may itself contain spaces and parentheses).
pub fn parse_ppid(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The session of process `pid` (None once it is gone).
pub fn session_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_session(&stat)
}

/// The 6th field of /proc/PID/stat (state, ppid, pgrp, session after the
/// command name).
pub fn parse_session(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(3)?.parse().ok()
}

/// Fds above 2 that rinit inherited, marked close-on-exec so that only the
/// main command keeps them.
pub fn inherited_fds() -> Vec<i32> {
    let mut fds: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
            .collect(),
        Err(_) => (3..1024).collect(),
    };
    fds.retain(|&fd| fd > 2 && sys::fd_is_open(fd) && sys::set_cloexec(fd));
    fds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppid_survives_odd_names() {
        assert_eq!(parse_ppid("12 (a) b) S 7 12 12 0"), Some(7));
        assert_eq!(parse_ppid("12 (sleep) S 1 12"), Some(1));
        assert_eq!(parse_ppid("garbage"), None);
    }

    #[test]
    fn leftovers_are_named_with_their_state() {
        assert_eq!(
            describe_stat(7, "7 (my (odd) name) D 1 7 7 0"),
            "7 (my (odd) name) D"
        );
        assert_eq!(describe_stat(8, "garbage"), "8 (?) ?");
    }
}
