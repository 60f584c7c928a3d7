//! Kernel-mode writes: `read(2)` from a pipe into a write-protected page.

use std::sync::Arc;

use barrierlab::sys::PAGE_SIZE;
use barrierlab::sys::mem::Region;
use barrierlab::sys::pagemap::Pagemap;
use barrierlab::sys::uffd::{Features, PageFaultFlags, Uffd, WpMode};

use super::{TIMEOUT, armed, assert_no_message, msg_buf, next_event, page_fault, wp_bit, wp_uffd};
use crate::support::{Release, read_u64, with_timeout};

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
