//! Graph mutation: a live graph of objects that the mutator rewires with knobs for how
//! its stores fall on pages. This is the workload that finds the crossover between card
//! marking (pays per store) and page protection (pays per dirtied page).
//!
//! The graph: `objects` nodes with `refs` reference slots and `payload` bytes each, held
//! by a spine of large arrays (one root). Nodes are allocated in order and never move or
//! die, so node `k` lives near `k * cell` bytes into the nodes' pages for the whole run: a
//! run of consecutive indices is a run of pages (the "pages" of the store stream are the
//! heap's pages).
//!
//! The store stream: operation `i` goes to a node on page `(i / stores_per_page) mod
//! pages`, chosen at random among the nodes of that page, so each page receives
//! `stores_per_page` consecutive operations before the stream moves on to the next, and
//! one pass over all pages takes `stores_per_page * pages` operations. An operation is a
//! reference store (a random slot set to a random node) with probability
//! `pointer_fraction`, else an 8-byte payload write. `work_per_store` iterations of
//! arithmetic between operations model the rest of the program. The loop polls a
//! safepoint every [`PHASE_POLL`] operations, so that a pause never waits for the next
//! allocation.
//!
//! Allocation: every `alloc_every` operations a fresh node (a copy of the current node's
//! edges) is stored into the next slot of a ring of [`RING`] young nodes, and the node it
//! displaces becomes garbage: allocation rate and a short object lifetime, with an
//! old-to-young store, and without moving the graph's nodes (replacing a graph node by a
//! fresh one elsewhere would scatter a "page" of the stream over the pages where the
//! replacements were allocated).
//!
//! # What `stores_per_page` means per cycle
//! A page tracker pays per page dirtied per cycle, so what matters is how many stores a
//! dirtied page receives between arm and harvest. A tracking window of `W` operations
//! dirties about `W / stores_per_page` stream pages, each receiving `stores_per_page`
//! operations, when `W` is shorter than one pass (`W < stores_per_page * pages`); a longer
//! window wraps around, and each page receives `W / pages` operations, more than the knob
//! says. `W` is the mutator's store rate times the window's length (mostly the concurrent
//! mark), so a fast store path with a small `stores_per_page` wraps. The driver therefore
//! measures the figure: [`crate::workload::RunResult::stores_per_dirtied_page`], from the
//! stores each thread made in each cycle's window ([`StoreTrace`]) and the pages the cycle
//! found dirty.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use std::time::Duration;

use crate::barrier::StoreBarrier;
use crate::collector::{PauseKind, Phase, Stats};
use crate::error::Result;
use crate::heap::ObjRef;
use crate::heap::size_class;
use crate::mutator::Mutator;
use crate::sys::PAGE_SIZE;
use crate::workload::cell_bytes;

/// Graph mutation's knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GraphParams {
    /// Live nodes per mutator thread.
    pub objects: usize,
    /// Reference slots per node.
    pub refs: usize,
    /// Payload bytes per node.
    pub payload: usize,
    /// Operations (stores and payload writes) per mutator thread.
    pub stores: u64,
    /// Consecutive operations that fall on one page.
    pub stores_per_page: u64,
    /// Share of operations that are reference stores (the rest write payload bytes).
    pub pointer_fraction: f64,
    /// Allocate a young node every this many operations (0: never).
    pub alloc_every: u64,
    /// Arithmetic iterations between operations.
    pub work_per_store: u32,
    /// Seed of the random choices.
    pub seed: u64,
}

impl Default for GraphParams {
    fn default() -> Self {
        GraphParams {
            objects: 100_000,
            refs: 4,
            payload: 16,
            stores: 2_000_000,
            stores_per_page: 64,
            pointer_fraction: 1.0,
            alloc_every: 64,
            work_per_store: 0,
            seed: 42,
        }
    }
}

impl GraphParams {
    /// These parameters with as many nodes as `live_bytes` of graph hold
    /// ([`GraphParams::live_bytes`]), at least 64; the other knobs unchanged.
    pub fn with_live(self, live_bytes: u64) -> GraphParams {
        let mut p = GraphParams {
            objects: 64,
            ..self
        };
        let per_node = PAGE_SIZE as f64 / p.nodes_per_page() as f64 + 8.0;
        p.objects = ((live_bytes as f64 / per_node) as usize).max(64);
        p
    }

    /// Nodes per page (from the node's size class).
    pub fn nodes_per_page(&self) -> usize {
        let bytes = crate::heap::object::object_size(self.refs, self.payload);
        match size_class::class_for(bytes) {
            Some(c) => size_class::cells_per_page(c),
            None => 1,
        }
    }

    /// Bytes of live data the graph holds (nodes, rounded to cells, the spine, and the
    /// ring with its young nodes).
    pub fn live_bytes(&self) -> usize {
        let per_page = self.nodes_per_page();
        let young = if self.alloc_every > 0 { RING } else { 0 };
        (self.objects + young).div_ceil(per_page) * PAGE_SIZE + self.objects * 8 + RING * 8
    }

    /// Bytes allocated before the first operation: the spine, its chunks, the ring, the
    /// nodes.
    pub fn setup_bytes(&self) -> u64 {
        let nchunks = self.objects.div_ceil(SPINE_CHUNK);
        cell_bytes(nchunks + 1, 0)
            + nchunks as u64 * cell_bytes(SPINE_CHUNK, 0)
            + cell_bytes(RING, 0)
            + self.objects as u64 * cell_bytes(self.refs, self.payload)
    }

    /// Bytes allocated per operation of the store stream (one node every `alloc_every`).
    pub fn bytes_per_store(&self) -> f64 {
        match self.alloc_every {
            0 => 0.0,
            n => cell_bytes(self.refs, self.payload) as f64 / n as f64,
        }
    }
}

/// Stores between two polls of the collector's phase (and of a safepoint) in the store
/// loop: the resolution of a [`StoreWindow`].
pub const PHASE_POLL: u64 = 64;

/// Slots of the ring that keeps the young nodes alive for `RING` allocations.
pub const RING: usize = 1024;

/// Operations of one thread's store stream made while the collector was between arm and
/// its first pre-clean harvest (phases arm, initial mark, concurrent mark), as seen by
/// the thread's polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreWindow {
    /// The first poll that saw the window (time from the heap's creation).
    pub start: Duration,
    /// The first poll that saw it over.
    pub end: Duration,
    /// Operations between the two polls.
    pub stores: u64,
}

/// One thread's store loop: when it ran, and its windows (only those that ended inside
/// it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreTrace {
    /// The loop's start and end (time from the heap's creation).
    pub span: (Duration, Duration),
    /// The windows, in order.
    pub windows: Vec<StoreWindow>,
}

/// See [`crate::workload::RunResult::stores_per_dirtied_page`].
pub fn stores_per_dirtied_page(stats: &Stats, traces: &[StoreTrace]) -> Option<f64> {
    let lo = traces.iter().map(|t| t.span.0).max()?;
    let hi = traces.iter().map(|t| t.span.1).min()?;
    let n = stats.cycle_log.iter().map(|c| c.cycle).max()? as usize + 1;
    let (mut initial_mark, mut remark) = (vec![None; n], vec![None; n]);
    for p in &stats.pauses {
        let at = match p.kind {
            PauseKind::InitialMark => &mut initial_mark,
            PauseKind::Remark => &mut remark,
            _ => continue,
        };
        if let Some(slot) = at.get_mut(p.cycle as usize) {
            *slot = Some(p.start);
        }
    }
    // The counted cycles' dirty pages and the stores of the windows inside them. A cycle
    // counts only if some thread's store loop saw it (a window overlaps its span from
    // initial mark to remark): a cycle that ran while no mutator got to poll its phase
    // (a loaded machine) has dirty pages but no stores to set beside them.
    let windows = || traces.iter().flat_map(|t| &t.windows);
    let (mut pages, mut stores) = (0usize, 0u64);
    for c in &stats.cycle_log {
        let i = c.cycle as usize;
        let (Some(im), Some(rm)) = (initial_mark[i], remark[i]) else {
            continue;
        };
        if c.preclean_dirty.is_empty() || im.saturating_sub(c.arm) < lo || rm > hi {
            continue;
        }
        let inside: Vec<_> = windows().filter(|w| w.start <= rm && w.end >= im).collect();
        if inside.is_empty() {
            continue;
        }
        pages += c.dirty_pages.len();
        stores += inside.iter().map(|w| w.stores).sum::<u64>();
    }
    if pages == 0 {
        return None;
    }
    Some(stores as f64 / pages as f64)
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphOutcome {
    /// Reference stores.
    pub ref_stores: u64,
    /// Payload writes.
    pub payload_writes: u64,
    /// Nodes allocated (including the initial graph).
    pub allocations: u64,
    /// The store loop's windows.
    pub trace: StoreTrace,
}

const SPINE_CHUNK: usize = 4096;

/// The spine: chunk arrays of node references and the ring of young nodes, reachable from
/// one root (the spine's last slot holds the ring).
struct Graph {
    chunks: Vec<ObjRef>,
    ring: ObjRef,
    len: usize,
}

impl Graph {
    /// Node `k` (`k < len`, after `build`).
    #[inline]
    fn node<B: StoreBarrier>(&self, m: &Mutator<B>, k: usize) -> ObjRef {
        debug_assert!(k < self.len);
        // SAFETY: the chunks are live (reachable from the rooted spine) and have
        // `SPINE_CHUNK` slots; the unchecked load is a compiled language's load.
        unsafe { m.read_ref_unchecked(self.chunks[k / SPINE_CHUNK], k % SPINE_CHUNK) }
            .expect("every spine slot holds a node")
    }

    /// Makes `v` (a live node) node `k`.
    #[inline]
    fn set<B: StoreBarrier>(&self, m: &mut Mutator<B>, k: usize, v: ObjRef) {
        debug_assert!(k < self.len);
        // SAFETY: as in `node`; `v` is live (just allocated or reachable).
        unsafe { m.write_ref_unchecked(self.chunks[k / SPINE_CHUNK], k % SPINE_CHUNK, Some(v)) }
    }
}

fn build<B: StoreBarrier>(
    m: &mut Mutator<B>,
    p: &GraphParams,
    rng: &mut SmallRng,
) -> Result<Graph> {
    let nchunks = p.objects.div_ceil(SPINE_CHUNK);
    let spine = m.alloc(nchunks + 1, 0)?;
    m.push_root(spine)?;
    let mut chunks = Vec::with_capacity(nchunks);
    for c in 0..nchunks {
        let chunk = m.alloc(SPINE_CHUNK, 0)?;
        m.write_ref(spine, c, Some(chunk))?;
        chunks.push(chunk);
    }
    let ring = m.alloc(RING, 0)?;
    m.write_ref(spine, nchunks, Some(ring))?;
    let g = Graph {
        chunks,
        ring,
        len: p.objects,
    };
    for k in 0..p.objects {
        let n = m.alloc(p.refs, p.payload)?;
        g.set(m, k, n);
    }
    // Random edges.
    for k in 0..p.objects {
        let n = g.node(m, k);
        for s in 0..p.refs {
            let t = g.node(m, rng.random_range(0..p.objects));
            // SAFETY: `n` and `t` are live nodes with `p.refs` slots each.
            unsafe { m.write_ref_unchecked(n, s, Some(t)) };
        }
    }
    Ok(g)
}

/// Whether the collector is between arm and its first pre-clean harvest.
fn in_window(phase: Phase) -> bool {
    matches!(
        phase,
        Phase::Arm | Phase::InitialMark | Phase::ConcurrentMark
    )
}

/// Runs graph mutation on `m`.
pub fn run<B: StoreBarrier>(
    m: &mut Mutator<B>,
    p: &GraphParams,
    thread: usize,
) -> Result<GraphOutcome> {
    let base = m.roots_len();
    let mut rng =
        SmallRng::seed_from_u64(p.seed ^ (thread as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let g = build(m, p, &mut rng)?;
    let mut out = GraphOutcome {
        allocations: p.objects as u64,
        ..GraphOutcome::default()
    };
    out.trace.windows.reserve(64);
    let per_page = p.nodes_per_page().max(1);
    let pages = p.objects.div_ceil(per_page).max(1);
    let spp = p.stores_per_page.max(1);
    let mut sink = 0u64;
    let mut ring_next = 0;
    // The window being seen, if any: its start and the operation index it started at.
    let mut window: Option<(Duration, u64)> = None;
    out.trace.span.0 = m.heap().uptime();
    for i in 0..p.stores {
        if i % PHASE_POLL == 0 {
            m.safepoint();
            let now_in = in_window(m.heap().phase());
            match window {
                None if now_in => window = Some((m.heap().uptime(), i)),
                Some((start, from)) if !now_in => {
                    out.trace.windows.push(StoreWindow {
                        start,
                        end: m.heap().uptime(),
                        stores: i - from,
                    });
                    window = None;
                }
                _ => {}
            }
        }
        let page = ((i / spp) as usize) % pages;
        let k = (page * per_page + rng.random_range(0..per_page)).min(g.len - 1);
        let node = g.node(m, k);
        if rng.random_bool(p.pointer_fraction) {
            if p.refs > 0 {
                let target = g.node(m, rng.random_range(0..g.len));
                // SAFETY: live nodes with `p.refs` slots each.
                unsafe { m.write_ref_unchecked(node, rng.random_range(0..p.refs), Some(target)) };
                out.ref_stores += 1;
            }
        } else if p.payload >= 8 {
            let off = rng.random_range(0..=(p.payload - 8)) & !7;
            m.write_bytes(node, off, &i.to_ne_bytes())?;
            out.payload_writes += 1;
        }
        for w in 0..p.work_per_store {
            sink = sink
                .wrapping_mul(6364136223846793005)
                .wrapping_add(w as u64 | 1);
        }
        if p.alloc_every > 0 && i % p.alloc_every == p.alloc_every - 1 {
            let fresh = m.alloc(p.refs, p.payload)?;
            // `node` is a graph node: still live across the allocation (never replaced).
            for s in 0..p.refs {
                // SAFETY: `node` and `fresh` are live nodes with `p.refs` slots each.
                unsafe {
                    let e = m.read_ref_unchecked(node, s);
                    m.write_ref_unchecked(fresh, s, e);
                }
            }
            // SAFETY: the ring is live (reachable from the rooted spine) and has `RING`
            // slots; `fresh` was just allocated.
            unsafe { m.write_ref_unchecked(g.ring, ring_next, Some(fresh)) };
            ring_next = (ring_next + 1) % RING;
            out.allocations += 1;
        }
    }
    out.trace.span.1 = m.heap().uptime();
    std::hint::black_box(sink);
    m.truncate_roots(base);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::{CycleStats, Pause};

    fn pause(kind: PauseKind, cycle: u64, ms: u64) -> Pause {
        Pause {
            kind,
            cycle,
            start: Duration::from_millis(ms),
            duration: Duration::from_micros(10),
            time_to_safepoint: Duration::ZERO,
            collector_cpu: Duration::ZERO,
            marker_threads: 1,
        }
    }

    fn window(from: u64, to: u64, stores: u64) -> StoreWindow {
        StoreWindow {
            start: Duration::from_millis(from),
            end: Duration::from_millis(to),
            stores,
        }
    }

    /// Three cycles: the first starts before the loop, the last ends after it; only the
    /// middle one counts, with its window's stores.
    #[test]
    fn only_cycles_inside_every_loop_count() {
        let mut stats = Stats::default();
        for (cycle, at) in [(1, 5), (2, 50), (3, 95)] {
            stats.pauses.push(pause(PauseKind::InitialMark, cycle, at));
            stats.pauses.push(pause(PauseKind::Remark, cycle, at + 10));
            stats.cycle_log.push(CycleStats {
                cycle,
                preclean_dirty: vec![1],
                dirty_pages: (0..cycle as usize * 10).collect(),
                arm: Duration::from_millis(1),
                ..CycleStats::default()
            });
        }
        let trace = StoreTrace {
            span: (Duration::from_millis(10), Duration::from_millis(100)),
            windows: vec![window(10, 12, 7), window(49, 58, 400)],
        };
        // Cycle 2 dirtied 20 pages while the loop made 400 stores.
        assert_eq!(
            stores_per_dirtied_page(&stats, std::slice::from_ref(&trace)),
            Some(20.0)
        );
        // A second thread whose loop started after cycle 2's arm: nothing counts.
        let late = StoreTrace {
            span: (Duration::from_millis(50), Duration::from_millis(100)),
            ..trace.clone()
        };
        assert_eq!(stores_per_dirtied_page(&stats, &[trace, late]), None);
    }
}
