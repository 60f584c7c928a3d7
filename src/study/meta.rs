//! Where and how a study ran: `meta.json`, and the header of the report.
//!
//! A figure without its machine is not a result: the run records the commit, the command
//! line, the seed, the date, the CPU, the kernel, the load before and after and the CPU
//! time the hypervisor stole during the run (`/proc/stat`'s `steal`), and warns when
//! either makes the numbers doubtful. It also owns the output folder's checks: writable
//! before anything runs, and no figure of an older run left beside the new ones.

use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::probe::Probe;

/// Steal above this share of the run's CPU time makes the run doubtful.
pub const STEAL_WARN: f64 = 0.05;

/// The files a study writes at the top of its folder; stale ones are removed first.
const OUTPUTS: [&str; 4] = ["study.csv", "report.md", "meta.json", "study.json"];

/// Checks that `out` can be written (creates it, writes and removes a probe file), and
/// removes the outputs and figures of an older run there, naming each on stderr.
pub fn prepare_out(out: &Path) -> Result<()> {
    let fail =
        |what: &str, e| Error::io(format!("{what} in the output folder {}", out.display()), e);
    if out.exists() && !out.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "--out {}: it exists and is not a folder",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| fail("create", e))?;
    let probe = out.join(".barrierlab-write-probe");
    std::fs::write(&probe, b"probe").map_err(|e| fail("write a file", e))?;
    std::fs::remove_file(&probe).map_err(|e| fail("remove a file", e))?;
    let entries = std::fs::read_dir(out).map_err(|e| fail("list the files", e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if OUTPUTS.contains(&name.as_str()) || name.ends_with(".svg") {
            eprintln!("removing {} from an older run", entry.path().display());
            std::fs::remove_file(entry.path()).map_err(|e| fail("remove an old output", e))?;
        }
    }
    Ok(())
}

/// CPU time counters of the whole machine (`/proc/stat`'s `cpu` line), in ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTicks {
    /// All fields summed (user … steal, guests excluded: they are inside user).
    pub total: u64,
    /// Time the hypervisor ran something else while a virtual CPU wanted to run.
    pub steal: u64,
}

/// Reads `/proc/stat`; zeroes when it cannot be read.
pub fn cpu_ticks() -> CpuTicks {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return CpuTicks::default();
    };
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    CpuTicks {
        total: f.iter().take(8).sum(),
        steal: f.get(7).copied().unwrap_or(0),
    }
}

/// The share of CPU time stolen between two readings (0 when nothing elapsed).
pub fn steal_share(before: CpuTicks, after: CpuTicks) -> f64 {
    let total = after.total.saturating_sub(before.total);
    if total == 0 {
        return 0.0;
    }
    after.steal.saturating_sub(before.steal) as f64 / total as f64
}

/// The 1-minute load average (`/proc/loadavg`), NaN when unreadable.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The commit the binary was built from (`git rev-parse HEAD` in the crate's folder),
/// with `-dirty` when the work tree has changes; `unknown` without git.
pub fn commit() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(head) if !head.is_empty() => {
            match git(&["status", "--porcelain", "--untracked-files=no"]) {
                Some(s) if !s.is_empty() => format!("{head}-dirty"),
                _ => head,
            }
        }
        _ => "unknown".into(),
    }
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
    /// The seed of the run order and the bootstrap.
    pub seed: u64,
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
    /// 1-minute load average after it.
    pub load_after: f64,
    /// Share of the machine's CPU time stolen by the hypervisor during the run.
    pub steal_share: f64,
    /// The whole study's duration, seconds.
    pub elapsed_s: f64,
    /// Warnings about the run's conditions.
    pub warnings: Vec<String>,
}

/// What is recorded when the study starts.
#[derive(Debug, Clone)]
pub struct Start {
    date: SystemTime,
    load: f64,
    ticks: CpuTicks,
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
            commit: commit(),
        }
    }

    /// Finishes the record after the run.
    pub fn finish(&self, probe: &Probe, seed: u64, elapsed_s: f64) -> Meta {
        let load_after = load_average();
        let steal = steal_share(self.ticks, cpu_ticks());
        let mut warnings = Vec::new();
        if steal > STEAL_WARN {
            warnings.push(format!(
                "the hypervisor stole {:.1}% of the CPU time during the run (more than {:.0}%): \
                 times are inflated and noisy",
                steal * 100.0,
                STEAL_WARN * 100.0
            ));
        }
        for (when, load) in [("before", self.load), ("after", load_after)] {
            if load > probe.cpus as f64 {
                warnings.push(format!(
                    "the load average {when} the run ({load:.2}) exceeded the {} CPUs: other \
                     work competed with the study",
                    probe.cpus
                ));
            }
        }
        Meta {
            commit: self.commit.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            command_line: std::env::args().collect(),
            seed,
            date_utc: utc(self.date),
            cpu_model: probe.cpu.clone(),
            cpus: probe.cpus,
            kernel: probe.kernel.clone(),
            load_before: self.load,
            load_after,
            steal_share: steal,
            elapsed_s,
            warnings,
        }
    }
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
    fn the_output_folder_is_checked_and_cleaned() {
        let dir = std::env::temp_dir().join(format!("barrierlab-meta-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("old.svg"), "x").unwrap();
        std::fs::write(dir.join("report.md"), "x").unwrap();
        std::fs::write(dir.join("notes.txt"), "keep").unwrap();
        prepare_out(&dir).unwrap();
        assert!(!dir.join("old.svg").exists() && !dir.join("report.md").exists());
        assert!(
            dir.join("notes.txt").exists(),
            "only the study's own files go"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let e = prepare_out(Path::new("/proc/barrierlab-cannot-be-here")).unwrap_err();
        assert!(
            e.to_string().contains("/proc/barrierlab-cannot-be-here"),
            "{e}"
        );
    }
}
