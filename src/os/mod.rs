//! The OS shell: the only code that makes syscalls about processes and
//! signals. `sys` holds every `unsafe` block of the program.

pub mod groups;
pub mod notify;
pub mod procs;
pub mod reaper;
pub mod signals;
pub mod spawn;
pub mod sys;
