//! The `mprotect` tracker at its edges, for real, in children of their own:
//! - `vm.max_map_count`: every page unprotected in the middle of a read-only heap splits
//!   a VMA; at the limit `mprotect` fails with `ENOMEM`, and the tracker must degrade to
//!   "everything dirty" without losing a write.
//! - A SIGSEGV outside the heap, with the tracker's handler installed, must still kill
//!   the process with SIGSEGV; and dropping the last tracker restores the previous
//!   action.
//!
//! Each case runs in a fresh process of this test binary (`in_fresh_process`, not a fork
//! of this multi-threaded one) so that the mapping count and the signal actions are the
//! child's alone; the parent only waits (with a timeout) and reads the child's message.
//! The cases are serialised, so that a lowered global `vm.max_map_count` never overlaps
//! another child's run.
//!
//! Reaching the limit: by default the child fills its own address space with VMAs up to
//! the current `vm.max_map_count` (every other page of a filler mapping made read-only),
//! which needs no privilege and changes nothing outside the child. Lowering the sysctl
//! instead (`BARRIERLAB_MAX_MAP_COUNT_MODE=sysctl`, used automatically when the limit is
//! too large to fill) is global: for the few milliseconds the limit is low, any other
//! process on the machine with more mappings than that fails to `mmap`. That mode needs
//! root; without it the test is skipped with the reason, or fails when
//! `BARRIERLAB_REQUIRE_ALL=1`. The parent restores the original limit on every path.
//!
//! This is the one test binary outside the layer binaries (`tests/<layer>/main.rs`): a
//! lowered global limit would fail the `mmap` and `mprotect` calls of any test running
//! beside it in the same binary, and cargo runs test binaries one after another.

#[macro_use]
mod support;

use std::sync::Mutex;

use barrierlab::barrier::{DirtySet, DirtyTracker, MprotectTracker};
use barrierlab::sys::PAGE_SIZE;
use barrierlab::sys::mem::{Protection, Region, count_mappings, mprotect_errno};
use support::{
    SKIP_STATUS, describe, in_fresh_process, require_all, write_a_read_only_page_of_no_heap,
};

/// One child at a time (see the module docs).
static SERIAL: Mutex<()> = Mutex::new(());

const MAX_MAP_COUNT: &str = "/proc/sys/vm/max_map_count";
/// Above this limit, filling the address space with VMAs takes too long (seconds).
const FILL_LIMIT: usize = 1 << 21;

fn read_limit() -> usize {
    std::fs::read_to_string(MAX_MAP_COUNT)
        .expect("vm.max_map_count")
        .trim()
        .parse()
        .expect("vm.max_map_count is a number")
}

/// Puts the original `vm.max_map_count` back when dropped, if it was changed.
struct RestoreLimit(usize);

impl Drop for RestoreLimit {
    fn drop(&mut self) {
        if read_limit() != self.0 {
            std::fs::write(MAX_MAP_COUNT, self.0.to_string()).expect("restoring vm.max_map_count");
        }
    }
}

/// Brings this process to the mapping limit, then gives back `room` VMAs: returns the
/// filler mapping, which must stay alive.
fn fill_to_limit(room: usize) -> Result<Region, String> {
    let limit = read_limit();
    // Every other page read-only: one VMA per page, twice as many pages as the limit.
    let pages = 2 * limit + 3;
    let filler = Region::new(pages * PAGE_SIZE).map_err(|e| e.to_string())?;
    let page = |i: usize| filler.base() + i * PAGE_SIZE;
    let mut i = 1;
    loop {
        if i + 1 >= pages {
            return Err(format!(
                "{pages} pages of filler did not reach vm.max_map_count={limit}"
            ));
        }
        match mprotect_errno(page(i), PAGE_SIZE, Protection::Read) {
            Ok(()) => i += 2,
            Err(libc::ENOMEM) => break,
            Err(e) => return Err(format!("mprotect(filler page) failed: errno {e}")),
        }
    }
    // At the limit now. Making the tail writable merges `room` VMAs away (two per
    // read-only page); it starts at a VMA boundary, so it needs no split itself.
    let from = i.saturating_sub(room.div_ceil(2) * 2);
    mprotect_errno(
        page(from),
        (pages - from) * PAGE_SIZE,
        Protection::ReadWrite,
    )
    .map_err(|e| format!("mprotect(filler tail, RW) failed: errno {e}"))?;
    Ok(filler)
}

/// The degradation scenario, run in the child once it is `room` VMAs below the limit.
fn degrade_at_the_limit() -> Result<String, String> {
    let pages = 2000;
    let heap = Region::new(pages * PAGE_SIZE).map_err(|e| e.to_string())?;
    let base = heap.base();
    let t = MprotectTracker::new(base, heap.len()).map_err(|e| e.to_string())?;
    t.arm().map_err(|e| format!("arm: {e}"))?;
    // Every other page: each one unprotected splits a read-only VMA in three.
    let written: Vec<usize> = (0..pages).step_by(2).collect();
    for &p in &written {
        // SAFETY: inside the heap mapping; the store faults and is served.
        unsafe { ((base + p * PAGE_SIZE) as *mut u64).write_volatile(p as u64 + 1) };
    }
    let stats = t.stats();
    let mut dirty = DirtySet::default();
    t.harvest(&mut dirty, true)
        .map_err(|e| format!("harvest: {e}"))?;
    let lost: Vec<usize> = (0..pages)
        .filter(|&p| {
            // SAFETY: inside the heap mapping, readable in every state of the tracker.
            let v = unsafe { ((base + p * PAGE_SIZE) as *const u64).read_volatile() };
            v != if p % 2 == 0 { p as u64 + 1 } else { 0 }
        })
        .collect();
    let mut problems = Vec::new();
    if stats.degradations < 1 {
        problems.push(format!("no degradation recorded: {stats:?}"));
    }
    match stats.last_degradation {
        Some(d) if d.errno == libc::ENOMEM && d.to_string().contains("mprotect") => {}
        other => problems.push(format!("the cause is not mprotect's ENOMEM: {other:?}")),
    }
    if stats.faults == 0 {
        problems.push("not a single fault was served before the limit".into());
    }
    if !dirty.all {
        problems.push(format!(
            "the harvest did not report everything ({} pages)",
            dirty.granules.len()
        ));
    }
    if !lost.is_empty() {
        problems.push(format!("writes lost on pages {lost:?}"));
    }
    t.disarm().map_err(|e| format!("disarm: {e}"))?;
    if problems.is_empty() {
        Ok(format!(
            "{} faults served, then degraded ({} degradation: {}), {} mappings now",
            stats.faults,
            stats.degradations,
            stats.last_degradation.map_or("?".into(), |d| d.to_string()),
            count_mappings()
        ))
    } else {
        Err(problems.join("; "))
    }
}

#[test]
fn at_vm_max_map_count_the_tracker_degrades_and_loses_no_write() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let original = read_limit();
    let _restore = RestoreLimit(original);
    let via_sysctl = std::env::var("BARRIERLAB_MAX_MAP_COUNT_MODE").as_deref() == Ok("sysctl")
        || original > FILL_LIMIT;
    let outcome = in_fresh_process(test_name!(), || {
        if via_sysctl {
            // The limit is global: keep the window in which it is low as short as we can.
            let lowered = count_mappings() + 50;
            if let Err(e) = std::fs::write(MAX_MAP_COUNT, lowered.to_string()) {
                return Ok(format!(
                    "SKIP: cannot lower vm.max_map_count to {lowered} ({e}): needs root"
                ));
            }
            let result = degrade_at_the_limit();
            let _ = std::fs::write(MAX_MAP_COUNT, original.to_string());
            result.map(|m| format!("{m} (vm.max_map_count lowered to {lowered})"))
        } else {
            let _filler = fill_to_limit(40)?;
            degrade_at_the_limit().map(|m| format!("{m} (filled to vm.max_map_count={original})"))
        }
    });
    drop(_restore);
    assert_eq!(read_limit(), original, "vm.max_map_count was not restored");
    match outcome.status {
        s if libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == 0 => {
            eprintln!("ok: {}", outcome.message)
        }
        s if libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == SKIP_STATUS => {
            assert!(
                !require_all(),
                "BARRIERLAB_REQUIRE_ALL=1: {}",
                outcome.message
            );
            eprintln!("{}", outcome.message);
        }
        s => panic!("the child {}: {}", describe(s), outcome.message),
    }
}

/// The tracker's SIGSEGV action as `sigaction(2)` reports it.
fn current_segv_handler() -> usize {
    // SAFETY: a zeroed sigaction is valid output space; querying changes nothing.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: reads the current SIGSEGV action.
    unsafe { libc::sigaction(libc::SIGSEGV, std::ptr::null(), &mut old) };
    old.sa_sigaction
}

#[test]
fn a_write_outside_the_heap_still_kills_with_sigsegv_and_drop_restores_the_handler() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // Install, serve a heap fault, then fault outside the heap.
    let outcome = in_fresh_process(test_name!(), || {
        let heap = Region::new(16 * PAGE_SIZE).map_err(|e| e.to_string())?;
        let t = MprotectTracker::new(heap.base(), heap.len()).map_err(|e| e.to_string())?;
        t.arm().map_err(|e| e.to_string())?;
        // SAFETY: inside the armed heap: the fault is served.
        unsafe { ((heap.base() + 3 * PAGE_SIZE) as *mut u64).write_volatile(1) };
        if t.stats().faults != 1 {
            return Err(format!("the heap fault was not served: {:?}", t.stats()));
        }
        write_a_read_only_page_of_no_heap()
    });
    let what = format!("the child should die of SIGSEGV ({})", outcome.message);
    support::assert_killed_by(outcome.status, libc::SIGSEGV, &what);
}

#[test]
fn dropping_the_last_mprotect_tracker_restores_the_previous_handler() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // Install, drop, compare; nothing dies.
    let outcome = in_fresh_process(test_name!(), || {
        let before = current_segv_handler();
        let heap = Region::new(16 * PAGE_SIZE).map_err(|e| e.to_string())?;
        let t = MprotectTracker::new(heap.base(), heap.len()).map_err(|e| e.to_string())?;
        let installed = current_segv_handler();
        let heap2 = Region::new(16 * PAGE_SIZE).map_err(|e| e.to_string())?;
        let second = MprotectTracker::new(heap2.base(), heap2.len()).map_err(|e| e.to_string())?;
        drop(t);
        let still = current_segv_handler();
        drop(second);
        let after = current_segv_handler();
        if installed == before || still != installed || after != before {
            return Err(format!(
                "handler before {before:#x}, installed {installed:#x}, after one drop \
                 {still:#x}, after the last {after:#x}"
            ));
        }
        Ok(String::new())
    });
    assert_eq!(
        outcome.status,
        0,
        "{}: {}",
        describe(outcome.status),
        outcome.message
    );
}
