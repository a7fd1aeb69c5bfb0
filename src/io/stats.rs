//! Counters the io thread keeps for `/metrics` beside the supervisor's
//! snapshot: control requests by verb and result, and log bytes that slow
//! `logs -f` followers missed, by service. Behind one lock taken only to
//! bump or copy a counter.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, OnceLock};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub control: BTreeMap<(&'static str, &'static str), u64>,
    pub follower_dropped: BTreeMap<String, u64>,
}

fn global() -> MutexGuard<'static, Stats> {
    static STATS: OnceLock<Mutex<Stats>> = OnceLock::new();
    STATS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn count_control(verb: &'static str, result: &'static str) {
    *global().control.entry((verb, result)).or_default() += 1;
}

pub fn add_follower_dropped(dropped: &mut BTreeMap<String, u64>) {
    let mut g = global();
    for (service, n) in std::mem::take(dropped) {
        *g.follower_dropped.entry(service).or_default() += n;
    }
}

pub fn snapshot() -> Stats {
    global().clone()
}
