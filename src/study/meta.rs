//! Where and how a study ran: `meta.json`, and the header of the report.
//!
//! A figure without its machine is not a result: the run records the commit, the command
//! line, the seed, the date, the CPU, the kernel, the load before and after and the CPU
//! time the hypervisor stole during the run (`/proc/stat`'s `steal`), and warns when
//! either makes the numbers doubtful. `meta.json` is written when the study starts
//! (`complete: false`) and completed when it ends, so that an interrupted study stays
//! reportable. It reads the machine; it never measures a point.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::probe::Probe;
use crate::sys::kernel::{CpuTicks, cpu_ticks, load_average};

/// Steal above this share of the run's CPU time makes the run doubtful.
pub const STEAL_WARN: f64 = 0.05;

/// The share of CPU time stolen between two readings (0 when nothing elapsed).
pub fn steal_share(before: CpuTicks, after: CpuTicks) -> f64 {
    let total = after.total.saturating_sub(before.total);
    if total == 0 {
        return 0.0;
    }
    after.steal.saturating_sub(before.steal) as f64 / total as f64
}

/// The commit the binary was built from: `git rev-parse HEAD` when it was built, with
/// `-dirty` when tracked files differed from it, `unknown` outside a git checkout (baked
/// in by the build script, `src/build.rs`). Not read at run time: a binary copied aside
/// and run after later commits must still name its own.
pub fn commit() -> String {
    env!("BARRIERLAB_COMMIT").to_string()
}

/// A time as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// The commit (`unknown` without git; `-dirty` with local changes).
    pub commit: String,
    /// The crate's version.
    pub version: String,
    /// The command line.
    pub command_line: Vec<String>,
    /// The seed of the run order, the page orders and the bootstrap.
    pub seed: u64,
    /// Whether the seed was given (`--seed`) rather than drawn fresh for this run.
    #[serde(default)]
    pub seed_given: bool,
    /// When the study started (UTC).
    pub date_utc: String,
    /// The CPU model.
    pub cpu_model: String,
    /// CPUs online.
    pub cpus: usize,
    /// The kernel release.
    pub kernel: String,
    /// 1-minute load average before the run.
    pub load_before: f64,
    /// 1-minute load average after it (absent until the study ends).
    pub load_after: Option<f64>,
    /// Share of the machine's CPU time stolen by the hypervisor during the run (absent
    /// until the study ends).
    pub steal_share: Option<f64>,
    /// The whole study's duration, seconds (absent until it ends).
    pub elapsed_s: Option<f64>,
    /// Warnings about the run's conditions.
    pub warnings: Vec<String>,
    /// Whether the study ran to its end (false: interrupted, or still running).
    #[serde(default = "complete_by_default")]
    pub complete: bool,
    /// The mode (`quick`, `default`, `full`).
    #[serde(default)]
    pub mode: Option<String>,
    /// FNV-1a 64 of the binary every point ran (a copy taken when the study started).
    #[serde(default)]
    pub binary_fnv1a64: Option<String>,
    /// The end-to-end invocation policy: at least `min`, then more until the 95%
    /// interval of each barrier's ratio to `none` (of the median wall time in studies
    /// before blocks) is within `target_width` of it, at most `max`.
    #[serde(default)]
    pub invocations: Option<InvocationPolicy>,
    /// What the probe found when the study started: (what, finding) pairs.
    #[serde(default)]
    pub machine: Vec<(String, String)>,
    /// Variants that could not run, with the reason.
    #[serde(default)]
    pub not_run: Vec<(String, String)>,
    /// Where the time went: each part of the study in the order it ran.
    #[serde(default)]
    pub parts: Vec<Part>,
    /// Points whose interval was still wider than the target, below the most
    /// invocations, when the time budget stopped the extra invocations (`None`: the
    /// budget did not stop them).
    #[serde(default)]
    pub cut_by_budget: Option<usize>,
    /// The CPU time DAMON's kernel threads (`kdamond…`) used during the run, seconds,
    /// and that as a share of the machine's CPU time (`None`: none ran, or the study
    /// has not ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kdamond_cpu: Option<(f64, f64)>,
    /// Whether the end-to-end, huge-page and barrier-only invocations ran in blocks
    /// (invocation `k` of every variant of a point back to back), so that ratios to the
    /// baseline are formed pair by pair (false for studies from before blocks).
    #[serde(default)]
    pub blocks: bool,
}

impl Meta {
    /// How the run's ratios to a baseline are formed.
    pub fn design(&self) -> crate::study::stats::Design {
        if self.blocks {
            crate::study::stats::Design::Blocks
        } else {
            crate::study::stats::Design::Shuffled
        }
    }
}

/// One part of a study's run: how long it took and how loaded the machine was as it
/// ended (the load average over the last minute), so that a reader can see which part
/// other work competed with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// What ran (`micro`, `minimum heaps`, …).
    pub name: String,
    /// Its wall time.
    pub seconds: f64,
    /// The one-minute load average when it ended.
    pub load_after: f64,
}

impl Part {
    /// A part that took `seconds` and ends now.
    pub fn ended(name: &str, seconds: f64) -> Part {
        Part {
            name: name.into(),
            seconds,
            load_after: load_average(),
        }
    }
}

/// A `meta.json` from before the field was written was written at the end of a run.
fn complete_by_default() -> bool {
    true
}

/// How many invocations an end-to-end point gets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InvocationPolicy {
    /// Invocations every point gets.
    pub min: usize,
    /// The most any point gets.
    pub max: usize,
    /// The 95% interval's width, (hi - lo) / estimate, at which a point stops getting
    /// more: of its wall time over `none`'s in its block (studies before blocks: of its
    /// median wall time).
    pub target_width: f64,
    /// The study's time budget (s): an invocation beyond `min` starts only while the
    /// study's time so far plus the point's mean invocation time stays within it, so
    /// that the extra invocations stop when the budget is spent (`None`: no budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_s: Option<f64>,
}

/// The probe's findings as the report's machine table lists them.
pub fn machine(probe: &Probe) -> Vec<(String, String)> {
    let availability = |a: &crate::probe::Availability| match a {
        crate::probe::Availability::Available { detail, .. } => format!("available ({detail})"),
        crate::probe::Availability::Unavailable { reason } => format!("**unavailable**: {reason}"),
    };
    let mut out = vec![
        (
            "virtual machine".to_string(),
            if probe.virtual_machine { "yes" } else { "no" }.to_string(),
        ),
        (
            "transparent huge pages".into(),
            format!("{} (heaps use MADV_NOHUGEPAGE)", probe.thp),
        ),
        (
            "vm.unprivileged_userfaultfd".into(),
            probe.unprivileged_userfaultfd.clone().unwrap_or("?".into()),
        ),
    ];
    for (kind, a) in &probe.mechanisms {
        out.push((kind.to_string(), availability(a)));
    }
    out.push((
        "soft-dirty (not built)".into(),
        availability(&probe.soft_dirty),
    ));
    out
}

/// What is recorded when the study starts.
#[derive(Debug, Clone)]
pub struct Start {
    date: SystemTime,
    load: f64,
    ticks: CpuTicks,
    /// DAMON's threads' CPU ticks so far, if any run.
    kdamond: Option<u64>,
    /// Read when the run starts: the checkout may move on while it runs.
    commit: String,
}

impl Start {
    /// Takes the readings.
    pub fn now() -> Start {
        Start {
            date: SystemTime::now(),
            load: load_average(),
            ticks: cpu_ticks(),
            kdamond: crate::sys::kernel::kdamond_ticks(),
            commit: commit(),
        }
    }

    /// The record written when the study starts (`complete: false`).
    pub fn meta(&self, probe: &Probe, seed: u64, seed_given: bool) -> Meta {
        Meta {
            commit: self.commit.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            command_line: std::env::args().collect(),
            seed,
            seed_given,
            date_utc: utc(self.date),
            cpu_model: probe.cpu.clone(),
            cpus: probe.cpus,
            kernel: probe.kernel.clone(),
            load_before: self.load,
            load_after: None,
            steal_share: None,
            elapsed_s: None,
            warnings: Vec::new(),
            complete: false,
            mode: None,
            binary_fnv1a64: None,
            invocations: None,
            machine: machine(probe),
            not_run: Vec::new(),
            parts: Vec::new(),
            cut_by_budget: None,
            kdamond_cpu: None,
            blocks: true,
        }
    }

    /// Completes the record after the run.
    pub fn finish(&self, meta: &mut Meta, elapsed_s: f64) {
        let load_after = load_average();
        let ticks = cpu_ticks();
        let steal = steal_share(self.ticks, ticks);
        if let (Some(before), Some(after)) = (self.kdamond, crate::sys::kernel::kdamond_ticks()) {
            let used = after.saturating_sub(before);
            // SAFETY: sysconf takes no pointer.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
            let machine = ticks.total.saturating_sub(self.ticks.total).max(1) as f64;
            meta.kdamond_cpu = Some((used as f64 / hz, used as f64 / machine));
        }
        if steal > STEAL_WARN {
            meta.warnings.push(format!(
                "the hypervisor stole {:.1}% of the CPU time during the run (more than {:.0}%): \
                 times are inflated and noisy",
                steal * 100.0,
                STEAL_WARN * 100.0
            ));
        }
        for (when, load) in [("before", self.load), ("after", load_after)] {
            if load > meta.cpus as f64 {
                meta.warnings.push(format!(
                    "the load average {when} the run ({load:.2}) exceeded the {} CPUs: other \
                     work competed with the study",
                    meta.cpus
                ));
            }
        }
        meta.load_after = Some(load_after);
        meta.steal_share = Some(steal);
        meta.elapsed_s = Some(elapsed_s);
        meta.complete = true;
    }
}

/// Reads `dir/meta.json`; an error names the file.
pub fn read(dir: &std::path::Path) -> Result<Meta> {
    let path = dir.join("meta.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::InvalidArgument(format!(
            "{} line {}: not a study's meta.json: {e}",
            path.display(),
            e.line()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_steal() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_709_210_096);
        assert_eq!(utc(t), "2024-02-29T12:34:56Z");
        assert_eq!(utc(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let a = CpuTicks {
            total: 1000,
            steal: 10,
        };
        let b = CpuTicks {
            total: 2000,
            steal: 110,
        };
        assert!((steal_share(a, b) - 0.1).abs() < 1e-12);
        assert_eq!(steal_share(a, a), 0.0);
        assert!(cpu_ticks().total > 0, "/proc/stat is readable");
    }

    #[test]
    fn the_commit_is_the_one_this_test_binary_was_built_from() {
        // Built from this checkout a moment ago: HEAD now is the build's HEAD. Without git
        // (a packaged crate) the commit is `unknown`.
        let head = std::process::Command::new("git")
            .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        let c = commit();
        match head {
            Some(head) => assert!(
                c == head || c == format!("{head}-dirty"),
                "baked {c}, checkout at {head}"
            ),
            None => assert_eq!(c, "unknown"),
        }
    }

    #[test]
    fn an_older_meta_json_reads_as_complete_and_a_cut_one_is_named() {
        let dir = std::env::temp_dir().join(format!("barrierlab-meta-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let old = r#"{"commit":"c","version":"0.1.0","command_line":["b"],"seed":1,
            "date_utc":"2026-12-01T12:35:03Z","cpu_model":"x","cpus":2,"kernel":"k",
            "load_before":1.0,"load_after":2.0,"steal_share":0.0,"elapsed_s":9.0,"warnings":[]}"#;
        std::fs::write(dir.join("meta.json"), old).unwrap();
        let m = read(&dir).unwrap();
        assert!(m.complete && !m.seed_given && m.machine.is_empty());
        std::fs::write(dir.join("meta.json"), &old[..60]).unwrap();
        let e = read(&dir).unwrap_err().to_string();
        assert!(e.contains("meta.json line 1"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
