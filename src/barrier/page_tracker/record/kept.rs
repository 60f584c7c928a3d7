//! The young pages an arm keeps writable and recorded
//! ([`DirtyTracker::arm_with_young`]), and the harvest's release of those that come to
//! hold a marked object ([`DirtyTracker::harvest_marked`]); see the record's module docs.
//! And a page's bits, for the verifier's report of a violation on it.
//!
//! [`DirtyTracker::arm_with_young`]: crate::barrier::DirtyTracker::arm_with_young
//! [`DirtyTracker::harvest_marked`]: crate::barrier::DirtyTracker::harvest_marked

use std::ops::Range;

use super::{MIN_OPEN_RUN, PageRecord};
use crate::barrier::Marked;

impl PageRecord {
    /// Arm's young runs: the parts of `young` below page `pages` and not open, of at
    /// least [`MIN_OPEN_RUN`] pages, recorded and marked kept.
    pub(super) fn keep_young(&self, young: &[Range<usize>], pages: usize) -> Vec<Range<usize>> {
        let mut kept = Vec::new();
        for run in young {
            let first = self.page_of(run.start).min(pages);
            let end = (self.page_of(run.end)).min(pages);
            let mut q = first;
            while q < end {
                while q < end && self.open.get(q) {
                    q += 1;
                }
                let from = q;
                while q < end && !self.open.get(q) {
                    q += 1;
                }
                if q - from >= MIN_OPEN_RUN {
                    self.dirty.set_strided(from, q - from, 1);
                    self.kept.set_strided(from, q - from, 1);
                    kept.push(from..q);
                }
            }
        }
        kept
    }

    /// Ends the keeping of the kept pages that hold a marked object
    /// ([`DirtyTracker::harvest_marked`]): the take that follows hands them over with the
    /// other recorded pages, and the re-protect covers them. The others stay kept,
    /// recorded and writable: nothing on them was scanned.
    ///
    /// [`DirtyTracker::harvest_marked`]: crate::barrier::DirtyTracker::harvest_marked
    pub(super) fn release_marked(&self, marked: Marked<'_>) {
        let mut released = 0;
        self.kept.for_each_set(|q| {
            if marked(self.addr_of(q)) {
                self.kept.clear(q);
                released += 1;
            }
        });
        self.counters.released_kept(released);
    }

    /// The page's bits, for the verifier's report of a violation on it
    /// ([`DirtyTracker::describe_page`](crate::barrier::DirtyTracker::describe_page)).
    pub(crate) fn describe(&self, page: usize) -> String {
        let bit = |b: &crate::bitmap::Bitmap| b.get_checked(page);
        format!(
            "tracker: recorded {}, kept {}, open {}, handed out {}",
            bit(&self.dirty),
            bit(&self.kept),
            bit(&self.open),
            bit(&self.handed)
        )
    }
}
