//! Every error the man page lists for these ioctls, each provoked on purpose.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use barrierlab::sys::PAGE_SIZE;
use barrierlab::sys::mem::{Advice, Protection, Region};
use barrierlab::sys::pagemap::Pagemap;
use barrierlab::sys::uffd::{
    CopyMode, EAGAIN_RETRY_LIMIT, Event, Features, RegisterMode, Uffd, WpMode, raw,
};
use barrierlab::{Error, Result};

use super::{TIMEOUT, assert_no_message, msg_buf, present, set_nonblocking, wp_bit, wp_uffd};
use crate::support::{Release, expect_errno, page, populate, read_u64, with_timeout, write_u64};

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
