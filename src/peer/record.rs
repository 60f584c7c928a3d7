//! What one run on a peer collector measured ([`PeerRun`]), the record line the child
//! process prints for its parent ([`PeerRun::to_record`], [`PeerRun::from_record`]), and
//! the one-line summary the parent prints (its `Display`).

use std::fmt;
use std::time::Duration;

use super::Peer;
use crate::error::{Error, Result};
use crate::workload::pause_percentile;

/// How the peer collector ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerMode {
    /// Every collection stops the world for the whole mark.
    Stw,
    /// The collector's incremental (or generational) mode, with dirty bits.
    Incremental,
}

impl PeerMode {
    fn name(self) -> &'static str {
        match self {
            PeerMode::Stw => "stw",
            PeerMode::Incremental => "incremental",
        }
    }
}

/// What a pause in [`PeerRun::pauses`] spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseSource {
    /// From the collector's "about to stop the world" event to its "world restarted" one.
    WorldStop,
    /// From the collector's "collection starts" event to its "collection ends" one (used
    /// when the world-stop events do not fire).
    Collection,
    /// No collection event fired.
    None,
}

impl PauseSource {
    fn name(self) -> &'static str {
        match self {
            PauseSource::WorldStop => "world-stop",
            PauseSource::Collection => "collection",
            PauseSource::None => "none",
        }
    }
}

/// What one run of a workload on a peer collector measured.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerRun {
    /// The workload, as the summary's first word names it ([`super::PeerWorkload::name`]:
    /// `gcbench`, `binary-trees-d21`); no whitespace.
    pub workload: String,
    /// The collector.
    pub peer: Peer,
    /// Stop-the-world or incremental, as the collector itself reported it.
    pub mode: PeerMode,
    /// The collector's version (`8.2.2`), or `unknown`.
    pub version: String,
    /// The maximum heap the run was given, in bytes.
    pub heap_bytes: usize,
    /// The collector's heap size at the end of the run, in bytes.
    pub heap_final_bytes: usize,
    /// Wall-clock time of the workload.
    pub total: Duration,
    /// CPU time of the process (every thread) during the workload.
    pub cpu: Duration,
    /// Collections completed during the workload.
    pub cycles: u64,
    /// Collections among them that traced the whole heap (all of them when every
    /// collection is full; in a generational mode, the full ones only).
    pub full_cycles: u64,
    /// What each pause spans.
    pub pause_source: PauseSource,
    /// Every pause, in order.
    pub pauses: Vec<Duration>,
    /// Allocation calls the workload made (the work: `papers/reference/gcbench.c` counts
    /// the same).
    pub allocs: u64,
    /// The collector's own count of the bytes it handed out during the workload.
    pub alloc_bytes: u64,
    /// Collector-specific settings worth printing (`lib`, `vdb`, `generational`,
    /// `time_limit`, `markers`, …), as `key=value` pairs whose values contain no whitespace.
    pub settings: Vec<(String, String)>,
}

impl PeerRun {
    /// Total pause time.
    pub fn stw(&self) -> Duration {
        self.pauses.iter().sum()
    }

    /// A pause percentile (0..=100), computed as barrierlab's own runs compute theirs.
    pub fn pause_percentile(&self, q: f64) -> Duration {
        pause_percentile(self.pauses.iter().copied(), q)
    }

    /// The longest pause (zero with none).
    pub fn max_pause(&self) -> Duration {
        self.pauses.iter().copied().max().unwrap_or_default()
    }

    /// The record the child prints: one line, `peer-record` then `key=value` fields,
    /// times in integer nanoseconds so that nothing is rounded on the way to the parent.
    pub fn to_record(&self) -> String {
        let pauses: Vec<String> = self
            .pauses
            .iter()
            .map(|p| p.as_nanos().to_string())
            .collect();
        let mut s = format!(
            "{RECORD_TAG} workload={} peer={} mode={} version={} heap_bytes={} heap_final_bytes={} \
             total_ns={} cpu_ns={} cycles={} full_cycles={} pause={} pauses_ns={} allocs={} \
             alloc_bytes={}",
            self.workload,
            self.peer,
            self.mode.name(),
            self.version,
            self.heap_bytes,
            self.heap_final_bytes,
            self.total.as_nanos(),
            self.cpu.as_nanos(),
            self.cycles,
            self.full_cycles,
            self.pause_source.name(),
            pauses.join(","),
            self.allocs,
            self.alloc_bytes,
        );
        for (k, v) in &self.settings {
            s.push_str(&format!(" {k}={v}"));
        }
        s
    }

    /// Parses a line written by [`PeerRun::to_record`]. Fields it does not know become
    /// [`PeerRun::settings`], in order.
    pub fn from_record(line: &str) -> Result<PeerRun> {
        let bad = |why: String| Error::InvalidArgument(format!("peer record `{line}`: {why}"));
        let mut words = line.split_whitespace();
        if words.next() != Some(RECORD_TAG) {
            return Err(bad(format!("does not start with `{RECORD_TAG}`")));
        }
        let mut fields = std::collections::HashMap::new();
        let mut settings = Vec::new();
        for w in words {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| bad(format!("`{w}` is not key=value")))?;
            if RECORD_KEYS.contains(&k) {
                fields.insert(k, v);
            } else {
                settings.push((k.to_string(), v.to_string()));
            }
        }
        let field = |k: &str| {
            fields
                .get(k)
                .copied()
                .ok_or_else(|| bad(format!("no `{k}`")))
        };
        let number =
            |k: &str| -> Result<u64> { field(k)?.parse().map_err(|e| bad(format!("`{k}`: {e}"))) };
        let mode = match field("mode")? {
            "stw" => PeerMode::Stw,
            "incremental" => PeerMode::Incremental,
            m => return Err(bad(format!("unknown mode `{m}`"))),
        };
        let pause_source = match field("pause")? {
            "world-stop" => PauseSource::WorldStop,
            "collection" => PauseSource::Collection,
            "none" => PauseSource::None,
            p => return Err(bad(format!("unknown pause kind `{p}`"))),
        };
        let pauses = field("pauses_ns")?
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map(Duration::from_nanos))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("`pauses_ns`: {e}")))?;
        Ok(PeerRun {
            workload: field("workload")?.to_string(),
            peer: field("peer")?.parse()?,
            mode,
            version: field("version")?.to_string(),
            heap_bytes: number("heap_bytes")? as usize,
            heap_final_bytes: number("heap_final_bytes")? as usize,
            total: Duration::from_nanos(number("total_ns")?),
            cpu: Duration::from_nanos(number("cpu_ns")?),
            cycles: number("cycles")?,
            full_cycles: number("full_cycles")?,
            pause_source,
            pauses,
            allocs: number("allocs")?,
            alloc_bytes: number("alloc_bytes")?,
            settings,
        })
    }
}

/// The first word of a [`PeerRun::to_record`] line.
const RECORD_TAG: &str = "peer-record";

/// The fields of a record that are [`PeerRun`]'s own; any other is a setting.
const RECORD_KEYS: [&str; 14] = [
    "workload",
    "peer",
    "mode",
    "version",
    "heap_bytes",
    "heap_final_bytes",
    "total_ns",
    "cpu_ns",
    "cycles",
    "full_cycles",
    "pause",
    "pauses_ns",
    "allocs",
    "alloc_bytes",
];

/// The one-line summary, in the shape of `barrierlab gcbench`'s and `run`'s own: the
/// workload's name first.
impl fmt::Display for PeerRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        write!(
            f,
            "{} peer={} mode={} version={} heap={}MiB total={:.1}ms cpu={:.1}ms \
             stw={:.1}ms cycles={} full={} pauses={} p50={:.0}us p99={:.0}us max={:.0}us \
             pause={} heap_final={:.1}MiB allocs={} alloc_bytes={}",
            self.workload,
            self.peer,
            self.mode.name(),
            self.version,
            self.heap_bytes >> 20,
            ms(self.total),
            ms(self.cpu),
            ms(self.stw()),
            self.cycles,
            self.full_cycles,
            self.pauses.len(),
            us(self.pause_percentile(50.0)),
            us(self.pause_percentile(99.0)),
            us(self.max_pause()),
            self.pause_source.name(),
            self.heap_final_bytes as f64 / (1 << 20) as f64,
            self.allocs,
            self.alloc_bytes,
        )?;
        for (k, v) in &self.settings {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PeerRun {
        PeerRun {
            workload: "gcbench".into(),
            peer: Peer::Bdwgc,
            mode: PeerMode::Incremental,
            version: "8.2.2".into(),
            heap_bytes: 64 << 20,
            heap_final_bytes: 64 << 20,
            total: Duration::from_nanos(700_123_456),
            cpu: Duration::from_nanos(650_000_001),
            cycles: 3,
            full_cycles: 1,
            pause_source: PauseSource::WorldStop,
            pauses: vec![
                Duration::from_nanos(1_500_000),
                Duration::from_nanos(2_500_001),
                Duration::from_nanos(999),
            ],
            allocs: 12,
            alloc_bytes: 384,
            settings: vec![
                ("vdb".into(), "mprotect".into()),
                ("markers".into(), "1".into()),
            ],
        }
    }

    #[test]
    fn a_record_round_trips_exactly() {
        let r = sample();
        assert_eq!(PeerRun::from_record(&r.to_record()).unwrap(), r);
        let empty = PeerRun {
            pauses: vec![],
            pause_source: PauseSource::None,
            settings: vec![],
            ..sample()
        };
        assert_eq!(PeerRun::from_record(&empty.to_record()).unwrap(), empty);
    }

    #[test]
    fn a_binary_trees_record_round_trips_and_names_its_workload_first() {
        let r = PeerRun {
            workload: "binary-trees-d21".into(),
            mode: PeerMode::Stw,
            ..sample()
        };
        assert_eq!(PeerRun::from_record(&r.to_record()).unwrap(), r);
        let s = r.to_string();
        assert!(
            s.starts_with("binary-trees-d21 peer=bdwgc mode=stw version=8.2.2 heap=64MiB "),
            "{s}"
        );
    }

    #[test]
    fn a_malformed_record_is_an_error_naming_the_field() {
        let line = sample().to_record().replace("cycles=3", "cycles=x");
        let e = PeerRun::from_record(&line).unwrap_err().to_string();
        assert!(e.contains("`cycles`"), "{e}");
        let e = PeerRun::from_record("gcbench peer=bdwgc")
            .unwrap_err()
            .to_string();
        assert!(e.contains("peer-record"), "{e}");
    }

    #[test]
    fn the_summary_has_the_gcbench_shape() {
        let s = sample().to_string();
        assert!(
            s.starts_with(
                "gcbench peer=bdwgc mode=incremental version=8.2.2 heap=64MiB total=700.1ms \
                 cpu=650.0ms stw=4.0ms cycles=3 full=1 pauses=3 p50="
            ),
            "{s}"
        );
        assert!(
            s.ends_with(
                "pause=world-stop heap_final=64.0MiB allocs=12 alloc_bytes=384 vdb=mprotect \
                 markers=1"
            ),
            "{s}"
        );
    }
}
