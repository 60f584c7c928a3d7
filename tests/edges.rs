//! The edge-behaviour table of `src/barrier/mod.rs`, one test per row, run over every
//! page tracker: a kernel write (`read(2)`) into an armed page, `fork(2)` while armed,
//! and transparent huge pages on the heap.

mod common;

use barrierlab::barrier::{self, BarrierKind, DirtySet, DirtyTracker, TrackerOptions};
use barrierlab::sys::PAGE_SIZE;
use barrierlab::sys::mem::Region;
use barrierlab::{Heap, HeapConfig};
use common::with_timeout;

const PAGE_KINDS: [BarrierKind; 4] = [
    BarrierKind::UffdWp,
    BarrierKind::UffdWpAsync,
    BarrierKind::UffdWpSigbus,
    BarrierKind::Mprotect,
];

/// A populated region with `kind`'s tracker over it, or a skip.
fn lab(kind: BarrierKind, pages: usize) -> Option<(Box<dyn DirtyTracker>, Region)> {
    let region = Region::new(pages * PAGE_SIZE).expect("region");
    for p in 0..pages {
        // SAFETY: inside the fresh writable region.
        unsafe { ((region.base() + p * PAGE_SIZE) as *mut u8).write_volatile(1) };
    }
    match barrier::build(
        kind,
        region.base(),
        region.len(),
        &TrackerOptions::default(),
    ) {
        Ok(t) => Some((t.expect("a page tracker"), region)),
        Err(e) => {
            common::skip_or_fail("edges", &format!("{kind}: {e}"));
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
    for kind in PAGE_KINDS {
        with_timeout(30, "read_into_an_armed_page", move || {
            let Some((t, region)) = lab(kind, 8) else {
                return;
            };
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
            let set = harvest(t.as_ref());
            t.disarm().expect("disarm");
            // SAFETY: closing our own descriptors.
            unsafe {
                libc::close(fds[0]);
                libc::close(fds[1]);
            }
            match kind {
                // The kernel's write is a fault like a user write: served, recorded.
                BarrierKind::UffdWp | BarrierKind::UffdWpAsync => {
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
                BarrierKind::UffdWpSigbus | BarrierKind::Mprotect => {
                    assert_eq!(n, -1, "{kind}: read(2) into an armed page must fail");
                    assert_eq!(errno, Some(libc::EFAULT), "{kind}: with EFAULT");
                }
                _ => unreachable!(),
            }
        });
    }
}

#[test]
fn fork_while_armed() {
    for kind in PAGE_KINDS {
        with_timeout(30, "fork_while_armed", move || {
            let Some((t, region)) = lab(kind, 8) else {
                return;
            };
            t.arm().expect("arm");
            // SAFETY: the child only writes memory it inherited and exits with _exit.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork");
            if pid == 0 {
                // The child writes to an armed page and leaves; it must not hang.
                // SAFETY: inherited mapping; _exit skips the parent's destructors.
                unsafe {
                    ((region.base() + PAGE_SIZE) as *mut u8).write_volatile(7);
                    libc::_exit(
                        if ((region.base() + PAGE_SIZE) as *const u8).read_volatile() == 7 {
                            0
                        } else {
                            1
                        },
                    );
                }
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let mut status = 0;
            loop {
                // SAFETY: waiting for our own child.
                let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                if r == pid {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    // SAFETY: killing our own child.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    panic!("{kind}: the child hung writing an armed page after fork");
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "{kind}: child status {status:#x}"
            );
            // The parent is unaffected: its own write is still recorded.
            // SAFETY: inside the parent's region.
            unsafe { ((region.base() + 5 * PAGE_SIZE) as *mut u8).write_volatile(9) };
            let set = harvest(t.as_ref());
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
    for kind in PAGE_KINDS {
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
                        common::skip_or_fail("thp", &format!("{kind}: {e}"));
                        return;
                    }
                };
                let mut m = heap.mutator();
                let head = m.alloc(1, 8).expect("alloc");
                let root = m.push_root(head);
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
                    m.collect();
                }
                drop(m);
                let s = heap.stats();
                assert!(s.cycles >= 40, "{kind}: collections ran ({})", s.cycles);
                assert_eq!(s.verifier_failures, 0, "{kind}: {:?}", s.verifier_messages);
            },
        );
    }
}
