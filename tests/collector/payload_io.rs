//! Data from the kernel into object payloads while cycles run. Regression test for
//! `Mutator::payload_ptr`, once documented for handing to `read(2)` although such a read
//! fails with `EFAULT` whenever a cycle has the page protected under `mprotect` and
//! `uffd-wp-sigbus` (and `uffd-wp` in user-mode-only mode): the safe way (read into a
//! buffer, then `write_bytes`) works on every barrier, and the direct way does what the
//! docs of `payload_ptr` say, barrier by barrier.
//!
//! Runs under a timeout: a read blocked on a fault that is never served fails.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use barrierlab::{BarrierKind, HeapConfig, Mutator, ObjRef};

use support::{heap_or_skip, with_timeout};

const OBJECTS: usize = 64;
const PAYLOAD: usize = 1_000;
const ROUNDS: usize = 3_000;

/// A pipe whose write end is fed `data` before each read.
struct Pipe {
    r: i32,
    w: i32,
}

impl Pipe {
    fn new() -> Pipe {
        let mut fds = [0; 2];
        // SAFETY: a valid array of two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
        Pipe {
            r: fds[0],
            w: fds[1],
        }
    }

    fn feed(&self, data: &[u8]) {
        // SAFETY: writes from a valid buffer into our own pipe (far below its capacity).
        let n = unsafe { libc::write(self.w, data.as_ptr().cast(), data.len()) };
        assert_eq!(n, data.len() as isize, "write into the pipe");
    }

    /// `read(2)` into `len` bytes at `dst`: the count, or the errno.
    ///
    /// # Safety
    /// `dst..dst + len` must be memory this process may write.
    unsafe fn read_into(&self, dst: *mut u8, len: usize) -> Result<usize, i32> {
        // SAFETY: forwarded to the caller.
        let n = unsafe { libc::read(self.r, dst.cast(), len) };
        if n < 0 {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        } else {
            Ok(n as usize)
        }
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // SAFETY: closing our own descriptors.
        unsafe {
            libc::close(self.r);
            libc::close(self.w);
        }
    }
}

/// The payload `round` writes: its number, then a pattern.
fn data(round: usize) -> Vec<u8> {
    let mut d = vec![(round % 251) as u8; PAYLOAD];
    d[..8].copy_from_slice(&(round as u64).to_le_bytes());
    d
}

fn check(m: &Mutator, obj: ObjRef, round: usize, what: &str) {
    let mut back = vec![0u8; PAYLOAD];
    m.read_bytes(obj, 0, &mut back).expect("read_bytes");
    assert!(
        back == data(round),
        "{what}: round {round}: the payload holds the data"
    );
}

#[test]
fn reading_into_payloads_while_cycles_run_works_the_safe_way_on_every_barrier() {
    for kind in BarrierKind::ALL {
        let cfg = HeapConfig::new().heap_bytes(4 << 20).barrier(kind);
        let Some(heap) = heap_or_skip(cfg, "reading_into_payloads") else {
            continue;
        };
        let user_mode_only = heap.stats().tracker.uffd.is_some_and(|u| u.user_mode_only);
        // Where the docs say a direct read(2) always works.
        let store_path = kind.mechanism().served_by == barrierlab::barrier::ServedBy::StorePath;
        let direct_works = match kind {
            _ if store_path => true,
            BarrierKind::None | BarrierKind::UffdWpAsync => true,
            BarrierKind::UffdWp => !user_mode_only,
            _ => false,
        };
        let h = heap.clone();
        let (direct_ok, efault) = with_timeout(60, &format!("payload-io {kind}"), move || {
            let stop = Arc::new(AtomicBool::new(false));
            let collector = {
                let (h, stop) = (h.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        h.collect().expect("collect");
                    }
                })
            };
            let mut m = h.mutator();
            // Old objects, allocated before the cycles that protect their pages.
            let objs: Vec<ObjRef> = (0..OBJECTS)
                .map(|_| {
                    let o = m.alloc(0, PAYLOAD).expect("alloc");
                    m.push_root(o).expect("root");
                    o
                })
                .collect();
            let pipe = Pipe::new();
            let (mut direct_ok, mut efault) = (0usize, 0usize);
            // At least `ROUNDS` rounds, and on until 20 cycles have run meanwhile.
            let mut round = 0;
            while round < ROUNDS || (round % 64 != 0 || h.stats().cycles < 20) {
                round += 1;
                let obj = objs[round % OBJECTS];
                // The safe way: the kernel writes our buffer, `write_bytes` the payload.
                pipe.feed(&data(round));
                let mut buf = vec![0u8; PAYLOAD];
                // SAFETY: `buf` is ours, `PAYLOAD` bytes long.
                let n = unsafe { pipe.read_into(buf.as_mut_ptr(), PAYLOAD) };
                assert_eq!(n, Ok(PAYLOAD), "{kind}: read(2) into our own buffer");
                m.write_bytes(obj, 0, &buf).expect("write_bytes");
                check(&m, obj, round, &format!("{kind} (safe way)"));
                // The direct way, into the next object's payload: works, or fails with
                // EFAULT where the docs say it may (and then the safe way takes over).
                let obj = objs[(round + 1) % OBJECTS];
                let (ptr, len) = m.payload_ptr(obj).expect("payload_ptr");
                assert_eq!(len, PAYLOAD);
                pipe.feed(&data(round));
                // SAFETY: the live object's payload, `len` bytes; the collector never
                // writes payloads.
                match unsafe { pipe.read_into(ptr, len) } {
                    Ok(n) if n == PAYLOAD => {
                        direct_ok += 1;
                        check(&m, obj, round, &format!("{kind} (direct read)"));
                    }
                    Err(libc::EFAULT) if !direct_works => {
                        efault += 1;
                        let mut buf = vec![0u8; PAYLOAD];
                        // SAFETY: as above.
                        let n = unsafe { pipe.read_into(buf.as_mut_ptr(), PAYLOAD) };
                        assert_eq!(n, Ok(PAYLOAD), "{kind}: the data is still in the pipe");
                        m.write_bytes(obj, 0, &buf).expect("write_bytes");
                        check(&m, obj, round, &format!("{kind} (after EFAULT)"));
                    }
                    other => panic!(
                        "{kind}: a direct read(2) into a payload gave {other:?} \
                         (user-mode-only: {user_mode_only})"
                    ),
                }
                m.safepoint();
            }
            stop.store(true, Ordering::Release);
            // Not a running mutator while the collecting thread finishes its last cycle.
            m.blocking(|| collector.join())
                .expect("the collecting thread");
            (direct_ok, efault)
        });
        let cycles = heap.stats().cycles;
        eprintln!(
            "{kind}: {cycles} cycles; direct read(2) into a payload: {direct_ok} worked, \
             {efault} EFAULT"
        );
        assert!(cycles >= 20, "{kind}: cycles ran meanwhile");
    }
}
