//! Which signals rinit catches and forwards, and the thread that turns
//! them into events. The forwarded signals are blocked in every thread and
//! one thread takes them with sigwaitinfo(2): no handlers, no self-pipe, no
//! allocation per signal. A namespace's PID 1 drops a signal whose handler
//! is SIG_DFL unless the signal is blocked; blocked ones stay pending until
//! taken, so none is lost.

use super::sys::SignalSet;

/// Catchable signals that rinit does not forward: SIGCHLD is the reaper's
/// business; SIGPIPE, SIGTTIN and SIGTTOU arise from rinit's own writes and
/// terminal hand-off and stay ignored; the rest cannot be caught or are
/// reserved for faults.
fn forwarded(sig: i32) -> bool {
    !matches!(
        sig,
        libc::SIGCHLD
            | libc::SIGPIPE
            | libc::SIGTTIN
            | libc::SIGTTOU
            | libc::SIGKILL
            | libc::SIGSTOP
            | libc::SIGILL
            | libc::SIGFPE
            | libc::SIGSEGV
            | libc::SIGBUS
            | libc::SIGSYS
            | libc::SIGTRAP
            | libc::SIGABRT
    )
}

pub fn forwarded_signals() -> Vec<i32> {
    let realtime = libc::SIGRTMIN()..=libc::SIGRTMAX();
    (1..32).filter(|&s| forwarded(s)).chain(realtime).collect()
}

/// Blocks the forwarded signals in the calling thread, and so in every
/// thread it creates afterwards. Call before any thread exists.
pub fn block_forwarded() -> SignalSet {
    let set = SignalSet::new(&forwarded_signals());
    set.block();
    set
}

/// Starts the thread that takes each blocked signal and reports it.
pub fn start(set: SignalSet, report: impl Fn(i32) + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("signals".into())
        .stack_size(64 * 1024)
        .spawn(move || loop {
            report(set.wait());
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
    fn forwards_the_usual_ones() {
        let f = forwarded_signals();
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
