//! `/proc/self/pagemap` and `PAGEMAP_SCAN` (`barrierlab::sys::pagemap`) against real
//! kernel memory, with userfaultfd async write-protect (`UFFD_FEATURE_WP_ASYNC`): the
//! kernel resolves each write itself, and a scan with `PM_SCAN_WP_MATCHING` harvests the
//! written pages and re-protects them in one walk.
//!
//! Every harvest is checked against the pages really written, and through a second
//! channel: pagemap bit 57 (`PM_UFFD_WP`) clear on a written page and set again after
//! the harvest, and no fault message ever queued on the descriptor.

use crate::support;

use std::collections::BTreeSet;

use barrierlab::Result;
use barrierlab::sys::PAGE_SIZE;
use barrierlab::sys::mem::Region;
use barrierlab::sys::pagemap::{Categories, Pagemap, ScanFlags, ScanRequest, ScanStats};
use barrierlab::sys::uffd::{Features, RegisterMode, Uffd, WpMode, raw};
use support::{expect_errno, page, populate, read_u64, with_timeout, write_u64};

/// Seconds a test body may take before it counts as a deadlock.
const TIMEOUT: u64 = 30;

/// A non-blocking userfaultfd in async write-protect mode.
fn async_uffd() -> Result<Uffd> {
    Uffd::builder()
        .features(Features::PAGEFAULT_FLAG_WP | Features::WP_ASYNC | Features::WP_UNPOPULATED)
        .nonblocking(true)
        .create()
}

/// A non-blocking userfaultfd in synchronous write-protect mode.
fn sync_uffd() -> Result<Uffd> {
    Uffd::builder()
        .features(Features::PAGEFAULT_FLAG_WP)
        .nonblocking(true)
        .create()
}

/// A region of `pages` pages registered for WP on `uffd` and write-protected whole
/// (`WP_UNPOPULATED` protects the pages not yet touched too).
fn armed(uffd: &Uffd, pages: usize) -> Result<Region> {
    let region = Region::new(pages * PAGE_SIZE)?;
    uffd.register(region.base(), region.len(), RegisterMode::WP)?;
    uffd.protect(region.base(), region.len())?;
    Ok(region)
}

/// Runs `req` and returns the matching pages as page indexes of `region`, in order,
/// panicking if a page is reported twice.
fn scan_pages(
    pagemap: &mut Pagemap,
    region: &Region,
    req: &ScanRequest,
) -> (Vec<usize>, ScanStats) {
    let mut pages = Vec::new();
    let stats = pagemap
        .scan(req, |start, end| {
            assert!(start < end && start % PAGE_SIZE == 0 && end % PAGE_SIZE == 0);
            assert!(
                region.contains(start) && end <= region.end(),
                "{start:#x}..{end:#x}"
            );
            for addr in (start..end).step_by(PAGE_SIZE) {
                pages.push((addr - region.base()) / PAGE_SIZE);
            }
        })
        .expect("PAGEMAP_SCAN");
    let unique: BTreeSet<_> = pages.iter().collect();
    assert_eq!(
        unique.len(),
        pages.len(),
        "a page was reported twice: {pages:?}"
    );
    (pages, stats)
}

fn harvest(pagemap: &mut Pagemap, region: &Region) -> Vec<usize> {
    let req = ScanRequest::harvest_written(region.base(), region.end());
    scan_pages(pagemap, region, &req).0
}

fn peek(pagemap: &mut Pagemap, region: &Region) -> Vec<usize> {
    let req = ScanRequest::peek_written(region.base(), region.end());
    scan_pages(pagemap, region, &req).0
}

fn wp_bit(pagemap: &mut Pagemap, addr: usize) -> bool {
    pagemap.entry(addr).expect("read pagemap").uffd_wp()
}

/// Asserts that the kernel resolved every write itself: no message was queued.
fn assert_no_message(uffd: &Uffd) {
    let mut buf = [raw::uffd_msg::default(); 4];
    let events = uffd.read_events(&mut buf).expect("read the userfaultfd");
    assert!(events.is_empty(), "async mode queued messages: {events:?}");
}

#[test]
fn pagemap_entry_tracks_write_protection() {
    let Some(uffd) = require!(sync_uffd()) else {
        return;
    };
    let region = Region::new(4 * PAGE_SIZE).expect("map");
    let mut pagemap = Pagemap::open(1).expect("pagemap");
    for i in 0..4 {
        let e = pagemap.entry(page(&region, i)).expect("entry");
        assert!(!e.present() && !e.uffd_wp(), "page {i} untouched: {e:x?}");
    }
    populate(&region);
    uffd.register(region.base(), region.len(), RegisterMode::WP)
        .expect("register");
    for i in 0..4 {
        let e = pagemap.entry(page(&region, i)).expect("entry");
        assert!(
            e.present() && !e.uffd_wp(),
            "registered, not protected: {e:x?}"
        );
    }
    uffd.protect(page(&region, 1), 2 * PAGE_SIZE)
        .expect("protect pages 1-2");
    let bits: Vec<bool> = (0..4)
        .map(|i| wp_bit(&mut pagemap, page(&region, i)))
        .collect();
    assert_eq!(bits, [false, true, true, false]);
    uffd.unprotect(page(&region, 2), PAGE_SIZE, WpMode::empty())
        .expect("unprotect page 2");
    let bits: Vec<bool> = (0..4)
        .map(|i| wp_bit(&mut pagemap, page(&region, i)))
        .collect();
    assert_eq!(bits, [false, true, false, false]);
    uffd.unprotect(region.base(), region.len(), WpMode::empty())
        .expect("unprotect all");
    assert!(!wp_bit(&mut pagemap, page(&region, 1)));
}

#[test]
fn wp_unpopulated_marks_untouched_pages() {
    let Some(uffd) = require!(async_uffd()) else {
        return;
    };
    let region = armed(&uffd, 4).expect("arm");
    let mut pagemap = Pagemap::open(1).expect("pagemap");
    for i in 0..4 {
        let e = pagemap.entry(page(&region, i)).expect("entry");
        // A PTE marker: not present, but write-protected.
        assert!(!e.present(), "page {i}: {e:x?}");
        assert!(
            e.uffd_wp(),
            "page {i}: WP_UNPOPULATED leaves a marker: {e:x?}"
        );
    }
}

#[test]
fn async_wp_harvest_finds_exactly_the_written_pages() {
    with_timeout(
        TIMEOUT,
        "async_wp_harvest_finds_exactly_the_written_pages",
        || {
            let Some(uffd) = require!(async_uffd()) else {
                return;
            };
            let region = armed(&uffd, 16).expect("arm");
            let mut pagemap = Pagemap::open(8).expect("pagemap");
            assert!(
                harvest(&mut pagemap, &region).is_empty(),
                "nothing written yet"
            );

            let written = [1, 2, 5, 9, 15];
            for &i in &written {
                // On this thread: in async mode the kernel resolves the fault itself (a
                // synchronous fault here would never be served, and the timeout would fire).
                write_u64(&region, i * PAGE_SIZE + 8, 0x4000 + i as u64);
            }
            // A read is not a write.
            assert_eq!(read_u64(&region, 3 * PAGE_SIZE), 0);
            assert_no_message(&uffd);
            for i in 0..16 {
                assert_eq!(
                    wp_bit(&mut pagemap, page(&region, i)),
                    !written.contains(&i),
                    "page {i}: a written page loses PM_UFFD_WP, the others keep it"
                );
            }

            assert_eq!(harvest(&mut pagemap, &region), written);
            for &i in &written {
                assert!(
                    wp_bit(&mut pagemap, page(&region, i)),
                    "page {i} re-protected"
                );
                assert_eq!(read_u64(&region, i * PAGE_SIZE + 8), 0x4000 + i as u64);
            }
            assert!(
                harvest(&mut pagemap, &region).is_empty(),
                "a second harvest right after finds nothing"
            );

            // Written again: found again.
            write_u64(&region, 5 * PAGE_SIZE, 1);
            write_u64(&region, 12 * PAGE_SIZE, 2);
            assert_eq!(harvest(&mut pagemap, &region), [5, 12]);
            assert!(harvest(&mut pagemap, &region).is_empty());
            assert_no_message(&uffd);
        },
    );
}

#[test]
fn async_wp_peek_does_not_reprotect() {
    with_timeout(TIMEOUT, "async_wp_peek_does_not_reprotect", || {
        let Some(uffd) = require!(async_uffd()) else {
            return;
        };
        let region = armed(&uffd, 8).expect("arm");
        let mut pagemap = Pagemap::open(8).expect("pagemap");
        for i in [0, 4, 7] {
            write_u64(&region, i * PAGE_SIZE, 9);
        }
        assert_eq!(peek(&mut pagemap, &region), [0, 4, 7]);
        assert!(
            !wp_bit(&mut pagemap, page(&region, 4)),
            "peek left it writable"
        );
        assert_eq!(
            peek(&mut pagemap, &region),
            [0, 4, 7],
            "a second peek sees the same"
        );
        write_u64(&region, 2 * PAGE_SIZE, 9);
        assert_eq!(peek(&mut pagemap, &region), [0, 2, 4, 7]);
        assert_eq!(harvest(&mut pagemap, &region), [0, 2, 4, 7]);
        assert!(
            peek(&mut pagemap, &region).is_empty(),
            "the harvest re-protected"
        );
        assert_no_message(&uffd);
    });
}

#[test]
fn async_wp_small_output_vector_returns_every_run() {
    with_timeout(
        TIMEOUT,
        "async_wp_small_output_vector_returns_every_run",
        || {
            const RUNS: usize = 40;
            let Some(uffd) = require!(async_uffd()) else {
                return;
            };
            // Every other page written: RUNS runs of one page each.
            let region = armed(&uffd, 2 * RUNS + 1).expect("arm");
            let written: Vec<usize> = (0..RUNS).map(|k| 2 * k + 1).collect();
            for &i in &written {
                write_u64(&region, i * PAGE_SIZE, i as u64);
            }
            let mut small = Pagemap::open(3).expect("pagemap");
            assert_eq!(small.vec_len(), 3);

            let req = ScanRequest::peek_written(region.base(), region.end());
            let (pages, stats) = scan_pages(&mut small, &region, &req);
            eprintln!("peek of {RUNS} runs with a vector of 3: {stats:?}");
            assert_eq!(pages, written);
            assert!(
                stats.calls > 1,
                "a full vector must be continued: {stats:?}"
            );
            assert!(stats.calls as usize >= RUNS.div_ceil(3), "{stats:?}");

            let req = ScanRequest::harvest_written(region.base(), region.end());
            let (pages, stats) = scan_pages(&mut small, &region, &req);
            eprintln!("harvest of {RUNS} runs with a vector of 3: {stats:?}");
            assert_eq!(pages, written);
            assert!(stats.calls > 1, "{stats:?}");
            let mut pagemap = Pagemap::open(1).expect("pagemap");
            for &i in &written {
                assert!(
                    wp_bit(&mut pagemap, page(&region, i)),
                    "page {i} re-protected"
                );
            }
            let (pages, _) = scan_pages(&mut small, &region, &req);
            assert!(pages.is_empty(), "{pages:?}");

            // One large vector: one call.
            write_u64(&region, 0, 1);
            let mut large = Pagemap::open(2 * RUNS).expect("pagemap");
            let (pages, stats) = scan_pages(&mut large, &region, &req);
            assert_eq!(pages, [0]);
            assert_eq!(stats.calls, 1, "{stats:?}");
            assert_no_message(&uffd);
        },
    );
}

#[test]
fn check_wpasync_fails_eperm_on_a_range_not_registered_async() {
    let Some(sync) = require!(sync_uffd()) else {
        return;
    };
    let mut pagemap = Pagemap::open(4).expect("pagemap");
    let region = Region::new(4 * PAGE_SIZE).expect("map");
    populate(&region);
    let req = ScanRequest::harvest_written(region.base(), region.end());

    let e = pagemap.scan(&req, |_, _| {}).expect_err("never registered");
    assert_eq!(e.errno(), Some(libc::EPERM), "{e}");

    sync.register(region.base(), region.len(), RegisterMode::WP)
        .expect("register (synchronous WP)");
    sync.protect(region.base(), region.len()).expect("protect");
    let e = pagemap
        .scan(&req, |_, _| {})
        .expect_err("registered without WP_ASYNC");
    assert_eq!(e.errno(), Some(libc::EPERM), "{e}");
    let peek = ScanRequest {
        flags: ScanFlags::CHECK_WPASYNC,
        ..ScanRequest::peek_written(region.base(), region.end())
    };
    let e = pagemap.scan(&peek, |_, _| {}).expect_err("peek too");
    assert_eq!(e.errno(), Some(libc::EPERM), "{e}");
    // The failed scans did not touch the protection.
    assert!(pagemap.entry(region.base()).expect("entry").uffd_wp());
}

#[test]
fn scan_errors_einval() {
    let mut pagemap = Pagemap::open(4).expect("pagemap");
    let region = Region::new(4 * PAGE_SIZE).expect("map");
    populate(&region);
    let ok = ScanRequest::peek_written(region.base(), region.end());
    let plain = ScanRequest {
        flags: ScanFlags::empty(),
        category_mask: Categories::PRESENT,
        return_mask: Categories::PRESENT,
        ..ok
    };
    // A plain scan (no write-protect) works on any mapping.
    let mut seen = Vec::new();
    pagemap
        .scan(&plain, |s, e| seen.push((s, e)))
        .expect("scan for present pages");
    assert_eq!(seen, [(region.base(), region.end())]);

    let cases = [
        (
            "unaligned start",
            ScanRequest {
                start: region.base() + 8,
                ..plain
            },
        ),
        (
            "unknown flag",
            ScanRequest {
                flags: ScanFlags::from_bits_retain(1 << 9),
                ..plain
            },
        ),
        (
            "unknown category",
            ScanRequest {
                category_mask: Categories::from_bits_retain(1 << 40),
                ..plain
            },
        ),
        (
            "unknown return category",
            ScanRequest {
                return_mask: Categories::from_bits_retain(1 << 40),
                ..plain
            },
        ),
    ];
    for (what, req) in cases {
        assert_eq!(
            expect_errno(what, pagemap.scan(&req, |_, _| {})),
            libc::EINVAL,
            "{what}"
        );
    }
}
