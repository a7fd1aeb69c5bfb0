//! Counters the io thread keeps for `/metrics` beside the supervisor's
//! snapshot: control requests by verb and result, and log bytes that slow
//! `logs -f` followers missed, by service. Behind one lock taken only to
//! bump or copy a counter.

use std::sync::{Mutex, MutexGuard, OnceLock};

/// Small lists searched linearly: a handful of verbs and results, a few
/// services; no map type's code for PID 1 to carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub control: Vec<((&'static str, &'static str), u64)>,
    pub follower_dropped: Vec<(String, u64)>,
}

/// Adds `n` to the entry for `key`, making it when missing.
pub fn bump<K: PartialEq>(list: &mut Vec<(K, u64)>, key: K, n: u64) {
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some((_, v)) => *v += n,
        None => list.push((key, n)),
    }
}

fn global() -> MutexGuard<'static, Stats> {
    static STATS: OnceLock<Mutex<Stats>> = OnceLock::new();
    STATS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn count_control(verb: &'static str, result: &'static str) {
    bump(&mut global().control, (verb, result), 1);
}

pub fn add_follower_dropped(dropped: &mut Vec<(String, u64)>) {
    let mut g = global();
    for (service, n) in std::mem::take(dropped) {
        bump(&mut g.follower_dropped, service, n);
    }
}

pub fn snapshot() -> Stats {
    global().clone()
}
