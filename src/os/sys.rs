//! Every `unsafe` block of rinit lives here: raw syscalls that neither std
//! nor nix offer in the shape PID 1 needs, above all the code that runs in
//! a forked child before exec. Each block says why it is sound.
//!
//! Invariant for the child path: between fork and exec only async-signal
//! safe calls happen, on memory prepared before the fork (no allocation,
//! no locks, no name lookups).

use std::ffi::{c_char, CStr};
use std::os::fd::RawFd;

pub type Pid = libc::pid_t;

/// The last OS error number, for matching on values (never on strings).
pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// What the child must do between fork and exec. All pointers point into
/// memory the parent keeps alive until `fork_exec` returns.
pub struct ChildSetup<'a> {
    pub path: &'a CStr,
    /// NULL-terminated.
    pub argv: &'a [*const c_char],
    /// NULL-terminated.
    pub envp: &'a [*const c_char],
    pub workdir: Option<&'a CStr>,
    pub identity: Option<(u32, u32, &'a [libc::gid_t])>,
    /// A new session (services) or only a new process group (the main
    /// command, which keeps the terminal).
    pub new_session: bool,
    /// Make the child's group the terminal's foreground group (stdin).
    pub foreground: bool,
    /// Fds to dup onto 0, 1, 2; -1 keeps rinit's.
    pub stdio: [RawFd; 3],
    /// Inherited fds that this child keeps across exec.
    pub keep_fds: &'a [RawFd],
    /// `ready: {fd: N}`: (the pipe's write end, N): dup'ed onto N.
    pub ready_fd: Option<(RawFd, RawFd)>,
    /// The child's umask, if it is to change.
    pub umask: Option<u32>,
    /// Resource limits to set, complete (no "keep" halves left).
    pub rlimits: &'a [ResourceLimit],
    /// PR_SET_NO_NEW_PRIVS just before exec.
    pub no_new_privs: bool,
}

/// One limit as the prlimit64 syscall takes it (the kernel's
/// `struct rlimit64`, the same on every architecture).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct KernelRlimit {
    pub cur: u64,
    pub max: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceLimit {
    pub resource: i32,
    pub limit: KernelRlimit,
}

/// rinit's own limit for `resource` (what a child inherits), if known.
pub fn get_rlimit(resource: i32) -> Option<KernelRlimit> {
    let mut old = KernelRlimit { cur: 0, max: 0 };
    // SAFETY: prlimit64 on ourselves (pid 0) with no new limit, writing
    // the current one into `old`, a valid struct of the kernel's layout.
    let r = unsafe {
        libc::syscall(
            libc::SYS_prlimit64,
            0,
            resource,
            std::ptr::null::<KernelRlimit>(),
            &mut old as *mut KernelRlimit,
        )
    };
    (r == 0).then_some(old)
}

/// Why a child could not exec: the step that failed and its errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildFailure {
    pub step: ChildStep,
    pub errno: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildStep {
    Session,
    Stdio,
    Workdir,
    Groups,
    Gid,
    Uid,
    Exec,
    Rlimit,
    NoNewPrivs,
}

/// The wire numbers of the steps (their index): append only.
const STEPS: [ChildStep; 9] = [
    ChildStep::Session,
    ChildStep::Stdio,
    ChildStep::Workdir,
    ChildStep::Groups,
    ChildStep::Gid,
    ChildStep::Uid,
    ChildStep::Exec,
    ChildStep::Rlimit,
    ChildStep::NoNewPrivs,
];

pub enum ForkResult {
    /// Exec succeeded.
    Started(Pid),
    /// The child exists (and exits with 126 or 127) but could not exec.
    Failed(Pid, ChildFailure),
}

/// Forks and execs. Errors: pipe or fork failed (errno), no child exists.
pub fn fork_exec(setup: &ChildSetup) -> Result<ForkResult, i32> {
    let stack = ChildStack::new()?;
    let top = stack.top();
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(errno());
    }
    let (rd, wr) = (fds[0], fds[1]);
    let arg = ChildArg { setup, report: wr };
    let old = block_all_signals();
    // SAFETY: a vfork-style clone: the child shares our memory but runs on
    // its own stack (`stack`, alive until clone returns, which with
    // CLONE_VFORK is after the child has exec'd or exited), gets its own
    // copy of the signal handlers (no CLONE_SIGHAND), starts with every
    // signal blocked, and only runs `child_entry`, which keeps to
    // async-signal-safe calls and writes nothing of ours but errno.
    // Sharing memory spares the copy-on-write faults of fork in both
    // processes, which were most of rinit's start-up cost.
    let pid = unsafe {
        libc::clone(
            child_entry,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::addr_of!(arg) as *mut libc::c_void,
        )
    };
    let fork_errno = errno();
    drop(stack);
    restore_signal_mask(&old);
    close(wr);
    if pid < 0 {
        close(rd);
        return Err(fork_errno);
    }
    let report = read_failure(rd);
    close(rd);
    Ok(match report {
        Some(f) => ForkResult::Failed(pid, f),
        None => ForkResult::Started(pid),
    })
}

/// Reads the child's failure report; EOF without data means exec worked.
fn read_failure(rd: RawFd) -> Option<ChildFailure> {
    let mut buf = [0u8; 5];
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: writing at most `buf.len() - got` bytes into `buf[got..]`.
        let n = unsafe { libc::read(rd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n == 0 {
            break;
        }
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            break;
        }
        got += n as usize;
    }
    if got < buf.len() {
        return None;
    }
    let errno = i32::from_ne_bytes([buf[1], buf[2], buf[3], buf[4]]);
    let step = STEPS
        .get(buf[0] as usize)
        .copied()
        .unwrap_or(ChildStep::Exec);
    Some(ChildFailure { step, errno })
}

/// The child's stack: `child_after_fork` needs a few KiB at most.
const CHILD_STACK: usize = 64 * 1024;

/// The clone child's stack: an anonymous mapping whose lowest page is
/// PROT_NONE. The child shares rinit's memory (CLONE_VM), so without the
/// guard an overflow would silently write over whatever lies below (rinit's
/// heap); with it, the child faults and only the child dies.
struct ChildStack {
    base: *mut libc::c_void,
    len: usize,
}

impl ChildStack {
    fn new() -> Result<ChildStack, i32> {
        let guard = page_size();
        let len = CHILD_STACK + guard;
        // SAFETY: a fresh anonymous private mapping at an address of the
        // kernel's choosing; it aliases nothing.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(errno());
        }
        let stack = ChildStack { base, len };
        // SAFETY: the first page of the mapping made above, which nothing
        // uses yet (stacks grow down, from `top`).
        if unsafe { libc::mprotect(base, guard, libc::PROT_NONE) } != 0 {
            return Err(errno()); // `stack` is unmapped on drop
        }
        Ok(stack)
    }

    /// The initial stack pointer: the end of the mapping (page aligned,
    /// so 16-byte aligned as the ABI wants).
    fn top(&self) -> *mut libc::c_void {
        self.base.wrapping_byte_add(self.len)
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping `new` made; with CLONE_VFORK
        // the child has exec'd or exited before the parent gets here.
        unsafe {
            libc::munmap(self.base, self.len);
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf only reads a system constant.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

struct ChildArg<'a, 'b> {
    setup: &'a ChildSetup<'b>,
    report: RawFd,
}

extern "C" fn child_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points to the `ChildArg` on the parent's stack, which
    // stays alive and unchanged while the parent is suspended (CLONE_VFORK).
    let arg = unsafe { &*(arg as *const ChildArg) };
    child_after_fork(arg.setup, arg.report)
}

/// Runs in the cloned child: never returns.
fn child_after_fork(s: &ChildSetup, report: RawFd) -> ! {
    let fail = |step: ChildStep| -> ! {
        let e = errno();
        let mut msg = [0u8; 5];
        msg[0] = STEPS.iter().position(|x| *x == step).unwrap_or(0) as u8;
        msg[1..].copy_from_slice(&e.to_ne_bytes());
        let code = if step == ChildStep::Exec && e == libc::ENOENT {
            127
        } else {
            126
        };
        // SAFETY: write and _exit are async-signal-safe; msg is a local.
        unsafe {
            libc::write(report, msg.as_ptr().cast(), msg.len());
            libc::_exit(code)
        }
    };
    // SAFETY: all calls below are async-signal-safe syscalls on values
    // prepared before the fork; pointers are valid NUL-terminated data
    // owned by the parent's stack frame, which the child's copy shares.
    unsafe {
        let ok = if s.new_session {
            libc::setsid() >= 0
        } else {
            libc::setpgid(0, 0) == 0
        };
        if !ok {
            fail(ChildStep::Session);
        }
        if s.foreground {
            // Signals are still blocked, so SIGTTOU cannot stop us here.
            libc::tcsetpgrp(0, libc::getpid());
        }
        for (target, &fd) in s.stdio.iter().enumerate() {
            if fd >= 0 && libc::dup2(fd, target as libc::c_int) < 0 {
                fail(ChildStep::Stdio);
            }
        }
        for &fd in s.keep_fds {
            libc::fcntl(fd, libc::F_SETFD, 0);
        }
        if let Some((from, to)) = s.ready_fd {
            // dup2 clears close-on-exec on `to`, unless from == to, where
            // it does nothing and the flag must be cleared by hand.
            let ok = if from == to {
                libc::fcntl(to, libc::F_SETFD, 0) == 0
            } else {
                libc::dup2(from, to) >= 0
            };
            if !ok {
                fail(ChildStep::Stdio);
            }
        }
        if let Some(dir) = s.workdir {
            if libc::chdir(dir.as_ptr()) != 0 {
                fail(ChildStep::Workdir);
            }
        }
        // Limits before the identity switch: raising a hard limit needs
        // privileges that setuid drops. Raw syscalls: musl's setrlimit
        // synchronises all threads, which a vfork child must not try.
        for rl in s.rlimits {
            let new = &rl.limit as *const KernelRlimit;
            let none = std::ptr::null_mut::<KernelRlimit>();
            if libc::syscall(libc::SYS_prlimit64, 0, rl.resource, new, none) != 0 {
                fail(ChildStep::Rlimit);
            }
        }
        if let Some(mask) = s.umask {
            // umask cannot fail.
            libc::syscall(libc::SYS_umask, libc::c_ulong::from(mask));
        }
        if let Some((uid, gid, groups)) = s.identity {
            // Raw syscalls: per-thread is right in a single-threaded child,
            // and libc wrappers may try to synchronise threads that the
            // fork left behind.
            if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) != 0 {
                fail(ChildStep::Groups);
            }
            if libc::syscall(libc::SYS_setgid, gid) != 0 {
                fail(ChildStep::Gid);
            }
            if libc::syscall(libc::SYS_setuid, uid) != 0 {
                fail(ChildStep::Uid);
            }
        }
        // prctl's arguments are unsigned longs, and the kernel refuses
        // PR_SET_NO_NEW_PRIVS unless they are exactly (1, 0, 0, 0).
        let (one, zero): (libc::c_ulong, libc::c_ulong) = (1, 0);
        if s.no_new_privs
            && libc::syscall(
                libc::SYS_prctl,
                libc::PR_SET_NO_NEW_PRIVS,
                one,
                zero,
                zero,
                zero,
            ) != 0
        {
            fail(ChildStep::NoNewPrivs);
        }
        reset_dispositions();
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::execve(s.path.as_ptr(), s.argv.as_ptr(), s.envp.as_ptr());
    }
    fail(ChildStep::Exec)
}

/// The kernel's `struct sigaction` for rt_sigaction(2) (x86_64 and arm64
/// not libc's, whose mask is 128 bytes and comes first).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Every signal back to SIG_DFL (what an exec'd program expects). The raw
/// syscall, because glibc and musl refuse to touch the signals they
/// reserve (32-34), and an ignored one would otherwise survive the exec.
fn reset_dispositions() {
    let dfl = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..65 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: `dfl` is a valid kernel sigaction for SIG_DFL with an
        // empty mask; the old action is not requested (NULL); the last
        // argument is the kernel's sigset size (8 bytes on Linux).
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &dfl as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            );
        }
    }
}

fn block_all_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigfillset and pthread_sigmask only
    // write to the sets we pass.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        old
    }
}

fn restore_signal_mask(old: &libc::sigset_t) {
    // SAFETY: `old` is a mask returned by pthread_sigmask.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut());
    }
}

/// Startup hygiene for rinit itself: whatever its parent left blocked or
/// ignored must not blind it. The mask becomes exactly `keep_blocked` (the
/// signals the signal thread takes); SIGCHLD back to default (ignored
/// SIGCHLD would make the kernel discard exit statuses); SIGTTIN/SIGTTOU
/// ignored so a background rinit is never stopped by the terminal it
/// handed to its child; SIGPIPE ignored so a closed stdout is an EPIPE.
pub fn reset_own_signals(keep_blocked: &SignalSet) {
    // SAFETY: plain signal-mask and disposition changes, made before any
    // thread exists. Dispositions first: setting SIG_IGN discards a pending
    // SIGPIPE that unblocking would otherwise deliver with its default
    // (terminating) action.
    unsafe {
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        libc::signal(libc::SIGTTIN, libc::SIG_IGN);
        libc::signal(libc::SIGTTOU, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::pthread_sigmask(libc::SIG_SETMASK, &keep_blocked.0, std::ptr::null_mut());
    }
}

/// Blocks every signal in the calling thread, allocating nothing: safe to
/// run from a loader constructor, before Rust's runtime exists.
pub fn block_everything() {
    // SAFETY: sigset_t is plain data; sigfillset and sigprocmask only read
    // and write it and the thread's mask.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
}

/// Undoes `block_everything` for the commands that are not an init.
pub fn unblock_everything() {
    // SAFETY: as in `block_everything`.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_UNBLOCK, &all, std::ptr::null_mut());
    }
}

/// A set of signals to block and wait for.
#[derive(Clone, Copy)]
pub struct SignalSet(libc::sigset_t);

impl SignalSet {
    pub fn new(signals: &[i32]) -> Self {
        // SAFETY: sigset_t is plain data; sigemptyset/sigaddset only write
        // into it (invalid numbers return EINVAL and are skipped).
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &sig in signals {
                libc::sigaddset(&mut set, sig);
            }
            SignalSet(set)
        }
    }

    /// Adds these signals to the calling thread's mask.
    pub fn block(&self) {
        // SAFETY: pthread_sigmask reads our set and writes nothing else.
        unsafe {
            libc::pthread_sigmask(libc::SIG_BLOCK, &self.0, std::ptr::null_mut());
        }
    }

    /// Takes the next pending signal of the set (they must be blocked),
    /// with who sent it.
    pub fn wait(&self) -> SigInfo {
        loop {
            // SAFETY: siginfo_t is plain data for sigwaitinfo to fill.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: sigwaitinfo reads the set and writes only `info`.
            let sig = unsafe { libc::sigwaitinfo(&self.0, &mut info) };
            if sig > 0 {
                return SigInfo {
                    signo: sig,
                    code: info.si_code,
                    // SAFETY: the kernel filled `info` for this signal; the
                    // pid field is read as what it is for kill/sigqueue/
                    // tkill (si_code <= 0), and is 0 or meaningless for
                    // kernel-raised ones, which callers judge by si_code.
                    pid: unsafe { info.si_pid() },
                };
            }
        }
    }
}

/// One taken signal: its number, the kernel's `si_code` (<= 0: sent by a
/// process with kill, sigqueue, tkill...; > 0: raised by the kernel) and
/// the sender's pid as seen from rinit's namespace (0 from outside it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigInfo {
    pub signo: i32,
    pub code: i32,
    pub pid: Pid,
}

/// Blocking wait for any child. Ok((pid, raw status)), or Err(errno).
pub fn wait_any() -> Result<(Pid, i32), i32> {
    let mut status = 0;
    // SAFETY: `status` is a valid int for waitpid to fill.
    let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
    if pid < 0 {
        Err(errno())
    } else {
        Ok((pid, status))
    }
}

/// Whether rinit has any child at all, without reaping anything (WNOWAIT
/// leaves every exit status for the reaper).
pub fn has_children() -> bool {
    // SAFETY: siginfo_t is plain data for waitid to fill.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is valid for writing; WNOHANG makes it non-blocking.
    let r = unsafe {
        libc::waitid(
            libc::P_ALL,
            0,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    !(r < 0 && errno() == libc::ECHILD)
}

/// Decodes a wait status: Ok(exit code) or Err(signal).
pub fn decode_status(status: i32) -> Result<i32, i32> {
    if libc::WIFSIGNALED(status) {
        Err(libc::WTERMSIG(status))
    } else {
        Ok(libc::WEXITSTATUS(status))
    }
}

/// kill(2); ESRCH and friends are returned, never fatal.
pub fn kill(pid: Pid, sig: i32) -> Result<(), i32> {
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// tini's `-p`: the kernel sends `sig` to rinit when its parent exits
/// (useful when rinit is not PID 1, e.g. under `docker run --init`).
pub fn set_parent_death_signal(sig: i32) -> Result<(), i32> {
    let arg = libc::c_ulong::try_from(sig).map_err(|_| libc::EINVAL)?;
    // SAFETY: PR_SET_PDEATHSIG takes a signal number only; no memory is passed.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, arg, 0, 0, 0) } == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

pub fn set_child_subreaper() -> Result<(), i32> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer argument only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

pub fn isatty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

pub fn set_cloexec(fd: RawFd) -> bool {
    // SAFETY: fcntl on an integer fd; a bad fd returns EBADF.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) == 0 }
}

pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only queries the descriptor.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// poll(2) over raw descriptors; Ok(number ready) or Err(errno).
/// `timeout_ms` < 0 waits without a limit.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> Result<usize, i32> {
    // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd of the
    // length we pass; poll only writes their `revents`.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        Err(errno())
    } else {
        Ok(n as usize)
    }
}

/// A non-blocking, close-on-exec eventfd: the io thread's doorbell.
pub fn eventfd() -> Result<std::os::fd::OwnedFd, i32> {
    // SAFETY: eventfd takes plain integers and returns a new fd or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: `fd` was just created and is owned by nobody else.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Adds 1 to an eventfd (never blocks: EAGAIN means it is already rung).
pub fn eventfd_ring(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes the 8 bytes of a local u64, as eventfd expects.
    unsafe {
        libc::write(fd, std::ptr::addr_of!(one).cast(), 8);
    }
}

/// Resets an eventfd to zero (non-blocking).
pub fn eventfd_drain(fd: RawFd) {
    let mut v: u64 = 0;
    // SAFETY: reads at most 8 bytes into a local u64.
    unsafe {
        libc::read(fd, std::ptr::addr_of_mut!(v).cast(), 8);
    }
}

/// write(2) that reports errno; the caller's fd decides whether it blocks.
pub fn write_fd(fd: RawFd, buf: &[u8]) -> Result<usize, i32> {
    // SAFETY: reads `buf.len()` bytes from a valid slice.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(errno())
    } else {
        Ok(n as usize)
    }
}

/// send(2) with MSG_DONTWAIT | MSG_NOSIGNAL: a non-blocking write to a
/// socket without changing the flags it shares with other processes.
pub fn send_nonblocking(fd: RawFd, buf: &[u8]) -> Result<usize, i32> {
    // SAFETY: reads `buf.len()` bytes from a valid slice.
    let n = unsafe {
        libc::send(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(errno())
    } else {
        Ok(n as usize)
    }
}

/// The file type bits (`S_IFMT`) of an open descriptor.
pub fn fd_type(fd: RawFd) -> Option<libc::mode_t> {
    // SAFETY: stat is plain data for fstat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is valid for writing.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st.st_mode & libc::S_IFMT)
}

/// Starts a non-blocking TCP connect; Ok(socket) also while in progress.
pub fn tcp_connect_start(addr: &std::net::SocketAddr) -> Result<std::os::fd::OwnedFd, i32> {
    use std::os::fd::FromRawFd;
    let (family, storage, len) = sockaddr_of(addr);
    let kind = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: socket takes plain integers.
    let fd = unsafe { libc::socket(family, kind, 0) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: `fd` is new and owned by nobody else.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: `storage` holds a valid sockaddr of `len` bytes.
    let r = unsafe { libc::connect(fd, std::ptr::addr_of!(storage).cast(), len) };
    if r == 0 || errno() == libc::EINPROGRESS {
        Ok(sock)
    } else {
        Err(errno())
    }
}

/// The pending error of a socket (SO_ERROR): 0 once a connect succeeded.
pub fn socket_error(fd: RawFd) -> i32 {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are valid for getsockopt to fill.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            std::ptr::addr_of_mut!(err).cast(),
            &mut len,
        )
    };
    if r < 0 {
        errno()
    } else {
        err
    }
}

fn sockaddr_of(
    addr: &std::net::SocketAddr,
) -> (libc::c_int, libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data, valid when zeroed.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        std::net::SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(std::ptr::addr_of_mut!(storage).cast(), sin) };
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            (libc::AF_INET, storage, len)
        }
        std::net::SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(std::ptr::addr_of_mut!(storage).cast(), sin6) };
            let len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            (libc::AF_INET6, storage, len)
        }
    }
}

/// The credentials of a Unix socket's peer (SO_PEERCRED): (pid, uid, gid).
pub fn peer_cred(fd: RawFd) -> Option<(Pid, u32, u32)> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for getsockopt to fill.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::addr_of_mut!(cred).cast(),
            &mut len,
        )
    };
    (r == 0).then_some((cred.pid, cred.uid, cred.gid))
}

/// Puts a descriptor this process owns alone (a pipe's read end, a socket
/// it made) into non-blocking mode.
pub fn set_nonblocking(fd: RawFd) -> bool {
    // SAFETY: fcntl on an integer fd; a bad fd returns EBADF.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
    }
}

pub fn close(fd: RawFd) {
    // SAFETY: closing an fd this module owns (or was told to drop).
    unsafe {
        libc::close(fd);
    }
}

/// Opens /dev/null onto each of fds 0, 1 and 2 that is closed. Must run
/// before rinit opens anything: otherwise its next descriptor (a CLOEXEC
/// pipe, a socket) takes the lowest free number, 0-2, and is then handed
/// to a service as its stdin, stdout or stderr, or closed under it.
pub fn open_missing_stdio() {
    for fd in 0..3 {
        if fd_is_open(fd) {
            continue;
        }
        // SAFETY: a NUL-terminated literal path; no O_CLOEXEC, because the
        // descriptor is meant to be inherited as stdio.
        let got = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if got >= 0 && got != fd {
            // Lower ones are open by now, so `got` == `fd` is the rule;
            // this only guards against a surprise.
            // SAFETY: dup2 and close on descriptors this function opened.
            unsafe {
                libc::dup2(got, fd);
                libc::close(got);
            }
        }
    }
}

/// Last-resort exit that runs no destructors and takes no locks.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is always sound.
    unsafe { libc::_exit(code) }
}

/// Writes a message straight to fd 2, for the panic hook: no locks, and
/// only if stderr takes it within 100 ms (a stalled reader must not keep a
/// dying PID 1 alive).
pub fn write_stderr_raw(msg: &[u8]) {
    let mut p = [libc::pollfd {
        fd: 2,
        events: libc::POLLOUT,
        revents: 0,
    }];
    if poll(&mut p, 100).is_ok_and(|n| n == 1) && p[0].revents & libc::POLLOUT != 0 {
        let _ = write_fd(2, &msg[..msg.len().min(4096)]);
    }
}

/// The soft limit on open descriptors (RLIMIT_NOFILE), if known.
pub fn fd_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we own.
    let r = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (r == 0).then_some(lim.rlim_cur)
}

pub fn egid() -> u32 {
    // SAFETY: getegid cannot fail.
    unsafe { libc::getegid() }
}

pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether process group `pgid` has any member, zombies included (kill
/// with signal 0: ESRCH means empty; EPERM means there is one).
pub fn group_exists(pgid: Pid) -> bool {
    pgid > 0 && kill(-pgid, 0) != Err(libc::ESRCH)
}

/// A pidfd for `pid` (Linux 5.3+). Err(ENOSYS) on older kernels, ESRCH
/// once the process has been reaped.
pub fn pidfd_open(pid: Pid) -> Result<std::os::fd::OwnedFd, i32> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes two integers and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: the kernel just gave us this descriptor; nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Signals the process behind a pidfd: never another process that reused
/// its pid. ESRCH once it has been reaped (a zombie still takes signal 0).
pub fn pidfd_send_signal(fd: &std::os::fd::OwnedFd, sig: i32) -> Result<(), i32> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor, a signal number, no siginfo, no flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The permissions /proc/self/maps shows for the mapping holding `addr`.
    fn perms_at(addr: usize) -> Option<String> {
        let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
        maps.lines().find_map(|line| {
            let (range, rest) = line.split_once(' ')?;
            let (lo, hi) = range.split_once('-')?;
            let (lo, hi) = (
                usize::from_str_radix(lo, 16).ok()?,
                usize::from_str_radix(hi, 16).ok()?,
            );
            (lo <= addr && addr < hi).then(|| rest.split(' ').next().unwrap_or("").to_string())
        })
    }

    #[test]
    fn the_child_stack_has_a_guard_page_below_it() {
        let stack = ChildStack::new().unwrap();
        let top = stack.top() as usize;
        let lowest_usable = top - CHILD_STACK;
        assert_eq!(top % 16, 0);
        assert_eq!(perms_at(lowest_usable).as_deref(), Some("rw-p"));
        assert_eq!(perms_at(top - 1).as_deref(), Some("rw-p"));
        assert_eq!(perms_at(lowest_usable - 1).as_deref(), Some("---p"));
    }

    #[test]
    fn forks_and_execs_with_the_guarded_stack() {
        let path = c"/bin/true";
        let argv = [path.as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null()];
        let setup = ChildSetup {
            path,
            argv: &argv,
            envp: &envp,
            workdir: None,
            identity: None,
            new_session: true,
            foreground: false,
            stdio: [-1; 3],
            keep_fds: &[],
            ready_fd: None,
            umask: None,
            rlimits: &[],
            no_new_privs: false,
        };
        match fork_exec(&setup) {
            Ok(ForkResult::Started(pid)) => {
                let mut status = 0;
                // SAFETY: waiting for our own child (no reaper thread in tests).
                assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
                assert_eq!(decode_status(status), Ok(0));
            }
            _ => panic!("/bin/true did not start"),
        }
    }
}
