//! The study's sweep, part by part: the micro, the minimum-heap searches, the end-to-end
//! grid, the heap map and the barrier-only points. Each part runs its points through
//! [`super::runner`] and streams their rows to the CSV; the end-to-end and barrier-only
//! points get their invocations in rounds under the study's time budget
//! (`points/rounds.rs`). No invocation is a discarded warm-up: a fresh process warms
//! nothing that the next one would inherit. It plans and runs; it never renders.

mod calibrate;
mod rounds;

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rounds::Batch;

use super::config::{StudyConfig, StudyWorkload};
use super::data::{Metric, Section, Sink};
use super::meta::Part;
use super::micro_point::MicroPattern;
use super::minheap::{self, Trial};
use super::point::{Outcome, Point, PointOutput, PointSpec};
use super::runner::{Key, Progress, Ran, classify, invoke};
use super::stats;
use crate::barrier::Variant;
use crate::error::Result;

const MIB: f64 = (1 << 20) as f64;

/// An end-to-end point to run.
struct Planned {
    key: Key,
    point: Point,
    multiple: f64,
    /// Where its rows go: `macro`, or `hugepages` for a run on huge pages (whose key is
    /// the same as the `macro` point's of the same heap).
    section: Section,
}

/// Runs the study's parts, writing rows into its sink.
pub struct Runner<'a> {
    /// The configuration.
    pub config: &'a StudyConfig,
    /// The binary every point runs.
    pub exe: std::path::PathBuf,
    /// Where rows go.
    pub sink: Sink,
    /// The progress bar.
    pub bar: Progress,
    /// Variants (and the peer) that could not run, with the reason.
    pub not_run: Vec<(String, String)>,
    /// Where the time went, part by part.
    pub parts: Vec<Part>,
    /// The work calibrated for each workload (bytes allocated per live byte, by label;
    /// `points/calibrate.rs`), sent with every point.
    pub per_live: BTreeMap<String, f64>,
    /// When the study started: its time budget counts from here.
    pub started: std::time::Instant,
    /// The end-to-end and barrier-only points, after their first round, waiting for
    /// more invocations ([`Runner::more_invocations`]).
    pub(super) batches: Vec<Batch>,
    /// Points left wider than the target when the budget ran out (`None`: it did not).
    pub cut_by_budget: Option<usize>,
}

impl Runner<'_> {
    /// Runs one part of the study and records its time.
    fn part<T>(&mut self, name: &str, run: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let t0 = std::time::Instant::now();
        let out = run(self);
        self.parts
            .push(Part::ended(name, t0.elapsed().as_secs_f64()));
        out
    }

    fn spec(&self, point: Point, seed: u64) -> PointSpec {
        PointSpec {
            mode: self.config.mode,
            live_mib: self.config.live_mib.clone(),
            per_live: self.per_live.clone(),
            point,
            pin_cpu: self.config.pin_cpu,
            seed,
        }
    }

    /// Notes that `who` cannot run, once.
    pub fn unavailable(&mut self, who: String, why: String) {
        if !self.not_run.iter().any(|u| u.0 == who) {
            self.not_run.push((who, why));
        }
    }

    /// The micro: every (variant, pattern) in [`StudyConfig::micro_processes`] processes
    /// of several rounds each, all in a seeded random order.
    pub fn micro(&mut self, variants: &[Variant]) -> Result<()> {
        self.part("micro", |r| r.run_micro(variants))
    }

    fn run_micro(&mut self, variants: &[Variant]) -> Result<()> {
        let c = self.config;
        let region = c.micro_pages();
        let patterns = super::micro_point::patterns(c)?;
        // The pinned pattern runs on the CPU given, or the first this process may use.
        let pin = match c.pin_cpu {
            Some(cpu) => cpu,
            None => crate::sys::process::allowed_cpus()?
                .first()
                .copied()
                .unwrap_or(0),
        };
        let patterns = &patterns;
        let mut jobs: Vec<(&Variant, usize, usize)> = variants
            .iter()
            .flat_map(|v| {
                (0..patterns.len())
                    .filter(move |&i| patterns[i].run_by.includes(v))
                    .flat_map(move |i| (0..c.micro_processes).map(move |p| (v, i, p)))
            })
            .collect();
        jobs.shuffle(&mut rand::rngs::SmallRng::seed_from_u64(c.seed ^ 0x1c40));
        self.bar.grow(jobs.len() as u64);
        let mut skip: Vec<String> = Vec::new();
        for (v, i, process) in jobs {
            let MicroPattern {
                label,
                stores_per_page,
                random,
                dirty_fraction,
                pinned,
                beside,
                ..
            } = patterns[i].clone();
            self.bar
                .step(format!("micro {} {label} #{process}", v.name()));
            if skip.contains(&v.name()) {
                continue;
            }
            let mut spec = self.spec(
                Point::Micro {
                    variant: v.name(),
                    label: label.clone(),
                    region_pages: region,
                    stores_per_page,
                    random,
                    dirty_fraction,
                    rounds: c.micro_rounds(),
                    beside,
                },
                stats::seed_for(c.seed, &format!("{label}/{process}")),
            );
            if pinned {
                spec.pin_cpu = Some(pin);
            }
            let key = Key {
                tracker: v.name(),
                workload: label,
                threads: 1,
                heap_mib: (region * crate::sys::PAGE_SIZE) as f64 / MIB,
            };
            match classify(&key, process, invoke(&self.exe, &spec, c.timeout)) {
                Ok(rows) => rows.into_iter().try_for_each(|r| self.sink.push(r))?,
                Err(why) => {
                    skip.push(v.name());
                    self.unavailable(v.name(), why);
                }
            }
        }
        Ok(())
    }

    /// The minimum heap of `w` on `threads` threads, searched with a fresh process per
    /// run; its rows (`min_heap_mib`, `min_heap_fails_mib`) or an `error` row with the
    /// reason. Returns the minimum in bytes.
    fn min_heap(&mut self, w: &StudyWorkload, threads: usize) -> Result<Option<usize>> {
        let timeout = self.config.timeout;
        let exe = self.exe.clone();
        let label = w.label.clone();
        let mut runs = 0;
        let found = minheap::search(w.live_bytes as usize, minheap::RUNS_TO_FIT, |bytes| {
            runs += 1;
            self.bar.step(format!(
                "minimum heap {label} x{threads}: {:.1} MiB",
                bytes as f64 / MIB
            ));
            self.bar.grow(1);
            let spec = self.spec(
                Point::Fits {
                    workload: label.clone(),
                    threads,
                    heap_bytes: bytes,
                },
                0,
            );
            match invoke(&exe, &spec, timeout) {
                Ran::Output(PointOutput {
                    outcome: Outcome::Ok,
                    rows,
                }) => {
                    if rows
                        .iter()
                        .any(|r| r.metric == Metric::Fits && r.value == 1.0)
                    {
                        Trial::Completed
                    } else {
                        Trial::OutOfMemory
                    }
                }
                Ran::Output(o) => Trial::Broken(format!("{:?}", o.outcome)),
                Ran::TimedOut(why) => Trial::Broken(format!("timed out ({why})")),
                Ran::Crashed(why) => Trial::Broken(format!("crashed ({why})")),
            }
        });
        let key = |heap_mib| Key {
            tracker: "none".into(),
            workload: w.label.clone(),
            threads,
            heap_mib,
        };
        match found {
            Ok(b) => {
                let k = key(b.fits as f64 / MIB);
                let note = format!("{} runs, {} in a row to fit", b.runs, minheap::RUNS_TO_FIT);
                self.sink.push(k.row(
                    Section::Minheap,
                    0,
                    Metric::MinHeapMib,
                    b.fits as f64 / MIB,
                    note,
                ))?;
                self.sink.push(k.row(
                    Section::Minheap,
                    0,
                    Metric::MinHeapFailsMib,
                    b.fails as f64 / MIB,
                    String::new(),
                ))?;
                Ok(Some(b.fits))
            }
            Err(why) => {
                let note = format!(
                    "the minimum-heap search for {} on {threads} thread(s) gave no answer: {why}",
                    w.label
                );
                self.sink
                    .push(key(0.0).row(Section::Error, 0, Metric::MinHeap, 1.0, note))?;
                Ok(None)
            }
        }
    }

    /// Searches every workload's minimum heap, calibrates its work (where
    /// [`StudyConfig::run_ms`] is set), and lays out the end-to-end grid: a point
    /// per heap multiple and variant (heaps at least [`StudyConfig::min_point_heap_mib`],
    /// each point's multiple as used), and bdwgc's two modes on GCBench with one thread.
    /// Returns the grid and the heap-map run (the first page tracker, the first workload
    /// at twice its minimum).
    fn plan(&mut self, variants: &[Variant]) -> Result<(Vec<Planned>, Option<Planned>)> {
        let c = self.config;
        let e2e: Vec<String> = c.end_to_end_variants().iter().map(|v| v.name()).collect();
        let mut points = Vec::new();
        let mut heap_map = None;
        for w in c.workloads() {
            for &threads in &c.threads {
                let Some(min) = self.min_heap(&w, threads)? else {
                    continue;
                };
                let heaps = c.point_heaps(&w, min);
                // The work, sized by time at the faster end of the heaps, once per
                // workload, before any of its points.
                if let (Some(ms), false) = (c.run_ms, self.per_live.contains_key(&w.label)) {
                    self.calibrate(&w, threads, &heaps, ms)?;
                } else {
                    self.given_work(&w, threads, &heaps)?;
                }
                for &bytes in &heaps {
                    let multiple = bytes as f64 / min as f64;
                    let key = |tracker: &str| Key {
                        tracker: tracker.into(),
                        workload: w.label.clone(),
                        threads,
                        heap_mib: bytes as f64 / MIB,
                    };
                    for v in variants.iter().filter(|v| e2e.contains(&v.name())) {
                        let point = Point::Run {
                            workload: w.label.clone(),
                            variant: v.name(),
                            threads,
                            heap_bytes: bytes,
                            heap_map: false,
                            huge_pages: false,
                            barrier_only: false,
                        };
                        points.push(Planned {
                            key: key(&v.name()),
                            point,
                            multiple,
                            section: Section::Macro,
                        });
                    }
                    if c.peer && threads == 1 && w.label.starts_with("gcbench") {
                        for (name, incremental) in
                            [("bdwgc-stw", false), ("bdwgc-incremental", true)]
                        {
                            let point = Point::Peer {
                                workload: w.label.clone(),
                                incremental,
                                heap_bytes: bytes,
                            };
                            points.push(Planned {
                                key: key(name),
                                point,
                                multiple,
                                section: Section::Macro,
                            });
                        }
                    }
                }
                // Every variant again on huge pages at the largest heap (one thread; the
                // first workload only but in the full study; not for a workload swept over
                // its own parameter).
                let largest = heaps.iter().max().copied();
                let first = c.workloads().first().is_some_and(|f| f.label == w.label);
                if let (Some(bytes), 1, None, true) =
                    (largest, threads, &w.multiples, c.runs_on_huge_pages(first))
                {
                    for v in variants.iter().filter(|v| e2e.contains(&v.name())) {
                        points.push(Planned {
                            key: Key {
                                tracker: v.name(),
                                workload: w.label.clone(),
                                threads,
                                heap_mib: bytes as f64 / MIB,
                            },
                            point: Point::Run {
                                workload: w.label.clone(),
                                variant: v.name(),
                                threads,
                                heap_bytes: bytes,
                                heap_map: false,
                                huge_pages: true,
                                barrier_only: false,
                            },
                            multiple: bytes as f64 / min as f64,
                            section: Section::Hugepages,
                        });
                    }
                }
                if heap_map.is_none() && threads == 1 {
                    heap_map = variants.iter().find(|v| v.kind().is_page_level()).map(|v| {
                        let bytes = 2 * min;
                        Planned {
                            key: Key {
                                tracker: v.name(),
                                workload: w.label.clone(),
                                threads: 1,
                                heap_mib: bytes as f64 / MIB,
                            },
                            point: Point::Run {
                                workload: w.label.clone(),
                                variant: v.name(),
                                threads: 1,
                                heap_bytes: bytes,
                                heap_map: true,
                                huge_pages: false,
                                barrier_only: false,
                            },
                            multiple: 2.0,
                            section: Section::Heapmap,
                        }
                    });
                }
            }
        }
        Ok((points, heap_map))
    }

    /// The whole end-to-end part: the plan, the points, the heap map.
    pub fn end_to_end(&mut self, variants: &[Variant]) -> Result<()> {
        let (points, heap_map) =
            self.part("minimum heaps and calibration", |r| r.plan(variants))?;
        let mut batch = Batch::new(points, self.config.seed, &self.config.invocations);
        self.part("end to end and huge pages", |r| r.first_round(&mut batch))?;
        self.batches.push(batch);
        if let Some(map) = heap_map {
            self.part("heap map", |r| {
                let ran = invoke(&r.exe, &r.spec(map.point, 0), r.config.timeout);
                if let Ok(rows) = classify(&map.key, 0, ran) {
                    rows.into_iter().try_for_each(|row| r.sink.push(row))?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Barrier-only points: every variant, one thread, a shorter run of each workload
    /// ([`StudyWorkload::barrier_only`]) on a heap that holds all that it allocates
    /// (scaled from `none`'s end-to-end runs, so after them), with the tracker on a fixed
    /// arm/harvest schedule and no collection. A workload that
    /// allocates more than [`StudyConfig::barrier_only_max_heap_mib`] is not measured
    /// (an error row says so).
    pub fn barrier_only(&mut self, variants: &[Variant]) -> Result<()> {
        self.part("barrier-only", |r| r.run_barrier_only(variants))
    }

    fn run_barrier_only(&mut self, variants: &[Variant]) -> Result<()> {
        let c = self.config;
        let e2e: Vec<String> = c.end_to_end_variants().iter().map(|v| v.name()).collect();
        let mut points = Vec::new();
        for w in c.workloads().into_iter().filter(|w| w.multiples.is_none()) {
            let w = self.sized(w);
            let allocated: Vec<f64> = self
                .sink
                .rows
                .iter()
                .filter(|r| {
                    r.section == Section::Macro
                        && r.tracker == "none"
                        && r.workload == w.label
                        && r.threads == 1
                        && r.metric == Metric::AllocatedMib
                })
                .map(|r| r.value)
                .collect();
            if allocated.is_empty() {
                continue;
            }
            // The barrier-only run is shorter than the end-to-end one, by the share of
            // its allocation the workload's definition gives.
            let most = allocated.iter().copied().fold(0.0, f64::max) * w.barrier_only_share();
            let heap_mib = (most * 1.25).ceil() as u64 + 64;
            let key = |tracker: &str| Key {
                tracker: tracker.into(),
                workload: w.label.clone(),
                threads: 1,
                heap_mib: heap_mib as f64,
            };
            if heap_mib > c.barrier_only_max_heap_mib {
                let note = format!(
                    "barrier-only not measured: {} allocates {most:.0} MiB, so its heap would \
                     be {heap_mib} MiB, above the {} MiB cap",
                    w.label, c.barrier_only_max_heap_mib
                );
                self.sink
                    .push(key("none").row(Section::Error, 0, Metric::Failed, 1.0, note))?;
                continue;
            }
            for v in variants.iter().filter(|v| e2e.contains(&v.name())) {
                points.push(Planned {
                    key: key(&v.name()),
                    point: Point::Run {
                        workload: w.label.clone(),
                        variant: v.name(),
                        threads: 1,
                        heap_bytes: (heap_mib as usize) << 20,
                        heap_map: false,
                        huge_pages: false,
                        barrier_only: true,
                    },
                    multiple: f64::NAN,
                    section: Section::Barrieronly,
                });
            }
        }
        let mut batch = Batch::new(points, self.config.seed ^ 0xb0, &self.config.invocations)
            .at_least(self.config.barrier_only_min_invocations);
        self.first_round(&mut batch)?;
        self.batches.push(batch);
        Ok(())
    }

    /// More invocations for the end-to-end and barrier-only points whose intervals are
    /// still wide, while the time budget lasts (`points/rounds.rs`).
    pub fn more_invocations(&mut self) -> Result<()> {
        let mut batches = std::mem::take(&mut self.batches);
        self.cut_by_budget = self.part("more invocations", |r| r.more_rounds(&mut batches))?;
        self.batches = batches;
        Ok(())
    }
}
