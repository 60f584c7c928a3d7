//! The capability probe: which write-barrier mechanisms this kernel offers, and exactly
//! why the others are missing.
//!
//! Every check is done for real on a small scratch mapping (a fault is provoked and
//! served, a scan finds the written page, a soft-dirty bit is looked for after a write):
//! a feature bit that is granted but does not work is reported as not working. Nothing
//! here falls back silently; the trackers call [`Probe::require`] and fail with the
//! probe's reason.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::sys::PAGE_SIZE;
use crate::sys::kernel;
use crate::sys::mem::{Protection, Region};
use crate::sys::pagemap::{Pagemap, ScanRequest};
use crate::sys::uffd::{Event, Features, PageFaultFlags, RegisterMode, Uffd, WpMode};

/// The mechanisms the probe knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// Software card marking: needs nothing from the kernel.
    CardTable,
    /// userfaultfd write-protect, faults served by a thread.
    UffdWp,
    /// userfaultfd async write-protect with `PAGEMAP_SCAN`.
    UffdWpAsync,
    /// userfaultfd write-protect with `UFFD_FEATURE_SIGBUS`.
    UffdWpSigbus,
    /// `mprotect` + SIGSEGV.
    Mprotect,
    /// `/proc/self/clear_refs` + pagemap bit 55.
    SoftDirty,
}

impl Mechanism {
    /// Every mechanism, in report order.
    pub const ALL: [Mechanism; 6] = [
        Mechanism::CardTable,
        Mechanism::UffdWp,
        Mechanism::UffdWpAsync,
        Mechanism::UffdWpSigbus,
        Mechanism::Mprotect,
        Mechanism::SoftDirty,
    ];

    /// The name used in reports (the `BarrierKind` name where there is one).
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::CardTable => "card-table",
            Mechanism::UffdWp => "uffd-wp",
            Mechanism::UffdWpAsync => "uffd-wp-async",
            Mechanism::UffdWpSigbus => "uffd-wp-sigbus",
            Mechanism::Mprotect => "mprotect",
            Mechanism::SoftDirty => "soft-dirty",
        }
    }
}

/// Whether a mechanism can be used, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// It works; the note says how (e.g. which userfaultfd mode).
    Available(String),
    /// It does not; the reason names the errno or missing feature and what to change.
    Unavailable(String),
}

impl Availability {
    /// True for [`Availability::Available`].
    pub fn is_available(&self) -> bool {
        matches!(self, Availability::Available(_))
    }
}

/// How userfaultfd can be opened by this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UffdAccess {
    /// Full mode (kernel-mode faults reported too): `Ok(origin)` or the error.
    pub full: std::result::Result<String, String>,
    /// `UFFD_USER_MODE_ONLY`.
    pub user_mode_only: std::result::Result<String, String>,
    /// Features the kernel grants (from a handshake asking for none).
    pub features: Option<Features>,
}

/// The probe's report.
#[derive(Debug, Clone)]
pub struct Probe {
    /// `uname -r`.
    pub kernel: String,
    /// Transparent huge page mode.
    pub thp: String,
    /// CPU model.
    pub cpu: String,
    /// Online CPUs.
    pub cpus: usize,
    /// Running under a hypervisor.
    pub virtual_machine: bool,
    /// `vm.unprivileged_userfaultfd`.
    pub unprivileged_userfaultfd: Option<String>,
    /// `vm.max_map_count`.
    pub max_map_count: Option<String>,
    /// How userfaultfd opens.
    pub uffd: UffdAccess,
    /// Per mechanism.
    pub mechanisms: Vec<(Mechanism, Availability)>,
}

impl Probe {
    /// Runs every check. Takes a few milliseconds.
    pub fn run() -> Probe {
        let uffd = probe_access();
        let user_mode_only = uffd.full.is_err() && uffd.user_mode_only.is_ok();
        let mechanisms = Mechanism::ALL
            .iter()
            .map(|&m| (m, check(m, user_mode_only)))
            .collect();
        Probe {
            kernel: kernel::release(),
            thp: kernel::thp_mode(),
            cpu: kernel::cpu_model(),
            cpus: kernel::online_cpus(),
            virtual_machine: kernel::is_virtual_machine(),
            unprivileged_userfaultfd: kernel::sysctl("vm/unprivileged_userfaultfd"),
            max_map_count: kernel::sysctl("vm/max_map_count"),
            uffd,
            mechanisms,
        }
    }

    /// The availability of one mechanism.
    pub fn get(&self, m: Mechanism) -> &Availability {
        &self
            .mechanisms
            .iter()
            .find(|(k, _)| *k == m)
            .expect("every mechanism is probed")
            .1
    }

    /// `Ok` if `m` is available, else [`Error::Unavailable`] with the probe's reason.
    pub fn require(&self, m: Mechanism) -> Result<()> {
        match self.get(m) {
            Availability::Available(_) => Ok(()),
            Availability::Unavailable(reason) => Err(Error::Unavailable {
                mechanism: m.name(),
                reason: reason.clone(),
            }),
        }
    }
}

/// The result of [`check`] for `m`, computed once per process and mode. With
/// `user_mode_only == false`, a mechanism that needs userfaultfd is also accepted in
/// `UFFD_USER_MODE_ONLY` mode (the trackers fall back to it and report so).
pub fn check_cached(m: Mechanism, user_mode_only: bool) -> Result<()> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<(Mechanism, bool), Availability>>> = OnceLock::new();
    let lookup = |umo: bool| {
        let mut cache = CACHE
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        cache
            .entry((m, umo))
            .or_insert_with(|| check(m, umo))
            .clone()
    };
    let mut result = lookup(user_mode_only);
    if !result.is_available()
        && !user_mode_only
        && m != Mechanism::Mprotect
        && m != Mechanism::CardTable
    {
        if let Availability::Available(note) = lookup(true) {
            result = Availability::Available(note);
        }
    }
    match result {
        Availability::Available(_) => Ok(()),
        Availability::Unavailable(reason) => Err(Error::Unavailable {
            mechanism: m.name(),
            reason,
        }),
    }
}

/// Checks one mechanism (in user-mode-only userfaultfd mode if `user_mode_only`).
pub fn check(m: Mechanism, user_mode_only: bool) -> Availability {
    let result = match m {
        Mechanism::CardTable => Ok("software only: a byte store per reference store".into()),
        Mechanism::UffdWp => check_uffd_wp(user_mode_only),
        Mechanism::UffdWpAsync => check_uffd_wp_async(user_mode_only),
        Mechanism::UffdWpSigbus => check_uffd_wp_sigbus(user_mode_only),
        Mechanism::Mprotect => check_mprotect(),
        Mechanism::SoftDirty => check_soft_dirty(),
    };
    match result {
        Ok(note) => Availability::Available(note),
        Err(reason) => Availability::Unavailable(reason),
    }
}

fn probe_access() -> UffdAccess {
    let open = |umo: bool| {
        Uffd::builder()
            .user_mode_only(umo)
            .create()
            .map(|u| (format!("{:?}", u.origin()), u.features()))
            .map_err(|e| e.to_string())
    };
    let full = open(false);
    let umo = open(true);
    let features = full.as_ref().ok().or(umo.as_ref().ok()).map(|(_, f)| *f);
    UffdAccess {
        full: full.map(|(o, _)| o),
        user_mode_only: umo.map(|(o, _)| o),
        features,
    }
}

fn mode_note(uffd: &Uffd) -> String {
    format!(
        "via {:?}{}",
        uffd.origin(),
        if uffd.user_mode_only() {
            ", UFFD_USER_MODE_ONLY"
        } else {
            ""
        }
    )
}

fn open(
    features: Features,
    user_mode_only: bool,
    nonblocking: bool,
) -> std::result::Result<Uffd, String> {
    Uffd::builder()
        .features(features)
        .user_mode_only(user_mode_only)
        .nonblocking(nonblocking)
        .create()
        .map_err(|e| e.to_string())
}

/// Protects a page, writes it from another thread, serves the fault, checks the write.
fn check_uffd_wp(umo: bool) -> std::result::Result<String, String> {
    let uffd = open(Features::PAGEFAULT_FLAG_WP, umo, true)?;
    let region = Region::new(PAGE_SIZE).map_err(|e| e.to_string())?;
    let base = region.base();
    // SAFETY: populate the page so that write-protect applies to a present PTE.
    unsafe { (base as *mut u8).write_volatile(1) };
    uffd.register(base, PAGE_SIZE, RegisterMode::WP)
        .map_err(|e| e.to_string())?;
    uffd.write_protect(base, PAGE_SIZE)
        .map_err(|e| e.to_string())?;
    let writer = std::thread::spawn(move || {
        // SAFETY: the page stays mapped until the thread is joined below.
        unsafe { (base as *mut u8).write_volatile(2) };
    });
    let mut buf = [Default::default(); 4];
    let served = (|| -> std::result::Result<(), String> {
        if !uffd
            .poll_readable(FAULT_CHECK_TIMEOUT.as_millis() as i32)
            .map_err(|e| e.to_string())?
        {
            return Err("no write-protect fault message arrived within 2 s".into());
        }
        let events = uffd.read_events(&mut buf).map_err(|e| e.to_string())?;
        match events.first() {
            Some(Event::PageFault { flags, .. }) if flags.contains(PageFaultFlags::WP) => Ok(()),
            other => Err(format!("unexpected userfaultfd message {other:?}")),
        }
    })();
    // Always release the writer, even if the check failed.
    let _ = uffd.write_unprotect(base, PAGE_SIZE, WpMode::empty());
    writer
        .join()
        .map_err(|_| "writer thread panicked".to_string())?;
    served?;
    // SAFETY: still mapped; the writer is done.
    let v = unsafe { (base as *const u8).read_volatile() };
    if v != 2 {
        return Err(format!(
            "the write did not land after the fault was served (read {v})"
        ));
    }
    Ok(mode_note(&uffd))
}

fn check_uffd_wp_async(umo: bool) -> std::result::Result<String, String> {
    let uffd = open(
        Features::PAGEFAULT_FLAG_WP | Features::WP_ASYNC | Features::WP_UNPOPULATED,
        umo,
        true,
    )?;
    let region = Region::new(4 * PAGE_SIZE).map_err(|e| e.to_string())?;
    let base = region.base();
    uffd.register(base, region.len(), RegisterMode::WP)
        .map_err(|e| e.to_string())?;
    uffd.write_protect(base, region.len())
        .map_err(|e| e.to_string())?;
    // SAFETY: inside the mapping; async mode resolves the fault in the kernel.
    unsafe { ((base + 2 * PAGE_SIZE) as *mut u8).write_volatile(1) };
    let mut pagemap = Pagemap::open(8).map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    pagemap
        .scan(&ScanRequest::harvest_written(base, region.end()), |s, e| {
            found.push((s, e))
        })
        .map_err(|e| e.to_string())?;
    if found != [(base + 2 * PAGE_SIZE, base + 3 * PAGE_SIZE)] {
        return Err(format!(
            "PAGEMAP_SCAN did not report exactly the written page: {found:x?}"
        ));
    }
    Ok(format!("{}, PAGEMAP_SCAN", mode_note(&uffd)))
}

fn check_uffd_wp_sigbus(umo: bool) -> std::result::Result<String, String> {
    let uffd = open(Features::PAGEFAULT_FLAG_WP | Features::SIGBUS, umo, false)?;
    let region = Region::new(PAGE_SIZE).map_err(|e| e.to_string())?;
    uffd.register(region.base(), PAGE_SIZE, RegisterMode::WP)
        .map_err(|e| e.to_string())?;
    Ok(mode_note(&uffd))
}

fn check_mprotect() -> std::result::Result<String, String> {
    let region = Region::new(2 * PAGE_SIZE).map_err(|e| e.to_string())?;
    region
        .protect(region.base(), PAGE_SIZE, Protection::Read)
        .map_err(|e| e.to_string())?;
    let limit = kernel::sysctl("vm/max_map_count").unwrap_or_else(|| "?".into());
    Ok(format!(
        "SIGSEGV handler; vm.max_map_count={limit} bounds the split mappings"
    ))
}

fn check_soft_dirty() -> std::result::Result<String, String> {
    let config = match kernel::config_option("CONFIG_MEM_SOFT_DIRTY") {
        Some(true) => "CONFIG_MEM_SOFT_DIRTY=y",
        Some(false) => "CONFIG_MEM_SOFT_DIRTY is not set in this kernel's configuration",
        None => "the kernel configuration is not readable here",
    };
    match kernel::check_soft_dirty() {
        Ok(c) if c.works() => Ok(format!(
            "pagemap bit 55 set on {}/{} written pages",
            c.seen_dirty, c.written
        )),
        Ok(c) => Err(format!(
            "after `echo 4 > /proc/self/clear_refs`, {} of {} written pages showed pagemap \
             bit 55 (soft-dirty): the kernel accepts clear_refs but does not track soft-dirty \
             ({config}); a kernel built with CONFIG_MEM_SOFT_DIRTY=y is needed",
            c.seen_dirty, c.written
        )),
        Err(e) => Err(format!("{e} ({config})")),
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "kernel     {}", self.kernel)?;
        writeln!(
            f,
            "machine    {} x {}{}",
            self.cpus,
            self.cpu,
            if self.virtual_machine {
                " (virtual machine)"
            } else {
                ""
            }
        )?;
        writeln!(f, "THP        {}", self.thp)?;
        writeln!(
            f,
            "sysctl     vm.unprivileged_userfaultfd={} vm.max_map_count={}",
            self.unprivileged_userfaultfd.as_deref().unwrap_or("?"),
            self.max_map_count.as_deref().unwrap_or("?")
        )?;
        let show = |r: &std::result::Result<String, String>| match r {
            Ok(origin) => format!("ok ({origin})"),
            Err(e) => format!("refused: {e}"),
        };
        writeln!(f, "userfaultfd full mode       {}", show(&self.uffd.full))?;
        writeln!(
            f,
            "userfaultfd user-mode-only  {}",
            show(&self.uffd.user_mode_only)
        )?;
        if let Some(features) = self.uffd.features {
            writeln!(f, "userfaultfd features        {features:?}")?;
        }
        writeln!(f)?;
        for (m, a) in &self.mechanisms {
            match a {
                Availability::Available(note) => {
                    writeln!(f, "{:<15} available      {note}", m.name())?
                }
                Availability::Unavailable(why) => {
                    writeln!(f, "{:<15} UNAVAILABLE    {why}", m.name())?
                }
            }
        }
        Ok(())
    }
}

/// How long the probe waits for the write-protect fault it provokes.
pub const FAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
