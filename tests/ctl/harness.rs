//! The `rinit ctl` harness shared by the control and reload tests: rinit
//! as PID 1 of a fresh namespace with its control socket in the test
//! directory, operated through the built binary's `ctl` verbs or raw HTTP.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::common::*;

pub const RINIT: &str = env!("CARGO_BIN_EXE_rinit");

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub struct Ctl {
    pub inst: Instance,
    pub sock: PathBuf,
}

/// Starts rinit on `yaml` (`{d}`: the test dir) with its control socket at
/// `{d}/ctl.sock`, and waits until `ctl status` answers.
pub fn start(dir: &TestDir, yaml: &str) -> Option<Ctl> {
    let text = yaml.replace("{d}", &dir.path().display().to_string());
    dir.write("rinit.yaml", text.as_bytes());
    let sock = dir.join("ctl.sock");
    let inst = Launch::new(RINIT)
        .arg("-c")
        .arg(dir.join("rinit.yaml"))
        .arg("--control")
        .arg(&sock)
        .start_pid1(dir)?;
    let c = Ctl { inst, sock };
    let up = wait_for(secs(10), || c.run(&["status"]).0 == 0);
    assert!(up, "ctl status never answered: {}", c.inst.stderr());
    Some(c)
}

impl Ctl {
    /// `rinit ctl --control SOCK ARGS...`: (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_as(None, args)
    }

    pub fn run_as(&self, uid: Option<u32>, args: &[&str]) -> (i32, String, String) {
        let mut cmd = match uid {
            Some(u) => {
                let mut c = Command::new("setpriv");
                c.args([
                    format!("--reuid={u}"),
                    format!("--regid={u}"),
                    "--clear-groups".to_string(),
                    RINIT.to_string(),
                ]);
                c
            }
            None => Command::new(RINIT),
        };
        cmd.arg("ctl").arg("--control").arg(&self.sock).args(args);
        let out = cmd.output().expect("run rinit ctl");
        (
            code_of(out.status),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(
            code,
            0,
            "ctl {args:?}: {out}{err}\nrinit: {}",
            self.inst.stderr()
        );
        out
    }

    /// A field of one service in `ctl status --json`, raw (quotes kept).
    pub fn field(&self, name: &str, key: &str) -> Option<String> {
        let json = self.run(&["status", "--json"]).1;
        let start = json.find(&format!("{{\"name\":\"{name}\""))?;
        let obj = &json[start..];
        let obj = &obj[..obj.find('}').unwrap_or(obj.len())];
        let at = obj.find(&format!("\"{key}\":"))? + key.len() + 3;
        let rest = &obj[at..];
        Some(rest[..rest.find([',', '}']).unwrap_or(rest.len())].to_string())
    }

    pub fn state(&self, name: &str) -> String {
        self.field(name, "state")
            .unwrap_or_default()
            .trim_matches('"')
            .to_string()
    }

    pub fn pid(&self, name: &str) -> Option<i32> {
        self.field(name, "pid")?.parse().ok()
    }

    pub fn wait_state(&self, name: &str, state: &str) -> bool {
        wait_for(secs(10), || self.state(name) == state)
    }

    /// Raw HTTP on the socket: (status code, body).
    pub fn http(&self, method: &str, target: &str) -> (u16, String) {
        let mut s = UnixStream::connect(&self.sock).expect("connect");
        s.set_read_timeout(Some(secs(30))).unwrap();
        write!(s, "{method} {target} HTTP/1.1\r\nHost: rinit\r\n\r\n").unwrap();
        let mut raw = String::new();
        let _ = s.read_to_string(&mut raw);
        let code = raw
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = raw
            .split_once("\r\n\r\n")
            .map(|x| x.1.to_string())
            .unwrap_or_default();
        (code, body)
    }
}

/// Host pids of the processes in `ns_pid`'s process group (namespace pids).
pub fn group_members(c: &Ctl, ns_pgid: i32) -> Vec<i32> {
    c.inst
        .processes()
        .into_iter()
        .filter(|p| {
            let stat =
                std::fs::read_to_string(format!("/proc/{}/status", p.pid)).unwrap_or_default();
            // NSpgid's last column is the group in rinit's namespace.
            stat.lines()
                .find_map(|l| l.strip_prefix("NSpgid:"))
                .and_then(|v| v.split_whitespace().last()?.parse::<i32>().ok())
                == Some(ns_pgid)
                && !p.is_zombie()
        })
        .map(|p| p.pid)
        .collect()
}
