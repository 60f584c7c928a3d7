//! The verifier: with every mutator stopped at the end of remark, re-checks the
//! tri-colour invariant over the whole heap: every root is marked, and no marked,
//! initialised object has an unmarked child. A test switch
//! ([`crate::HeapConfig::verify`]); it costs a walk of the whole heap per cycle.

use std::sync::atomic::Ordering;

use super::Gc;
use crate::barrier::DirtySet;
use crate::bitmap::Bitmap;
use crate::heap::object;

/// Returns one message per violation, each with what the heap and the tracker hold about
/// the marked object's page ([`explain`]). `roots` are the stopped mutators' root stacks,
/// `dirty` is what remark's harvest handed over.
pub(crate) fn verify<'r>(
    gc: &Gc<'_>,
    marks: &Bitmap,
    dirty: &DirtySet,
    roots: impl Iterator<Item = &'r [usize]>,
) -> Vec<String> {
    let space = gc.space;
    let mut failures = Vec::new();
    let marked = |a: usize| marks.get(space.granule(a));
    for stack in roots {
        for &r in stack {
            if r != 0 && !marked(r) {
                failures.push(format!("root {r:#x} is not marked at remark"));
            }
        }
    }
    space.for_each_cell(|obj| {
        if !space.is_allocated(obj) || !marked(obj) {
            return;
        }
        // SAFETY: an allocated cell of this space.
        let Some(hdr) = (unsafe { object::load_header(obj) }) else {
            return;
        };
        for i in 0..hdr.nrefs {
            // SAFETY: `i < nrefs` of an allocated object.
            let v = unsafe { object::slot(obj, i) }.load(Ordering::Acquire);
            if v != 0 && !marked(v) {
                failures.push(format!(
                    "marked object {obj:#x} slot {i} points to unmarked {v:#x} at remark \
                     ({})",
                    explain(gc, dirty, obj)
                ));
            }
        }
    });
    failures
}

/// What the heap and the tracker hold about the page of the object at `obj`, so that a
/// violation says where to look: its page and cell size, whether cells of it were handed
/// out since the arm, whether remark's harvest reported the object's granule, and the
/// tracker's own bits for the page.
fn explain(gc: &Gc<'_>, dirty: &DirtySet, obj: usize) -> String {
    let space = gc.space;
    let page = space.page_of(obj);
    let reported = match (dirty.all, gc.tracker) {
        (true, _) => "all".to_string(),
        (false, Some(t)) => {
            let granule = (obj - space.base()) >> t.granule_shift();
            dirty.granules.binary_search(&granule).is_ok().to_string()
        }
        (false, None) => "no tracker".to_string(),
    };
    let tracker = gc.tracker.and_then(|t| t.describe_page(obj));
    format!(
        "page {page}, cells of {} bytes, handed out since arm {}, reported at remark {reported}{}",
        space.cell_bytes(obj),
        space.in_frontier(page),
        tracker.map(|t| format!(", {t}")).unwrap_or_default()
    )
}
