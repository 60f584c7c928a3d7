//! The capability probe: which write-barrier mechanisms this kernel offers, and exactly
//! why the others are missing.
//!
//! For every [`BarrierKind`] it runs the mechanism's check ([`crate::barrier::check`]):
//! the real tracker over a scratch mapping, a write that provokes a fault and must be
//! served and recorded. It also reports how userfaultfd opens (full mode, user-mode-only)
//! and whether soft-dirty works, the classic mechanism barrierlab does not build. Results
//! are typed ([`Availability`], with an [`Error`] as the reason), and a tracker's fallback
//! to user-mode-only userfaultfd is shown, never hidden. Trackers are built only after
//! the same check ([`crate::barrier::build`]).

use std::fmt;

use serde::Serialize;

use crate::barrier::{self, BarrierKind};
use crate::error::{Error, Result};
use crate::sys::kernel;
use crate::sys::uffd::{Features, Origin, Uffd};

pub use crate::barrier::{Availability, FAULT_CHECK_TIMEOUT};

/// How userfaultfd can be opened by this process.
#[derive(Debug, Clone)]
pub struct UffdAccess {
    /// Full mode (kernel-mode faults reported too): how it opened, or why not.
    pub full: Result<Origin>,
    /// `UFFD_USER_MODE_ONLY`: how it opened, or why not.
    pub user_mode_only: Result<Origin>,
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
    /// Every barrier, in [`BarrierKind::ALL`] order.
    pub mechanisms: Vec<(BarrierKind, Availability)>,
    /// Soft-dirty (`/proc/self/clear_refs` + pagemap bit 55): not built as a tracker, but
    /// the probe says whether this kernel could run it.
    pub soft_dirty: Availability,
}

impl Probe {
    /// Runs every check. Takes a few milliseconds.
    pub fn run() -> Probe {
        Probe {
            kernel: kernel::release(),
            thp: kernel::thp_mode(),
            cpu: kernel::cpu_model(),
            cpus: kernel::online_cpus(),
            virtual_machine: kernel::is_virtual_machine(),
            unprivileged_userfaultfd: kernel::sysctl("vm/unprivileged_userfaultfd"),
            max_map_count: kernel::sysctl("vm/max_map_count"),
            uffd: probe_access(),
            mechanisms: BarrierKind::ALL
                .iter()
                .map(|&k| (k, barrier::check(k, false)))
                .collect(),
            soft_dirty: check_soft_dirty(),
        }
    }

    /// The availability of one barrier.
    pub fn get(&self, kind: BarrierKind) -> &Availability {
        &self
            .mechanisms
            .iter()
            .find(|(k, _)| *k == kind)
            .expect("every barrier is probed")
            .1
    }

    /// `Ok` if `kind` is available, else [`Error::Unavailable`] with the check's error.
    pub fn require(&self, kind: BarrierKind) -> Result<()> {
        self.get(kind).require(kind)
    }
}

/// The probe's report as `probe --json` prints it: one object, the fields in this order.
#[derive(Debug, Serialize)]
pub struct ProbeJson<'a> {
    /// `uname -r`.
    pub kernel: &'a str,
    /// CPU model.
    pub cpu: &'a str,
    /// Online CPUs.
    pub cpus: usize,
    /// Running under a hypervisor.
    pub virtual_machine: bool,
    /// Transparent huge page mode.
    pub thp: &'a str,
    /// `vm.unprivileged_userfaultfd`.
    pub unprivileged_userfaultfd: Option<&'a str>,
    /// `vm.max_map_count`.
    pub max_map_count: Option<&'a str>,
    /// Every barrier, in [`BarrierKind::ALL`] order.
    pub mechanisms: Vec<MechanismJson>,
    /// Soft-dirty.
    pub soft_dirty: SoftDirtyJson,
}

/// One barrier in [`ProbeJson`].
#[derive(Debug, Serialize)]
pub struct MechanismJson {
    /// Its name on the command line.
    pub barrier: &'static str,
    /// Whether it works here.
    pub available: bool,
    /// How it was seen to work, or why it does not.
    pub detail: String,
    /// The userfaultfd mode it opened, for the userfaultfd mechanisms.
    pub uffd: Option<&'static str>,
}

/// Soft-dirty in [`ProbeJson`].
#[derive(Debug, Serialize)]
pub struct SoftDirtyJson {
    /// Whether it works here.
    pub available: bool,
    /// How it was seen to work, or why it does not.
    pub detail: String,
}

/// How a mechanism was seen to work, or why it does not.
fn detail(a: &Availability) -> String {
    match a {
        Availability::Available { detail, .. } => detail.clone(),
        Availability::Unavailable { reason } => reason.to_string(),
    }
}

impl Probe {
    /// The report as `probe --json` prints it.
    pub fn to_json(&self) -> ProbeJson<'_> {
        ProbeJson {
            kernel: &self.kernel,
            cpu: &self.cpu,
            cpus: self.cpus,
            virtual_machine: self.virtual_machine,
            thp: &self.thp,
            unprivileged_userfaultfd: self.unprivileged_userfaultfd.as_deref(),
            max_map_count: self.max_map_count.as_deref(),
            mechanisms: (self.mechanisms.iter())
                .map(|(kind, a)| MechanismJson {
                    barrier: kind.name(),
                    available: a.is_available(),
                    detail: detail(a),
                    uffd: match a {
                        Availability::Available { uffd: Some(m), .. } => Some(m.name()),
                        _ => None,
                    },
                })
                .collect(),
            soft_dirty: SoftDirtyJson {
                available: self.soft_dirty.is_available(),
                detail: detail(&self.soft_dirty),
            },
        }
    }
}

fn probe_access() -> UffdAccess {
    let open = |umo: bool| Uffd::builder().user_mode_only(umo).create();
    let full = open(false);
    let umo = open(true);
    let features = full
        .as_ref()
        .ok()
        .or(umo.as_ref().ok())
        .map(|u| u.features());
    UffdAccess {
        full: full.map(|u| u.origin()),
        user_mode_only: umo.map(|u| u.origin()),
        features,
    }
}

fn check_soft_dirty() -> Availability {
    let config = match kernel::config_option("CONFIG_MEM_SOFT_DIRTY") {
        Some(true) => "CONFIG_MEM_SOFT_DIRTY=y",
        Some(false) => "CONFIG_MEM_SOFT_DIRTY is not set in this kernel's configuration",
        None => "the kernel configuration is not readable here",
    };
    match kernel::check_soft_dirty() {
        Ok(c) if c.works() => Availability::Available {
            detail: format!(
                "pagemap bit 55 set on {}/{} written pages",
                c.seen_dirty, c.written
            ),
            uffd: None,
        },
        Ok(c) => Availability::Unavailable {
            reason: Error::Misbehaved {
                mechanism: "soft-dirty",
                seen: format!(
                    "after `echo 4 > /proc/self/clear_refs`, {} of {} written pages showed \
                     pagemap bit 55: the kernel accepts clear_refs but does not track \
                     soft-dirty ({config}); a kernel built with CONFIG_MEM_SOFT_DIRTY=y is \
                     needed",
                    c.seen_dirty, c.written
                ),
            },
        },
        Err(e) => Availability::Unavailable {
            reason: e.with_hint(config),
        },
    }
}

fn origin_name(o: Origin) -> &'static str {
    match o {
        Origin::Syscall => "via userfaultfd(2)",
        Origin::DevNode => "via /dev/userfaultfd",
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
        let show = |r: &Result<Origin>| match r {
            Ok(origin) => format!("ok ({})", origin_name(*origin)),
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
        let fell_back: Vec<&str> = self
            .mechanisms
            .iter()
            .filter_map(|(k, a)| match a {
                Availability::Available {
                    uffd: Some(mode), ..
                } if mode.fell_back => Some(k.name()),
                _ => None,
            })
            .collect();
        if !fell_back.is_empty() {
            writeln!(
                f,
                "FALLBACK   {} run on user-mode-only userfaultfd: full mode was refused, so a \
                 write by the kernel into an armed heap page fails with EFAULT",
                fell_back.join(", ")
            )?;
        }
        writeln!(f)?;
        let line = |f: &mut fmt::Formatter<'_>, name: &str, a: &Availability| match a {
            Availability::Available { detail, .. } => {
                writeln!(f, "{name:<15} available      {detail}")
            }
            Availability::Unavailable { reason } => {
                writeln!(f, "{name:<15} UNAVAILABLE    {reason}")
            }
        };
        for (k, a) in &self.mechanisms {
            line(f, k.name(), a)?;
            if !a.is_available() {
                writeln!(f, "{:<15} needs          {}", "", k.mechanism().kernel)?;
            }
        }
        line(f, "soft-dirty", &self.soft_dirty)
    }
}
