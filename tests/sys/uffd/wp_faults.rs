//! Write-protect faults served by a handler thread: blocking, non-blocking and batched.

use std::collections::BTreeSet;
use std::time::Duration;

use barrierlab::sys::PAGE_SIZE;
use barrierlab::sys::pagemap::Pagemap;
use barrierlab::sys::uffd::{Features, PageFaultFlags, WpMode};

use super::{
    STILL_BLOCKED, TIMEOUT, armed, assert_no_message, msg_buf, next_event, page_fault, wp_bit,
    wp_uffd,
};
use crate::support::{Release, Writer, page, read_u64, with_timeout};

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
