//! What making a page writable again costs, depending on what the process's other threads
//! are doing: a page-protection barrier unprotects a page per first write, and on a
//! multi-threaded process that change may need the other CPUs to drop their cached
//! translation (a TLB shootdown, an inter-processor interrupt).
//!
//! Run: `cargo run --release --example tlb_shootdown`
//!
//! Three cases, each unprotecting 4,096 pages one at a time, first with `mprotect(2)`
//! (`PROT_READ` → `PROT_READ | PROT_WRITE`) and then with `UFFDIO_WRITEPROTECT` (mode 0),
//! this thread pinned to the first allowed CPU:
//! - `alone`: no other thread;
//! - `sibling sleeps`: a second thread pinned to another CPU, blocked;
//! - `sibling runs`: the same thread spinning, as a collector thread marks beside a
//!   mutator.
//!
//! It prints the time per unprotect and the TLB shootdown interrupts per page that the
//! kernel counted meanwhile (the `TLB:` row of `/proc/interrupts`, all CPUs; other
//! processes add to it, so read it as a rate, not an exact count).
//!
//! What to look for (a 2-vCPU KVM guest, Linux 6.18, on 2026-12-06): about 1–1.5 µs and
//! no interrupt alone or beside a sleeping thread, about 19–21 µs and one interrupt per
//! page beside a running one, for both calls. The micro benchmark's per-fault costs are
//! measured with no other thread of the process running; a collection runs its
//! collector thread beside the mutators, so there an unprotect pays the interrupt
//! whenever that thread is on a CPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use barrierlab::sys::PAGE_SIZE;
use barrierlab::sys::cpu::pin_to_cpu;
use barrierlab::sys::kernel::tlb_shootdowns;
use barrierlab::sys::mem::{Advice, Protection, Region};
use barrierlab::sys::process::allowed_cpus;
use barrierlab::sys::uffd::{Features, RegisterMode, Uffd, WpMode};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const PAGES: usize = 4096;

/// What the other thread does while this one unprotects.
#[derive(Clone, Copy, PartialEq)]
enum Sibling {
    Alone,
    Sleeps,
    Runs,
}

fn main() -> Result<()> {
    let cpus = allowed_cpus()?;
    let (Some(&here), Some(&there)) = (cpus.first(), cpus.get(1)) else {
        println!("one CPU allowed, nothing to show: a TLB shootdown needs another CPU");
        return Ok(());
    };
    if tlb_shootdowns().is_none() {
        println!("/proc/interrupts has no TLB row here, nothing to show");
        return Ok(());
    }
    pin_to_cpu(here)?;
    // Full mode, else user-mode-only (enough: only this process's calls are timed).
    let builder = Uffd::builder().features(Features::PAGEFAULT_FLAG_WP);
    let uffd = builder
        .create()
        .or_else(|_| builder.user_mode_only(true).create());
    println!(
        "{:<16} {:>22} {:>22}",
        "", "mprotect", "UFFDIO_WRITEPROTECT"
    );
    for (name, sibling) in [
        ("alone", Sibling::Alone),
        ("sibling sleeps", Sibling::Sleeps),
        ("sibling runs", Sibling::Runs),
    ] {
        let stop = Arc::new(AtomicBool::new(false));
        let (release, parked) = mpsc::channel::<()>();
        let thread = (sibling != Sibling::Alone).then(|| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || -> barrierlab::Result<()> {
                pin_to_cpu(there)?;
                if sibling == Sibling::Runs {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                } else {
                    let _ = parked.recv();
                }
                Ok(())
            })
        });
        // Let the sibling reach its CPU (and, sleeping, leave it).
        std::thread::sleep(std::time::Duration::from_millis(20));
        let by_mprotect = unprotect_each(|r| {
            r.protect(r.base(), r.len(), Protection::Read)?;
            Ok(Box::new(|r: &Region, page: usize| {
                r.protect(page, PAGE_SIZE, Protection::ReadWrite)
            }))
        })?;
        let by_uffd = match &uffd {
            Ok(u) => Some(unprotect_each(|r| {
                u.register(r.base(), r.len(), RegisterMode::WP)?;
                u.protect(r.base(), r.len())?;
                Ok(Box::new(|_: &Region, page: usize| {
                    u.unprotect(page, PAGE_SIZE, WpMode::DONTWAKE)
                }))
            })?),
            Err(_) => None,
        };
        stop.store(true, Ordering::Relaxed);
        drop(release);
        if let Some(t) = thread {
            t.join().expect("the sibling does not panic")?;
        }
        let cell = |c: Option<(f64, f64)>| {
            c.map_or("unavailable".into(), |(ns, ipis)| {
                format!("{:>6.2} µs {:>5.2} IPI/page", ns / 1e3, ipis)
            })
        };
        println!(
            "{name:<16} {:>22} {:>22}",
            cell(Some(by_mprotect)),
            cell(by_uffd)
        );
    }
    if let Err(e) = uffd {
        println!("(userfaultfd is unavailable here: {e})");
    }
    Ok(())
}

/// A call that makes one page of the region writable.
type Unprotect<'a> = Box<dyn Fn(&Region, usize) -> barrierlab::Result<()> + 'a>;

/// Maps and touches a fresh region, protects it with `set_up` (which returns the call that
/// unprotects one page), then unprotects every page in turn. Returns the mean time per
/// call (ns) and the TLB shootdowns per page counted meanwhile.
fn unprotect_each<'a>(
    set_up: impl FnOnce(&Region) -> barrierlab::Result<Unprotect<'a>>,
) -> Result<(f64, f64)> {
    let region = Region::new(PAGES * PAGE_SIZE)?;
    region.advise(region.base(), region.len(), Advice::NoHugePage)?;
    for p in 0..PAGES {
        // SAFETY: a page of the fresh, writable mapping this function owns.
        unsafe { ((region.base() + p * PAGE_SIZE) as *mut u8).write_volatile(1) };
    }
    let unprotect = set_up(&region)?;
    let before = tlb_shootdowns().unwrap_or(0);
    let t0 = Instant::now();
    for p in 0..PAGES {
        unprotect(&region, region.base() + p * PAGE_SIZE)?;
    }
    let ns = t0.elapsed().as_nanos() as f64 / PAGES as f64;
    let ipis = tlb_shootdowns().unwrap_or(0).saturating_sub(before);
    Ok((ns, ipis as f64 / PAGES as f64))
}
