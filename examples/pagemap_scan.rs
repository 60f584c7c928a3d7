//! Async write-protect and `PAGEMAP_SCAN`: a page-level dirty tracker in which no thread
//! ever serves a fault.
//!
//! Run: `cargo run --release --example pagemap_scan`
//!
//! With `UFFD_FEATURE_WP_ASYNC` (Linux 6.7+) a write to a write-protected page does not
//! queue a message and block the writer: the kernel resolves the fault itself, on the
//! writing thread, by clearing the page's write-protect bit and marking it *written*.
//! Nobody reads the userfaultfd; it only has to stay open, because the registration
//! lives with it.
//!
//! The collector then asks the kernel which pages were written with the `PAGEMAP_SCAN`
//! ioctl on `/proc/self/pagemap`: `category_mask = PAGE_IS_WRITTEN` selects them and
//! `PM_SCAN_WP_MATCHING` write-protects each matched page in the same walk. Reading a
//! page's state and re-protecting it happen together, per page, under the page-table
//! lock, so a write cannot slip in between "the scan saw this page clean" and "the page
//! is protected again": it either lands before (the page is reported now and the
//! collector's rescan sees the write) or after (it faults again and the page is reported
//! by the next scan). That is the clear-then-re-protect-then-rescan order every tracker
//! needs, done atomically by the kernel.

use std::time::Instant;

use barrierlab::Result;
use barrierlab::sys::PAGE_SIZE;
use barrierlab::sys::mem::{Advice, Region};
use barrierlab::sys::pagemap::{Pagemap, ScanRequest};
use barrierlab::sys::uffd::{Features, RegisterMode, Uffd};

const PAGES: usize = 32;

fn main() -> Result<()> {
    let features = Features::PAGEFAULT_FLAG_WP | Features::WP_ASYNC | Features::WP_UNPOPULATED;
    let builder = Uffd::builder().features(features);
    // Full mode first; an unprivileged process may still get user-mode-only mode, which
    // is enough here (only user-mode stores write the region).
    let uffd = match builder.create() {
        Ok(u) => u,
        Err(full) => match builder.user_mode_only(true).create() {
            Ok(u) => u,
            Err(umo) => {
                println!(
                    "async write-protect is unavailable here, nothing to show: {full}; \
                     in user-mode-only mode: {umo}"
                );
                return Ok(());
            }
        },
    };
    let region = Region::new(PAGES * PAGE_SIZE)?;
    region.advise(region.base(), region.len(), Advice::NoHugePage)?;
    let (base, end) = (region.base(), region.end());
    // Touch every page first, so that the writes timed below pay only the write-protect
    // fault, not the allocation of a fresh page.
    region.advise(base, region.len(), Advice::PopulateWrite)?;
    uffd.register(base, region.len(), RegisterMode::WP)?;
    // Arm: protect everything once. (WP_UNPOPULATED would protect untouched pages too.)
    uffd.protect(base, region.len())?;
    // The output vector holds 16 runs of pages per ioctl; `scan` calls again if it fills.
    let mut pagemap = Pagemap::open(16)?;
    println!("region [{base:#x}, {end:#x}), {PAGES} pages, registered with WP_ASYNC and protected");

    // Writes one byte to each page and prints what the first write to a protected page
    // cost: a fault resolved in the kernel on the writing thread, no other thread woken.
    let write_pages = |pages: &[usize]| {
        let t = Instant::now();
        for &p in pages {
            assert!(p < PAGES);
            // SAFETY: a byte inside the live region, which the process may write; the
            // async write-protect fault is resolved by the kernel and the store completes.
            unsafe { ((base + p * PAGE_SIZE + 8) as *mut u8).write_volatile(p as u8) };
        }
        println!(
            "\nwrote pages {pages:?}: {:.2} µs per first write to a protected page",
            t.elapsed().as_secs_f64() * 1e6 / pages.len() as f64
        );
    };

    let first: Vec<usize> = [3, 4, 5, 10].into_iter().chain(20..24).collect();
    write_pages(&first);
    // What the writes did to pagemap bit 57 (the write-protect bit): cleared by the kernel
    // on the pages written, and still set on the others.
    println!(
        "pagemap bit 57 of page 3: {}, of page 6: {}",
        wp(&mut pagemap, base + 3 * PAGE_SIZE)?,
        wp(&mut pagemap, base + 6 * PAGE_SIZE)?
    );
    // A peek reads the written pages without re-protecting them.
    scan(
        &mut pagemap,
        ScanRequest::peek_written(base, end),
        base,
        "peek (no re-protect)",
    )?;
    // The harvest: the written pages, re-protected in the same walk.
    scan(
        &mut pagemap,
        ScanRequest::harvest_written(base, end),
        base,
        "harvest",
    )?;
    println!(
        "pagemap bit 57 of page 3 after the harvest: {}",
        wp(&mut pagemap, base + 3 * PAGE_SIZE)?
    );
    // Nothing was written since: the harvest re-protected every page it returned.
    scan(
        &mut pagemap,
        ScanRequest::harvest_written(base, end),
        base,
        "harvest again",
    )?;

    let second = [4, 11, 12, 31];
    write_pages(&second);
    scan(
        &mut pagemap,
        ScanRequest::harvest_written(base, end),
        base,
        "harvest",
    )?;
    scan(
        &mut pagemap,
        ScanRequest::harvest_written(base, end),
        base,
        "harvest again",
    )?;
    Ok(())
}

/// Runs one scan and prints the runs of written pages it reported.
fn scan(pagemap: &mut Pagemap, req: ScanRequest, base: usize, what: &str) -> Result<()> {
    let mut runs = Vec::new();
    let t = Instant::now();
    let stats = pagemap.scan(&req, |start, end| runs.push((start, end)))?;
    let took = t.elapsed();
    let pages: usize = runs.iter().map(|(s, e)| (e - s) / PAGE_SIZE).sum();
    println!(
        "{what:<22} {pages:>2} written pages in {} runs ({} ioctl, {:.1} µs){}",
        runs.len(),
        stats.calls,
        took.as_secs_f64() * 1e6,
        if runs.is_empty() { ": nothing" } else { ":" }
    );
    for (start, end) in runs {
        let (first, last) = ((start - base) / PAGE_SIZE, (end - base) / PAGE_SIZE - 1);
        let range = if first == last {
            format!("page  {first}")
        } else {
            format!("pages {first}..={last}")
        };
        println!("    written: {range:<14} [{start:#x}, {end:#x})");
    }
    Ok(())
}

/// Pagemap bit 57 (`PM_UFFD_WP`) of the page holding `addr`.
fn wp(pagemap: &mut Pagemap, addr: usize) -> Result<bool> {
    Ok(pagemap.entry(addr)?.uffd_wp())
}
