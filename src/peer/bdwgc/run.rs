//! A run on bdwgc: the collector started as the configuration says, the event log
//! installed, the workload (GCBench or binary trees) timed, and what bdwgc reports.

use std::time::Instant;

use super::events::{EVENT_CAPACITY, EventLog, pauses_from_events};
use super::gcbench::Bench;
use super::{Bdwgc, binary_trees};
use crate::error::{Error, Result};
use crate::peer::{Peer, PeerConfig, PeerMode, PeerRun, PeerWorkload};

/// Starts bdwgc on this thread as `cfg` says, runs the workload on it and measures it.
///
/// Run it in a process of its own, on its main thread (`barrierlab gcbench --peer bdwgc`
/// and `barrierlab run --peer bdwgc` do): it starts the collector, may install its SIGSEGV
/// handler, and registers the collection-event callback.
pub fn run(gc: &Bdwgc, cfg: &PeerConfig) -> Result<PeerRun> {
    if cfg.heap_bytes == 0 {
        // GC_set_max_heap_size(0) would mean "unbounded".
        return Err(Error::InvalidArgument(
            "the heap must be at least 1 MiB".into(),
        ));
    }
    // Before GC_init, so that its initial heap respects the cap.
    gc.set_max_heap_size(cfg.heap_bytes);
    gc.init();
    if cfg.incremental {
        gc.enable_incremental();
        if !gc.is_incremental_mode() {
            return Err(Error::Misbehaved {
                mechanism: "bdwgc incremental mode",
                seen: "GC_enable_incremental left it off (is GC_DISABLE_INCREMENTAL or \
                       GC_DONT_GC set in the environment?)"
                    .into(),
            });
        }
    }
    // The whole heap up front, as barrierlab reserves its region; bdwgc still decides
    // when to collect by its free-space divisor, and the cap stops any growth beyond.
    let have = gc.heap_size();
    if cfg.heap_bytes > have && !gc.expand_hp(cfg.heap_bytes - have) {
        return Err(Error::Misbehaved {
            mechanism: "bdwgc",
            seen: format!(
                "GC_expand_hp({} bytes) refused to grow the heap from {have} to {} bytes",
                cfg.heap_bytes - have,
                cfg.heap_bytes
            ),
        });
    }

    let log = EventLog::install(gc, EVENT_CAPACITY)?;
    let gc_no_before = gc.gc_no();
    let bytes_before = gc.total_bytes();
    let cpu0 = crate::sys::cpu::process_cpu_time()?;
    let t0 = Instant::now();
    let bench = Bench::new(gc);
    let allocs = match &cfg.workload {
        // `repeat` passes, as barrierlab's GCBench runs them (`workload/gcbench.rs`).
        PeerWorkload::GcBench(p) => {
            let mut allocs = 0;
            for _ in 0..p.repeat.max(1) {
                allocs = bench.run(p)?;
            }
            allocs
        }
        PeerWorkload::BinaryTrees(p) => binary_trees::run(&bench, p)?,
    };
    let total = t0.elapsed();
    let cpu = crate::sys::cpu::process_cpu_time()?.saturating_sub(cpu0);
    let alloc_bytes = gc.total_bytes() - bytes_before;
    let cycles = gc.gc_no() - gc_no_before;
    let (events, full_cycles) = log.finish()?;
    let (pause_source, pauses) = pauses_from_events(&events);

    Ok(PeerRun {
        workload: cfg.workload.name(),
        peer: Peer::Bdwgc,
        mode: if gc.is_incremental_mode() {
            PeerMode::Incremental
        } else {
            PeerMode::Stw
        },
        version: gc.version().unwrap_or_else(|| "unknown".into()),
        heap_bytes: cfg.heap_bytes,
        heap_final_bytes: gc.heap_size(),
        total,
        cpu,
        cycles,
        full_cycles,
        pause_source,
        pauses,
        allocs,
        alloc_bytes,
        settings: settings(gc),
    })
}

/// What the run's summary says about how bdwgc was built and set (see [`crate::peer`] for
/// what each means).
fn settings(gc: &Bdwgc) -> Vec<(String, String)> {
    // A record field holds no whitespace.
    let mut out = vec![(
        "lib".to_string(),
        gc.loaded_path().replace(char::is_whitespace, "_"),
    )];
    let (vdb, vdb_from) = gc.vdb();
    out.push(("vdb".into(), vdb));
    if gc.is_incremental_mode() {
        out.push(("vdb_from".into(), vdb_from.into()));
        out.push(("protection_needs".into(), gc.protection_needs().to_string()));
        // Partial collections mark from the last marks plus the dirty pages; only a full
        // one (every `full_freq + 1`th) clears the marks. With `full_freq` 0 every
        // collection is full, so nothing is generational.
        let full_freq = gc.full_freq();
        let generational = full_freq.is_none_or(|f| f > 0);
        out.push((
            "generational".into(),
            if generational { "yes" } else { "no" }.into(),
        ));
        if let Some(f) = full_freq {
            out.push(("full_freq".into(), f.to_string()));
        }
        if let Some(limit) = gc.time_limit() {
            out.push(("time_limit".into(), limit));
        }
    }
    if let Some(m) = gc.markers() {
        out.push(("markers".into(), m.to_string()));
    }
    if let Some(d) = gc.free_space_divisor() {
        out.push(("free_space_divisor".into(), d.to_string()));
    }
    out
}
