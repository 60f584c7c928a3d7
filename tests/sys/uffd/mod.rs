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

use crate::support;

mod copy;
mod errors;
mod handshake;
mod kernel_writes;
mod wp_faults;

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use barrierlab::Result;
use barrierlab::sys::PAGE_SIZE;
use barrierlab::sys::mem::Region;
use barrierlab::sys::pagemap::Pagemap;
use barrierlab::sys::uffd::{Event, Features, PageFaultFlags, RegisterMode, Uffd, WpMode, raw};

use support::{Release, Writer, page, populate, read_u64};

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
