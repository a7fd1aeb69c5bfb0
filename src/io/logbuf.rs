//! Per-service buffers of recent output, for `rinit ctl logs`: the last
//! `cap` bytes of whole lines of each service, kept across its restarts,
//! each line with a global sequence number (so lines of several services
//! merge in the order rinit received them).
//!
//! Invariants: a buffer never holds more than `cap` bytes of line text plus
//! one line (a line is at most `relay::MAX_LINE`); overwriting the oldest
//! lines is what a ring does, not a loss; `cap` 0 keeps nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::sink::Stream;

/// The default `logs.buffer`.
pub const DEFAULT_CAP: usize = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub seq: u64,
    pub service: Arc<str>,
    pub stream: Stream,
    pub text: Vec<u8>,
}

#[derive(Default)]
struct Ring {
    lines: VecDeque<Line>,
    bytes: usize,
}

pub struct Rings {
    cap: usize,
    rings: HashMap<Arc<str>, Ring>,
    /// The sequence number of the latest line kept.
    latest: u64,
}

impl Default for Rings {
    fn default() -> Self {
        Rings::new(DEFAULT_CAP)
    }
}

impl Rings {
    pub fn new(cap: usize) -> Rings {
        Rings {
            cap,
            rings: HashMap::new(),
            latest: 0,
        }
    }

    pub fn set_cap(&mut self, cap: usize) {
        self.cap = cap;
    }

    pub fn latest(&self) -> u64 {
        self.latest
    }

    pub fn push(&mut self, service: &Arc<str>, stream: Stream, text: &[u8]) {
        if self.cap == 0 {
            return;
        }
        self.latest += 1;
        let ring = self.rings.entry(Arc::clone(service)).or_default();
        while ring.bytes + text.len() > self.cap && !ring.lines.is_empty() {
            if let Some(old) = ring.lines.pop_front() {
                ring.bytes -= old.text.len();
            }
        }
        ring.bytes += text.len();
        ring.lines.push_back(Line {
            seq: self.latest,
            service: Arc::clone(service),
            stream,
            text: text.to_vec(),
        });
    }

    /// Lines after `after` (a sequence number) of the named services (all
    /// with an empty list), oldest first, at most the last `n`.
    pub fn since(&self, services: &[Arc<str>], after: u64, n: usize) -> Vec<&Line> {
        let mut out: Vec<&Line> = Vec::new();
        for (name, ring) in &self.rings {
            if !services.is_empty() && !services.contains(name) {
                continue;
            }
            let newer = ring.lines.iter().rev().take_while(|l| l.seq > after);
            out.extend(newer.take(n));
        }
        let mut out = crate::core::types::sorted_by_key(out, |l| l.seq as usize);
        let skip = out.len().saturating_sub(n);
        out.drain(..skip);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[&Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| format!("{}:{}", l.service, String::from_utf8_lossy(&l.text)))
            .collect()
    }

    #[test]
    fn keeps_the_last_bytes_of_whole_lines_per_service() {
        let mut r = Rings::new(10);
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        for t in ["1234", "5678", "90ab"] {
            r.push(&a, Stream::Stdout, t.as_bytes());
        }
        r.push(&b, Stream::Stderr, b"x");
        assert_eq!(texts(&r.since(&[], 0, 100)), ["a:5678", "a:90ab", "b:x"]);
        assert_eq!(texts(&r.since(&[Arc::clone(&b)], 0, 100)), ["b:x"]);
        assert_eq!(texts(&r.since(&[], 0, 2)), ["a:90ab", "b:x"]);
        assert_eq!(texts(&r.since(&[], 3, 100)), ["b:x"]);
    }

    #[test]
    fn merges_services_in_arrival_order() {
        let mut r = Rings::new(100);
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        r.push(&a, Stream::Stdout, b"1");
        r.push(&b, Stream::Stdout, b"2");
        r.push(&a, Stream::Stdout, b"3");
        assert_eq!(texts(&r.since(&[], 0, 10)), ["a:1", "b:2", "a:3"]);
        assert_eq!(r.latest(), 3);
    }

    #[test]
    fn zero_keeps_nothing() {
        let mut r = Rings::new(0);
        r.push(&Arc::from("a"), Stream::Stdout, b"1");
        assert!(r.since(&[], 0, 10).is_empty());
    }
}
