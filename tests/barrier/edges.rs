//! The edge-behaviour table of `src/barrier/mod.rs`, one test per row, run over every
//! page tracker: a kernel write (`read(2)`) into an armed page, a fault outside every
//! heap, `fork(2)` while armed, and transparent huge pages on the heap.

use crate::support;

use barrierlab::barrier::{BareTracker, BarrierKind, DirtySet, DirtyTracker, Edge, Idle, ServedBy};
use barrierlab::sys::PAGE_SIZE;
use barrierlab::sys::mem::{Protection, Region};
use barrierlab::{Heap, HeapConfig};
use support::{describe, fork_and_wait, with_timeout, write_page};

/// The page mechanisms: every kind whose granule is a page.
fn page_kinds() -> Vec<BarrierKind> {
    BarrierKind::ALL
        .into_iter()
        .filter(|k| k.is_page_level())
        .collect()
}

/// A populated region with `kind`'s tracker over it, or a skip.
fn lab(kind: BarrierKind, pages: usize) -> Option<BareTracker> {
    match BareTracker::new(kind, pages, pages, Idle::Yield) {
        Ok(lab) => Some(lab),
        Err(e) => {
            support::skip_or_fail("edges", &format!("{kind}: {e}"));
            None
        }
    }
}

fn harvest(t: &dyn DirtyTracker) -> DirtySet {
    let mut set = DirtySet::default();
    t.harvest(&mut set, false).expect("harvest");
    set
}

#[test]
fn read_into_an_armed_page() {
    for kind in page_kinds() {
        with_timeout(30, "read_into_an_armed_page", move || {
            let Some(lab) = lab(kind, 8) else {
                return;
            };
            let (t, region) = (lab.tracker().expect("a page tracker"), lab.region());
            t.arm().expect("arm");
            let mut fds = [0; 2];
            // SAFETY: a valid array of two descriptors.
            assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
            let msg = b"kernel write";
            // SAFETY: writes from a valid buffer into the pipe.
            let written = unsafe { libc::write(fds[1], msg.as_ptr().cast(), msg.len()) };
            assert_eq!(written, msg.len() as isize);
            let dst = region.base() + 3 * PAGE_SIZE;
            // SAFETY: `dst` is inside the mapped region; the kernel does the write.
            let n = unsafe { libc::read(fds[0], dst as *mut libc::c_void, msg.len()) };
            let errno = std::io::Error::last_os_error().raw_os_error();
            let set = harvest(t);
            t.disarm().expect("disarm");
            // SAFETY: closing our own descriptors.
            unsafe {
                libc::close(fds[0]);
                libc::close(fds[1]);
            }
            match kind.mechanism().served_by {
                // The kernel's write is a fault like a user write: served, recorded.
                ServedBy::Service | ServedBy::Kernel => {
                    assert_eq!(n, msg.len() as isize, "{kind}: read(2) must succeed");
                    // SAFETY: inside the region.
                    let got = unsafe { std::slice::from_raw_parts(dst as *const u8, msg.len()) };
                    assert_eq!(got, msg, "{kind}: the data landed");
                    assert!(
                        set.all || set.granules.contains(&3),
                        "{kind}: page 3 recorded: {set:?}"
                    );
                }
                // A signal cannot be delivered for a kernel access: the call fails.
                ServedBy::Handler => {
                    assert_eq!(n, -1, "{kind}: read(2) into an armed page must fail");
                    assert_eq!(errno, Some(libc::EFAULT), "{kind}: with EFAULT");
                }
                other => unreachable!("{kind}: a page mechanism served by {other:?}"),
            }
        });
    }
}

/// A page outside every heap whose write faults with the mechanism's own signal: a
/// read-only page for SIGSEGV, the page past the end of a shared file mapping for SIGBUS
/// (`BUS_ADRERR`, like a heap fault). Unmapped when dropped.
struct ForeignPage {
    signal: i32,
    addr: usize,
    /// The read-only page (SIGSEGV).
    _region: Option<Region>,
    /// The memfd and its two-page mapping (SIGBUS).
    memfd: Option<(i32, *mut libc::c_void)>,
}

impl ForeignPage {
    /// For the signal `kind`'s edge table names for a fault outside the heap.
    fn for_kind(kind: BarrierKind) -> ForeignPage {
        let outside = kind.mechanism().edge(Edge::FaultOutsideHeap).unwrap_or("");
        if outside.contains("SIGSEGV") {
            let other = Region::new(PAGE_SIZE).expect("region");
            other
                .protect(other.base(), PAGE_SIZE, Protection::Read)
                .expect("protect");
            return ForeignPage {
                signal: libc::SIGSEGV,
                addr: other.base(),
                _region: Some(other),
                memfd: None,
            };
        }
        assert!(
            outside.contains("SIGBUS"),
            "{kind}: which signal? {outside:?}"
        );
        // SAFETY: memfd_create with a valid name; the descriptor is closed on drop.
        let fd = unsafe { libc::memfd_create(c"barrierlab-sigbus".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: plain system calls on our descriptor and a fresh mapping two pages
        // long over a one-page file.
        let map = unsafe {
            assert_eq!(libc::ftruncate(fd, PAGE_SIZE as i64), 0);
            libc::mmap(
                std::ptr::null_mut(),
                2 * PAGE_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        ForeignPage {
            signal: libc::SIGBUS,
            addr: map as usize + PAGE_SIZE,
            _region: None,
            memfd: Some((fd, map)),
        }
    }
}

impl Drop for ForeignPage {
    fn drop(&mut self) {
        if let Some((fd, map)) = self.memfd {
            // SAFETY: unmapping and closing what `for_kind` created.
            unsafe {
                libc::munmap(map, 2 * PAGE_SIZE);
                libc::close(fd);
            }
        }
    }
}

#[test]
fn a_fault_outside_every_heap_still_kills_with_its_signal() {
    // Only the handlers on the writing thread are in the signal path.
    for kind in page_kinds()
        .into_iter()
        .filter(|k| k.mechanism().served_by == ServedBy::Handler)
    {
        let Some(lab) = lab(kind, 8) else {
            continue;
        };
        let (t, region) = (lab.tracker().expect("a page tracker"), lab.region());
        t.arm().expect("arm");
        let foreign = ForeignPage::for_kind(kind);
        let status = fork_and_wait(|| {
            // A heap write is still served in the child (for uffd-wp-sigbus, without
            // UFFD_FEATURE_EVENT_FORK the child's copy is not protected at all)...
            write_page(region.base(), 3, 1);
            // ...but a fault outside every heap is passed on.
            write_page(foreign.addr, 0, 1);
        });
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == foreign.signal,
            "{kind}: the child should die of signal {}, but it {}",
            foreign.signal,
            describe(status)
        );
        t.disarm().expect("disarm");
    }
}

#[test]
fn fork_while_armed() {
    for kind in page_kinds() {
        with_timeout(30, "fork_while_armed", move || {
            let Some(lab) = lab(kind, 8) else {
                return;
            };
            let (t, region) = (lab.tracker().expect("a page tracker"), lab.region());
            t.arm().expect("arm");
            let page = region.base() + PAGE_SIZE;
            // The child writes to an armed page and leaves; it must not hang.
            let status = fork_and_wait(|| {
                // SAFETY: the child's copy of the mapping; _exit skips the parent's
                // destructors.
                unsafe {
                    (page as *mut u8).write_volatile(7);
                    if (page as *const u8).read_volatile() != 7 {
                        libc::_exit(1);
                    }
                }
            });
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "{kind}: the child {}",
                describe(status)
            );
            // The parent is unaffected: its own write is still recorded.
            // SAFETY: inside the parent's region.
            unsafe { ((region.base() + 5 * PAGE_SIZE) as *mut u8).write_volatile(9) };
            let set = harvest(t);
            t.disarm().expect("disarm");
            assert!(
                set.all || set.granules.contains(&5),
                "{kind}: the parent's write after fork is recorded: {set:?}"
            );
            // SAFETY: inside the region.
            let parents_copy =
                unsafe { ((region.base() + PAGE_SIZE) as *const u8).read_volatile() };
            assert_eq!(
                parents_copy, 1,
                "{kind}: the child's write stays in the child"
            );
        });
    }
}

#[test]
fn transparent_huge_pages_keep_tracking_correct() {
    for kind in page_kinds() {
        with_timeout(
            60,
            "transparent_huge_pages_keep_tracking_correct",
            move || {
                let heap = match Heap::new(
                    HeapConfig::new()
                        .heap_bytes(2 << 20)
                        .barrier(kind)
                        .huge_pages(true)
                        .verify(true),
                ) {
                    Ok(h) => h,
                    Err(e) => {
                        support::skip_or_fail("thp", &format!("{kind}: {e}"));
                        return;
                    }
                };
                let mut m = heap.mutator();
                let head = m.alloc(1, 8).expect("alloc");
                let root = m.push_root(head).expect("root");
                for round in 0..40u64 {
                    let first = m.alloc(1, 8).expect("alloc");
                    m.set_root(root, Some(first)).expect("root");
                    let mut node = first;
                    for i in 0..3000u64 {
                        let next = m.alloc(1, 8).expect("alloc");
                        m.write_bytes(next, 0, &(round * 10_000 + i).to_le_bytes())
                            .expect("bytes");
                        m.write_ref(node, 0, Some(next)).expect("store");
                        node = next;
                    }
                    let mut n = m.read_ref(first, 0).expect("read");
                    let mut i = 0;
                    while let Some(x) = n {
                        let mut b = [0u8; 8];
                        m.read_bytes(x, 0, &mut b).expect("bytes");
                        assert_eq!(
                            u64::from_le_bytes(b),
                            round * 10_000 + i,
                            "{kind}: list intact"
                        );
                        i += 1;
                        n = m.read_ref(x, 0).expect("read");
                    }
                    assert_eq!(i, 3000);
                    m.collect().expect("collect");
                }
                drop(m);
                let s = heap.stats();
                assert!(s.cycles >= 40, "{kind}: collections ran ({})", s.cycles);
                assert_eq!(s.verifier_failures, 0, "{kind}: {:?}", s.verifier_messages);
            },
        );
    }
}
