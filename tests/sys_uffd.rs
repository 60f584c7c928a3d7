//! userfaultfd (`barrierlab::sys::uffd`) against real kernel memory: the handshake,
//! write-protect faults served by a handler thread, `UFFDIO_COPY`, unregistering, every
//! error the man page lists for these ioctls, and kernel-mode writes (`read(2)` into a
//! protected page).
//!
//! Each result is checked through a second channel where one exists: pagemap bit 57
//! (`PM_UFFD_WP`), the data actually in memory, and the fault delivered exactly once
//! (nothing left on the descriptor afterwards). Every test that has a fault-handling
//! thread, or a thread that may block on a fault, runs under a 30 s timeout, and the
//! blocked writers are released on every path (see `support::Release`).

#[macro_use]
mod support;

use std::collections::BTreeSet;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use barrierlab::sys::PAGE_SIZE;
use barrierlab::sys::mem::{Advice, Protection, Region};
use barrierlab::sys::pagemap::Pagemap;
use barrierlab::sys::uffd::{
    CopyMode, EAGAIN_RETRY_LIMIT, Event, Features, Ioctls, Origin, PageFaultFlags, RegisterMode,
    Uffd, WpMode, raw,
};
use barrierlab::{Error, Result};
use support::{Release, Writer, expect_errno, page, populate, read_u64, with_timeout, write_u64};

/// Seconds a test body may take before it counts as a deadlock.
const TIMEOUT: u64 = 30;

/// How long "a blocked writer stays blocked" is watched.
const STILL_BLOCKED: Duration = Duration::from_millis(100);

/// A userfaultfd with write-protect faults and `extra` features.
fn wp_uffd(extra: Features, nonblocking: bool) -> Result<Uffd> {
    Uffd::builder()
        .features(Features::PAGEFAULT_FLAG_WP | extra)
        .nonblocking(nonblocking)
        .create()
}

/// A populated region of `pages` pages, registered for WP on `uffd` and write-protected.
fn armed(uffd: &Uffd, pages: usize) -> Result<Arc<Region>> {
    let region = Arc::new(Region::new(pages * PAGE_SIZE)?);
    populate(&region);
    uffd.register(region.base(), region.len(), RegisterMode::WP)?;
    uffd.protect(region.base(), region.len())?;
    Ok(region)
}

fn msg_buf<const N: usize>() -> [raw::uffd_msg; N] {
    [raw::uffd_msg::default(); N]
}

/// Whether the descriptor has `O_NONBLOCK`.
fn is_nonblocking(uffd: &Uffd) -> bool {
    // SAFETY: F_GETFL on a descriptor `uffd` owns; no pointer arguments.
    let flags = unsafe { libc::fcntl(uffd.as_raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0, "fcntl(F_GETFL)");
    flags & libc::O_NONBLOCK != 0
}

/// Turns `O_NONBLOCK` on (userfaultfd reads the flag at each poll and read).
fn set_nonblocking(uffd: &Uffd) {
    // SAFETY: F_GETFL on a descriptor `uffd` owns; no pointer arguments.
    let flags = unsafe { libc::fcntl(uffd.as_raw_fd(), libc::F_GETFL) };
    // SAFETY: F_SETFL with an integer argument, on the same descriptor.
    let rc = unsafe { libc::fcntl(uffd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) };
    assert_eq!(rc, 0, "fcntl(F_SETFL, O_NONBLOCK)");
}

/// Reads exactly one message: polls up to 10 s first on a non-blocking descriptor, or
/// blocks in read(2) on a blocking one (poll(2) on a blocking userfaultfd only ever
/// answers POLLERR).
fn next_event(uffd: &Uffd) -> Event {
    if is_nonblocking(uffd) {
        assert!(
            uffd.poll_readable(10_000).expect("poll the userfaultfd"),
            "no userfaultfd message arrived within 10 s"
        );
    }
    let mut buf = msg_buf::<1>();
    let events = uffd.read_events(&mut buf).expect("read the userfaultfd");
    assert_eq!(events.len(), 1, "one message expected: {events:?}");
    events[0]
}

/// Asserts that nothing is queued on the descriptor (each fault was delivered once).
/// Turns `O_NONBLOCK` on, so call it when the test is done reading.
fn assert_no_message(uffd: &Uffd) {
    set_nonblocking(uffd);
    assert!(
        !uffd.poll_readable(0).expect("poll the userfaultfd"),
        "a message is queued that nobody caused"
    );
    let mut buf = msg_buf::<4>();
    let extra = uffd.read_events(&mut buf).expect("read the userfaultfd");
    assert!(extra.is_empty(), "unexpected messages: {extra:?}");
}

/// Decodes a page fault, panicking on any other event.
fn page_fault(ev: Event) -> (usize, PageFaultFlags, Option<u32>) {
    match ev {
        Event::PageFault {
            address,
            flags,
            thread_id,
        } => (address, flags, thread_id),
        other => panic!("expected a page fault, got {other:?}"),
    }
}

fn wp_bit(pagemap: &mut Pagemap, addr: usize) -> bool {
    pagemap.entry(addr).expect("read pagemap").uffd_wp()
}

fn present(pagemap: &mut Pagemap, addr: usize) -> bool {
    pagemap.entry(addr).expect("read pagemap").present()
}

/// A writer faults on page `i` of an armed region; the fault is read, checked (WP|WRITE,
/// right page), served by `unprotect`, and the write is then in memory.
fn wp_round_trip(uffd: &Uffd, region: &Arc<Region>, i: usize) {
    let addr = page(region, i);
    let _release = Release::new(uffd, addr, PAGE_SIZE);
    let writer = Writer::spawn(region, i * PAGE_SIZE + 8, 0xabcd_0000 + i as u64);
    let (address, flags, _) = page_fault(next_event(uffd));
    assert_eq!(address, addr);
    assert!(
        flags.contains(PageFaultFlags::WP | PageFaultFlags::WRITE),
        "{flags:?}"
    );
    assert!(
        !writer.is_done(),
        "the writer went on before its fault was served"
    );
    uffd.unprotect(addr, PAGE_SIZE, WpMode::empty())
        .expect("unprotect");
    writer.join();
    assert_eq!(read_u64(region, i * PAGE_SIZE + 8), 0xabcd_0000 + i as u64);
    assert_no_message(uffd);
}

// ---------------------------------------------------------------------------------------
// The handshake

#[test]
fn handshake_grants_requested_features_and_ioctls() {
    // Not EVENT_UNMAP: with it, dropping the region (munmap) would block until its
    // UFFD_EVENT_UNMAP message is read, and nobody reads here.
    with_timeout(
        TIMEOUT,
        "handshake_grants_requested_features_and_ioctls",
        || {
            let requested = Features::PAGEFAULT_FLAG_WP
                | Features::THREAD_ID
                | Features::EVENT_REMOVE
                | Features::EXACT_ADDRESS
                | Features::WP_UNPOPULATED;
            let Some(uffd) = require!(Uffd::builder().features(requested).create()) else {
                return;
            };
            assert!(
                uffd.features().contains(requested),
                "granted {:?}, asked for {requested:?}",
                uffd.features()
            );
            let base = Ioctls::REGISTER | Ioctls::UNREGISTER | Ioctls::API;
            assert!(uffd.api_ioctls().contains(base), "{:?}", uffd.api_ioctls());
            assert!(!uffd.user_mode_only());

            let region = Region::new(2 * PAGE_SIZE).expect("map");
            let ioctls = uffd
                .register(region.base(), region.len(), RegisterMode::WP)
                .expect("register WP");
            assert!(
                ioctls.contains(Ioctls::WRITEPROTECT | Ioctls::WAKE),
                "register returned {ioctls:?}"
            );
            let ioctls = uffd
                .register(
                    region.base(),
                    region.len(),
                    RegisterMode::MISSING | RegisterMode::WP,
                )
                .expect("re-register MISSING|WP on the same descriptor");
            assert!(
                ioctls.contains(Ioctls::WRITEPROTECT | Ioctls::COPY | Ioctls::WAKE),
                "register returned {ioctls:?}"
            );
        },
    );
}

#[test]
fn handshake_names_feature_bits_the_kernel_does_not_know() {
    let unknown = Features::from_bits_retain(1 << 62);
    match Uffd::builder()
        .features(Features::PAGEFAULT_FLAG_WP | unknown)
        .create()
    {
        Err(Error::MissingFeatures { missing, .. }) => assert_eq!(missing, unknown.bits()),
        Err(e) if support::is_missing_feature(&e) => {
            support::skip_or_fail(test_name!(), &e.to_string())
        }
        other => panic!("expected MissingFeatures naming bit 62, got {other:?}"),
    }
}

#[test]
fn handshake_through_dev_node() {
    with_timeout(TIMEOUT, "handshake_through_dev_node", || {
        let Some(uffd) = require!(
            Uffd::builder()
                .features(Features::PAGEFAULT_FLAG_WP)
                .force_dev_node(true)
                .create()
        ) else {
            return;
        };
        assert_eq!(uffd.origin(), Origin::DevNode);
        assert!(uffd.features().contains(Features::PAGEFAULT_FLAG_WP));
        // The descriptor works: a fault round trip through it.
        let region = armed(&uffd, 2).expect("arm");
        let mut pagemap = Pagemap::open(1).expect("pagemap");
        assert!(wp_bit(&mut pagemap, page(&region, 1)));
        wp_round_trip(&uffd, &region, 1);
        assert!(!wp_bit(&mut pagemap, page(&region, 1)));
        assert!(wp_bit(&mut pagemap, page(&region, 0)));
    });
}

#[test]
fn handshake_user_mode_only() {
    with_timeout(TIMEOUT, "handshake_user_mode_only", || {
        let Some(uffd) = require!(
            Uffd::builder()
                .features(Features::PAGEFAULT_FLAG_WP)
                .user_mode_only(true)
                .create()
        ) else {
            return;
        };
        assert!(uffd.user_mode_only());
        assert_eq!(
            uffd.origin(),
            Origin::Syscall,
            "root may use the system call"
        );
        // Faults from user mode are still delivered.
        let region = armed(&uffd, 1).expect("arm");
        wp_round_trip(&uffd, &region, 0);
    });
}

// ---------------------------------------------------------------------------------------
// Write-protect faults served by a handler thread

#[test]
fn wp_fault_blocking_read_served_by_unprotect() {
    with_timeout(
        TIMEOUT,
        "wp_fault_blocking_read_served_by_unprotect",
        || {
            let Some(uffd) = require!(wp_uffd(Features::THREAD_ID, false)) else {
                return;
            };
            let region = armed(&uffd, 4).expect("arm");
            let _release = Release::new(&uffd, region.base(), region.len());
            let mut pagemap = Pagemap::open(1).expect("pagemap");
            for i in 0..4 {
                assert!(wp_bit(&mut pagemap, page(&region, i)), "page {i} not WP");
            }

            let target = 2 * PAGE_SIZE + 24;
            let writer = Writer::spawn(&region, target, 0xfeed_f00d);
            let tid = writer.tid();
            let mut buf = msg_buf::<4>();
            // Blocks until the writer faults.
            let events = uffd.read_events(&mut buf).expect("read");
            assert_eq!(events.len(), 1, "{events:?}");
            let (address, flags, thread_id) = page_fault(events[0]);
            assert_eq!(address, page(&region, 2), "page-rounded fault address");
            assert_eq!(flags, PageFaultFlags::WP | PageFaultFlags::WRITE);
            assert_eq!(thread_id, Some(tid as u32), "THREAD_ID names the writer");
            std::thread::sleep(Duration::from_millis(20));
            assert!(
                !writer.is_done(),
                "the writer must wait for the fault to be served"
            );
            assert_ne!(read_u64(&region, target), 0xfeed_f00d);

            uffd.unprotect(page(&region, 2), PAGE_SIZE, WpMode::empty())
                .expect("unprotect (wakes)");
            writer.join();
            assert_eq!(read_u64(&region, target), 0xfeed_f00d);
            assert!(!wp_bit(&mut pagemap, page(&region, 2)));
            for i in [0, 1, 3] {
                assert!(wp_bit(&mut pagemap, page(&region, i)), "page {i} lost WP");
            }
            assert_no_message(&uffd);
        },
    );
}

#[test]
fn wp_fault_nonblocking_poll_and_read() {
    with_timeout(TIMEOUT, "wp_fault_nonblocking_poll_and_read", || {
        let Some(uffd) = require!(wp_uffd(Features::THREAD_ID, true)) else {
            return;
        };
        let region = armed(&uffd, 2).expect("arm");
        let _release = Release::new(&uffd, region.base(), region.len());
        let mut pagemap = Pagemap::open(1).expect("pagemap");
        let mut buf = msg_buf::<4>();
        assert!(
            uffd.read_events(&mut buf).expect("read").is_empty(),
            "a non-blocking read with nothing queued returns no message"
        );
        assert!(!uffd.poll_readable(50).expect("poll"));

        let writer = Writer::spawn(&region, PAGE_SIZE, 0x5151);
        let tid = writer.tid();
        assert!(
            uffd.poll_readable(10_000).expect("poll"),
            "no fault within 10 s"
        );
        let events = uffd.read_events(&mut buf).expect("read");
        assert_eq!(events.len(), 1, "{events:?}");
        let (address, flags, thread_id) = page_fault(events[0]);
        assert_eq!(address, page(&region, 1));
        assert_eq!(flags, PageFaultFlags::WP | PageFaultFlags::WRITE);
        assert_eq!(thread_id, Some(tid as u32));
        assert!(wp_bit(&mut pagemap, page(&region, 1)));
        assert!(uffd.read_events(&mut buf).expect("read").is_empty());

        uffd.unprotect(page(&region, 1), PAGE_SIZE, WpMode::empty())
            .expect("unprotect");
        writer.join();
        assert_eq!(read_u64(&region, PAGE_SIZE), 0x5151);
        assert!(!wp_bit(&mut pagemap, page(&region, 1)));
        assert!(wp_bit(&mut pagemap, page(&region, 0)));
        assert_no_message(&uffd);
    });
}

#[test]
fn wp_faults_from_many_writers_are_batch_read() {
    with_timeout(
        TIMEOUT,
        "wp_faults_from_many_writers_are_batch_read",
        || {
            const WRITERS: usize = 6;
            let Some(uffd) = require!(wp_uffd(Features::THREAD_ID, false)) else {
                return;
            };
            let region = armed(&uffd, WRITERS + 2).expect("arm");
            let _release = Release::new(&uffd, region.base(), region.len());
            let writers: Vec<Writer> = (0..WRITERS)
                .map(|i| Writer::spawn(&region, i * PAGE_SIZE + 40, 0x7700 + i as u64))
                .collect();
            let tids: BTreeSet<u32> = writers.iter().map(|w| w.tid() as u32).collect();
            // Let every writer queue its fault, so that one read can return several.
            std::thread::sleep(Duration::from_millis(200));

            let mut buf = msg_buf::<16>();
            let mut seen = BTreeSet::new();
            let mut seen_tids = BTreeSet::new();
            let mut batches = Vec::new();
            while seen.len() < WRITERS {
                let events = uffd.read_events(&mut buf).expect("read");
                assert!(!events.is_empty(), "a blocking read returned nothing");
                batches.push(events.len());
                for ev in events {
                    let (address, flags, tid) = page_fault(ev);
                    assert_eq!(flags, PageFaultFlags::WP | PageFaultFlags::WRITE);
                    let i = (address - region.base()) / PAGE_SIZE;
                    assert!(i < WRITERS, "fault on page {i}, which nobody writes");
                    assert!(seen.insert(i), "page {i} delivered twice");
                    seen_tids.insert(tid.expect("THREAD_ID"));
                }
                for &i in &seen {
                    uffd.unprotect(page(&region, i), PAGE_SIZE, WpMode::empty())
                        .expect("unprotect");
                }
            }
            eprintln!("batch sizes of the reads: {batches:?}");
            assert_eq!(batches.iter().sum::<usize>(), WRITERS);
            assert_eq!(seen_tids, tids, "each writer's tid appears once");
            for w in writers {
                w.join();
            }
            for i in 0..WRITERS {
                assert_eq!(read_u64(&region, i * PAGE_SIZE + 40), 0x7700 + i as u64);
            }
            assert_no_message(&uffd);
        },
    );
}

#[test]
fn unprotect_dontwake_leaves_writer_blocked_until_wake() {
    with_timeout(
        TIMEOUT,
        "unprotect_dontwake_leaves_writer_blocked_until_wake",
        || {
            let Some(uffd) = require!(wp_uffd(Features::empty(), false)) else {
                return;
            };
            let region = armed(&uffd, 2).expect("arm");
            let _release = Release::new(&uffd, region.base(), region.len());
            let mut pagemap = Pagemap::open(1).expect("pagemap");
            let writer = Writer::spawn(&region, 0, 0xd0d0);
            let (address, flags, _) = page_fault(next_event(&uffd));
            assert_eq!(address, region.base());
            assert!(flags.contains(PageFaultFlags::WP));
            // Let the writer get past its last check of the PTE and sleep: an unprotect that
            // lands before that check would let it go without any wake-up.
            std::thread::sleep(Duration::from_millis(50));

            uffd.unprotect(region.base(), PAGE_SIZE, WpMode::DONTWAKE)
                .expect("unprotect without waking");
            assert!(!wp_bit(&mut pagemap, region.base()), "unprotected");
            std::thread::sleep(STILL_BLOCKED);
            assert!(!writer.is_done(), "DONTWAKE woke the writer");

            uffd.wake(region.base(), PAGE_SIZE).expect("wake");
            writer.join();
            assert_eq!(read_u64(&region, 0), 0xd0d0);
            assert_no_message(&uffd);
        },
    );
}

// ---------------------------------------------------------------------------------------
// Missing faults and UFFDIO_COPY

#[test]
fn copy_wp_resolves_missing_fault_and_leaves_page_protected() {
    with_timeout(
        TIMEOUT,
        "copy_wp_resolves_missing_fault_and_leaves_page_protected",
        || {
            let Some(uffd) = require!(wp_uffd(Features::empty(), false)) else {
                return;
            };
            let region = Arc::new(Region::new(2 * PAGE_SIZE).expect("map"));
            let ioctls = uffd
                .register(
                    region.base(),
                    region.len(),
                    RegisterMode::MISSING | RegisterMode::WP,
                )
                .expect("register MISSING|WP");
            assert!(ioctls.contains(Ioctls::COPY | Ioctls::WRITEPROTECT));
            let _release = Release::new(&uffd, region.base(), region.len());
            let mut pagemap = Pagemap::open(1).expect("pagemap");
            assert!(!present(&mut pagemap, region.base()));

            let writer = Writer::spawn(&region, 16, 0xc0c0_c0c0);
            let (address, flags, _) = page_fault(next_event(&uffd));
            assert_eq!(address, region.base());
            assert!(flags.contains(PageFaultFlags::WRITE), "{flags:?}");
            assert!(
                !flags.contains(PageFaultFlags::WP),
                "a missing fault: {flags:?}"
            );

            let src = vec![0x5au8; PAGE_SIZE];
            // SAFETY: `src` is a live buffer of PAGE_SIZE readable bytes.
            let copied = unsafe { uffd.copy(region.base(), src.as_ptr(), PAGE_SIZE, CopyMode::WP) }
                .expect("UFFDIO_COPY with MODE_WP");
            assert_eq!(copied, PAGE_SIZE);
            // The copy woke the writer; its retried write meets the protection it left.
            let (address, flags, _) = page_fault(next_event(&uffd));
            assert_eq!(address, region.base());
            assert_eq!(flags, PageFaultFlags::WP | PageFaultFlags::WRITE);
            assert!(present(&mut pagemap, region.base()));
            assert!(
                wp_bit(&mut pagemap, region.base()),
                "COPY_MODE_WP leaves PM_UFFD_WP"
            );
            assert!(!writer.is_done());

            uffd.unprotect(region.base(), PAGE_SIZE, WpMode::empty())
                .expect("unprotect");
            writer.join();
            assert_eq!(read_u64(&region, 16), 0xc0c0_c0c0);
            assert_eq!(
                read_u64(&region, 0),
                0x5a5a_5a5a_5a5a_5a5a,
                "the copied data"
            );
            assert!(!wp_bit(&mut pagemap, region.base()));
            assert_no_message(&uffd);
        },
    );
}

#[test]
fn copy_dontwake_then_wake() {
    with_timeout(TIMEOUT, "copy_dontwake_then_wake", || {
        let Some(uffd) = require!(Uffd::builder().create()) else {
            return;
        };
        let region = Arc::new(Region::new(PAGE_SIZE).expect("map"));
        uffd.register(region.base(), region.len(), RegisterMode::MISSING)
            .expect("register MISSING");
        let mut pagemap = Pagemap::open(1).expect("pagemap");
        let writer = Writer::spawn(&region, 8, 0x1234);
        let (address, flags, _) = page_fault(next_event(&uffd));
        assert_eq!(address, region.base());
        assert!(!flags.contains(PageFaultFlags::WP));
        // See unprotect_dontwake_leaves_writer_blocked_until_wake.
        std::thread::sleep(Duration::from_millis(50));

        let src = vec![0x33u8; PAGE_SIZE];
        // SAFETY: `src` is a live buffer of PAGE_SIZE readable bytes.
        let copied =
            unsafe { uffd.copy(region.base(), src.as_ptr(), PAGE_SIZE, CopyMode::DONTWAKE) }
                .expect("UFFDIO_COPY with MODE_DONTWAKE");
        assert_eq!(copied, PAGE_SIZE);
        assert!(
            present(&mut pagemap, region.base()),
            "the copy filled the page"
        );
        std::thread::sleep(STILL_BLOCKED);
        assert!(!writer.is_done(), "COPY_MODE_DONTWAKE woke the writer");

        uffd.wake(region.base(), PAGE_SIZE).expect("wake");
        writer.join();
        assert_eq!(read_u64(&region, 8), 0x1234);
        assert_eq!(read_u64(&region, 0), 0x3333_3333_3333_3333);
        assert_no_message(&uffd);
    });
}

#[test]
fn missing_and_wp_faults_on_one_range() {
    with_timeout(TIMEOUT, "missing_and_wp_faults_on_one_range", || {
        let Some(uffd) = require!(wp_uffd(Features::empty(), false)) else {
            return;
        };
        let region = Arc::new(Region::new(2 * PAGE_SIZE).expect("map"));
        write_u64(&region, 0, 1); // page 0 present, page 1 missing
        uffd.register(
            region.base(),
            region.len(),
            RegisterMode::MISSING | RegisterMode::WP,
        )
        .expect("register MISSING|WP");
        uffd.protect(region.base(), region.len()).expect("protect");
        let _release = Release::new(&uffd, region.base(), region.len());
        let mut pagemap = Pagemap::open(1).expect("pagemap");
        assert!(wp_bit(&mut pagemap, page(&region, 0)));
        assert!(!present(&mut pagemap, page(&region, 1)));

        let w0 = Writer::spawn(&region, 8, 0xaaaa);
        let w1 = Writer::spawn(&region, PAGE_SIZE + 8, 0xbbbb);
        let zeros = vec![0u8; PAGE_SIZE];
        let mut seen = BTreeSet::new();
        for _ in 0..2 {
            let (address, flags, _) = page_fault(next_event(&uffd));
            if address == page(&region, 0) {
                assert_eq!(flags, PageFaultFlags::WP | PageFaultFlags::WRITE);
                uffd.unprotect(address, PAGE_SIZE, WpMode::empty())
                    .expect("unprotect");
            } else {
                assert_eq!(address, page(&region, 1));
                assert_eq!(flags, PageFaultFlags::WRITE, "a missing write fault");
                // SAFETY: `zeros` is a live buffer of PAGE_SIZE readable bytes.
                unsafe { uffd.copy(address, zeros.as_ptr(), PAGE_SIZE, CopyMode::empty()) }
                    .expect("copy");
            }
            assert!(seen.insert(address), "{address:#x} delivered twice");
        }
        w0.join();
        w1.join();
        assert_eq!(read_u64(&region, 8), 0xaaaa);
        assert_eq!(read_u64(&region, PAGE_SIZE + 8), 0xbbbb);
        assert!(!wp_bit(&mut pagemap, page(&region, 0)));
        assert!(
            !wp_bit(&mut pagemap, page(&region, 1)),
            "COPY without MODE_WP"
        );
        assert_no_message(&uffd);
    });
}

#[test]
fn unregister_stops_faults() {
    with_timeout(TIMEOUT, "unregister_stops_faults", || {
        let Some(uffd) = require!(wp_uffd(Features::empty(), true)) else {
            return;
        };
        let region = armed(&uffd, 2).expect("arm");
        let _release = Release::new(&uffd, region.base(), region.len());
        let mut pagemap = Pagemap::open(1).expect("pagemap");
        assert!(wp_bit(&mut pagemap, region.base()));
        uffd.unregister(region.base(), region.len())
            .expect("unregister");
        assert!(
            !wp_bit(&mut pagemap, region.base()),
            "unregistering clears the write protection"
        );
        // On this thread: were the write to fault, nobody would serve it (timeout).
        write_u64(&region, 0, 0x600d);
        write_u64(&region, PAGE_SIZE, 0x600e);
        assert_eq!(read_u64(&region, 0), 0x600d);
        assert_eq!(read_u64(&region, PAGE_SIZE), 0x600e);
        assert_no_message(&uffd);
    });
}

// ---------------------------------------------------------------------------------------
// Errors, each provoked on purpose

#[test]
fn errors_einval_for_bad_ranges_and_modes() {
    let Some(uffd) = require!(wp_uffd(Features::empty(), true)) else {
        return;
    };
    let region = Region::new(4 * PAGE_SIZE).expect("map");
    let b = region.base();
    let einval = |what: &str, r: Result<()>| {
        assert_eq!(expect_errno(what, r), libc::EINVAL, "{what}");
    };
    // UFFDIO_REGISTER
    einval(
        "register unaligned",
        uffd.register(b + 8, PAGE_SIZE, RegisterMode::WP).map(drop),
    );
    einval(
        "register zero length",
        uffd.register(b, 0, RegisterMode::WP).map(drop),
    );
    einval(
        "register partial page",
        uffd.register(b, PAGE_SIZE + 100, RegisterMode::WP)
            .map(drop),
    );
    einval(
        "register with no mode",
        uffd.register(b, PAGE_SIZE, RegisterMode::empty()).map(drop),
    );
    // On a registered range.
    uffd.register(b, 2 * PAGE_SIZE, RegisterMode::MISSING | RegisterMode::WP)
        .expect("register");
    // UFFDIO_WRITEPROTECT
    einval("protect unaligned", uffd.protect(b + 1, PAGE_SIZE));
    einval("protect zero length", uffd.protect(b, 0));
    einval("protect partial page", uffd.protect(b, PAGE_SIZE / 2));
    einval(
        "unprotect unaligned",
        uffd.unprotect(b + 8, PAGE_SIZE, WpMode::empty()),
    );
    // UFFDIO_WAKE
    einval("wake unaligned", uffd.wake(b + 8, PAGE_SIZE));
    einval("wake zero length", uffd.wake(b, 0));
    // UFFDIO_UNREGISTER
    einval("unregister unaligned", uffd.unregister(b + 8, PAGE_SIZE));
    einval(
        "unregister partial page",
        uffd.unregister(b, 3 * PAGE_SIZE - 1),
    );
    // UFFDIO_COPY
    let src = vec![0u8; PAGE_SIZE];
    let copy = |dst: usize, len: usize, mode: CopyMode| {
        // SAFETY: `src` is a live buffer of PAGE_SIZE readable bytes, and `len` never
        // exceeds PAGE_SIZE here.
        unsafe { uffd.copy(dst, src.as_ptr(), len, mode) }.map(drop)
    };
    einval(
        "copy unaligned dst",
        copy(b + 8, PAGE_SIZE, CopyMode::empty()),
    );
    einval("copy zero length", copy(b, 0, CopyMode::empty()));
    einval("copy partial page", copy(b, 100, CopyMode::empty()));
    einval(
        "copy unknown mode bit",
        copy(b, PAGE_SIZE, CopyMode::from_bits_retain(1 << 7)),
    );
    // read(2) with a buffer shorter than one message.
    let mut empty: [raw::uffd_msg; 0] = [];
    assert_eq!(
        expect_errno(
            "read into an empty buffer",
            uffd.read_raw(&mut empty).map(|m| m.len())
        ),
        libc::EINVAL
    );
}

#[test]
fn errors_writeprotect_on_unregistered_range() {
    let Some(uffd) = require!(wp_uffd(Features::empty(), true)) else {
        return;
    };
    let region = Region::new(4 * PAGE_SIZE).expect("map");
    populate(&region);
    let b = region.base();
    // Never registered at all. ioctl_userfaultfd(2) says ENOENT; Linux 6.18 agrees:
    // mwriteprotect_range() fails with -ENOENT on a VMA without VM_UFFD_WP.
    assert_eq!(
        expect_errno("protect never registered", uffd.protect(b, PAGE_SIZE)),
        libc::ENOENT
    );
    assert_eq!(
        expect_errno(
            "unprotect never registered",
            uffd.unprotect(b, PAGE_SIZE, WpMode::empty())
        ),
        libc::ENOENT
    );
    let src = vec![0u8; PAGE_SIZE];
    // SAFETY: `src` is a live buffer of PAGE_SIZE readable bytes.
    let r = unsafe { uffd.copy(b + PAGE_SIZE, src.as_ptr(), PAGE_SIZE, CopyMode::empty()) };
    assert_eq!(expect_errno("copy never registered", r), libc::ENOENT);
    // Unregistering or waking a range that was never registered is not an error.
    uffd.unregister(b, PAGE_SIZE)
        .expect("unregister never registered");
    uffd.wake(b, PAGE_SIZE).expect("wake never registered");
    // Registered for missing faults only: not registered for WP.
    uffd.register(b, PAGE_SIZE, RegisterMode::MISSING)
        .expect("register MISSING");
    assert_eq!(
        expect_errno("protect MISSING-only range", uffd.protect(b, PAGE_SIZE)),
        libc::ENOENT
    );
    // Partly registered: the first page is WP, the second is not.
    uffd.register(b + 2 * PAGE_SIZE, PAGE_SIZE, RegisterMode::WP)
        .expect("register WP");
    assert_eq!(
        expect_errno(
            "protect range running past the registration",
            uffd.protect(b + 2 * PAGE_SIZE, 2 * PAGE_SIZE)
        ),
        libc::ENOENT
    );
    // Registered, then unregistered.
    uffd.unregister(b + 2 * PAGE_SIZE, PAGE_SIZE)
        .expect("unregister");
    assert_eq!(
        expect_errno(
            "protect after unregister",
            uffd.protect(b + 2 * PAGE_SIZE, PAGE_SIZE)
        ),
        libc::ENOENT
    );
    assert_eq!(uffd.eagain_retries(), 0, "ENOENT is never retried");
}

#[test]
fn errors_unmapped_ranges() {
    let Some(uffd) = require!(wp_uffd(Features::empty(), true)) else {
        return;
    };
    let hole = Hole::new();
    let (start, gap) = (hole.start(), hole.gap());
    // SAFETY: the outer pages of the hole are mapped read-write and owned by `hole`.
    unsafe {
        (start as *mut u64).write_volatile(1);
        ((start + 2 * PAGE_SIZE) as *mut u64).write_volatile(3);
    }
    // Nothing mapped at all: EINVAL for the range ioctls that look up the mapping.
    assert_eq!(
        expect_errno(
            "register an unmapped page",
            uffd.register(gap, PAGE_SIZE, RegisterMode::WP)
        ),
        libc::EINVAL
    );
    assert_eq!(
        expect_errno(
            "unregister an unmapped page",
            uffd.unregister(gap, PAGE_SIZE)
        ),
        libc::EINVAL
    );
    // Linux 6.18 registers a range with a hole in it (the mapped parts); the man page's
    // "EINVAL: there was no mapping in the specified range" only applies when nothing in
    // the range is mapped.
    uffd.register(
        start,
        3 * PAGE_SIZE,
        RegisterMode::MISSING | RegisterMode::WP,
    )
    .expect("register across a hole");
    uffd.protect(start, 3 * PAGE_SIZE)
        .expect("protect across a hole");
    let mut pagemap = Pagemap::open(1).expect("pagemap");
    assert!(wp_bit(&mut pagemap, start));
    assert!(wp_bit(&mut pagemap, start + 2 * PAGE_SIZE));
    // On the hole itself: ENOENT for the ioctls that need a registered VMA.
    assert_eq!(
        expect_errno("protect an unmapped page", uffd.protect(gap, PAGE_SIZE)),
        libc::ENOENT
    );
    let src = vec![0u8; PAGE_SIZE];
    // SAFETY: `src` is a live buffer of PAGE_SIZE readable bytes.
    let r = unsafe { uffd.copy(gap, src.as_ptr(), PAGE_SIZE, CopyMode::empty()) };
    assert_eq!(expect_errno("copy into an unmapped page", r), libc::ENOENT);
    // UFFDIO_WAKE does not look at the mappings at all.
    uffd.wake(gap, PAGE_SIZE).expect("wake an unmapped page");
    uffd.unprotect(start, 3 * PAGE_SIZE, WpMode::empty())
        .expect("unprotect across a hole");
    assert!(!wp_bit(&mut pagemap, start));
    uffd.unregister(start, 3 * PAGE_SIZE)
        .expect("unregister across a hole");
}

#[test]
fn poll_on_a_blocking_descriptor_is_an_error() {
    let Some(uffd) = require!(wp_uffd(Features::empty(), false)) else {
        return;
    };
    // The kernel answers POLLERR at once for a descriptor without O_NONBLOCK ("poll()
    // never guarantees that read won't block"): an error, not "nothing queued".
    let started = std::time::Instant::now();
    match uffd.poll_readable(1000) {
        Err(Error::InvalidArgument(msg)) => assert!(msg.contains("nonblocking"), "{msg}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "POLLERR comes at once"
    );
    set_nonblocking(&uffd);
    assert!(!uffd.poll_readable(10).expect("poll once O_NONBLOCK is set"));
}

#[test]
fn errors_efault_copy_from_unreadable_source() {
    let Some(uffd) = require!(Uffd::builder().create()) else {
        return;
    };
    let dst = Region::new(PAGE_SIZE).expect("map");
    uffd.register(dst.base(), PAGE_SIZE, RegisterMode::MISSING)
        .expect("register");
    let src = Region::new(PAGE_SIZE).expect("map");
    src.protect(src.base(), PAGE_SIZE, Protection::None)
        .expect("mprotect PROT_NONE");
    let unreadable = src.base() as *const u8;
    // SAFETY: deliberately breaks `copy`'s contract: the kernel reads the source with
    // copy_from_user(), which fails cleanly on an inaccessible page; this process never
    // dereferences it.
    let r = unsafe { uffd.copy(dst.base(), unreadable, PAGE_SIZE, CopyMode::empty()) };
    assert_eq!(expect_errno("copy from PROT_NONE", r), libc::EFAULT);
    let mut pagemap = Pagemap::open(1).expect("pagemap");
    assert!(!present(&mut pagemap, dst.base()), "nothing was copied");
}

#[test]
fn errors_eexist_copy_onto_present_page() {
    let Some(uffd) = require!(Uffd::builder().create()) else {
        return;
    };
    let dst = Region::new(PAGE_SIZE).expect("map");
    write_u64(&dst, 0, 77);
    uffd.register(dst.base(), PAGE_SIZE, RegisterMode::MISSING)
        .expect("register");
    let src = vec![1u8; PAGE_SIZE];
    // SAFETY: `src` is a live buffer of PAGE_SIZE readable bytes.
    let r = unsafe { uffd.copy(dst.base(), src.as_ptr(), PAGE_SIZE, CopyMode::empty()) };
    assert_eq!(expect_errno("copy onto a present page", r), libc::EEXIST);
    assert_eq!(read_u64(&dst, 0), 77, "the page was not overwritten");
}

#[test]
fn errors_ebusy_register_on_second_descriptor() {
    let Some(first) = require!(wp_uffd(Features::empty(), true)) else {
        return;
    };
    let Some(second) = require!(wp_uffd(Features::empty(), true)) else {
        return;
    };
    let region = Region::new(2 * PAGE_SIZE).expect("map");
    first
        .register(region.base(), PAGE_SIZE, RegisterMode::WP)
        .expect("register on the first descriptor");
    assert_eq!(
        expect_errno(
            "register on a second descriptor",
            second.register(region.base(), 2 * PAGE_SIZE, RegisterMode::WP)
        ),
        libc::EBUSY
    );
    second
        .register(region.base() + PAGE_SIZE, PAGE_SIZE, RegisterMode::WP)
        .expect("the other page is free");
}

#[test]
fn errors_eagain_while_remove_event_pending() {
    with_timeout(TIMEOUT, "errors_eagain_while_remove_event_pending", || {
        let Some(uffd) = require!(wp_uffd(Features::EVENT_REMOVE, true)) else {
            return;
        };
        let region = Arc::new(Region::new(8 * PAGE_SIZE).expect("map"));
        for i in 0..6 {
            write_u64(&region, i * PAGE_SIZE, 0x99); // pages 6 and 7 stay missing
        }
        uffd.register(
            region.base(),
            region.len(),
            RegisterMode::MISSING | RegisterMode::WP,
        )
        .expect("register");
        let _release = Release::new(&uffd, region.base(), region.len());
        let mut pagemap = Pagemap::open(1).expect("pagemap");

        // The madvise blocks until its UFFD_EVENT_REMOVE is read; meanwhile the
        // descriptor's mmap_changing count is raised.
        let (zap_start, zap_len) = (page(&region, 2), 2 * PAGE_SIZE);
        let advised = Arc::new(AtomicBool::new(false));
        let zapper = {
            let (r, flag) = (Arc::clone(&region), Arc::clone(&advised));
            std::thread::spawn(move || {
                let res = r.advise(zap_start, zap_len, Advice::DontNeed);
                flag.store(true, Ordering::SeqCst);
                res
            })
        };
        assert!(uffd.poll_readable(10_000).expect("poll"), "no remove event");
        assert!(
            !advised.load(Ordering::SeqCst),
            "madvise must wait for the event"
        );

        let before = uffd.eagain_retries();
        let err = uffd.protect(region.base(), PAGE_SIZE).unwrap_err();
        assert_eq!(err.errno(), Some(libc::EAGAIN), "{err}");
        assert_eq!(
            uffd.eagain_retries() - before,
            u64::from(EAGAIN_RETRY_LIMIT),
            "every EAGAIN up to the limit was retried and counted"
        );
        assert!(
            !wp_bit(&mut pagemap, region.base()),
            "nothing was protected"
        );

        let before = uffd.eagain_retries();
        let src = vec![0u8; PAGE_SIZE];
        // SAFETY: `src` is a live buffer of PAGE_SIZE readable bytes.
        let r = unsafe { uffd.copy(page(&region, 6), src.as_ptr(), PAGE_SIZE, CopyMode::empty()) };
        assert_eq!(expect_errno("copy with an event pending", r), libc::EAGAIN);
        assert_eq!(
            uffd.eagain_retries() - before,
            u64::from(EAGAIN_RETRY_LIMIT)
        );
        assert!(!present(&mut pagemap, page(&region, 6)));

        let mut buf = msg_buf::<4>();
        let events = uffd.read_events(&mut buf).expect("read");
        assert_eq!(
            events,
            [Event::Remove {
                start: zap_start,
                end: zap_start + zap_len
            }]
        );
        zapper.join().expect("madvise thread").expect("madvise");
        assert!(advised.load(Ordering::SeqCst));
        assert!(
            !present(&mut pagemap, zap_start),
            "DONTNEED dropped the page"
        );

        uffd.protect(region.base(), PAGE_SIZE)
            .expect("protect once the event is read");
        assert!(wp_bit(&mut pagemap, region.base()));
        // SAFETY: as above.
        let copied =
            unsafe { uffd.copy(page(&region, 6), src.as_ptr(), PAGE_SIZE, CopyMode::empty()) }
                .expect("copy once the event is read");
        assert_eq!(copied, PAGE_SIZE);
        assert!(present(&mut pagemap, page(&region, 6)));
        assert_no_message(&uffd);
    });
}

// ---------------------------------------------------------------------------------------
// Writes made by the kernel: read(2) from a pipe into a protected page

/// A pipe holding `data`; closes both ends on drop.
struct Pipe {
    read: libc::c_int,
    write: libc::c_int,
}

impl Pipe {
    fn with(data: &[u8]) -> Pipe {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: `data` is readable for `data.len()` bytes; the pipe's buffer holds it.
        let n = unsafe { libc::write(fds[1], data.as_ptr().cast(), data.len()) };
        assert_eq!(n, data.len() as isize);
        Pipe {
            read: fds[0],
            write: fds[1],
        }
    }

    /// `read(2)` into `offset` of `region`; the kernel writes the page, not this thread.
    fn read_into(&self, region: &Region, offset: usize, len: usize) -> std::io::Result<usize> {
        assert!(offset + len <= region.len());
        // SAFETY: the destination lies inside `region`, a live writable mapping; the
        // kernel writes at most `len` bytes there, and no Rust reference covers them.
        let n = unsafe {
            libc::read(
                self.read,
                (region.base() + offset) as *mut libc::c_void,
                len,
            )
        };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // SAFETY: both descriptors were created by pipe2 and are owned by this struct.
        unsafe {
            libc::close(self.read);
            libc::close(self.write);
        }
    }
}

const PIPE_DATA: &[u8; 16] = b"from the kernel!";

fn bytes_at(region: &Region, offset: usize) -> [u8; 16] {
    let lo = read_u64(region, offset).to_ne_bytes();
    let hi = read_u64(region, offset + 8).to_ne_bytes();
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&lo);
    out[8..].copy_from_slice(&hi);
    out
}

#[test]
fn kernel_write_into_protected_page_is_a_wp_fault() {
    with_timeout(
        TIMEOUT,
        "kernel_write_into_protected_page_is_a_wp_fault",
        || {
            let Some(uffd) = require!(wp_uffd(Features::empty(), true)) else {
                return;
            };
            let region = armed(&uffd, 1).expect("arm");
            let _release = Release::new(&uffd, region.base(), region.len());
            let mut pagemap = Pagemap::open(1).expect("pagemap");
            let pipe = Arc::new(Pipe::with(PIPE_DATA));
            let reader = {
                let (p, r) = (Arc::clone(&pipe), Arc::clone(&region));
                std::thread::spawn(move || p.read_into(&r, 64, PIPE_DATA.len()))
            };
            let (address, flags, _) = page_fault(next_event(&uffd));
            assert_eq!(address, region.base());
            assert!(
                flags.contains(PageFaultFlags::WP | PageFaultFlags::WRITE),
                "{flags:?}"
            );
            assert!(
                !reader.is_finished(),
                "read(2) waits for the fault to be served"
            );
            uffd.unprotect(region.base(), PAGE_SIZE, WpMode::empty())
                .expect("unprotect");
            let n = reader.join().expect("reader thread").expect("read(2)");
            assert_eq!(n, PIPE_DATA.len());
            assert_eq!(&bytes_at(&region, 64), PIPE_DATA);
            assert!(!wp_bit(&mut pagemap, region.base()));
            assert_no_message(&uffd);
        },
    );
}

#[test]
fn kernel_write_into_protected_page_fails_efault_in_user_mode_only() {
    with_timeout(
        TIMEOUT,
        "kernel_write_into_protected_page_fails_efault_in_user_mode_only",
        || {
            let Some(uffd) = require!(
                Uffd::builder()
                    .features(Features::PAGEFAULT_FLAG_WP)
                    .user_mode_only(true)
                    .nonblocking(true)
                    .create()
            ) else {
                return;
            };
            let region = armed(&uffd, 1).expect("arm");
            let _release = Release::new(&uffd, region.base(), region.len());
            let mut pagemap = Pagemap::open(1).expect("pagemap");
            let before = bytes_at(&region, 64);
            let pipe = Pipe::with(PIPE_DATA);
            let err = pipe
                .read_into(&region, 64, PIPE_DATA.len())
                .expect_err("a kernel write into a WP page must fail in user-mode-only mode");
            assert_eq!(err.raw_os_error(), Some(libc::EFAULT), "{err}");
            assert_no_message(&uffd);
            let mut buf = msg_buf::<4>();
            assert!(uffd.read_events(&mut buf).expect("read").is_empty());
            assert!(wp_bit(&mut pagemap, region.base()), "still protected");
            assert_eq!(bytes_at(&region, 64), before, "nothing was written");

            // The data stayed in the pipe; once unprotected, the same read succeeds.
            uffd.unprotect(region.base(), PAGE_SIZE, WpMode::empty())
                .expect("unprotect");
            assert_eq!(
                pipe.read_into(&region, 64, PIPE_DATA.len())
                    .expect("read(2)"),
                PIPE_DATA.len()
            );
            assert_eq!(&bytes_at(&region, 64), PIPE_DATA);
        },
    );
}

// ---------------------------------------------------------------------------------------

/// Three pages whose middle one is unmapped, far below where the kernel places new
/// mappings (a hole among recent mappings is soon refilled by another test's mmap).
struct Hole {
    base: usize,
}

impl Hole {
    fn new() -> Hole {
        for step in 0..64usize {
            let want = 0x1000_0000_0000 + step * (1 << 30);
            // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; it fails
            // with EEXIST instead.
            let p = unsafe {
                libc::mmap(
                    want as *mut libc::c_void,
                    3 * PAGE_SIZE,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                continue;
            }
            assert_eq!(p as usize, want, "MAP_FIXED_NOREPLACE moved the mapping");
            // SAFETY: the middle page belongs to the mapping just created and is unused.
            let rc = unsafe { libc::munmap((want + PAGE_SIZE) as *mut _, PAGE_SIZE) };
            assert_eq!(rc, 0, "munmap the middle page");
            return Hole { base: want };
        }
        panic!("no free 3-page slot found at 16 TiB");
    }

    fn start(&self) -> usize {
        self.base
    }

    fn gap(&self) -> usize {
        self.base + PAGE_SIZE
    }
}

impl Drop for Hole {
    fn drop(&mut self) {
        // SAFETY: the outer pages are still owned by this struct; the middle one is
        // already unmapped and nothing else maps at these fixed addresses.
        unsafe {
            libc::munmap(self.base as *mut _, PAGE_SIZE);
            libc::munmap((self.base + 2 * PAGE_SIZE) as *mut _, PAGE_SIZE);
        }
    }
}
