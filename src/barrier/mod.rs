//! Write barriers: the mutator-side store path and the collector-side dirty trackers.
//!
//! A barrier has two halves (the split mmtk-core makes between a barrier's fast path and
//! its semantics):
//! - the **store path** ([`StoreBarrier`]), run by the mutator after every reference
//!   store. It is generic and inlined: for the page-level trackers it is empty, so a
//!   reference store compiles to the same single `mov` as with [`BarrierKind::None`];
//!   for the card table it is one more byte store.
//! - the **tracker** ([`DirtyTracker`]), run by the collector: [`arm`](DirtyTracker::arm)
//!   it, [`harvest`](DirtyTracker::harvest) the dirty set, [`disarm`](DirtyTracker::disarm)
//!   it.
//!
//! # The mechanisms compared
//!
//! Costs per event are the medians of `papers/reference/c-probe-2026-11-29.md` (2-vCPU KVM guest,
//! Linux 6.18); `cargo bench` and `barrierlab study` measure them from Rust.
//!
//! | kind | per store | per dirtied granule | per cycle (per heap page) | granule | kernel needs | failure modes |
//! |---|---|---|---|---|---|---|
//! | `none` | 0 | – | – (stop-the-world mark) | – | nothing | long pauses |
//! | `card-table` | +0.17 ns (one byte store) | 0 | ~0.55 ns scan + clear | 512 B | nothing | every store pays, pointer stores only |
//! | `uffd-wp` | 0 | ~15–58 µs: fault, message, cross-thread wake-up | ~70 ns protect | 4 KiB | userfaultfd WP (5.7+), `WP_UNPOPULATED` (6.4+) | service thread must run while armed; a VM's wake-up cost dominates |
//! | `uffd-wp-async` | 0 | ~0.8 µs kernel-resolved fault + ~40 ns scan | ~1 ns `PAGEMAP_SCAN` | 4 KiB | `WP_ASYNC` + `PAGEMAP_SCAN` (6.7+) | none known; writes by the kernel are recorded too |
//! | `uffd-wp-sigbus` | 0 | ~4.3 µs SIGBUS + `UFFDIO_WRITEPROTECT` on the writer (measured from Rust: no C probe) | ~70 ns protect | 4 KiB | userfaultfd WP + `UFFD_FEATURE_SIGBUS` | a kernel write (`read(2)` into the heap) fails with `EFAULT` |
//! | `mprotect` | 0 | ~5–8 µs SIGSEGV + `mprotect` on the writer | ~70 ns `mprotect` | 4 KiB | nothing | splits mappings: `vm.max_map_count`; kernel writes fail with `EFAULT` |
//! | `write-watch` | as `card-table` (one byte store) | 0 | an eighth of `card-table`'s scan | 4 KiB | nothing | every store pays; remark rescans whole pages |
//!
//! # Edge behaviour
//!
//! What each page mechanism does at its edges on Linux 6.18, and the test behind each
//! cell. Each cell is also its mechanism's [`Mechanism::edges`] entry (a unit test keeps
//! the two equal). The huge-page row checks correctness with `MADV_HUGEPAGE` asked for;
//! `tests/barrier/huge_pages.rs` checks on a region that huge pages do back (read from
//! `/proc/self/smaps`) that each tracker reports exactly the 4 KiB pages written: the arm
//! keeps the huge pages, and a write splits the one it lands in.
//!
//! | edge | `uffd-wp` | `uffd-wp-async` | `uffd-wp-sigbus` | `mprotect` |
//! |---|---|---|---|---|
//! | `read(2)` into an armed page | full mode: a WP fault, served and recorded (`tests/barrier/edges.rs`); user-mode-only: `EFAULT` (`tests/sys/uffd/kernel_writes.rs`) | the kernel resolves it: succeeds, recorded (`tests/barrier/edges.rs`) | `EFAULT` (`tests/barrier/edges.rs`) | `EFAULT` (`tests/barrier/edges.rs`) |
//! | a fault outside the heap | not the tracker's (no handler) | not the tracker's (no handler) | chained: the process dies of SIGBUS (`tests/barrier/edges.rs`) | chained: the process dies of SIGSEGV (`tests/barrier/edges.rs`) |
//! | `vm.max_map_count` | never splits the mapping | never splits the mapping | never splits the mapping | `ENOMEM` → degrades to everything dirty (`tests/mprotect_max_map_count.rs`) |
//! | `UFFD_USER_MODE_ONLY` | works; kernel writes `EFAULT` (`tests/sys/uffd`) | works | works | n/a |
//! | `MADV_DONTNEED` while armed | protection dropped, writes lost: the heap never does it | page reported written | protection dropped, writes lost: the heap never does it | protection kept (on the mapping) |
//! | transparent huge pages (`HeapConfig::huge_pages`) | tracking stays correct: 40 verified cycles (`tests/barrier/edges.rs`); granule reported: 4 KiB | tracking stays correct: 40 verified cycles (`tests/barrier/edges.rs`); granule reported: 4 KiB | tracking stays correct: 40 verified cycles (`tests/barrier/edges.rs`); granule reported: 4 KiB | tracking stays correct: 40 verified cycles (`tests/barrier/edges.rs`); granule reported: 4 KiB |
//! | `fork(2)` while armed | the child's write to an armed page completes and stays in the child; the parent's next write is still recorded (`tests/barrier/edges.rs`) | the child's write to an armed page completes and stays in the child; the parent's next write is still recorded (`tests/barrier/edges.rs`) | the child's write to an armed page completes and stays in the child; the parent's next write is still recorded (`tests/barrier/edges.rs`) | the child's write to an armed page completes and stays in the child; the parent's next write is still recorded (`tests/barrier/edges.rs`) |
//!
//! Every tracker may over-approximate (report a granule that was not written), never
//! under-approximate. A tracker that cannot do its job for a cycle degrades to
//! "everything is dirty" for that cycle and says so in its stats:
//! [`TrackerStats::degradations`] counts the cycle once, and
//! [`TrackerStats::last_degradation`] keeps its first failure (step, call, errno, range).
//!
//! # Ordering: who records, who unprotects, and when a harvest may run
//!
//! A write must never slip past both the record and the rescan. A harvest *clears a
//! granule's record, then re-protects it*, and the collector rescans it *after*: the
//! reverse order loses a write that lands in between. The safe order on the fault side
//! depends on who serves the fault ([`ServedBy`]):
//! - **Handler on the writing thread** (`uffd-wp-sigbus`, `mprotect`): *unprotect, then
//!   record*, then return and let the write retry. IF a harvest runs between the two
//!   steps THEN either its re-protect comes after the write, which faults again and is
//!   recorded, or the write comes before it and the rescan sees it. The reverse order
//!   (record, then unprotect) lets a harvest take the record and re-protect in between,
//!   and the unprotect then leaves the page writable with no record. Mutators stop only
//!   at cooperative safepoints, never inside the handler, so a pause never sees a
//!   half-served fault.
//! - **Service on another thread** (`uffd-wp`): the service is not stopped by a pause, so
//!   it must *record, then unprotect* (a remark then sees the page of every write that
//!   went through), and IF a harvest with re-arm interleaved with serving the same page
//!   THEN the service's unprotect could land after the re-protect, with the record
//!   already taken: one lock, held only by collector-side threads, serialises them.
//! - **Kernel-resolved** (`uffd-wp-async`): `PAGEMAP_SCAN` with `PM_SCAN_WP_MATCHING`
//!   reads and re-protects each page atomically, under the page table lock.
//! - **Card table**: the mutator stores the reference, then marks the card; a harvest
//!   clears the card, issues a full fence, then the collector rescans. At remark every
//!   mutator is at a safepoint, so both stores are done.
//! - **Frontier** ([`DirtyTracker::hand_out`]): the allocating mutator unprotects, then
//!   records, before any mutator writes the pages, which is safe whoever serves faults.
//!   Free pages it unprotects ahead ([`DirtyTracker::hand_out_and_open`]) stay
//!   unrecorded until handed out: nothing writes a free page.
//! - **Kept pages** ([`DirtyTracker::arm_with_young`]): a young page arm leaves writable
//!   is recorded first, and a harvest re-protects it only once the collector says it
//!   holds a marked object ([`DirtyTracker::harvest_marked`]); until then it stays
//!   recorded, so every harvest asks again: a write to an object not yet scanned needs
//!   no record, and one scanned later is scanned after that write.
//!
//! Each mechanism's module says how its code keeps its rule, and the conformance tests
//! race writers against harvests with the steps widened
//! (`TestKnobs::widen_races`).
//!
//! # How this module is laid out
//!
//! - One file per mechanism, named after it, holding only the mechanism (how it
//!   protects, unprotects and serves a fault) and its description, a `MECHANISM` constant
//!   of type [`Mechanism`]: name, summary, granule, who serves faults, kernel requirement,
//!   second channel, edge behaviour, the variants worth measuring; beside it, its options
//!   type and its constructor, `build(base, len, &options)`.
//! - `page_tracker/`: what every page tracker shares: [`PageTracker`], the one
//!   [`DirtyTracker`] of the page mechanisms, and the writer's fault path;
//!   `protection.rs` (the primitive each page mechanism supplies, and its signal-safety
//!   contract), `record.rs` (the dirty bitmap, the harvest protocol, the re-protect rule,
//!   fault injection), `prefix.rs` (the in-use prefix), `stall_log.rs`, `userfaultfd.rs`
//!   (opening the descriptor, its mode, its protection).
//! - `counters.rs` ([`TrackerStats`] and the atomics behind it), `degradation.rs` (why a
//!   cycle lost precision), `test_knobs.rs`: what every tracker keeps.
//! - `config.rs`: what a [`BarrierConfig`]'s options have in common
//!   ([`MechanismOptions`], [`NoOptions`]).
//! - `mechanism.rs`: the description type and the probe's check, the same for every
//!   mechanism (the real tracker provokes and serves a fault on a scratch mapping).
//! - `signal_registry.rs`: the SIGSEGV/SIGBUS handler shared by the handler trackers.
//! - `bare.rs`: [`BareTracker`], a tracker alone over a region of its own, with a thread
//!   standing in for the collector where faults need serving (the benches, the `pages`
//!   workload and the tests use it).
//!
//! [`BarrierKind`], [`build`], the probe, the CLI's barrier names, the study's variants and
//! the benches all read the descriptions.
//!
//! # Adding a mechanism
//!
//! For example a 4 KiB software write-watch table, as CoreCLR uses. Every mechanism
//! touches two files:
//! 1. `src/barrier/<name>.rs`, new: the mechanism, its `MECHANISM` description and its
//!    constructor `build(base, len, &options)`. A page mechanism implements the crate's
//!    `PageMechanism` (its protection primitive, a `PageProtection`, and what serves its
//!    faults) and names `PageTracker<ItsMechanism>`; any other implements
//!    [`DirtyTracker`] itself. Its options are its own type implementing
//!    [`MechanismOptions`] (or [`NoOptions`], or another mechanism's type, as the write
//!    watch takes the card table's [`CardOptions`]).
//! 2. `src/barrier/mod.rs`: one entry `Variant => module(OptionsType),` (with its doc
//!    line) in the `mechanisms!` list below, which declares the module, the
//!    [`BarrierKind`] variant and the [`BarrierConfig`] variant that carries its options;
//!    the `pub use` of its tracker (and options) type; its row in the comparison table
//!    above; for a page mechanism, its column in the edge table above (a unit test fails
//!    until the column equals the description's `edges`).
//!
//! Nothing else changes for it to run everywhere: the probe checks it, the CLI parses
//! its name, the study and the benches measure its variants, and every test that loops
//! over [`BarrierKind::ALL`] runs over it (the conformance table, `tests/barrier/conformance.rs`,
//! among them). The tests whose expectations depend on the mechanism read them from its
//! description: who serves its faults ([`ServedBy`]: `tests/barrier/conformance.rs`,
//! `tests/barrier/edges.rs`, `tests/collector/unit`) and the signal its edge table names for
//! a fault outside the heap (`tests/barrier/edges.rs`).
//!
//! More files, only when they apply:
//! - a new store path (one that is not a card mark): a [`DynBarrier`] variant and its
//!   [`StoreBarrier`] type (`src/barrier/mod.rs`), and the `DynBarrier` matches that
//!   monomorphise the store path (`Heap::run_typed` in `src/mutator/heap_methods.rs`,
//!   `src/workload/pages.rs`);
//! - a kind of granule not yet described (the write watch's 4 KiB page marked by the
//!   store path, beside the card and the page recorded at its first write): a
//!   [`Granule`] variant and its shift (`src/barrier/mechanism.rs`);
//! - a fault signal other than SIGSEGV and SIGBUS: `FaultSignal` in
//!   `src/barrier/signal_registry.rs`;
//! - pages kept protected between cycles (like `uffd-wp-async`'s `keep-protected`):
//!   `keeps_protection` in `tests/barrier/conformance.rs`;
//! - what a kernel write (`read(2)`) into a payload does on it: `Mutator::payload_ptr`'s
//!   docs and `tests/collector/payload_io.rs` (read from the description for a store-path
//!   mechanism);
//! - a kernel requirement: its row in the README's kernel-requirements table.
//!
//! Soft-dirty (`/proc/self/clear_refs` + pagemap bit 55) is the classic sixth mechanism;
//! it is not built here because it does not work on kernels without
//! `CONFIG_MEM_SOFT_DIRTY` (the project's own machines): see [`crate::probe`].

mod bare;
mod config;
mod counters;
mod degradation;
mod fault_service;
mod mechanism;
mod page_tracker;
#[cfg(feature = "lab-internals")]
#[doc(hidden)]
pub mod signal_registry;
#[cfg(not(feature = "lab-internals"))]
mod signal_registry;
mod store;
pub(crate) mod test_knobs;

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use crate::error::{Error, Result};

pub use bare::{BareTracker, Idle};
pub use card_table::{CardOptions, CardTable};
pub use config::{MechanismOptions, NoOptions};
pub use counters::{STALL_IN_HANDLER, STALL_KERNEL, STALL_SERVICE, TrackerStats};
pub use degradation::{Call, Degradation, Step};
pub use fault_service::{FaultService, ServeFaults};
pub use mechanism::{
    Availability, Breadth, CARD_SHIFT, Edge, FAULT_CHECK_TIMEOUT, Granule, MappingLock, Mechanism,
    SecondChannel, ServedBy, Variant, check, check_cached,
};
pub use mprotect::MprotectTracker;
pub use page_tracker::{PageTracker, UffdMode};
pub use store::{CardMark, DynBarrier, NoStoreBarrier, StoreBarrier};
// Public only as `internals::TestKnobs`, with the `lab-internals` feature.
pub(crate) use test_knobs::TestKnobs;
pub use uffd_wp::{ServiceLayout, UffdWpOptions, UffdWpTracker};
pub use uffd_wp_async::{UffdWpAsyncOptions, UffdWpAsyncTracker};
pub use uffd_wp_sigbus::{UffdWpSigbusOptions, UffdWpSigbusTracker};
pub use write_watch::WriteWatch;

/// Declares the mechanisms: for each, its module (which defines `MECHANISM` and
/// `build`), its `BarrierKind` variant and its options type. This list is the one place
/// that names every mechanism.
macro_rules! mechanisms {
    ($( $(#[$doc:meta])* $kind:ident => $module:ident($options:ty), )+) => {
        $( pub mod $module; )+

        /// Which write barrier a heap uses. Each variant is one mechanism, described by its
        /// module's `MECHANISM` ([`BarrierKind::mechanism`]: name, summary, granule, kernel
        /// requirement, edges, variants).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum BarrierKind {
            $( $(#[$doc])* $kind, )+
        }

        /// A barrier with its options: the mechanism, carrying only the options that
        /// mechanism reads (its module's options type). `BarrierConfig::from(kind)` gives
        /// a mechanism's defaults.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum BarrierConfig {
            $( $(#[$doc])* $kind($options), )+
        }

        /// The descriptions, in `BarrierKind` order.
        const MECHANISMS: &[&Mechanism] = &[ $( &$module::MECHANISM, )+ ];

        impl BarrierKind {
            /// Every kind, in report order.
            pub const ALL: [BarrierKind; MECHANISMS.len()] = [ $( BarrierKind::$kind, )+ ];
        }

        impl BarrierConfig {
            /// `kind` with its default options.
            pub const fn of(kind: BarrierKind) -> BarrierConfig {
                match kind {
                    $( BarrierKind::$kind =>
                        BarrierConfig::$kind(<$options as MechanismOptions>::DEFAULT), )+
                }
            }

            /// The mechanism.
            pub const fn kind(&self) -> BarrierKind {
                match self {
                    $( BarrierConfig::$kind(_) => BarrierKind::$kind, )+
                }
            }

            /// Whether the tracker opens its userfaultfd with `UFFD_USER_MODE_ONLY`
            /// (`false` for a mechanism that opens none).
            pub fn user_mode_only(&self) -> bool {
                match self {
                    $( BarrierConfig::$kind(o) => o.user_mode_only(), )+
                }
            }

            /// The same, opening its userfaultfd with `UFFD_USER_MODE_ONLY` if `yes` (a
            /// mechanism that opens none is unchanged).
            pub fn with_user_mode_only(mut self, yes: bool) -> BarrierConfig {
                match &mut self {
                    $( BarrierConfig::$kind(o) => o.set_user_mode_only(yes), )+
                }
                self
            }

            /// `Ok` if the probe's [`check_cached`] says its mechanism works here (in its
            /// userfaultfd mode), else [`Error::Unavailable`] with the check's error.
            pub fn require_available(&self) -> Result<()> {
                let kind = self.kind();
                check_cached(kind, self.user_mode_only()).require(kind)
            }

            /// Its mechanism's constructor, without the probe's check.
            fn construct(&self, base: usize, len: usize) -> Built {
                match self {
                    $( BarrierConfig::$kind(o) => $module::build(base, len, o), )+
                }
            }
        }
    };
}

mechanisms! {
    /// The [`none`] mechanism: no barrier.
    None => none(NoOptions),
    /// The [`card_table`] mechanism.
    CardTable => card_table(CardOptions),
    /// The [`uffd_wp`] mechanism.
    UffdWp => uffd_wp(UffdWpOptions),
    /// The [`uffd_wp_async`] mechanism.
    UffdWpAsync => uffd_wp_async(UffdWpAsyncOptions),
    /// The [`uffd_wp_sigbus`] mechanism.
    UffdWpSigbus => uffd_wp_sigbus(UffdWpSigbusOptions),
    /// The [`mprotect`] mechanism.
    Mprotect => mprotect(NoOptions),
    /// The [`write_watch`] mechanism.
    WriteWatch => write_watch(CardOptions),
}

// Each module's description is of its own kind, in declaration order.
const _: () = {
    let mut i = 0;
    while i < MECHANISMS.len() {
        assert!(MECHANISMS[i].kind as usize == i);
        i += 1;
    }
};

impl BarrierKind {
    /// Its description.
    pub fn mechanism(self) -> &'static Mechanism {
        MECHANISMS[self as usize]
    }

    /// The kebab-case name (`card-table`).
    pub fn name(self) -> &'static str {
        self.mechanism().name
    }

    /// Whether the collector marks concurrently (everything but `None`).
    pub fn is_concurrent(self) -> bool {
        self.mechanism().is_concurrent()
    }

    /// Whether the granule is a whole page (the store path is empty).
    pub fn is_page_level(self) -> bool {
        self.mechanism().granule == Granule::Page
    }
}

impl fmt::Display for BarrierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for BarrierKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        BarrierKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = BarrierKind::ALL.iter().map(|k| k.name()).collect();
                Error::InvalidArgument(format!(
                    "unknown barrier `{s}`; expected one of: {}",
                    names.join(", ")
                ))
            })
    }
}

/// The granules written since the last arm or harvest, as indices from the heap base
/// (`granule = (addr - base) >> shift`), sorted and without duplicates, or "everything"
/// when the tracker degraded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirtySet {
    /// Sorted, unique granule indices.
    pub granules: Vec<usize>,
    /// The tracker lost track: treat every granule as dirty.
    pub all: bool,
}

impl DirtySet {
    /// Empties the set.
    pub fn clear(&mut self) {
        self.granules.clear();
        self.all = false;
    }

    /// Number of dirty granules, or `total` when everything is dirty.
    pub fn count(&self, total: usize) -> usize {
        if self.all { total } else { self.granules.len() }
    }
}

/// The allocator's free pages, for [`DirtyTracker::arm_with_free`]: calls its argument
/// with each run of free pages (address, bytes), holding the allocator's lock.
pub type FreeRuns<'a> = &'a dyn Fn(&mut dyn FnMut(usize, usize));

/// Whether the page at an address holds a marked object, for
/// [`DirtyTracker::harvest_marked`]: an object the collector may have scanned, or will
/// scan, in this cycle.
pub type Marked<'a> = &'a dyn Fn(usize) -> bool;

/// The collector side of a write barrier.
///
/// The contract, whatever the mechanism (the ordering section of the [module
/// docs](self) says who records and who unprotects, and when):
/// - [`arm`](Self::arm): from now on every write to the heap is recorded (may
///   over-approximate). Called with mutators running.
/// - [`harvest`](Self::harvest): hand over what was recorded since the last arm or
///   harvest. With `rearm`, the handed-over granules are tracked again, and the order is
///   *clear the record, re-protect, then the caller rescans*: the reverse loses a write
///   that lands in between.
/// - [`disarm_ahead`](Self::disarm_ahead), then [`disarm`](Self::disarm): stop
///   tracking, a step at a time ahead of the sweep, then the rest; called with mutators
///   running, after the remark pause, and must not need that pause.
pub trait DirtyTracker: Send + Sync {
    /// Which kind this is.
    fn kind(&self) -> BarrierKind;

    /// `log2` of the granule size in bytes.
    fn granule_shift(&self) -> u32;

    /// Starts recording writes to the heap.
    fn arm(&self) -> Result<()>;

    /// [`arm`](Self::arm), told which pages the allocator holds free: `free(f)` calls
    /// `f(address, bytes)` for each run of free pages, holding the allocator's lock, so
    /// that none of them is handed out before `f` returns. A page tracker leaves the long
    /// runs among them (1 MiB or more: a shorter one saves less than the calls it would
    /// split arm and disarm into) writable and unrecorded, *open* as [`hand_out_and_open`](Self::hand_out_and_open)
    /// leaves the pages ahead: nothing writes a free page until the allocator hands it
    /// out, and the hand-out records it with no protection change, so neither the arm
    /// nor the hand-out pays for the pages the mutators will allocate into during the
    /// cycle.
    ///
    /// The contract the caller keeps: IF a page is listed THEN nothing writes it until a
    /// hand-out has recorded it (the sweep, which zeroes and frees, runs only while the
    /// tracker has made them writable). Call it only where `free` lists pages that are free, and
    /// after [`in_use`](Self::in_use). Default: [`arm`](Self::arm), for a tracker whose
    /// arm costs nothing per page (a software barrier) or whose first write is resolved
    /// and recorded by the kernel (async write-protect).
    fn arm_with_free(&self, free: FreeRuns<'_>) -> Result<()> {
        let _ = free;
        self.arm()
    }

    /// [`arm_with_free`](Self::arm_with_free), also told `young`: the runs of pages
    /// allocated into since the last arm (address ranges, page-aligned, sorted). A page
    /// tracker whose record is its own (`uffd-wp`, `uffd-wp-sigbus`, `mprotect`) leaves
    /// the long runs among them (1 MiB or more, as for free runs) writable and
    /// *recorded*, as a hand-out leaves a page, instead of protecting them: most of what
    /// a program allocated since the last cycle is garbage by the next one (GCBench:
    /// ~11,000 of the 12,500–14,500 pages in use at arm), and a page that holds no marked
    /// object needs no protection, since a write to an object nobody scanned hides
    /// nothing from the mark. [`harvest_marked`](Self::harvest_marked) then
    /// re-protects such a page only once it holds a marked object; until then it stays
    /// recorded, and disarm skips it.
    ///
    /// The contract the caller keeps: as for `arm_with_free`. Leaving a page writable
    /// and recorded is always safe (it is what the frontier rule of
    /// [`hand_out`](Self::hand_out) does); only the cost depends on `young`. Default:
    /// [`arm_with_free`](Self::arm_with_free) (`uffd-wp-async` too: `uffd_wp_async.rs`
    /// says what keeping cost it).
    fn arm_with_young(&self, free: FreeRuns<'_>, young: &[Range<usize>]) -> Result<()> {
        let _ = young;
        self.arm_with_free(free)
    }

    /// Moves the recorded granules into `out` (cleared first), re-arming them if `rearm`.
    fn harvest(&self, out: &mut DirtySet, rearm: bool) -> Result<()>;

    /// [`harvest`](Self::harvest), told which pages hold a marked object (`marked`, by
    /// page address). IF a page [`arm_with_young`](Self::arm_with_young) left writable
    /// holds no marked object THEN the tracker may leave it out of `out`, unprotected,
    /// and keep it recorded: no object on it has been scanned, so no write to it can have
    /// hidden a pointer from the mark yet, and every later harvest (remark's included)
    /// asks again, so an object marked on it later is rescanned after the writes it gets
    /// before remark. The caller keeps: `marked` is true for every page holding an object
    /// marked before the call (allocated black included); it may say true for more.
    /// Default: [`harvest`](Self::harvest).
    fn harvest_marked(&self, out: &mut DirtySet, rearm: bool, marked: Marked<'_>) -> Result<()> {
        let _ = marked;
        self.harvest(out, rearm)
    }

    /// A step of the disarm, ahead of the sweep: when this returns, the heap's first
    /// `bytes` are writable (the sweep zeroes the dead cells there next). Recording may go
    /// on until [`disarm`](Self::disarm): nothing after remark reads the record, and a
    /// page tracker keeps making the pages it hands out writable, so that a mutator given
    /// a page the steps have not reached takes no fault.
    ///
    /// Why in steps: the mutators may be waiting for the sweep to give room back, and a
    /// page tracker's unprotect of the whole heap takes milliseconds (GCBench at 64 MiB:
    /// ~2 ms per cycle under `uffd-wp`). While they wait, the collector steps a chunk of
    /// the sweep (1,024 pages) at a time, so that the first room comes back after one
    /// chunk's unprotect; while one runs, it takes the rest in one step, since a write to
    /// a page still protected after remark faults for nothing.
    ///
    /// The contract the caller keeps: the steps come from one thread, in increasing
    /// `bytes`, between remark and [`disarm`](Self::disarm). A failure degrades the cycle,
    /// as a failed disarm does. Default: nothing, for a tracker whose pages are always
    /// writable (a software barrier).
    fn disarm_ahead(&self, _bytes: usize) -> Result<()> {
        Ok(())
    }

    /// Stops recording; a page tracker makes writable what the steps of
    /// [`disarm_ahead`](Self::disarm_ahead) did not reach (all of the heap without them).
    fn disarm(&self) -> Result<()>;

    /// The allocator is about to hand the page-aligned range `[start, start + len)` of
    /// the heap to a mutator: a fresh page, a page from a size class's list, a large
    /// object's span, or pages it is about to zero.
    ///
    /// The frontier rule: IF a page is handed out while the tracker is armed THEN, when
    /// this returns, the page is in the dirty set (the next harvest reports it, so remark
    /// rescans it: a black new object can receive the only pointer to a white one) and
    /// writable, so that the mutator's first writes to new objects take no fault. It may
    /// over-approximate (the range may hold pages that will never be written). Not armed:
    /// nothing to do. It cannot fail: a protection change that fails degrades the cycle
    /// to "everything dirty", and a page left protected still faults and is recorded.
    /// Runs on the allocating mutator's thread, concurrently with harvests.
    ///
    /// This is bdwgc's `GC_remove_protection`, which unprotects a block and marks it dirty
    /// in one call when it is handed to the allocator. Default: nothing, for a tracker
    /// that records the first write to a new object's page as cheaply as any other: a
    /// software barrier, and async write-protect, whose first write to a protected page
    /// is resolved and recorded by the kernel in under a microsecond, less than the TLB
    /// flush an unprotect would cost (see `uffd_wp_async.rs`). For them the rule holds
    /// at the first write instead.
    fn hand_out(&self, _start: usize, _len: usize) {}

    /// [`hand_out`](DirtyTracker::hand_out) of `[start, start + len)`, from the pool's
    /// free pages, and the allocator will hand out the free pages of
    /// `[start + len, start + len + ahead)` next: a tracker may make those writable in
    /// the same protection change without recording them ("open" them), because nothing
    /// writes a free page; handing out an open page later then only records it.
    ///
    /// The contract the caller keeps: IF a page is in the `ahead` range THEN no other
    /// hand-out takes it until this call has returned, and nothing writes it until it
    /// has been handed out (the heap calls this under its pool's lock). Otherwise the
    /// open could land after another hand-out recorded the page and a harvest took that
    /// record and protected it again: a page in use, writable and unrecorded, whose
    /// writes no harvest reports (`page_tracker/record/model.rs` shows it). Default: a
    /// hand-out of the whole range, which over-approximates and is always safe.
    fn hand_out_and_open(&self, start: usize, len: usize, ahead: usize) {
        self.hand_out(start, len + ahead);
    }

    /// The heap reports that it has used only `[base, base + bytes)` so far (its high
    /// water mark, which never shrinks): granules beyond cannot have been written, and a
    /// tracker may skip them in arm and harvest, so that their cost follows the pages in
    /// use rather than the reservation. The collector reports before every arm and
    /// harvest. Default: ignored (the page trackers' costs already follow populated
    /// pages).
    fn in_use(&self, _bytes: usize) {}

    /// The fault service this tracker needs from the collector thread, if no thread of
    /// its own serves its faults (`uffd-wp` in the collector layout). Default: none.
    fn fault_service(&self) -> Option<FaultService<'_>> {
        None
    }

    /// The counters so far.
    fn stats(&self) -> TrackerStats;

    /// Moves the fault stalls measured since the last call into `out`, as
    /// `(start, duration)` in `CLOCK_MONOTONIC` nanoseconds; how each mechanism measures
    /// them is [`TrackerStats::stall_method`]. Default: none measured.
    fn take_stalls(&self, _out: &mut Vec<(u64, u64)>) {}

    /// The mutator-side store path this tracker needs.
    fn store_barrier(&self) -> DynBarrier {
        DynBarrier::None
    }

    /// What the tracker holds about the page at `addr` right now (recorded, kept, open,
    /// handed out), for the verifier's report of a violation on it. Default: nothing.
    fn describe_page(&self, _addr: usize) -> Option<String> {
        None
    }

    /// Lab internals: the tracker's fault-injection and race-widening knobs, for tests
    /// (the page trackers have them). Never set in a measurement. Only with the
    /// `lab-internals` feature.
    #[cfg(feature = "lab-internals")]
    fn test_knobs(&self) -> Option<&TestKnobs> {
        None
    }
}

/// What a mechanism's constructor returns: its tracker, or `None` for no barrier.
pub(crate) type Built = Result<Option<Box<dyn DirtyTracker>>>;

/// A constructor's tracker, boxed.
fn built<T: DirtyTracker + 'static>(tracker: Result<T>) -> Built {
    Ok(Some(Box::new(tracker?)))
}

/// Builds the tracker `config` names over the heap `[base, base + len)` (`None` for
/// [`BarrierKind::None`]), after the probe's [`check_cached`] says the mechanism works
/// here; fails with [`Error::Unavailable`] and the check's error where it does not.
pub fn build(
    config: &BarrierConfig,
    base: usize,
    len: usize,
) -> Result<Option<Box<dyn DirtyTracker>>> {
    config.require_available()?;
    config.construct(base, len)
}

#[cfg(test)]
mod tests;
