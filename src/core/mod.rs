//! The decision core: events in, actions out, time as an argument. No
//! syscalls, no clock, no libc: every rule of the contract about states,
//! restarts, backoff, shutdown order and exit status lives here, where unit
//! tests drive it without processes.

mod control;
mod drain;
mod forward;
mod notified;
pub mod notify;
mod reload;
pub mod service;
pub mod shutdown;
pub mod signal;
pub mod snapshot;
mod stop;
pub mod supervisor;
pub mod types;
pub mod waves;

#[cfg(test)]
mod check_tests;
#[cfg(test)]
mod control_tests;
#[cfg(test)]
mod drain_tests;
#[cfg(test)]
mod reload_tests;
#[cfg(test)]
mod tests;

pub use supervisor::{Level, Supervisor};
