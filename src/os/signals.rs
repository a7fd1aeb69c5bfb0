//! Which signals rinit catches and forwards, and the thread that turns
//! them into events. The forwarded signals are blocked in every thread and
//! one thread takes them with sigwaitinfo(2): no handlers, no self-pipe, no
//! allocation per signal. A namespace's PID 1 drops a signal whose handler
//! is SIG_DFL unless the signal is blocked; blocked ones stay pending until
//! taken, so none is lost.

use super::sys::{Pid, SigInfo, SignalSet};

/// Catchable signals that rinit does not take: SIGCHLD is the reaper's
/// business (waitpid needs no signal); SIGKILL and SIGSTOP cannot be
/// caught. Everything else is blocked and taken, the "fault" signals too:
/// a real fault in rinit is forced through the block by the kernel (it
/// resets the action to the default and kills us), so only sent ones
/// ever reach sigwaitinfo.
fn taken(sig: i32) -> bool {
    !matches!(sig, libc::SIGCHLD | libc::SIGKILL | libc::SIGSTOP)
}

pub fn taken_signals() -> Vec<i32> {
    let realtime = libc::SIGRTMIN()..=libc::SIGRTMAX();
    (1..32).filter(|&s| taken(s)).chain(realtime).collect()
}

/// SPEC section 2: a signal counts when a process *sent* it (si_code <= 0:
/// kill, sigqueue, tkill), except one from rinit itself: the kernel sends
/// the SIGPIPE of rinit's own write to a closed pipe (and SIGXFSZ) as
/// SI_USER with rinit's own pid. Of what the kernel raises (si_code > 0),
/// only a terminal's own signals count (hangup, ^C, ^\, ^Z, resize, as
/// SI_KERNEL): SIGTTIN/SIGTTOU of a terminal hand-off, SIGIO, SIGXCPU and
/// faults come from rinit's own doings.
pub fn counts(info: SigInfo, own_pid: Pid) -> bool {
    if info.code <= 0 {
        return info.pid != own_pid;
    }
    info.code == libc::SI_KERNEL
        && matches!(
            info.signo,
            libc::SIGHUP
                | libc::SIGINT
                | libc::SIGQUIT
                | libc::SIGTSTP
                | libc::SIGWINCH
                | libc::SIGCONT
        )
}

/// Blocks the taken signals in the calling thread, and so in every thread
/// it creates afterwards. Call before any thread exists.
pub fn block_taken() -> SignalSet {
    let set = SignalSet::new(&taken_signals());
    set.block();
    set
}

/// Starts the thread that takes each blocked signal and reports those
/// that count; the rest are dropped.
pub fn start(set: SignalSet, report: impl Fn(i32) + Send + 'static) -> std::io::Result<()> {
    let own_pid = std::process::id() as Pid;
    std::thread::Builder::new()
        .name("signals".into())
        .stack_size(64 * 1024)
        .spawn(move || loop {
            let info = set.wait();
            if counts(info, own_pid) {
                report(info.signo);
            } else if info.pid != own_pid {
                // Never a line for rinit's own SIGPIPE/SIGXFSZ: that write
                // could raise the next one on this very thread, for ever.
                log::debug!(
                    "ignored {} raised by the kernel or rinit itself (si_code {}, pid {})",
                    crate::core::signal::name(info.signo),
                    info.code,
                    info.pid
                );
            }
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::signal;

    #[test]
    fn core_numbers_match_libc() {
        assert_eq!(signal::SIGTERM, libc::SIGTERM);
        assert_eq!(signal::SIGINT, libc::SIGINT);
        assert_eq!(signal::SIGQUIT, libc::SIGQUIT);
        assert_eq!(signal::SIGKILL, libc::SIGKILL);
        assert_eq!(signal::parse("HUP"), Some(libc::SIGHUP));
        assert_eq!(signal::parse("USR1"), Some(libc::SIGUSR1));
        assert_eq!(signal::parse("USR2"), Some(libc::SIGUSR2));
        assert_eq!(signal::parse("WINCH"), Some(libc::SIGWINCH));
        assert_eq!(signal::parse("PWR"), Some(libc::SIGPWR));
    }

    #[test]
    fn takes_every_catchable_signal_but_sigchld() {
        let f = taken_signals();
        for s in [
            libc::SIGPIPE,
            libc::SIGTTIN,
            libc::SIGTTOU,
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGFPE,
            libc::SIGILL,
            libc::SIGABRT,
            libc::SIGTRAP,
            libc::SIGSYS,
            libc::SIGRTMAX(),
        ] {
            assert!(f.contains(&s), "{s}");
        }
        for s in [libc::SIGCHLD, libc::SIGKILL, libc::SIGSTOP] {
            assert!(!f.contains(&s), "{s}");
        }
    }

    fn info(signo: i32, code: i32, pid: Pid) -> SigInfo {
        SigInfo { signo, code, pid }
    }

    #[test]
    fn only_what_was_sent_counts() {
        let own = 1;
        // kill(2) from the parent namespace (pid 0), from inside, sigqueue, tgkill.
        assert!(counts(info(libc::SIGSEGV, libc::SI_USER, 0), own));
        assert!(counts(info(libc::SIGPIPE, libc::SI_USER, 42), own));
        assert!(counts(info(libc::SIGUSR1, libc::SI_QUEUE, 42), own));
        assert!(counts(info(libc::SIGTTOU, libc::SI_TKILL, 42), own));
        // rinit's own write to a closed pipe: SI_USER with its own pid.
        assert!(!counts(info(libc::SIGPIPE, libc::SI_USER, own), own));
        assert!(!counts(info(libc::SIGXFSZ, libc::SI_USER, own), own));
        // Kernel-raised: a terminal's ^C and resize count, the rest not.
        assert!(counts(info(libc::SIGINT, libc::SI_KERNEL, 0), own));
        assert!(counts(info(libc::SIGWINCH, libc::SI_KERNEL, 0), own));
        assert!(!counts(info(libc::SIGTTOU, libc::SI_KERNEL, 0), own));
        assert!(!counts(info(libc::SIGIO, libc::SI_KERNEL, 0), own));
        assert!(!counts(info(libc::SIGSEGV, 1, 0), own));
    }

    #[test]
    fn forwards_the_usual_ones() {
        let f = taken_signals();
        for s in [
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGHUP,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGWINCH,
        ] {
            assert!(f.contains(&s), "{s}");
        }
        assert!(!f.contains(&libc::SIGCHLD));
    }
}
