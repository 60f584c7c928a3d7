//! Running one point in a child process and turning what it printed into rows.
//!
//! Every invocation is a fresh process of the study's own binary (the copy in the output
//! folder, so that a rebuild during the study changes nothing), started with a
//! parent-death signal: a study stopped by SIGINT or SIGTERM takes its running child with
//! it. A child that passes the timeout is killed, with its process group
//! ([`crate::sys::child`], the runner the tests use too). What came back is classified
//! ([`classify`]): rows that are results, `invalid` rows (too few cycles, out of memory)
//! or `error` rows (crash, timeout, failure), each with its reason. It never decides what
//! to run next.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::data::{Metric, Row, Section};
use super::point::{Outcome, PointOutput, PointSpec};
use crate::sys::child::{Finished, run_with_deadline};

/// The fewest collection cycles an end-to-end invocation must complete to count as a
/// result. Below it the run measures the mutator rather than the collector: its pause
/// and MMU figures rest on one or two pauses. Such an invocation is recorded as `invalid`.
pub const MIN_CYCLES: f64 = 3.0;

/// What became of one child.
pub enum Ran {
    /// It printed its output.
    Output(PointOutput),
    /// It crashed, exited with an error, or printed nothing usable (the reason).
    Crashed(String),
    /// It ran past the timeout and was killed.
    TimedOut(String),
}

/// The last `n` characters of `text`, on one line.
fn tail(text: &str, n: usize) -> String {
    let t = text.trim();
    let start = t.char_indices().rev().nth(n).map_or(0, |(i, _)| i);
    t[start..].replace(['\n', '\r'], " | ")
}

/// Runs one point in a fresh process of `exe` (`study-point`), killing it after
/// `timeout`.
pub fn invoke(exe: &Path, spec: &PointSpec, timeout: Duration) -> Ran {
    let json = serde_json::to_string(spec).expect("a spec serialises");
    let mut command = Command::new(exe);
    command
        .args(["study-point", "--spec", &json])
        .stdin(Stdio::null());
    // SAFETY: the closure runs in the child between fork and exec and only makes the
    // prctl system call (async-signal-safe; it allocates nothing and takes no lock).
    unsafe { command.pre_exec(crate::sys::process::kill_me_with_my_parent) };
    let finished = match run_with_deadline(&mut command, timeout) {
        Ok(f) => f,
        Err(e) => return Ran::Crashed(format!("could not run {}: {e}", exe.display())),
    };
    let Finished {
        status,
        stdout,
        stderr,
    } = finished;
    let Some(status) = status else {
        return Ran::TimedOut(format!(
            "killed after {timeout:?}; stderr: {}",
            tail(&stderr, 300)
        ));
    };
    if !status.success() {
        return Ran::Crashed(format!("{status}; stderr: {}", tail(&stderr, 300)));
    }
    match serde_json::from_str::<PointOutput>(stdout.trim()) {
        Ok(o) => Ran::Output(o),
        Err(e) => Ran::Crashed(format!(
            "unreadable output ({e}); stderr: {}",
            tail(&stderr, 300)
        )),
    }
}

/// The key of a point (and of its rows).
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The variant.
    pub tracker: String,
    /// The workload's label.
    pub workload: String,
    /// Mutator threads.
    pub threads: usize,
    /// Heap (or region) MiB.
    pub heap_mib: f64,
}

impl Key {
    /// A row of this point.
    pub fn row(
        &self,
        section: Section,
        invocation: usize,
        metric: Metric,
        value: f64,
        note: String,
    ) -> Row {
        Row {
            section,
            tracker: self.tracker.clone(),
            workload: self.workload.clone(),
            threads: self.threads,
            heap_mib: self.heap_mib,
            invocation,
            round: 0,
            metric,
            value,
            note,
        }
    }
}

/// The rows one invocation contributes: its own when it is a result, else `invalid` or
/// `error` rows that say why; `Err` carries an unavailability reason.
pub fn classify(key: &Key, invocation: usize, ran: Ran) -> std::result::Result<Vec<Row>, String> {
    let err = |metric, note: String| vec![key.row(Section::Error, invocation, metric, 1.0, note)];
    match ran {
        Ran::TimedOut(why) => Ok(err(Metric::Timeout, why)),
        Ran::Crashed(why) => Ok(err(Metric::Crash, why)),
        Ran::Output(o) => match o.outcome {
            Outcome::Unavailable(why) => Err(why),
            Outcome::Failed(why) => Ok(err(Metric::Failed, why)),
            Outcome::OutOfMemory(why) => Ok(vec![key.row(
                Section::Invalid,
                invocation,
                Metric::Oom,
                1.0,
                why,
            )]),
            Outcome::Ok => {
                let mut rows = o.rows;
                let cycles = rows
                    .iter()
                    .find(|r| r.metric == Metric::Cycles)
                    .map_or(0.0, |r| r.value);
                let invalid = rows.iter().any(|r| r.section.is_end_to_end()) && cycles < MIN_CYCLES;
                for r in &mut rows {
                    r.invocation = invocation;
                    if invalid {
                        r.section = Section::Invalid;
                        r.note = format!("{cycles} cycle(s) < minimum {MIN_CYCLES}");
                    }
                }
                Ok(rows)
            }
        },
    }
}

/// The progress bar on stderr (nothing when off).
pub struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    /// A bar of `total` steps, shown if `show`.
    pub fn new(show: bool, total: u64) -> Progress {
        Progress(show.then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} (about {eta} left) {msg}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bar
        }))
    }

    /// One step done, with what runs next.
    pub fn step(&self, msg: String) {
        if let Some(b) = &self.0 {
            b.set_message(msg);
            b.inc(1);
        }
    }

    /// `n` more steps to come.
    pub fn grow(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc_length(n);
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invocation_below_the_minimum_cycles_is_invalid() {
        let key = Key {
            tracker: "none".into(),
            workload: "w".into(),
            threads: 1,
            heap_mib: 4.0,
        };
        let out = |cycles: f64| {
            Ran::Output(PointOutput {
                outcome: Outcome::Ok,
                rows: vec![
                    key.row(Section::Macro, 0, Metric::Cycles, cycles, String::new()),
                    key.row(Section::Macro, 0, Metric::WallMs, 5.0, String::new()),
                ],
            })
        };
        let rows = classify(&key, 4, out(MIN_CYCLES - 1.0)).unwrap();
        assert!(
            rows.iter()
                .all(|r| r.section == Section::Invalid && r.invocation == 4)
        );
        assert!(rows[0].note.contains("minimum"), "{:?}", rows[0]);
        let rows = classify(&key, 4, out(MIN_CYCLES)).unwrap();
        assert!(rows.iter().all(|r| r.section == Section::Macro));
        let rows = classify(&key, 1, Ran::TimedOut("killed".into())).unwrap();
        assert_eq!(
            (rows[0].section, rows[0].metric),
            (Section::Error, Metric::Timeout)
        );
        let unavailable = Ran::Output(PointOutput {
            outcome: Outcome::Unavailable("no libgc".into()),
            rows: vec![],
        });
        assert_eq!(classify(&key, 0, unavailable).unwrap_err(), "no libgc");
    }
}
