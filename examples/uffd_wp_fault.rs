//! userfaultfd write-protect, the raw mechanism: a writer thread blocks on each first write
//! to a protected page, and this thread serves the faults.
//!
//! Run: `cargo run --release --example uffd_wp_fault`
//!
//! The steps (`ioctl_userfaultfd(2)`, "Userfaultfd write-protect mode"):
//! 1. create a userfaultfd asking for the features we need (`UFFDIO_API`);
//! 2. register a range with `UFFDIO_REGISTER_MODE_WP`;
//! 3. write-protect it with `UFFDIO_WRITEPROTECT` (mode `WP`);
//! 4. a thread that writes a protected page is put to sleep in the kernel, and a
//!    page-fault message (flags `WP | WRITE`) is queued on the descriptor;
//! 5. the serving thread reads the message, records the page (the dirty set of a GC
//!    barrier), and unprotects the page with `UFFDIO_WRITEPROTECT` (mode 0), which also
//!    wakes the writer; its store is retried and goes through. Later stores to that page
//!    cost nothing until it is protected again.
//!
//! The price is step 4 → 5 → 4: the writer sleeps, the server is woken (often on the
//! other CPU), the server wakes the writer. In a VM each cross-CPU wake-up is an
//! inter-processor interrupt through the hypervisor, and the round trip is tens of
//! microseconds. That is the per-dirtied-page cost the crossover in `crossover.rs` is
//! about.
//!
//! What to look for in the output (a 2-vCPU KVM guest, Linux 6.18, gave ~50 µs, ~30 µs,
//! ~2 µs): the writer's store takes far longer when the server sleeps in `poll(2)` (two
//! cross-CPU wake-ups per fault) than when it spins (one); an unprotect that wakes the
//! writer costs several times one with `DONTWAKE`, because the wake-up is an
//! inter-processor interrupt; and the next store to an unprotected page is a plain store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use barrierlab::Error;
use barrierlab::sys::mem::{Advice, Region};
use barrierlab::sys::pagemap::Pagemap;
use barrierlab::sys::uffd::{Event, Features, RegisterMode, Uffd, WpMode, raw};
use barrierlab::sys::{PAGE_SIZE, gettid};

/// Kernel errors come as `barrierlab::Error`; a missing fault message is a plain string.
type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const PAGES: usize = 16;
/// How long to wait for a fault message before giving up (a bug, not a slow machine).
const POLL_TIMEOUT_MS: i32 = 5_000;

fn main() -> Result<()> {
    // PAGEFAULT_FLAG_WP: write-protect faults on anonymous memory.
    // THREAD_ID: each message names the faulting thread.
    // WP_UNPOPULATED: pages never touched are protected too (else the first write to a
    // fresh page would be a plain page fault that nobody hears about).
    let features = Features::PAGEFAULT_FLAG_WP | Features::THREAD_ID | Features::WP_UNPOPULATED;
    let uffd = match open_uffd(features) {
        Ok(u) => u,
        Err(e) => {
            println!("userfaultfd write-protect is unavailable here, nothing to show: {e}");
            return Ok(());
        }
    };
    let region = Region::new(PAGES * PAGE_SIZE)?;
    // 4 KiB pages only: a transparent huge page would be protected and faulted as one.
    region.advise(region.base(), region.len(), Advice::NoHugePage)?;
    let base = region.base();
    let page_addr = |p: usize| base + p * PAGE_SIZE;
    let mut pagemap = Pagemap::open(1)?;

    println!(
        "userfaultfd {:?}{}; region [{base:#x}, {:#x}), {PAGES} pages, none touched yet",
        uffd.origin(),
        if uffd.user_mode_only() {
            " (UFFD_USER_MODE_ONLY)"
        } else {
            ""
        },
        region.end()
    );
    print_wp_bits(&mut pagemap, &region, "before protect")?;
    uffd.register(base, region.len(), RegisterMode::WP)?;
    uffd.protect(base, region.len())?;
    // The second channel: pagemap bit 57 is the write-protect bit of each page-table
    // entry (here markers in empty entries, thanks to WP_UNPOPULATED).
    print_wp_bits(&mut pagemap, &region, "after protect")?;

    // Part 1: a writer writes four pages, one at a time; we serve each fault while
    // sleeping in poll(2) between them, as the `thread` service layout does.
    println!("\n1. faults served by a thread sleeping in poll(2)");
    let mut dirty = Vec::new();
    serve_writer(&uffd, &region, &[0, 2, 3, 5], false, &mut dirty)?;
    // Part 2: the same, but the server spins on the non-blocking descriptor instead of
    // sleeping (the `spin-thread` layout): one wake-up fewer per fault.
    println!("\n2. faults served by a thread spinning on the descriptor");
    serve_writer(&uffd, &region, &[8, 9, 10, 11], true, &mut dirty)?;
    println!("   dirty set so far: pages {dirty:?}");
    print_wp_bits(&mut pagemap, &region, "after serving")?;

    // Part 3: DONTWAKE, then one wake for all. Two writers fault on pages 13 and 14; we
    // unprotect both without waking anyone, show that the writers still sleep although
    // their pages are writable, then release both with a single UFFDIO_WAKE over the
    // whole region. A server that resolves a batch of faults pays one wake-up call for
    // the batch instead of one per page.
    println!("\n3. unprotect with DONTWAKE, then one UFFDIO_WAKE");
    let done: Arc<[AtomicBool; 2]> = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
    let writers: Vec<_> = [13usize, 14]
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let (addr, done) = (page_addr(p), done.clone());
            std::thread::spawn(move || {
                // SAFETY: a byte inside the region, which outlives this thread (joined
                // below); nothing else accesses this byte.
                unsafe { (addr as *mut u8).write_volatile(1) };
                done[i].store(true, Ordering::Release);
            })
        })
        .collect();
    let mut pending = Vec::new();
    while pending.len() < 2 {
        for (address, _) in next_faults(&uffd, false)? {
            pending.push(address & !(PAGE_SIZE - 1));
        }
    }
    for &page in &pending {
        dirty.push((page - base) / PAGE_SIZE);
        let t = Instant::now();
        uffd.unprotect(page, PAGE_SIZE, WpMode::DONTWAKE)?;
        println!(
            "   fault on page {:>2}: recorded, unprotected with DONTWAKE ({:.1} µs)",
            (page - base) / PAGE_SIZE,
            micros(t.elapsed())
        );
    }
    std::thread::sleep(Duration::from_millis(50));
    let blocked = done.iter().filter(|d| !d.load(Ordering::Acquire)).count();
    println!("   50 ms later, writers still asleep in the kernel: {blocked} of 2");
    let t = Instant::now();
    uffd.wake(base, region.len())?;
    let wake = t.elapsed();
    for w in writers {
        w.join().expect("writer thread");
    }
    let finished = done.iter().filter(|d| d.load(Ordering::Acquire)).count();
    println!(
        "   one UFFDIO_WAKE over the region ({:.1} µs): writers finished: {finished} of 2",
        micros(wake)
    );
    dirty.sort();
    println!("   dirty set: pages {dirty:?}");
    print_wp_bits(&mut pagemap, &region, "at the end")?;
    Ok(())
}

/// Creates the userfaultfd, falling back to `UFFD_USER_MODE_ONLY` (enough here: only
/// user-mode stores fault) when an unprivileged process is refused full mode.
fn open_uffd(features: Features) -> barrierlab::Result<Uffd> {
    let builder = Uffd::builder().features(features).nonblocking(true);
    builder.create().or_else(|full| {
        builder
            .user_mode_only(true)
            .create()
            .map_err(|umo| Error::Unavailable {
                mechanism: "userfaultfd",
                causes: vec![full, umo],
            })
    })
}

/// Spawns a writer that stores once to each of `pages` (2 ms apart), serves each fault,
/// and prints it with the round trip the writer measured.
fn serve_writer(
    uffd: &Uffd,
    region: &Region,
    pages: &[usize],
    spin: bool,
    dirty: &mut Vec<usize>,
) -> Result<()> {
    let base = region.base();
    let writer_tid = Arc::new(AtomicI32::new(0));
    let (tx, rx) = mpsc::channel();
    let writer = {
        let (pages, tid) = (pages.to_vec(), writer_tid.clone());
        std::thread::spawn(move || {
            tid.store(gettid(), Ordering::Release);
            for p in pages {
                let addr = (base + p * PAGE_SIZE) as *mut u64;
                let t = Instant::now();
                // SAFETY: an aligned word inside the region, which outlives this thread
                // (joined below); only this thread accesses it. The store blocks until
                // the page is unprotected.
                unsafe { addr.write_volatile(0xfeed) };
                let faulting = t.elapsed();
                let t = Instant::now();
                // SAFETY: as above; the page is writable now, so this store is free.
                unsafe { addr.add(1).write_volatile(0xbeef) };
                let plain = t.elapsed();
                if tx.send((faulting, plain)).is_err() {
                    return;
                }
                // Let the server print and go back to waiting before the next fault.
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let mut round_trips = Vec::new();
    for _ in pages {
        let faults = next_faults(uffd, spin)?;
        for (address, line) in faults {
            let page = address & !(PAGE_SIZE - 1);
            let t = Instant::now();
            // Record, *then* unprotect: once the page is writable the writer's store goes
            // through, and a remark must then be sure to find the page in the dirty set.
            dirty.push((page - base) / PAGE_SIZE);
            uffd.unprotect(page, PAGE_SIZE, WpMode::empty())?;
            let ioctl = t.elapsed();
            let (faulting, plain) = rx
                .recv_timeout(Duration::from_secs(5))
                .expect("the writer reports each store");
            let who = if line.thread_id == Some(writer_tid.load(Ordering::Acquire) as u32) {
                " = the writer"
            } else {
                ""
            };
            let flags: Vec<&str> = line.flags.iter_names().map(|(name, _)| name).collect();
            println!(
                "   fault: page {:>2} ({address:#x}) {}, tid {}{who} | unprotect {:>5.1} µs | \
                 the writer's store {:>6.1} µs, its next store {:.2} µs",
                (page - base) / PAGE_SIZE,
                flags.join("|"),
                line.thread_id.unwrap_or(0),
                micros(ioctl),
                micros(faulting),
                micros(plain),
            );
            round_trips.push(micros(faulting));
        }
    }
    writer.join().expect("writer thread");
    round_trips.sort_by(f64::total_cmp);
    println!(
        "   median round trip (fault -> message -> server -> unprotect -> writer wakes): {:.1} µs",
        round_trips[round_trips.len() / 2]
    );
    Ok(())
}

/// What a page-fault message says, apart from the address.
struct FaultLine {
    flags: barrierlab::sys::uffd::PageFaultFlags,
    thread_id: Option<u32>,
}

/// Waits for at least one message (sleeping in poll(2), or spinning on the non-blocking
/// descriptor) and returns the page faults it read.
fn next_faults(uffd: &Uffd, spin: bool) -> Result<Vec<(usize, FaultLine)>> {
    let mut buf = [raw::uffd_msg::default(); 8];
    let deadline = Instant::now() + Duration::from_millis(POLL_TIMEOUT_MS as u64);
    loop {
        if !spin && !uffd.poll_readable(POLL_TIMEOUT_MS)? {
            return Err(format!("no fault message within {POLL_TIMEOUT_MS} ms").into());
        }
        let events = uffd.read_events(&mut buf)?;
        if !events.is_empty() {
            return Ok(events
                .into_iter()
                .filter_map(|e| match e {
                    Event::PageFault {
                        address,
                        flags,
                        thread_id,
                    } => Some((address, FaultLine { flags, thread_id })),
                    other => {
                        println!("   (an event that is not a page fault: {other:?})");
                        None
                    }
                })
                .collect());
        }
        if Instant::now() > deadline {
            return Err(format!("no fault message within {POLL_TIMEOUT_MS} ms").into());
        }
        std::hint::spin_loop();
    }
}

/// Prints pagemap bit 57 (`PM_UFFD_WP`) of every page: `W` protected, `.` not.
fn print_wp_bits(pagemap: &mut Pagemap, region: &Region, when: &str) -> Result<()> {
    let mut bits = String::new();
    for p in 0..region.pages() {
        let e = pagemap.entry(region.base() + p * PAGE_SIZE)?;
        bits.push(if e.uffd_wp() { 'W' } else { '.' });
    }
    println!(
        "{when:<16} pagemap bit 57 (uffd-wp), pages 0..{}: {bits}",
        region.pages()
    );
    Ok(())
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
