//! The decision core: events in, actions out, time as an argument. No
//! syscalls, no clock, no libc: every rule of the contract about states,
//! restarts, backoff, shutdown order and exit status lives here, where unit
//! tests drive it without processes.

pub mod signal;
pub mod snapshot;
pub mod types;
