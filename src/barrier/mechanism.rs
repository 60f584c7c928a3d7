//! One description per barrier mechanism ([`Mechanism`]), and what is derived from it:
//! the probe's check that the mechanism works here ([`check`]), the variants that the
//! study and the benches measure ([`Variant`]).
//!
//! Why: a mechanism's name, kernel requirement, probe, constructor, options, granule and
//! edge behaviour used to be spread over five types with their own name tables, and the
//! copies began to disagree. Each mechanism's module now declares one `MECHANISM` (with
//! its options type and `build` beside it), and [`BarrierKind`], [`build`](super::build),
//! the probe, the CLI, the study and the benches read it.
//!
//! The check is the same for every mechanism, so that none can skip the part that
//! matters: build the real tracker (with its real handler or service) over a scratch
//! mapping, arm it, write one page from another thread through the store path, and
//! require that the write completes within [`FAULT_CHECK_TIMEOUT`] (its fault was
//! served), lands, is the only granule the harvest reports, and is counted as a served
//! fault by a mechanism that serves faults. A feature bit that is granted but does not
//! work is reported as not working.
//!
//! Never: fall back silently. The check reports the userfaultfd mode the tracker got
//! (user-mode-only when full mode was refused), and an unavailable mechanism keeps the
//! error its check ran into.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

use super::{BarrierConfig, BarrierKind, DirtySet, StoreBarrier, UffdMode};
use crate::error::{Error, Result};
use crate::sys::PAGE_SIZE;
use crate::sys::mem::Region;

/// `log2` of the card size (512 bytes): the [`Granule::Card`] granule, defined with the
/// granules so that the card table and the descriptions read one value.
pub const CARD_SHIFT: u32 = 9;

/// What a mechanism records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Granule {
    /// Nothing: the collector stops the world for the whole mark.
    None,
    /// 512-byte cards, marked by the store path.
    Card,
    /// 4 KiB pages, recorded at their first write.
    Page,
    /// 4 KiB pages, marked by the store path (the write watch: the card table's store
    /// path at the page trackers' granule).
    WatchedPage,
}

impl Granule {
    /// `log2` of the granule size in bytes (`None` records nothing).
    pub fn shift(self) -> Option<u32> {
        match self {
            Granule::None => None,
            Granule::Card => Some(CARD_SHIFT),
            Granule::Page | Granule::WatchedPage => Some(crate::sys::PAGE_SHIFT),
        }
    }
}

/// Who serves the first write to an armed granule (the ordering section of
/// [`crate::barrier`]): it decides the order of record and unprotect, and what
/// [`TrackerStats::faults`](super::TrackerStats::faults) counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServedBy {
    /// Nobody: there is no barrier.
    Nobody,
    /// The store path itself marks the card; no fault.
    StorePath,
    /// A collector-side thread reading the userfaultfd: record, then unprotect.
    Service,
    /// The kernel, unseen: the fault resolves itself and a scan reads the result.
    Kernel,
    /// A signal handler on the writing thread: unprotect, then record.
    Handler,
}

/// What a mechanism's protection change (arm, re-arm, disarm, a fault's unprotect) holds
/// while it runs: the process's mapping lock (`mmap_lock`), for reading or for writing.
/// IF a change holds it for writing THEN a writer's page fault (any fault, not only a
/// write-protect one) and its own protection change wait until the change is done: under
/// `mprotect`, a whole-heap arm or disarm stalls the mutators for its whole length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MappingLock {
    /// No protection change: a store-path mechanism, or none.
    None,
    /// For reading (`UFFDIO_WRITEPROTECT`), as a page fault takes it: a writer does not
    /// wait for the collector's change.
    Read,
    /// For writing (`mprotect`): a writer's fault or `mprotect` waits for the collector's
    /// change (seen as the mutator blocked in `rwsem_down_write_slowpath` under
    /// `do_mprotect_pkey` and in `rwsem_down_read_slowpath` under `lock_mm_and_find_vma`).
    Write,
}

/// Where the armed state of a mechanism can be read back through a second channel, to
/// check its record against the kernel's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecondChannel {
    /// No second channel: nothing is protected (the card table is its own record).
    None,
    /// The page table: pagemap bit 57 (uffd-wp) is set on every protected page.
    PagemapWpBit,
    /// The mapping list: `/proc/self/maps` shows protected pages as `r--p`.
    ProcMaps,
}

/// The edges at which the page mechanisms behave differently; the rows of the edge table
/// in [`crate::barrier`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Edge {
    /// A write by the kernel (`read(2)`) into an armed page.
    KernelWrite,
    /// A fault outside every heap while the tracker is installed.
    FaultOutsideHeap,
    /// The `vm.max_map_count` limit.
    MaxMapCount,
    /// A userfaultfd opened with `UFFD_USER_MODE_ONLY`.
    UserModeOnly,
    /// `MADV_DONTNEED` on an armed page.
    DontNeed,
    /// Transparent huge pages on the heap.
    HugePages,
    /// `fork(2)` while armed.
    Fork,
}

impl Edge {
    /// Every edge, in the table's order.
    pub const ALL: [Edge; 7] = [
        Edge::KernelWrite,
        Edge::FaultOutsideHeap,
        Edge::MaxMapCount,
        Edge::UserModeOnly,
        Edge::DontNeed,
        Edge::HugePages,
        Edge::Fork,
    ];

    /// The row's label in the edge table.
    pub fn label(self) -> &'static str {
        match self {
            Edge::KernelWrite => "`read(2)` into an armed page",
            Edge::FaultOutsideHeap => "a fault outside the heap",
            Edge::MaxMapCount => "`vm.max_map_count`",
            Edge::UserModeOnly => "`UFFD_USER_MODE_ONLY`",
            Edge::DontNeed => "`MADV_DONTNEED` while armed",
            Edge::HugePages => "transparent huge pages (`HeapConfig::huge_pages`)",
            Edge::Fork => "`fork(2)` while armed",
        }
    }
}

/// Edge-table cells that several page mechanisms share.
pub(crate) const NO_HANDLER: &str = "not the tracker's (no handler)";
/// The protection lives in the page table, not in the mapping.
pub(crate) const NEVER_SPLITS: &str = "never splits the mapping";
/// A zapped anonymous page loses its uffd-wp bit and gets no marker.
pub(crate) const DONTNEED_DROPS: &str = "protection dropped, writes lost: the heap never does it";
/// Checked with `MADV_HUGEPAGE` asked for; whether the kernel backed the heap with huge
/// pages was not checked.
pub(crate) const HUGE_PAGES_CORRECT: &str = "tracking stays correct: 40 verified cycles (`tests/barrier/edges.rs`); granule reported: 4 KiB";
/// Without `UFFD_FEATURE_EVENT_FORK`, the child's copy is not tracked.
pub(crate) const FORK_CHILD_WRITES: &str = "the child's write to an armed page completes and \
     stays in the child; the parent's next write is still recorded (`tests/barrier/edges.rs`)";

/// Everything barrierlab knows about one mechanism, in one place.
#[derive(Debug)]
pub struct Mechanism {
    /// Its kind.
    pub kind: BarrierKind,
    /// The kebab-case name used by the CLI, reports and benches (`card-table`).
    pub name: &'static str,
    /// One line: what it is.
    pub summary: &'static str,
    /// What it records.
    pub granule: Granule,
    /// Who serves the first write to an armed granule.
    pub served_by: ServedBy,
    /// What it needs from the kernel.
    pub kernel: &'static str,
    /// Where its armed state can be read back.
    pub second_channel: SecondChannel,
    /// What its protection changes hold.
    pub mapping_lock: MappingLock,
    /// Its behaviour at each [`Edge`] (page mechanisms; empty for the others).
    pub edges: &'static [(Edge, &'static str)],
    /// Its configurations worth measuring, each with the label its name takes
    /// (`uffd-wp[thread]`). The defaults are measured too: under the label the list
    /// gives them, or unlabelled (`card-table`) if the list leaves them out.
    pub variants: &'static [(&'static str, BarrierConfig)],
}

impl Mechanism {
    /// Whether the collector marks concurrently with this mechanism.
    pub fn is_concurrent(&self) -> bool {
        self.granule != Granule::None
    }

    /// Its behaviour at `edge`, if it documents one.
    pub fn edge(&self, edge: Edge) -> Option<&'static str> {
        self.edges.iter().find(|(e, _)| *e == edge).map(|(_, t)| *t)
    }
}

/// How many variants of each mechanism to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Breadth {
    /// One each, with the default options (a quick run).
    One,
    /// Every variant a mechanism lists.
    Every,
}

/// One configuration of a mechanism to measure: the barrier with its options, and its
/// name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Variant {
    /// The label in its name (`thread` in `uffd-wp[thread]`), if it has variants.
    pub label: Option<&'static str>,
    /// The barrier and the options it runs with.
    pub config: BarrierConfig,
}

impl Variant {
    /// The barrier.
    pub fn kind(&self) -> BarrierKind {
        self.config.kind()
    }

    /// `uffd-wp[spin-thread]`, or the kind's name.
    pub fn name(&self) -> String {
        match self.label {
            Some(l) => format!("{}[{l}]", self.kind()),
            None => self.kind().to_string(),
        }
    }

    /// The variants of `kinds` (in `BarrierKind` order, each once): every variant a
    /// mechanism lists, or with [`Breadth::One`] the one with the default options.
    pub fn list(kinds: &[BarrierKind], breadth: Breadth) -> Vec<Variant> {
        let mut kinds = kinds.to_vec();
        kinds.sort();
        kinds.dedup();
        let mut out = Vec::new();
        for kind in kinds {
            let m = kind.mechanism();
            let default = BarrierConfig::of(kind);
            if m.variants.iter().all(|&(_, c)| c != default) {
                out.push(Variant {
                    label: None,
                    config: default,
                });
            }
            for &(label, config) in m.variants {
                if breadth == Breadth::Every || config == default {
                    out.push(Variant {
                        label: Some(label),
                        config,
                    });
                }
            }
        }
        out
    }
}

/// Whether a mechanism can be used here, and if not, why.
#[derive(Debug, Clone)]
pub enum Availability {
    /// It works.
    Available {
        /// How it was seen to work.
        detail: String,
        /// The userfaultfd mode its tracker got, for the mechanisms that open one.
        uffd: Option<UffdMode>,
    },
    /// It does not.
    Unavailable {
        /// What the check ran into: the errno and what to change, the missing feature,
        /// or what misbehaved.
        reason: Error,
    },
}

impl Availability {
    /// True for [`Availability::Available`].
    pub fn is_available(&self) -> bool {
        matches!(self, Availability::Available { .. })
    }

    /// `Ok` if available, else [`Error::Unavailable`] naming `kind`, with the check's
    /// error as its cause.
    pub fn require(&self, kind: BarrierKind) -> Result<()> {
        match self {
            Availability::Available { .. } => Ok(()),
            Availability::Unavailable { reason } => Err(Error::Unavailable {
                mechanism: kind.name(),
                causes: vec![reason.clone()],
            }),
        }
    }
}

/// How long the check waits for the write whose fault it provokes.
pub const FAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks `kind` for real (see the module docs), opening userfaultfd in user-mode-only
/// mode if `user_mode_only`, else in full mode with the trackers' fallback. Takes a few
/// milliseconds.
pub fn check(kind: BarrierKind, user_mode_only: bool) -> Availability {
    match provoke(kind.mechanism(), user_mode_only) {
        Ok(available) => available,
        Err(reason) => Availability::Unavailable { reason },
    }
}

/// [`check`], computed once per process for each kind and mode: what
/// [`build`](super::build) asks before it builds a tracker.
pub fn check_cached(kind: BarrierKind, user_mode_only: bool) -> Availability {
    static CACHE: OnceLock<Mutex<HashMap<(BarrierKind, bool), Availability>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    cache
        .entry((kind, user_mode_only))
        .or_insert_with(|| check(kind, user_mode_only))
        .clone()
}

/// The page of the scratch mapping that the check writes.
const CHECK_PAGE: usize = 2;

fn provoke(m: &Mechanism, user_mode_only: bool) -> Result<Availability> {
    let Some(shift) = m.granule.shift() else {
        return Ok(Availability::Available {
            detail: "nothing to check: no barrier, every collection stops the world".into(),
            uffd: None,
        });
    };
    let misbehaved = |seen: String| Error::Misbehaved {
        mechanism: m.name,
        seen,
    };
    let region = Region::new(4 * PAGE_SIZE)?;
    let tracker = BarrierConfig::of(m.kind)
        .with_user_mode_only(user_mode_only)
        .construct(region.base(), region.len())?
        .ok_or_else(|| misbehaved("its constructor built no tracker".into()))?;
    tracker.arm()?;
    let addr = region.base() + CHECK_PAGE * PAGE_SIZE;
    let path = tracker.store_barrier();
    let (done, finished) = mpsc::channel();
    // On another thread: a fault nobody serves blocks its writer, and must not block the
    // check.
    let writer = std::thread::Builder::new()
        .name("probe-writer".into())
        .spawn(move || {
            // SAFETY: `addr` is a word of `region`, which outlives this thread (joined
            // below); volatile, so that the store that faults really happens.
            unsafe { (addr as *mut u64).write_volatile(0x5eed) };
            // SAFETY: `addr` is inside the range the tracker (alive until after the
            // join) covers.
            unsafe { path.on_store(addr) };
            let _ = done.send(());
        })
        .map_err(|e| Error::io("spawn the probe's writer thread", e))?;
    let served = finished.recv_timeout(FAULT_CHECK_TIMEOUT).is_ok();
    if !served {
        // Releases the writer: the whole range becomes writable.
        let _ = tracker.disarm();
        drop(tracker);
        let _ = writer.join();
        return Err(misbehaved(format!(
            "a write to an armed page did not complete within {FAULT_CHECK_TIMEOUT:?}: its \
             fault was never served"
        )));
    }
    writer
        .join()
        .map_err(|_| misbehaved("the writer thread panicked".into()))?;
    let mut set = DirtySet::default();
    tracker.harvest(&mut set, false)?;
    tracker.disarm()?;
    let stats = tracker.stats();
    let expected = (CHECK_PAGE * PAGE_SIZE) >> shift;
    if set.all || set.granules != [expected] {
        return Err(misbehaved(format!(
            "the harvest reported {set:?} instead of exactly granule {expected}"
        )));
    }
    // SAFETY: still mapped; the writer is done.
    let landed = unsafe { (addr as *const u64).read_volatile() };
    if landed != 0x5eed {
        return Err(misbehaved(format!(
            "the write did not land (read {landed:#x})"
        )));
    }
    let (faults, how) = match m.served_by {
        ServedBy::Service => (1, "its fault was served by the fault service thread"),
        ServedBy::Handler => (1, "its fault was served by the signal handler"),
        ServedBy::Kernel => (0, "its fault was resolved by the kernel"),
        ServedBy::StorePath | ServedBy::Nobody => (0, "the store path marked its card"),
    };
    if stats.faults != faults {
        return Err(misbehaved(format!(
            "{} faults counted as served, expected {faults}",
            stats.faults
        )));
    }
    let mut detail = format!("a write to an armed page: {how}, and the harvest found it");
    if let Some(mode) = stats.uffd {
        detail.push_str(&format!("; userfaultfd {mode}"));
    }
    Ok(Availability::Available {
        detail,
        uffd: stats.uffd,
    })
}
