//! Missing faults resolved by `UFFDIO_COPY`, mixed with WP faults, and unregistering.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use barrierlab::sys::PAGE_SIZE;
use barrierlab::sys::mem::Region;
use barrierlab::sys::pagemap::Pagemap;
use barrierlab::sys::uffd::{
    CopyMode, Features, Ioctls, PageFaultFlags, RegisterMode, Uffd, WpMode,
};

use super::{
    STILL_BLOCKED, TIMEOUT, armed, assert_no_message, next_event, page_fault, present, wp_bit,
    wp_uffd,
};
use crate::support::{Release, Writer, page, read_u64, with_timeout, write_u64};

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
