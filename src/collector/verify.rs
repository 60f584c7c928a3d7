//! The verifier: with every mutator stopped at the end of remark, re-checks the
//! tri-colour invariant over the whole heap: every root is marked, and no marked,
//! initialised object has an unmarked child. A test switch
//! ([`crate::HeapConfig::verify`]); it costs a walk of the whole heap per cycle.

use std::sync::atomic::Ordering;

use crate::bitmap::Bitmap;
use crate::heap::Space;
use crate::heap::object;

/// Returns one message per violation. `roots` are the stopped mutators' root stacks.
pub(crate) fn verify<'r>(
    space: &Space,
    marks: &Bitmap,
    roots: impl Iterator<Item = &'r [usize]>,
) -> Vec<String> {
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
                    "marked object {obj:#x} slot {i} points to unmarked {v:#x} at remark"
                ));
            }
        }
    });
    failures
}
