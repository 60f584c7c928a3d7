//! The `mprotect` + SIGSEGV barrier: the classic page-level dirty tracker (bdwgc's
//! `MPROTECT_VDB`), which needs nothing from the kernel but `mprotect(2)` and a signal
//! handler.
//!
//! Run: `cargo run --release --example mprotect_segv`
//!
//! The mechanism:
//! - **arm**: one `mprotect(heap, PROT_READ)` makes the whole heap read-only;
//! - **the first write to a page** raises SIGSEGV *on the writing thread itself*. The
//!   tracker's handler sees the fault address is in its heap, makes that one page
//!   writable with `mprotect(page, PROT_READ | PROT_WRITE)`, *then* records the page,
//!   and returns; the kernel re-executes the store, which now succeeds. No other thread
//!   is involved (compare `uffd_wp_fault.rs`, where a second thread serves the fault);
//! - **harvest**: take (clear) the record, make the taken pages read-only again, then
//!   the collector rescans them. A write after the re-protect faults and is recorded
//!   again; a write before it is seen by the rescan.
//!
//! The edge this example shows: the kernel keeps one *VMA* (a line of `/proc/self/maps`)
//! per run of pages with the same protection. Every page made writable in the middle of
//! a read-only run splits a VMA in three, and a process may have at most
//! `vm.max_map_count` of them (65530 by default); then `mprotect` fails with `ENOMEM`
//! and the tracker has to give up and report "everything dirty" for the cycle.
//! Re-protecting merges them back. A second edge: a write by the *kernel* into an armed
//! page (here `read(2)`) does not raise a signal at all; the system call fails with
//! `EFAULT`.

use std::io::Read;
use std::time::{Duration, Instant};

use barrierlab::barrier::{self, BarrierKind, DirtySet};
use barrierlab::sys::PAGE_SIZE;
use barrierlab::sys::mem::{Advice, Region, count_mappings};
use barrierlab::{Error, Result};

const PAGES: usize = 16;

fn main() -> Result<()> {
    let region = Region::new(PAGES * PAGE_SIZE)?;
    region.advise(region.base(), region.len(), Advice::NoHugePage)?;
    // Populate every page now, so that the faults below are protection faults only.
    region.advise(region.base(), region.len(), Advice::PopulateWrite)?;
    let tracker = match barrier::build(&BarrierKind::Mprotect.into(), region.base(), region.len()) {
        Ok(Some(t)) => t,
        Ok(None) => unreachable!("only BarrierKind::None has no tracker"),
        Err(e @ Error::Unavailable { .. }) => {
            println!("{e}; nothing to show");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let base = region.base();
    println!(
        "region [{base:#x}, {:#x}), {PAGES} pages; the process has {} mappings",
        region.end(),
        count_mappings()
    );
    print_vmas(&region, "before arm");

    tracker.arm()?;
    print_vmas(&region, "after arm (one mprotect: all read-only)");

    // Writes from this thread. The first store to each page takes the signal path; the
    // second store to the same page is a plain store.
    println!();
    let written = [1, 3, 4, 5, 9, 14];
    for p in written {
        let (first, second) = write_page(&region, p);
        println!(
            "write page {p:>2}: first store {:>6.2} µs (SIGSEGV + mprotect in the handler), next store {:.2} µs",
            micros(first),
            micros(second)
        );
    }
    print_vmas(&region, "after the writes (split)");

    let mut dirty = DirtySet::default();
    tracker.harvest(&mut dirty, true)?;
    println!("\nharvest with re-arm -> dirty pages {:?}", dirty.granules);
    print_vmas(&region, "after the harvest (merged back)");

    let (first, _) = write_page(&region, 3);
    println!(
        "\nwrite page  3 again: {:.2} µs: it faults again, it was re-protected",
        micros(first)
    );
    tracker.harvest(&mut dirty, true)?;
    println!("harvest with re-arm -> dirty pages {:?}", dirty.granules);

    // The kernel writing into an armed page: read(2) from /dev/zero into page 7. The
    // write happens in kernel mode, so no SIGSEGV is raised and nothing can unprotect
    // the page: the system call fails with EFAULT (and page 7 is not recorded).
    let page7 = base + 7 * PAGE_SIZE;
    // SAFETY: page 7 is inside the live region, no other reference to it exists, and
    // the kernel only writes it through this slice (or fails).
    let buf = unsafe { std::slice::from_raw_parts_mut(page7 as *mut u8, 64) };
    let read = std::fs::File::open("/dev/zero").and_then(|mut f| f.read(buf));
    println!(
        "\nread(2) from /dev/zero into armed page 7: {}",
        match read {
            Ok(n) => format!("read {n} bytes"),
            Err(e) => format!("failed: {e}"),
        }
    );
    tracker.harvest(&mut dirty, true)?;
    println!("harvest with re-arm -> dirty pages {:?}", dirty.granules);

    tracker.disarm()?;
    println!();
    print_vmas(&region, "after disarm");
    let stats = tracker.stats();
    println!(
        "faults served: {}, degraded cycles: {}",
        stats.faults, stats.degradations
    );
    Ok(())
}

/// Two stores to page `p`: returns how long the first and the second took.
fn write_page(region: &Region, p: usize) -> (Duration, Duration) {
    let addr = (region.base() + p * PAGE_SIZE) as *mut u64;
    let t = Instant::now();
    // SAFETY: an aligned word inside the live region. If the page is read-only the
    // tracker's SIGSEGV handler makes it writable and the store is retried.
    unsafe { addr.write_volatile(p as u64) };
    let first = t.elapsed();
    let t = Instant::now();
    // SAFETY: as above, the next word of the same page.
    unsafe { addr.add(1).write_volatile(p as u64) };
    (first, t.elapsed())
}

/// Prints the VMAs of `/proc/self/maps` inside the region (protection and pages), and
/// the process's total number of mappings.
fn print_vmas(region: &Region, when: &str) {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut vmas = Vec::new();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        if start >= region.base() && end <= region.end() {
            let (first, last) = (
                (start - region.base()) / PAGE_SIZE,
                (end - region.base()) / PAGE_SIZE - 1,
            );
            let pages = if first == last {
                format!("{first}")
            } else {
                format!("{first}..={last}")
            };
            vmas.push(format!("{}[{pages}]", &perms[..3]));
        }
    }
    println!(
        "{:<40} {} VMAs in the region: {}   (process: {} mappings)",
        when,
        vmas.len(),
        vmas.join(" "),
        count_mappings()
    );
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
