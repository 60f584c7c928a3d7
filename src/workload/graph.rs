//! Graph mutation: a live graph of objects that the mutator rewires with knobs for how
//! its stores fall on pages. This is the workload that finds the crossover between card
//! marking (pays per store) and page protection (pays per dirtied page).
//!
//! The graph: `objects` nodes with `refs` reference slots and `payload` bytes each, held
//! by a spine of large arrays (one root). Nodes are allocated in order, so node `k` lives
//! near `k * cell` bytes into the nodes' pages: a run of consecutive indices is a run of
//! pages.
//!
//! The store stream: store `i` goes to a node on "page" `(i / stores_per_page) mod pages`,
//! chosen at random among the nodes of that page, so each page receives `stores_per_page`
//! consecutive stores before the stream moves on; with `stores_per_page` from 1 to
//! 100,000 the same number of stores dirties from every page to a handful. A store is a
//! reference store (a random slot set to a random node) with probability
//! `pointer_fraction`, else an 8-byte payload write. Every `alloc_every` operations a node
//! is replaced by a fresh one (the old one becomes garbage): allocation rate and object
//! lifetime. `work_per_store` iterations of arithmetic between stores model the rest of
//! the program.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::barrier::StoreBarrier;
use crate::error::Result;
use crate::heap::ObjRef;
use crate::heap::size_class;
use crate::mutator::Mutator;
use crate::sys::PAGE_SIZE;

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
    /// Replace a node every this many operations (0: never).
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
    /// Nodes per page (from the node's size class).
    pub fn nodes_per_page(&self) -> usize {
        let bytes = crate::heap::object::object_size(self.refs, self.payload);
        match size_class::class_for(bytes) {
            Some(c) => size_class::cells_per_page(c),
            None => 1,
        }
    }

    /// Bytes of live data the graph holds (nodes, rounded to cells, and the spine).
    pub fn live_bytes(&self) -> usize {
        let per_page = self.nodes_per_page();
        self.objects.div_ceil(per_page) * PAGE_SIZE + self.objects * 8
    }
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GraphOutcome {
    /// Reference stores.
    pub ref_stores: u64,
    /// Payload writes.
    pub payload_writes: u64,
    /// Nodes allocated (including the initial graph).
    pub allocations: u64,
}

const SPINE_CHUNK: usize = 4096;

/// The spine: chunk arrays of node references, reachable from one root.
struct Graph {
    spine: ObjRef,
    chunks: Vec<ObjRef>,
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
    let spine = m.alloc(nchunks, 0)?;
    m.push_root(spine);
    let mut chunks = Vec::with_capacity(nchunks);
    for c in 0..nchunks {
        let chunk = m.alloc(SPINE_CHUNK, 0)?;
        m.write_ref(spine, c, Some(chunk))?;
        chunks.push(chunk);
    }
    let g = Graph {
        spine,
        chunks,
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
    let per_page = p.nodes_per_page().max(1);
    let pages = p.objects.div_ceil(per_page).max(1);
    let spp = p.stores_per_page.max(1);
    let mut sink = 0u64;
    for i in 0..p.stores {
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
            // Copy the old node's edges so that the graph keeps its shape.
            let old = g.node(m, k);
            for s in 0..p.refs {
                // SAFETY: `old` and `fresh` are live nodes with `p.refs` slots each.
                unsafe {
                    let e = m.read_ref_unchecked(old, s);
                    m.write_ref_unchecked(fresh, s, e);
                }
            }
            g.set(m, k, fresh);
            out.allocations += 1;
        }
    }
    std::hint::black_box(sink);
    let _ = g.spine;
    m.truncate_roots(base);
    Ok(out)
}
