//! Runs of pages: the arithmetic the record's protection changes are planned with.

use std::ops::Range;

/// Calls `f(first, count)` for each run of consecutive values in a sorted slice.
pub(crate) fn for_each_run(sorted: &[usize], mut f: impl FnMut(usize, usize)) {
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i + 1;
        while j < sorted.len() && sorted[j] == sorted[j - 1] + 1 {
            j += 1;
        }
        f(sorted[i], j - i);
        i = j;
    }
}

/// The maximal runs of consecutive pages of `range` for which `marked` holds, found a
/// word at a time: a whole 64-page word inside `range` whose `words` (the union of the
/// bitmaps behind `marked`) is zero is skipped at once.
pub(super) fn marked_runs(
    range: Range<usize>,
    words: impl Fn(usize) -> u64,
    marked: impl Fn(usize) -> bool,
) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let mut q = range.start;
    while q < range.end {
        if q % 64 == 0 && q + 64 <= range.end && words(q / 64) == 0 {
            q += 64;
            continue;
        }
        if !marked(q) {
            q += 1;
            continue;
        }
        let first = q;
        while q < range.end && marked(q) {
            q += 1;
        }
        runs.push(first..q);
    }
    runs
}

/// The runs of `range` between the sorted, disjoint runs `opened`, which lie inside it.
pub(super) fn between(opened: &[Range<usize>], range: Range<usize>) -> Vec<Range<usize>> {
    let mut runs = Vec::with_capacity(opened.len() + 1);
    let mut from = range.start;
    for run in opened {
        if run.start > from {
            runs.push(from..run.start);
        }
        from = run.end;
    }
    if from < range.end {
        runs.push(from..range.end);
    }
    runs
}

/// The runs of the sorted pages `sorted`, each joined with the next where fewer than
/// `bridge` pages lie between them.
pub(crate) fn spans(sorted: &[usize], bridge: usize) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for_each_run(sorted, |first, count| match out.last_mut() {
        Some(last) if first - last.end < bridge => last.end = first + count,
        _ => out.push(first..first + count),
    });
    out
}
