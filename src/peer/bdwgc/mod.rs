//! The Boehm–Demers–Weiser collector (bdwgc), loaded at run time from `libgc.so.1`, and
//! GCBench and binary trees written over its allocator.
//!
//! [`Bdwgc`] is a small handle on the C library: [`Bdwgc::load`] opens it with `dlopen`
//! (through `libloading`) and resolves the entry points barrierlab uses, so barrierlab has
//! no build-time dependency on bdwgc and builds and tests without it. Without the library,
//! `load` returns [`Error::Unavailable`] naming the package to install and the `dlopen`
//! message. The environment variable `BARRIERLAB_LIBGC` ([`Bdwgc::LIBRARY_ENV`]) names
//! another file or soname to load instead of `libgc.so.1` (a bdwgc built by hand, or a
//! path that does not exist, to test the error).
//!
//! The handle is also a library API for allocation cost in-process (the benches set
//! `GC_malloc` beside barrierlab's allocator): `load`, [`Bdwgc::init`], [`Bdwgc::malloc`],
//! [`Bdwgc::malloc_atomic`], [`Bdwgc::gcollect`], [`Bdwgc::gc_no`], [`Bdwgc::version`],
//! [`Bdwgc::heap_size`]. In-process use must stay that small: the settings that install
//! signal handlers (incremental mode) are private to [`run`], which runs in a child
//! process of its own (see [`crate::peer`] for why).
//!
//! # Conservative roots, and why the Rust workloads are sound over them
//! bdwgc finds roots by scanning, conservatively, the stack and registers of each thread it
//! knows (the one that called `GC_init` here), static data, and the objects it allocated
//! with `GC_malloc`. GCBench keeps its pointers in plain locals, as the C GCBench does,
//! with no root stack, and so does binary trees (its tree's root, the nodes of a walk, the
//! subtree being built). That is sound because:
//! 1. every call into bdwgc goes through a function pointer resolved with `dlsym`, carrying
//!    no attributes, so the compiler must assume the callee reads and writes any memory
//!    reachable from the pointers it returned: a store into a node is done before the next
//!    allocation, never sunk past it;
//! 2. a pointer that is used after an allocation must survive the call, so it lives across
//!    it in a callee-saved register or a stack slot — bdwgc pushes the callee-saved
//!    registers onto the stack before it scans it, so either place is seen;
//! 3. the compiler does not disguise pointers (no XOR, no compression); what it may keep
//!    instead of a node's address is the address of one of its fields, an interior
//!    pointer, which bdwgc recognises (`GC_all_interior_pointers`, on in distribution
//!    builds);
//! 4. no pointer is stored in memory bdwgc does not scan (Rust's allocator) while anything
//!    is allocated from bdwgc (binary trees' final count keeps node pointers on a Rust
//!    vector, but allocates nothing from bdwgc meanwhile, so no collection runs); the
//!    pause-event log is kept there on purpose, so that its timestamps cost no scanning
//!    and are never mistaken for pointers.
//!
//! A pointer that is dead (never used again) may vanish from the stack; its object may
//! then be freed, which is right.
//!
//! # Pause events
//! The collection-event callback (`on_collection_event`) runs inside the collector with
//! its allocation lock held and, between the world-stop events, with every other thread it
//! knows suspended at an arbitrary instruction (possibly holding `malloc`'s lock). So it
//! must not allocate, lock, or panic: it reads `CLOCK_MONOTONIC` and stores the event and
//! the time into a log allocated before the run.

use std::ffi::{c_int, c_uint, c_void};

use libloading::os::unix::Library;

use crate::error::{Error, Result};

mod binary_trees;
mod events;
mod gcbench;
mod run;

pub use run::run;

/// `GC_word` is `unsigned long`: pointer-sized on Linux.
type GcWord = usize;
/// `GC_on_collection_event_proc`; `GC_EventType` is a C enum, passed as an `int`.
type EventProc = extern "C" fn(c_int);

/// `GC_EventType` values, from bdwgc 8.2's `gc.h` (an enum counted from 0).
mod event {
    /// `GC_EVENT_START`: a stop-the-world collection begins.
    pub const START: u32 = 0;
    /// `GC_EVENT_END`: it has ended.
    pub const END: u32 = 5;
    /// `GC_EVENT_PRE_STOP_WORLD`: about to stop the world (threaded builds only).
    pub const PRE_STOP_WORLD: u32 = 6;
    /// `GC_EVENT_POST_START_WORLD`: the world runs again (threaded builds only).
    pub const POST_START_WORLD: u32 = 9;
}

/// `GC_TIME_UNLIMITED` from `gc.h`: no time limit on a stopped mark.
const TIME_UNLIMITED: std::ffi::c_ulong = 999_999;
/// `GC_PROTECTS_POINTER_HEAP` from `gc.h`: incremental mode write-protects heap pages.
const PROTECTS_POINTER_HEAP: c_int = 1;

/// The `GC_VDB_*` bits `GC_get_actual_vdb` returns (bdwgc 8.4 and later), and the names
/// barrierlab prints for them.
const ACTUAL_VDB: [(c_uint, &str); 6] = [
    (0x1, "mprotect"),
    (0x2, "manual"),
    (0x4, "default-all-dirty"),
    (0x8, "gww"),
    (0x20, "proc"),
    (0x40, "soft-dirty"),
];

/// The bdwgc entry points barrierlab uses, resolved from a loaded `libgc`.
pub struct Bdwgc {
    file: String,
    init: unsafe extern "C" fn(),
    malloc: unsafe extern "C" fn(usize) -> *mut c_void,
    malloc_atomic: unsafe extern "C" fn(usize) -> *mut c_void,
    gcollect: unsafe extern "C" fn(),
    get_gc_no: unsafe extern "C" fn() -> GcWord,
    get_heap_size: unsafe extern "C" fn() -> usize,
    set_max_heap_size: unsafe extern "C" fn(GcWord),
    expand_hp: unsafe extern "C" fn(usize) -> c_int,
    enable_incremental: unsafe extern "C" fn(),
    is_incremental_mode: unsafe extern "C" fn() -> c_int,
    incremental_protection_needs: unsafe extern "C" fn() -> c_int,
    set_on_collection_event: unsafe extern "C" fn(Option<EventProc>),
    get_version: Option<unsafe extern "C" fn() -> c_uint>,
    get_time_limit: Option<unsafe extern "C" fn() -> std::ffi::c_ulong>,
    get_parallel: Option<unsafe extern "C" fn() -> c_int>,
    get_total_bytes: unsafe extern "C" fn() -> usize,
    set_start_callback: unsafe extern "C" fn(Option<extern "C" fn()>),
    get_full_freq: Option<unsafe extern "C" fn() -> c_int>,
    get_free_space_divisor: Option<unsafe extern "C" fn() -> GcWord>,
    get_actual_vdb: Option<unsafe extern "C" fn() -> c_uint>,
    /// Keeps the library mapped. It is opened with `RTLD_NODELETE`, so even dropping the
    /// last handle never unmaps code that bdwgc's signal handlers may still point to.
    _lib: Library,
}

impl std::fmt::Debug for Bdwgc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bdwgc")
            .field("file", &self.file)
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

/// What to tell someone who lacks the library.
const INSTALL_HINT: &str = "install bdwgc's shared library: `apt-get install libgc1` on \
     Debian/Ubuntu (`dnf install gc` on Fedora, `pacman -S gc` on Arch, `apk add gc` on \
     Alpine)";

impl Bdwgc {
    /// The soname loaded by default.
    pub const DEFAULT_LIBRARY: &'static str = "libgc.so.1";

    /// The environment variable that names another file or soname to load.
    pub const LIBRARY_ENV: &'static str = "BARRIERLAB_LIBGC";

    /// Loads `$BARRIERLAB_LIBGC`, or `libgc.so.1`, and resolves its entry points. Does not
    /// start the collector ([`Bdwgc::init`] does).
    pub fn load() -> Result<Bdwgc> {
        let file = std::env::var(Self::LIBRARY_ENV)
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| Self::DEFAULT_LIBRARY.to_string());
        Self::load_from(&file)
    }

    /// Loads bdwgc from `file` (a soname searched the `dlopen(3)` way, or a path).
    pub fn load_from(file: &str) -> Result<Bdwgc> {
        // SAFETY: opening runs the library's ELF initialisers; libgc's only set up the C
        // runtime (the collector starts in GC_init, not at load time). RTLD_NODELETE keeps
        // it mapped for the life of the process (see `_lib`).
        let lib = unsafe {
            Library::open(
                Some(file),
                libc::RTLD_NOW | libc::RTLD_LOCAL | libc::RTLD_NODELETE,
            )
        }
        .map_err(|e| Error::Unavailable {
            mechanism: "bdwgc",
            causes: vec![Error::io(
                format!("load `{file}` ({INSTALL_HINT})"),
                std::io::Error::other(e),
            )],
        })?;
        let missing = |name: &str, e: libloading::Error| Error::Unavailable {
            mechanism: "bdwgc",
            causes: vec![Error::io(
                format!(
                    "find `{name}` in `{file}` (not bdwgc, or a version older than 7.6; \
                     {INSTALL_HINT})"
                ),
                std::io::Error::other(e),
            )],
        };
        macro_rules! required {
            ($name:literal) => {
                // SAFETY: the field's type is the symbol's C signature in bdwgc 8.2's gc.h.
                match unsafe { lib.get($name.as_bytes()) } {
                    Ok(s) => *s,
                    Err(e) => return Err(missing($name, e)),
                }
            };
        }
        macro_rules! optional {
            ($name:literal) => {
                // SAFETY: as for `required!`.
                unsafe { lib.get($name.as_bytes()) }.ok().map(|s| *s)
            };
        }
        Ok(Bdwgc {
            file: file.to_string(),
            init: required!("GC_init"),
            malloc: required!("GC_malloc"),
            malloc_atomic: required!("GC_malloc_atomic"),
            gcollect: required!("GC_gcollect"),
            get_gc_no: required!("GC_get_gc_no"),
            get_heap_size: required!("GC_get_heap_size"),
            set_max_heap_size: required!("GC_set_max_heap_size"),
            expand_hp: required!("GC_expand_hp"),
            enable_incremental: required!("GC_enable_incremental"),
            is_incremental_mode: required!("GC_is_incremental_mode"),
            incremental_protection_needs: required!("GC_incremental_protection_needs"),
            set_on_collection_event: required!("GC_set_on_collection_event"),
            get_version: optional!("GC_get_version"),
            get_time_limit: optional!("GC_get_time_limit"),
            get_parallel: optional!("GC_get_parallel"),
            get_total_bytes: required!("GC_get_total_bytes"),
            set_start_callback: required!("GC_set_start_callback"),
            get_full_freq: optional!("GC_get_full_freq"),
            get_free_space_divisor: optional!("GC_get_free_space_divisor"),
            get_actual_vdb: optional!("GC_get_actual_vdb"),
            _lib: lib,
        })
    }

    /// The file or soname that was loaded.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Starts the collector (`GC_init`); later calls do nothing. Call it on the thread
    /// that will allocate: that thread's stack is the one bdwgc scans, and in a process
    /// with other threads, only the calling thread is known to it.
    pub fn init(&self) {
        // SAFETY: GC_init has no preconditions and is idempotent.
        unsafe { (self.init)() }
    }

    /// `GC_malloc`: `bytes` of zeroed memory, scanned for pointers; null when the heap is
    /// exhausted even after a collection. It may run a collection first.
    ///
    /// # Safety
    /// Call it on the thread that called [`Bdwgc::init`]. The object stays allocated only
    /// while a pointer to it (to its start or inside it) is visible where bdwgc looks: that
    /// thread's stack and registers, static data, other objects from `GC_malloc`. A pointer
    /// kept only in memory from Rust's allocator does not keep it alive, so the object may
    /// be freed and reused under it.
    pub unsafe fn malloc(&self, bytes: usize) -> *mut u8 {
        // SAFETY: the caller is on the initialising thread; GC_malloc has no other
        // precondition.
        unsafe { (self.malloc)(bytes).cast() }
    }

    /// `GC_malloc_atomic`: `bytes` the collector never scans (for data without
    /// pointers), not zeroed; null when the heap is exhausted.
    ///
    /// # Safety
    /// As for [`Bdwgc::malloc`]; and pointers stored in the object keep nothing alive.
    pub unsafe fn malloc_atomic(&self, bytes: usize) -> *mut u8 {
        // SAFETY: as in `malloc`.
        unsafe { (self.malloc_atomic)(bytes).cast() }
    }

    /// A full collection now (`GC_gcollect`). Call it on the thread that called
    /// [`Bdwgc::init`] (bdwgc aborts a collection from a thread it does not know).
    pub fn gcollect(&self) {
        // SAFETY: GC_gcollect initialises the collector if need be and has no other
        // precondition; what it frees is, by the contract of `malloc`, unreachable.
        unsafe { (self.gcollect)() }
    }

    /// Collections completed so far (`GC_get_gc_no`; start-up may count some).
    pub fn gc_no(&self) -> u64 {
        // SAFETY: a plain read of a counter; no precondition.
        unsafe { (self.get_gc_no)() as u64 }
    }

    /// The library's version, `major.minor.micro`, if it exports `GC_get_version`.
    pub fn version(&self) -> Option<String> {
        // SAFETY: GC_get_version returns a constant; no precondition.
        let v = unsafe { (self.get_version?)() };
        Some(format!("{}.{}.{}", v >> 16, (v >> 8) & 0xff, v & 0xff))
    }

    /// The collector's heap size in bytes (`GC_get_heap_size`).
    pub fn heap_size(&self) -> usize {
        // SAFETY: an unsynchronised read of a size; no precondition.
        unsafe { (self.get_heap_size)() }
    }

    /// Caps the heap at `bytes` (`GC_set_max_heap_size`); beyond it allocation fails.
    fn set_max_heap_size(&self, bytes: usize) {
        // SAFETY: an unsynchronised setter, called before any other thread could use it.
        unsafe { (self.set_max_heap_size)(bytes) }
    }

    /// Grows the heap by `bytes` now (`GC_expand_hp`); false when bdwgc refuses.
    fn expand_hp(&self, bytes: usize) -> bool {
        // SAFETY: GC_expand_hp takes the allocation lock itself; no precondition.
        unsafe { (self.expand_hp)(bytes) != 0 }
    }

    /// Turns on incremental (or generational) collection with virtual dirty bits; with
    /// `mprotect` dirty bits this installs bdwgc's SIGSEGV handler.
    fn enable_incremental(&self) {
        // SAFETY: allowed before or after GC_init; it is called only in the child process,
        // which has no other SIGSEGV user.
        unsafe { (self.enable_incremental)() }
    }

    fn is_incremental_mode(&self) -> bool {
        // SAFETY: a plain read of a flag; no precondition.
        unsafe { (self.is_incremental_mode)() != 0 }
    }

    /// Which dirty-bit mechanism incremental mode runs with, and how that was found out:
    /// `GC_get_actual_vdb` where the library has it (bdwgc 8.4 and later), else from what
    /// `GC_incremental_protection_needs` says it write-protects. bdwgc 8.2 on Linux runs
    /// either soft-dirty PTEs, which protect nothing, or `mprotect` (`GC_dirty_init` tries
    /// them in that order), so "protects nothing" is read as soft-dirty there.
    fn vdb(&self) -> (String, &'static str) {
        if !self.is_incremental_mode() {
            return ("none".into(), "mode");
        }
        if let Some(actual) = self.get_actual_vdb {
            // SAFETY: a plain read of the configuration; no precondition.
            let bits = unsafe { actual() };
            let names: Vec<&str> = ACTUAL_VDB
                .iter()
                .filter(|(bit, _)| bits & bit != 0)
                .map(|(_, name)| *name)
                .collect();
            let vdb = if names.is_empty() {
                format!("unknown-{bits:#x}")
            } else {
                names.join("+")
            };
            return (vdb, "actual_vdb");
        }
        let vdb = if self.protection_needs() & PROTECTS_POINTER_HEAP != 0 {
            "mprotect"
        } else {
            "soft-dirty"
        };
        (vdb.into(), "protection_needs")
    }

    /// `GC_incremental_protection_needs`: the `GC_PROTECTS_*` bits (1: pointer-containing
    /// heap pages, 2: pointer-free ones too) incremental mode write-protects.
    fn protection_needs(&self) -> c_int {
        // SAFETY: called after GC_init (which `run` does first), as gc.h requires.
        unsafe { (self.incremental_protection_needs)() }
    }

    /// `GC_get_full_freq`: partial collections between two full ones in incremental mode.
    fn full_freq(&self) -> Option<c_int> {
        // SAFETY: an unsynchronised read of a setting; no precondition.
        Some(unsafe { (self.get_full_freq?)() })
    }

    fn free_space_divisor(&self) -> Option<GcWord> {
        // SAFETY: an unsynchronised read of a setting; no precondition.
        Some(unsafe { (self.get_free_space_divisor?)() })
    }

    /// Bytes bdwgc has handed out since it started (`GC_get_total_bytes`). With
    /// thread-local allocation it counts a free list when it fills it, so the count
    /// moves in steps of a free list's bytes, not of an object's.
    fn total_bytes(&self) -> u64 {
        // SAFETY: an unsynchronised read of counters; no precondition.
        unsafe { (self.get_total_bytes)() as u64 }
    }

    /// The file the dynamic loader mapped for this library (`dladdr` of `GC_init`), or the
    /// name it was opened by if the loader does not say.
    fn loaded_path(&self) -> String {
        let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
        // SAFETY: dladdr only reads the loader's tables and writes `info`; the address is
        // a function of the library, which stays mapped (RTLD_NODELETE).
        let found = unsafe { libc::dladdr(self.init as *const c_void, info.as_mut_ptr()) };
        // SAFETY: zero-initialised, and filled in by dladdr when it returns non-zero.
        let info = unsafe { info.assume_init() };
        if found == 0 || info.dli_fname.is_null() {
            return self.file.clone();
        }
        // SAFETY: dli_fname is a NUL-terminated string in the loader's link map, alive
        // while the library is loaded, which is for the rest of the process.
        unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }
            .to_string_lossy()
            .into_owned()
    }

    fn time_limit(&self) -> Option<String> {
        // SAFETY: an unsynchronised read of a setting; no precondition.
        let ms = unsafe { (self.get_time_limit?)() };
        Some(if ms == TIME_UNLIMITED {
            "unlimited".into()
        } else {
            format!("{ms}ms")
        })
    }

    /// Threads that mark (the initiating one plus parallel markers), if the build says.
    fn markers(&self) -> Option<i32> {
        // SAFETY: a plain read of a setting; no precondition.
        Some(unsafe { (self.get_parallel?)() } + 1)
    }

    fn set_on_collection_event(&self, proc_: Option<EventProc>) {
        // SAFETY: the setter takes the allocation lock, so when it returns no call of the
        // previous callback is in flight.
        unsafe { (self.set_on_collection_event)(proc_) }
    }

    fn set_start_callback(&self, proc_: Option<extern "C" fn()>) {
        // SAFETY: as for `set_on_collection_event` (gc_mark.h: the setter takes the lock).
        unsafe { (self.set_start_callback)(proc_) }
    }
}

#[cfg(test)]
mod tests {
    use super::events::pauses_from_events;
    use super::*;
    use crate::peer::PauseSource;
    use std::time::Duration;

    fn ms(n: u64) -> u64 {
        n * 1_000_000
    }

    #[test]
    fn pauses_are_world_stop_brackets_when_they_fire() {
        use event::*;
        let events = [
            (START, ms(1)),
            (PRE_STOP_WORLD, ms(2)),
            (7, ms(3)), // POST_STOP_WORLD
            (8, ms(4)), // PRE_START_WORLD
            (POST_START_WORLD, ms(5)),
            (END, ms(9)),
            (PRE_STOP_WORLD, ms(20)),
            (POST_START_WORLD, ms(21)),
        ];
        let (source, pauses) = pauses_from_events(&events);
        assert_eq!(source, PauseSource::WorldStop);
        assert_eq!(pauses, [Duration::from_millis(3), Duration::from_millis(1)]);
    }

    #[test]
    fn pauses_fall_back_to_whole_collections() {
        let events = [(event::START, ms(1)), (2, ms(2)), (event::END, ms(4))];
        let (source, pauses) = pauses_from_events(&events);
        assert_eq!(source, PauseSource::Collection);
        assert_eq!(pauses, [Duration::from_millis(3)]);
        assert_eq!(pauses_from_events(&[]), (PauseSource::None, vec![]));
    }

    #[test]
    fn a_missing_library_names_the_package_and_the_dlopen_message() {
        let e = Bdwgc::load_from("/nonexistent/libgc.so.1").unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Unavailable { .. }), "{msg}");
        assert!(msg.contains("apt-get install libgc1"), "{msg}");
        assert!(msg.contains("/nonexistent/libgc.so.1"), "{msg}");
        assert!(msg.contains("No such file"), "{msg}");
    }
}
