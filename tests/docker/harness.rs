//! What the Docker end-to-end tests share: commands under a deadline,
//! waits with a deadline, the static rinit and busybox, and images and
//! containers removed on drop. Used by `docker_e2e.rs` and `stack_e2e.rs`;
//! each uses a part of it, hence the allow.
#![allow(dead_code)]

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// Static busybox from Debian's busybox-static package.
pub const BUSYBOX: &str = "/bin/busybox";

/// The applets the test images need, as symlinks to /bin/busybox.
pub const APPLETS: &[&str] = &[
    "sh", "sleep", "kill", "echo", "cat", "nc", "httpd", "id", "true", "false", "ls", "ps", "seq",
];

/// Docker's default `docker stop` grace period; the stop tests never pass -t.
pub const DOCKER_STOP_GRACE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Running commands under a deadline
// ---------------------------------------------------------------------------

pub struct Out {
    /// None when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn reader(mut from: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs `cmd` to completion, killing it and panicking after `limit`.
pub fn run_limited(cmd: &mut Command, limit: Duration) -> Out {
    try_run(cmd, limit).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `cmd` to completion; an error when it cannot start or takes longer
/// than `limit` (then it is killed). Never panics: fit for Drop.
pub fn try_run(cmd: &mut Command, limit: Duration) -> Result<Out, String> {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let out = child.stdout.take().map(reader);
    let err = child.stderr.take().map(reader);
    let collect = |h: Option<std::thread::JoinHandle<String>>| {
        h.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    let end = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{shown} did not finish within {limit:?}\n--- stdout\n{}\n--- stderr\n{}",
                    collect(out),
                    collect(err)
                ));
            }
            Err(e) => return Err(format!("waiting for {shown}: {e}")),
        }
    };
    Ok(Out {
        code: status.code(),
        stdout: collect(out),
        stderr: collect(err),
    })
}

pub fn docker(args: &[&str], limit: Duration) -> Out {
    run_limited(Command::new("docker").args(args), limit)
}

/// Polls `probe` every 100 ms until it returns Some, panicking after `limit`
/// with `what` and the last value `describe` gives.
pub fn wait_for<T>(
    what: &str,
    limit: Duration,
    mut probe: impl FnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if Instant::now() >= end {
            panic!(
                "timed out after {limit:?} waiting for {what}\n{}",
                describe()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------
// Prerequisites: the engine, the static rinit, a static busybox
// ---------------------------------------------------------------------------

/// Ok when `docker info` works; else why not. Checked once per test binary.
pub fn docker_available() -> Result<(), String> {
    static AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();
    AVAILABLE
        .get_or_init(|| {
            let out = Command::new("docker")
                .args(["info", "--format", "{{.ServerVersion}}"])
                .stdin(Stdio::null())
                .output();
            match out {
                Err(e) => Err(format!("cannot run docker: {e}")),
                Ok(o) if !o.status.success() => Err(format!(
                    "`docker info` failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Ok(_) => Ok(()),
            }
        })
        .clone()
}

/// True when the test can go on; prints why it is skipped otherwise.
pub fn have_docker(test: &str) -> bool {
    match docker_available() {
        Ok(()) => true,
        Err(why) => {
            eprintln!("skipping {test}: {why}");
            false
        }
    }
}

/// The static musl rinit, built once per test binary.
pub fn static_rinit() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let target = "x86_64-unknown-linux-musl";
        let out = run_limited(
            Command::new(cargo).current_dir(MANIFEST_DIR).args([
                "build",
                "--release",
                "--target",
                target,
                "--bin",
                "rinit",
            ]),
            Duration::from_secs(900),
        );
        assert!(
            out.ok(),
            "static build failed (rustup target add {target}?)\n{out}"
        );
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(MANIFEST_DIR).join("target"));
        let bin = target_dir.join(target).join("release").join("rinit");
        assert!(bin.is_file(), "{} missing after the build", bin.display());
        bin
    })
}

/// The host's static busybox.
pub fn static_busybox() -> &'static Path {
    let path = Path::new(BUSYBOX);
    assert!(
        is_static_elf(path),
        "{BUSYBOX} is missing or not static: install busybox-static"
    );
    path
}

pub fn fixtures() -> PathBuf {
    Path::new(MANIFEST_DIR).join("tests/docker")
}

/// True when the ELF file at `path` has no PT_INTERP program header, i.e. it
/// needs no dynamic loader and runs in a `FROM scratch` image.
pub fn is_static_elf(path: &Path) -> bool {
    let Ok(b) = std::fs::read(path) else {
        return false;
    };
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return false; // not a little-endian ELF64
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        const PT_INTERP: u32 = 3;
        o + 4 <= b.len() && u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) != PT_INTERP
    })
}

// ---------------------------------------------------------------------------
// Images and containers, removed on drop
// ---------------------------------------------------------------------------

pub fn unique(name: &str) -> String {
    format!("rinit-e2e-{name}-{}", std::process::id())
}

/// A temp directory removed on drop.
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Image {
    pub tag: String,
}

impl Image {
    /// Builds `tests/docker/<dockerfile>` over a root file system holding
    /// busybox, its applets, /sbin/rinit, a world-writable /tmp and, if
    /// given, `tests/docker/<config>` as /etc/rinit.yaml.
    pub fn build(name: &str, dockerfile: &str, config: Option<&str>) -> Image {
        let ctx = TempDir(std::env::temp_dir().join(unique(name)));
        let _ = std::fs::remove_dir_all(&ctx.0);
        let root = ctx.0.join("rootfs");
        for dir in ["bin", "sbin", "etc", "tmp"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
            .unwrap();
        std::fs::copy(static_busybox(), root.join("bin/busybox")).unwrap();
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        std::fs::copy(static_rinit(), root.join("sbin/rinit")).unwrap();
        if let Some(config) = config {
            std::fs::copy(fixtures().join(config), root.join("etc/rinit.yaml")).unwrap();
        }
        std::fs::copy(fixtures().join(dockerfile), ctx.0.join("Dockerfile")).unwrap();
        Image::build_context(name, &ctx.0, &[])
    }

    /// The image of `examples/single.Dockerfile`, from a context holding
    /// `rinit` and `busybox` as its header says.
    pub fn example_single() -> Image {
        let name = "example-single";
        let ctx = TempDir(std::env::temp_dir().join(unique(name)));
        let _ = std::fs::remove_dir_all(&ctx.0);
        std::fs::create_dir_all(&ctx.0).unwrap();
        std::fs::copy(static_busybox(), ctx.0.join("busybox")).unwrap();
        std::fs::copy(static_rinit(), ctx.0.join("rinit")).unwrap();
        let dockerfile = Path::new(MANIFEST_DIR).join("examples/single.Dockerfile");
        std::fs::copy(dockerfile, ctx.0.join("Dockerfile")).unwrap();
        Image::build_context(name, &ctx.0, &[])
    }

    /// `base` with `config` (YAML text) as /etc/rinit.yaml, checked at build.
    pub fn with_config(name: &str, base: &Image, config: &str) -> Image {
        let ctx = TempDir(std::env::temp_dir().join(unique(name)));
        let _ = std::fs::remove_dir_all(&ctx.0);
        std::fs::create_dir_all(&ctx.0).unwrap();
        std::fs::write(ctx.0.join("rinit.yaml"), config).unwrap();
        std::fs::copy(
            fixtures().join("example-config.Dockerfile"),
            ctx.0.join("Dockerfile"),
        )
        .unwrap();
        let arg = format!("BASE={}", base.tag);
        Image::build_context(name, &ctx.0, &["--build-arg", &arg])
    }

    pub fn build_context(name: &str, ctx: &Path, extra: &[&str]) -> Image {
        let image = Image {
            tag: format!("{}:test", unique(name)),
        };
        let ctx = ctx.to_string_lossy();
        // --no-cache: concurrent tests build identical contexts, and the
        // engine would share their layers; removing one image (with its
        // untagged parents) would then break another build under way.
        // --force-rm: no intermediate container left even when it fails.
        let mut args = vec!["build", "--no-cache", "--force-rm", "-q", "-t", &image.tag];
        args.extend_from_slice(extra);
        args.push(&ctx);
        let out = docker(&args, Duration::from_secs(180));
        assert!(out.ok(), "docker build of {name} failed\n{out}");
        image
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = try_run(
            Command::new("docker").args(["rmi", "-f", &self.tag]),
            Duration::from_secs(60),
        );
    }
}

/// One process as `docker top` shows it.
#[derive(Debug)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    pub stat: String,
    pub args: String,
}

impl Proc {
    pub fn zombie(&self) -> bool {
        self.stat.starts_with('Z') || self.args.contains("<defunct>")
    }
}

/// Parses `PID PPID STAT COMMAND` lines after a header.
pub fn parse_ps(text: &str) -> Vec<Proc> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            Some(Proc {
                pid: f.next()?.parse().ok()?,
                ppid: f.next()?.parse().ok()?,
                stat: f.next()?.to_string(),
                args: f.collect::<Vec<_>>().join(" "),
            })
        })
        .collect()
}

/// A container name; the container, if any, is removed on drop.
pub struct Container {
    pub name: String,
}

impl Container {
    /// Reserves a unique name; nothing runs yet.
    pub fn named(name: &str) -> Container {
        Container { name: unique(name) }
    }

    /// `docker run -d --name <name> <args...>`.
    pub fn start(name: &str, args: &[&str]) -> Container {
        let c = Container::named(name);
        let out = c.run_detached(args);
        assert!(out.ok(), "docker run failed\n{out}");
        c
    }

    pub fn run_detached(&self, args: &[&str]) -> Out {
        let mut all = vec!["run", "-d", "--name", &self.name];
        all.extend_from_slice(args);
        docker(&all, Duration::from_secs(60))
    }

    /// `docker run --name <name> <args...>` in the foreground, to the end.
    pub fn run_to_end(&self, args: &[&str], limit: Duration) -> Out {
        let mut all = vec!["run", "--name", &self.name];
        all.extend_from_slice(args);
        docker(&all, limit)
    }

    /// (stdout, stderr) of the container so far.
    pub fn logs(&self) -> (String, String) {
        let out = docker(&["logs", &self.name], Duration::from_secs(30));
        assert!(out.ok(), "docker logs failed\n{out}");
        (out.stdout, out.stderr)
    }

    /// Logs and processes, for failure messages; never panics.
    pub fn describe(&self) -> String {
        let limit = Duration::from_secs(30);
        let show = |args: &[&str]| match try_run(Command::new("docker").args(args), limit) {
            Ok(out) => format!("{}{}", out.stdout, out.stderr),
            Err(e) => e,
        };
        format!(
            "--- container {}\n--- docker logs\n{}\n--- docker top\n{}--- ps inside\n{}",
            self.name,
            show(&["logs", &self.name]),
            show(&["top", &self.name, "-o", "pid,ppid,stat,args"]),
            show(&["exec", &self.name, "ps", "-o", "pid,ppid,stat,args"]),
        )
    }

    pub fn inspect(&self, format: &str) -> String {
        let out = docker(
            &["inspect", "-f", format, &self.name],
            Duration::from_secs(30),
        );
        assert!(out.ok(), "docker inspect failed\n{out}");
        out.stdout.trim().to_string()
    }

    pub fn exit_code(&self) -> i32 {
        let code = self.inspect("{{.State.ExitCode}}");
        code.parse()
            .unwrap_or_else(|_| panic!("bad exit code {code:?}"))
    }

    /// Waits until the container is no longer running; its exit code.
    pub fn wait_exit(&self, limit: Duration) -> i32 {
        wait_for(
            "the container to exit",
            limit,
            || (self.inspect("{{.State.Running}}") == "false").then_some(()),
            || self.describe(),
        );
        self.exit_code()
    }

    pub fn exec(&self, args: &[&str]) -> Out {
        let mut all = vec!["exec", &self.name];
        all.extend_from_slice(args);
        docker(&all, Duration::from_secs(30))
    }

    /// Waits until rinit's /readyz says every service is ready.
    pub fn wait_ready(&self) {
        wait_for(
            "rinit probe --ready to pass",
            Duration::from_secs(20),
            || {
                self.exec(&["/sbin/rinit", "probe", "--ready"])
                    .ok()
                    .then_some(())
            },
            || self.describe(),
        );
    }

    /// Waits until `needle` appears in the container's stdout or stderr.
    pub fn wait_log(&self, needle: &str) {
        wait_for(
            &format!("{needle:?} in docker logs"),
            Duration::from_secs(20),
            || {
                let (o, e) = self.logs();
                (o.contains(needle) || e.contains(needle)).then_some(())
            },
            || self.describe(),
        );
    }

    /// The container's processes as `docker top` shows them. On this kind of
    /// engine (cgroup v1) an exited process leaves the cgroup's task list at
    /// once, so `docker top` never lists zombies: see [`Container::ps`].
    pub fn top(&self) -> Vec<Proc> {
        let out = docker(
            &["top", &self.name, "-o", "pid,ppid,stat,args"],
            Duration::from_secs(30),
        );
        assert!(out.ok(), "docker top failed\n{out}");
        parse_ps(&out.stdout)
    }

    /// The container's processes as busybox `ps` inside it sees them (its
    /// own PID namespace, zombies included), without the `ps` itself.
    pub fn ps(&self) -> Vec<Proc> {
        let out = self.exec(&["ps", "-o", "pid,ppid,stat,args"]);
        assert!(out.ok(), "ps in the container failed\n{out}");
        parse_ps(&out.stdout)
            .into_iter()
            .filter(|p| !p.args.starts_with("ps -o"))
            .collect()
    }

    /// `docker stop` with Docker's default 10 s grace; how long it took.
    pub fn stop(&self) -> Duration {
        let t = Instant::now();
        let out = docker(&["stop", &self.name], Duration::from_secs(30));
        let took = t.elapsed();
        assert!(out.ok(), "docker stop failed\n{out}");
        took
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = try_run(
            Command::new("docker").args(["rm", "-f", "-v", &self.name]),
            Duration::from_secs(60),
        );
    }
}

/// Asserts that `needles` occur in `text` in this order.
pub fn assert_in_order(text: &str, needles: &[&str], context: &str) {
    let mut from = 0;
    for needle in needles {
        match text[from..].find(needle) {
            Some(at) => from += at + needle.len(),
            None => panic!("{needle:?} missing, or out of order in {needles:?}\n{context}"),
        }
    }
}

/// Waits until neither `docker top` nor `ps` inside the container shows a
/// zombie or a process `orphan` matches (the short-lived orphans), then
/// checks a few more snapshots: a zombie may be caught in the instant
/// between an exit and its reaping, but never twice.
pub fn assert_orphans_reaped(c: &Container, orphan: impl Fn(&Proc) -> bool) {
    wait_for(
        "the short-lived orphans to be gone, with no zombie left",
        Duration::from_secs(10),
        || {
            let mut procs = c.top();
            procs.extend(c.ps());
            (!procs.iter().any(|p| p.zombie() || orphan(p))).then_some(())
        },
        || c.describe(),
    );
    // (seen inside the container, pid): docker top shows host pids.
    let mut seen: Vec<(bool, u32)> = Vec::new();
    for _ in 0..5 {
        let top = c.top().into_iter().map(|p| (false, p));
        let ps = c.ps().into_iter().map(|p| (true, p));
        for (inside, p) in top.chain(ps).filter(|(_, p)| p.zombie()) {
            assert!(
                !seen.contains(&(inside, p.pid)),
                "zombie {p:?} was not reaped\n{}",
                c.describe()
            );
            seen.push((inside, p.pid));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
