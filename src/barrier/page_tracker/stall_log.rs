//! The log of fault stalls a tracker measured, which a signal handler may append to.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::error::Result;
use crate::side_table::SideTable;

/// Fault stalls as a tracker measured them, `(start, duration)` in `CLOCK_MONOTONIC`
/// nanoseconds, in a fixed-capacity log that a signal handler may append to: an entry is
/// claimed with one `fetch_add` and published by storing its duration with
/// [`StallLog::READY`] set. The log is never reset (a reset could race a writer that has
/// claimed an entry); the reader keeps a cursor, and stalls past the capacity are counted
/// as dropped. The table is a side table: only the entries used cost memory.
#[derive(Debug)]
pub(crate) struct StallLog {
    entries: SideTable<AtomicU64>,
    next: AtomicUsize,
    /// The first entry not yet taken (the reader's, under its lock).
    taken: parking_lot::Mutex<usize>,
    dropped: AtomicU64,
}

impl StallLog {
    /// Stalls one log keeps: 1 Mi (16 MiB reserved).
    pub(crate) const CAPACITY: usize = 1 << 20;
    /// Set in a published duration.
    const READY: u64 = 1 << 63;

    pub(crate) fn new() -> Result<StallLog> {
        Ok(StallLog {
            entries: SideTable::new(2 * Self::CAPACITY)?,
            next: AtomicUsize::new(0),
            taken: parking_lot::Mutex::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    /// Appends a stall that began at `start_ns` and ends now. Async-signal-safe; never
    /// panics.
    pub(crate) fn push_since(&self, start_ns: u64) {
        let duration = crate::sys::monotonic_ns().saturating_sub(start_ns);
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        match (self.entries.get(2 * i), self.entries.get(2 * i + 1)) {
            (Some(s), Some(d)) => {
                s.store(start_ns, Ordering::Relaxed);
                d.store(duration | Self::READY, Ordering::Release);
            }
            _ => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Moves the stalls published since the last call into `out`, in claim order; an
    /// entry claimed but not yet published ends the call (it is taken next time).
    pub(crate) fn take(&self, out: &mut Vec<(u64, u64)>) {
        let mut taken = self.taken.lock();
        let end = self.next.load(Ordering::Acquire).min(Self::CAPACITY);
        while *taken < end {
            let d = self.entries[2 * *taken + 1].load(Ordering::Acquire);
            if d & Self::READY == 0 {
                break;
            }
            out.push((
                self.entries[2 * *taken].load(Ordering::Relaxed),
                d & !Self::READY,
            ));
            *taken += 1;
        }
    }

    /// Stalls that did not fit.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_log_hands_over_each_stall_once_in_order() {
        let log = StallLog::new().unwrap();
        let now = crate::sys::monotonic_ns();
        for k in 0..3 {
            log.push_since(now - 1000 * (k + 1));
        }
        let mut out = Vec::new();
        log.take(&mut out);
        assert_eq!(out.len(), 3);
        for (k, &(start, duration)) in out.iter().enumerate() {
            assert_eq!(start, now - 1000 * (k as u64 + 1));
            assert!(duration >= 1000 * (k as u64 + 1), "{duration}");
        }
        out.clear();
        log.take(&mut out);
        assert!(out.is_empty(), "taken twice: {out:?}");
        log.push_since(now);
        log.take(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(log.dropped(), 0);
    }
}
