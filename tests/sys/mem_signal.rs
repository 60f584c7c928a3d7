//! The rest of the kernel layer against the real kernel: [`Region`] (mmap, mprotect,
//! madvise), signal handlers installed and restored, [`EventFd`], the kernel facts, and
//! the capability probe's agreement with them.
//!
//! A write to a read-only page is provoked in a forked child, whose death by SIGSEGV is
//! the second channel; a VMA split is seen both in `/proc/self/maps` lines over the
//! region and in [`count_mappings`].

use crate::support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use barrierlab::BarrierKind;
use barrierlab::Error;
use barrierlab::probe::Probe;
use barrierlab::sys::PAGE_SIZE;
use barrierlab::sys::eventfd::{EventFd, poll_readable};
use barrierlab::sys::kernel;
use barrierlab::sys::mem::{Advice, Protection, Region, count_mappings};
use barrierlab::sys::pagemap::Pagemap;
use barrierlab::sys::signal::{InstalledHandler, SigInfoHandler, chain};
use support::{fork_and_wait, page, read_u64, require_all, with_timeout, write_u64};

/// Seconds a test body may take before it counts as a deadlock.
const TIMEOUT: u64 = 30;

// ---------------------------------------------------------------------------------------
// Region

#[test]
fn region_alignment_and_geometry() {
    const TWO_MIB: usize = 2 << 20;
    let region = Region::with_alignment(2 * TWO_MIB + 100, TWO_MIB).expect("map");
    assert_eq!(region.base() % TWO_MIB, 0, "base {:#x}", region.base());
    assert_eq!(
        region.len(),
        2 * TWO_MIB + PAGE_SIZE,
        "rounded up to whole pages"
    );
    assert_eq!(region.pages(), region.len() / PAGE_SIZE);
    assert_eq!(region.end(), region.base() + region.len());
    assert!(!region.is_empty());
    assert!(region.contains(region.base()) && region.contains(region.end() - 1));
    assert!(!region.contains(region.end()) && !region.contains(region.base() - 1));
    // Mapped, writable and zero-filled from the first to the last word.
    assert_eq!(read_u64(&region, 0), 0);
    write_u64(&region, 0, 1);
    write_u64(&region, region.len() - 8, 2);
    assert_eq!(read_u64(&region, region.len() - 8), 2);
    let maps = region_maps_lines(&region);
    assert!(
        maps.iter()
            .any(|&(s, e)| s <= region.base() && region.end() <= e),
        "one mapping covers the region: {maps:x?}"
    );

    let small = Region::new(100).expect("map");
    assert_eq!(small.len(), PAGE_SIZE);
    assert_eq!(small.base() % PAGE_SIZE, 0);
}

#[test]
fn region_rejects_bad_arguments() {
    for (what, r) in [
        ("zero length", Region::new(0)),
        (
            "alignment not a power of two",
            Region::with_alignment(PAGE_SIZE, 3 * PAGE_SIZE),
        ),
        (
            "alignment below the page size",
            Region::with_alignment(PAGE_SIZE, 2048),
        ),
    ] {
        assert!(
            matches!(r, Err(Error::InvalidArgument(_))),
            "{what}: expected InvalidArgument, got {r:?}"
        );
    }
}

#[test]
fn region_bad_ranges_are_invalid_argument() {
    let region = Region::new(4 * PAGE_SIZE).expect("map");
    let b = region.base();
    let bad = [
        ("unaligned start", b + 8, PAGE_SIZE),
        ("length not a page multiple", b, PAGE_SIZE + 1),
        ("past the end", b + 3 * PAGE_SIZE, 2 * PAGE_SIZE),
        ("before the base", b - PAGE_SIZE, 2 * PAGE_SIZE),
        ("outside entirely", b + 8 * PAGE_SIZE, PAGE_SIZE),
    ];
    for (what, start, len) in bad {
        let r = region.protect(start, len, Protection::Read);
        assert!(
            matches!(r, Err(Error::InvalidArgument(_))),
            "protect {what}: {r:?}"
        );
        let r = region.advise(start, len, Advice::DontNeed);
        assert!(
            matches!(r, Err(Error::InvalidArgument(_))),
            "advise {what}: {r:?}"
        );
    }
    // Nothing was applied: every page is still writable and keeps its data.
    for i in 0..4 {
        write_u64(&region, i * PAGE_SIZE, 7 + i as u64);
        assert_eq!(read_u64(&region, i * PAGE_SIZE), 7 + i as u64);
    }
}

/// Forks; the child writes `value` at `addr` and exits 0. Returns the child's wait status.
fn child_writes(addr: usize, value: u64) -> i32 {
    // The expected outcome of the store is a SIGSEGV that kills the child (no core
    // file); nothing of the parent is touched.
    // SAFETY: in the child, which owns its copy of `addr`'s mapping: one store, no
    // allocation, no lock.
    fork_and_wait(|| unsafe { (addr as *mut u64).write_volatile(value) })
}

#[test]
fn region_read_only_write_kills_child_with_sigsegv() {
    with_timeout(
        TIMEOUT,
        "region_read_only_write_kills_child_with_sigsegv",
        || {
            let region = Region::new(2 * PAGE_SIZE).expect("map");
            write_u64(&region, PAGE_SIZE, 42);
            region
                .protect(page(&region, 1), PAGE_SIZE, Protection::Read)
                .expect("mprotect read-only");

            let status = child_writes(page(&region, 1), 1);
            assert!(
                libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV,
                "the child's write to a read-only page must kill it with SIGSEGV (status {status:#x})"
            );
            // Control: the writable page next to it.
            let status = child_writes(page(&region, 0), 1);
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "status {status:#x}"
            );
            assert_eq!(
                read_u64(&region, PAGE_SIZE),
                42,
                "still readable, unchanged"
            );

            region
                .protect(page(&region, 1), PAGE_SIZE, Protection::ReadWrite)
                .expect("mprotect read-write");
            let status = child_writes(page(&region, 1), 1);
            assert!(
                libc::WIFEXITED(status),
                "writable again (status {status:#x})"
            );
            write_u64(&region, PAGE_SIZE, 43);
            assert_eq!(read_u64(&region, PAGE_SIZE), 43);
        },
    );
}

/// The `/proc/self/maps` ranges that overlap `region`.
fn region_maps_lines(region: &Region) -> Vec<(usize, usize)> {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    maps.lines()
        .filter_map(|line| {
            let range = line.split_whitespace().next()?;
            let (s, e) = range.split_once('-')?;
            Some((
                usize::from_str_radix(s, 16).ok()?,
                usize::from_str_radix(e, 16).ok()?,
            ))
        })
        .filter(|&(s, e)| s < region.end() && e > region.base())
        .collect()
}

#[test]
fn region_protecting_a_middle_page_splits_the_mapping() {
    let region = Region::new(3 * PAGE_SIZE).expect("map");
    let middle = page(&region, 1);
    assert_eq!(region_maps_lines(&region).len(), 1);
    region
        .protect(middle, PAGE_SIZE, Protection::Read)
        .expect("protect middle");
    let lines = region_maps_lines(&region);
    assert_eq!(lines.len(), 3, "split into three VMAs: {lines:x?}");
    assert!(lines.contains(&(middle, middle + PAGE_SIZE)), "{lines:x?}");
    region
        .protect(middle, PAGE_SIZE, Protection::ReadWrite)
        .expect("unprotect middle");
    assert_eq!(region_maps_lines(&region).len(), 1, "merged back");

    // The process-wide count: other tests' threads map and unmap stacks concurrently,
    // so look for one clean +2 among a few tries.
    let mut deltas = Vec::new();
    for _ in 0..20 {
        let before = count_mappings();
        region
            .protect(middle, PAGE_SIZE, Protection::None)
            .expect("protect middle");
        let after = count_mappings();
        region
            .protect(middle, PAGE_SIZE, Protection::ReadWrite)
            .expect("unprotect middle");
        deltas.push(after as isize - before as isize);
        if after == before + 2 {
            return;
        }
    }
    panic!("count_mappings never grew by 2 when the middle page was split off: {deltas:?}");
}

#[test]
fn region_advice_dontneed_and_populate() {
    let region = Region::new(4 * PAGE_SIZE).expect("map");
    let mut pagemap = Pagemap::open(1).expect("pagemap");
    for i in 0..4 {
        write_u64(&region, i * PAGE_SIZE, 0x77);
    }
    region
        .advise(page(&region, 1), 2 * PAGE_SIZE, Advice::DontNeed)
        .expect("MADV_DONTNEED");
    let present: Vec<bool> = (0..4)
        .map(|i| pagemap.entry(page(&region, i)).expect("entry").present())
        .collect();
    assert_eq!(present, [true, false, false, true]);
    assert_eq!(
        read_u64(&region, PAGE_SIZE),
        0,
        "dropped pages read back as zero"
    );
    assert_eq!(read_u64(&region, 3 * PAGE_SIZE), 0x77);

    let fresh = Region::new(4 * PAGE_SIZE).expect("map");
    fresh
        .advise(fresh.base(), fresh.len(), Advice::PopulateWrite)
        .expect("MADV_POPULATE_WRITE");
    for i in 0..4 {
        let e = pagemap.entry(page(&fresh, i)).expect("entry");
        assert!(e.present(), "page {i} populated: {e:x?}");
    }
    fresh
        .advise(fresh.base(), fresh.len(), Advice::NoHugePage)
        .expect("MADV_NOHUGEPAGE");
    fresh
        .advise(fresh.base(), fresh.len(), Advice::HugePage)
        .expect("MADV_HUGEPAGE");
}

// ---------------------------------------------------------------------------------------
// Signals. Each test owns one signal number, since handlers are process-wide.

fn current_action(signal: i32) -> libc::sigaction {
    // SAFETY: a zeroed sigaction is a valid output buffer.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries; `action` is valid for writes.
    let rc = unsafe { libc::sigaction(signal, std::ptr::null(), &mut action) };
    assert_eq!(rc, 0, "sigaction query");
    action
}

/// `SA_RESTORER` (x86-64), which the libc crate does not export.
const SA_RESTORER: i32 = 0x0400_0000;

static USR1_SEEN: AtomicBool = AtomicBool::new(false);

extern "C" fn on_usr1(_: i32, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    USR1_SEEN.store(true, Ordering::SeqCst);
}

#[test]
fn signal_handler_installs_and_restores() {
    let before = current_action(libc::SIGUSR1);
    // SAFETY: `on_usr1` only stores to a static atomic, which is async-signal-safe.
    let installed = unsafe { InstalledHandler::install(libc::SIGUSR1, on_usr1) }.expect("install");
    assert_eq!(installed.previous().sa_sigaction, before.sa_sigaction);
    let now = current_action(libc::SIGUSR1);
    assert_eq!(now.sa_sigaction, on_usr1 as SigInfoHandler as usize);
    assert_ne!(now.sa_flags & libc::SA_SIGINFO, 0);
    assert_ne!(now.sa_flags & libc::SA_ONSTACK, 0);

    assert!(!USR1_SEEN.load(Ordering::SeqCst));
    // SAFETY: raise has no preconditions; SIGUSR1 now runs `on_usr1` on this thread
    // before raise returns.
    assert_eq!(unsafe { libc::raise(libc::SIGUSR1) }, 0);
    assert!(USR1_SEEN.load(Ordering::SeqCst), "the handler ran");

    drop(installed);
    let after = current_action(libc::SIGUSR1);
    assert_eq!(
        after.sa_sigaction, before.sa_sigaction,
        "previous handler restored"
    );
    // glibc's sigaction() adds SA_RESTORER (and its trampoline) to every action it sets.
    assert_eq!(
        after.sa_flags & !SA_RESTORER,
        before.sa_flags & !SA_RESTORER,
        "previous flags restored"
    );
}

/// Calls of the inner (first-installed) and outer SIGUSR2 handlers.
static INNER_CALLS: AtomicUsize = AtomicUsize::new(0);
static OUTER_CALLS: AtomicUsize = AtomicUsize::new(0);
/// The action the outer handler passes the signal on to.
static OUTER_PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

extern "C" fn inner_usr2(_: i32, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    INNER_CALLS.fetch_add(1, Ordering::SeqCst);
}

extern "C" fn outer_usr2(signal: i32, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    OUTER_CALLS.fetch_add(1, Ordering::SeqCst);
    if let Some(previous) = OUTER_PREVIOUS.get() {
        // SAFETY: called from the SIGUSR2 handler with the arguments it received.
        unsafe { chain(previous, signal, info, context) };
    }
}

#[test]
fn signal_handlers_nest_and_chain() {
    let before = current_action(libc::SIGUSR2);
    // SAFETY: `inner_usr2` only updates a static atomic.
    let inner = unsafe { InstalledHandler::install(libc::SIGUSR2, inner_usr2) }.expect("inner");
    // SAFETY: `outer_usr2` updates a static atomic and chains through a static that is set
    // before the first raise and never changes.
    let outer = unsafe { InstalledHandler::install(libc::SIGUSR2, outer_usr2) }.expect("outer");
    assert_eq!(
        outer.previous().sa_sigaction,
        inner_usr2 as SigInfoHandler as usize
    );
    OUTER_PREVIOUS
        .set(*outer.previous())
        .expect("set once per process");

    // SAFETY: raise has no preconditions; both handlers are installed.
    assert_eq!(unsafe { libc::raise(libc::SIGUSR2) }, 0);
    assert_eq!(OUTER_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(
        INNER_CALLS.load(Ordering::SeqCst),
        1,
        "chained to the previous handler"
    );

    drop(outer);
    assert_eq!(
        current_action(libc::SIGUSR2).sa_sigaction,
        inner_usr2 as SigInfoHandler as usize
    );
    // SAFETY: as above; only the inner handler is installed now.
    assert_eq!(unsafe { libc::raise(libc::SIGUSR2) }, 0);
    assert_eq!(OUTER_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(INNER_CALLS.load(Ordering::SeqCst), 2);
    drop(inner);
    assert_eq!(
        current_action(libc::SIGUSR2).sa_sigaction,
        before.sa_sigaction
    );
}

// ---------------------------------------------------------------------------------------
// EventFd

#[test]
fn eventfd_signal_poll_drain() {
    with_timeout(TIMEOUT, "eventfd_signal_poll_drain", || {
        use std::os::fd::AsRawFd;
        let a = EventFd::new().expect("eventfd");
        let b = EventFd::new().expect("eventfd");
        let fds = [a.as_raw_fd(), b.as_raw_fd()];
        assert_eq!(poll_readable(fds, 0).expect("poll"), [false, false]);
        assert_eq!(a.drain(), 0, "draining an empty counter reads nothing");

        a.signal();
        a.signal();
        assert_eq!(poll_readable(fds, 0).expect("poll"), [true, false]);
        assert_eq!(a.drain(), 2, "the counter adds up");
        assert_eq!(poll_readable(fds, 0).expect("poll"), [false, false]);

        // Wakes a thread sleeping in poll(2).
        let b = Arc::new(b);
        let waiter = {
            let b = Arc::clone(&b);
            std::thread::spawn(move || poll_readable([b.as_raw_fd()], 10_000))
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        b.signal();
        assert_eq!(waiter.join().expect("waiter").expect("poll"), [true]);
        assert_eq!(b.drain(), 1);
        assert_eq!(poll_readable([b.as_raw_fd()], 0).expect("poll"), [false]);
    });
}

// ---------------------------------------------------------------------------------------
// Kernel facts and the probe

#[test]
fn kernel_facts() {
    let release = kernel::release();
    assert!(!release.is_empty() && release != "unknown");
    let (major, minor) = kernel::version();
    assert!(
        (major, minor) >= (6, 7),
        "{release}: PAGEMAP_SCAN and WP_ASYNC need Linux 6.7+"
    );
    assert!(
        ["always", "madvise", "never"].contains(&kernel::thp_mode().as_str()),
        "{}",
        kernel::thp_mode()
    );
    assert!(kernel::online_cpus() >= 1);
    let max_map_count: usize = kernel::sysctl("vm/max_map_count")
        .expect("vm.max_map_count is readable")
        .parse()
        .expect("a number");
    assert!(max_map_count > 0);
}

#[test]
fn kernel_soft_dirty_agrees_with_probe() {
    with_timeout(TIMEOUT, "kernel_soft_dirty_agrees_with_probe", || {
        let check = kernel::check_soft_dirty().expect("check_soft_dirty");
        eprintln!(
            "soft-dirty: {}/{} written pages showed bit 55 (CONFIG_MEM_SOFT_DIRTY: {:?})",
            check.seen_dirty,
            check.written,
            kernel::config_option("CONFIG_MEM_SOFT_DIRTY")
        );
        assert_eq!(check.written, 32);
        assert!(check.seen_dirty <= check.written);
        let probe = Probe::run();
        assert_eq!(
            probe.soft_dirty.is_available(),
            check.works(),
            "the probe and the direct check disagree: {:?}",
            probe.soft_dirty
        );
        if kernel::config_option("CONFIG_MEM_SOFT_DIRTY") == Some(false) {
            assert!(
                !check.works(),
                "soft-dirty works without CONFIG_MEM_SOFT_DIRTY?"
            );
        }
    });
}

#[test]
fn probe_reports_every_mechanism() {
    with_timeout(TIMEOUT, "probe_reports_every_mechanism", || {
        let probe = Probe::run();
        eprintln!("{probe}");
        assert_eq!(probe.mechanisms.len(), BarrierKind::ALL.len());
        assert!(probe.get(BarrierKind::CardTable).is_available());
        assert!(probe.require(BarrierKind::CardTable).is_ok());
        // Soft-dirty is a kernel configuration option; see kernel_soft_dirty_agrees_with_probe.
        for m in BarrierKind::ALL {
            let a = probe.get(m);
            match probe.require(m) {
                Ok(()) => assert!(a.is_available()),
                Err(e @ Error::Unavailable { .. }) => {
                    assert!(!a.is_available());
                    assert!(
                        !require_all(),
                        "{} is unavailable and BARRIERLAB_REQUIRE_ALL=1: {e}",
                        m.name()
                    );
                    eprintln!("NOTE: {} unavailable here: {e}", m.name());
                }
                Err(e) => panic!("require({}) returned {e}", m.name()),
            }
        }
    });
}

#[test]
fn skip_messages_name_the_test() {
    // The name libtest runs the test by (a fresh-process child is started with it).
    assert_eq!(test_name!(), "mem_signal::skip_messages_name_the_test");
    let from_closure = with_timeout(TIMEOUT, "skip_messages_name_the_test", || test_name!());
    assert_eq!(from_closure, "mem_signal::skip_messages_name_the_test");
    assert_eq!(
        support::clean_test_name("sys::uffd::errors::a_test::{{closure}}::{{closure}}::here"),
        "uffd::errors::a_test"
    );
    // A missing kernel feature is a skip; any other failure is not.
    let missing = Error::Unavailable {
        mechanism: "uffd-wp",
        causes: vec![Error::InvalidArgument("test".into())],
    };
    assert!(support::is_missing_feature(&missing));
    assert!(!support::is_missing_feature(&Error::InvalidArgument(
        "x".into()
    )));
    if !require_all() {
        let got: Option<()> = require!(Err::<(), _>(missing));
        assert!(got.is_none(), "a missing feature skips");
    }
}
