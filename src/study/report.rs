//! `study.csv` and `report.md`, both from the study's rows: every number in a table is a
//! statistic of rows in the CSV, formatted by [`fmt`].
//!
//! Each end-to-end figure is the median over invocations with its 95% bootstrap interval
//! in brackets ([`super::stats`]); each ratio is a ratio of medians with its interval,
//! written `1.23× [1.10–1.40]`; a verdict ("faster", "slower") is drawn only where the
//! interval excludes 1, otherwise the report says "no difference measured".

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::point::mmu_stall_metric;
use super::stats::{self, Interval, median};
use super::{MIN_CYCLES, MMU_WINDOWS_MS, Measurement, StudyResult, mmu_metric, plot};
use crate::error::{Error, Result};

/// The CSV header.
pub const CSV_HEADER: &str =
    "section,tracker,workload,threads,heap_mib,invocation,metric,value,note";

/// Formats a value as the report prints it (3 significant digits, no exponent).
pub fn fmt(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// An estimate with its interval: `12.3 [11.0–13.1]`.
pub fn fmt_ci(i: &Interval) -> String {
    format!("{} [{}–{}]", fmt(i.estimate), fmt(i.lo), fmt(i.hi))
}

/// A ratio with its interval: `1.23× [1.10–1.40]`.
pub fn fmt_ratio(i: &Interval) -> String {
    format!("{}× [{}–{}]", fmt(i.estimate), fmt(i.lo), fmt(i.hi))
}

fn opt_ci(i: Option<Interval>) -> String {
    i.as_ref().map_or("–".into(), fmt_ci)
}

fn opt_ratio(i: Option<Interval>) -> String {
    i.as_ref().map_or("–".into(), fmt_ratio)
}

/// Median, min and max of some values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Median (mean of the two middle values for an even count).
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// How many.
    pub n: usize,
}

/// Summarises `values`; `None` when empty.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Some(Summary {
        median: median(&v),
        min: v[0],
        max: v[v.len() - 1],
        n: v.len(),
    })
}

/// The values of the rows matching a key.
pub fn select<'a>(
    rows: &'a [Measurement],
    section: &'a str,
    tracker: &'a str,
    workload: &'a str,
    threads: usize,
    heap_mib: Option<f64>,
    metric: &'a str,
) -> impl Iterator<Item = f64> + 'a {
    rows.iter()
        .filter(move |r| {
            r.section == section
                && r.tracker == tracker
                && r.workload == workload
                && r.threads == threads
                && heap_mib.is_none_or(|h| r.heap_mib == h)
                && r.metric == metric
        })
        .map(|r| r.value)
}

/// One CSV line (with its newline). Notes lose their commas and line breaks.
pub fn csv_line(r: &Measurement) -> String {
    format!(
        "{},{},{},{},{},{},{},{},{}\n",
        r.section,
        r.tracker,
        r.workload,
        r.threads,
        r.heap_mib,
        r.invocation,
        r.metric,
        r.value,
        r.note.replace([',', '\n', '\r'], " ")
    )
}

/// Renders the rows as CSV.
pub fn csv(rows: &[Measurement]) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    for r in rows {
        out.push_str(&csv_line(r));
    }
    out
}

/// The variants present in a section: `none` first, then by name, bdwgc last.
pub fn trackers(rows: &[Measurement], section: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for r in rows.iter().filter(|r| r.section == section) {
        if !seen.contains(&r.tracker) {
            seen.push(r.tracker.clone());
        }
    }
    seen.sort_by_key(|t| (t.starts_with("bdwgc"), t != "none", t.clone()));
    seen
}

/// A variant's rounds of one micro point: per round, `f(metric)` combined by `g`.
fn rounds(
    rows: &[Measurement],
    tracker: &str,
    label: &str,
    g: impl Fn(&dyn Fn(&str) -> f64) -> f64,
) -> Vec<f64> {
    let mut by_round: BTreeMap<usize, BTreeMap<&str, f64>> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.section == "micro" && r.tracker == tracker && r.workload == label)
    {
        by_round
            .entry(r.invocation)
            .or_default()
            .insert(&r.metric, r.value);
    }
    by_round
        .values()
        .map(|m| g(&|k: &str| m.get(k).copied().unwrap_or(f64::NAN)))
        .filter(|v| v.is_finite())
        .collect()
}

/// The stores-per-page values of the main micro sweep (`pages-spp<N>` labels).
fn swept(rows: &[Measurement]) -> Vec<u64> {
    let mut s: Vec<u64> = rows
        .iter()
        .filter(|r| r.section == "micro")
        .filter_map(|r| r.workload.strip_prefix("pages-spp")?.parse().ok())
        .collect();
    s.sort_unstable();
    s.dedup();
    s
}

/// The micro curve of a variant: (stores per page, median total ns per store), sweep
/// points only.
pub fn micro_curve(rows: &[Measurement], tracker: &str) -> Vec<(f64, f64)> {
    swept(rows)
        .into_iter()
        .filter_map(|spp| {
            let v = rounds(rows, tracker, &format!("pages-spp{spp}"), |m| {
                m("total_ns_per_store")
            });
            (!v.is_empty()).then(|| (spp as f64, median(&v)))
        })
        .collect()
}

/// Where two cost-per-store curves cross (the first point, going up the sweep, where
/// `tracker` stops costing more than `card`), log-log interpolated; NaN if they do not
/// cross within the sweep.
fn crossing(spps: &[f64], tracker: &[f64], card: &[f64]) -> f64 {
    let pts: Vec<(f64, f64)> = spps
        .iter()
        .zip(tracker.iter().zip(card))
        .map(|(&s, (&t, &c))| (s.ln(), (t / c).ln()))
        .collect();
    if pts.first().is_some_and(|p| p.1 <= 0.0) {
        return spps[0];
    }
    for w in pts.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if y0 > 0.0 && y1 <= 0.0 {
            return (x0 + (x1 - x0) * y0 / (y0 - y1)).exp();
        }
    }
    f64::NAN
}

/// The crossover of one page tracker with the card table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crossover {
    /// Stores per dirtied page where the measured costs per store cross, with its
    /// bootstrap interval (rounds resampled at every point of the sweep), if they cross.
    pub measured: Option<Interval>,
    /// Share of the bootstrap resamples in which the curves cross within the sweep.
    pub crossing_share: f64,
    /// The largest stores-per-page of the sweep.
    pub swept_to: f64,
}

/// Finds where `tracker`'s cost per store (arm, stores and harvest) falls to the card
/// table's.
pub fn crossover(rows: &[Measurement], tracker: &str, card: &str, seed: u64) -> Option<Crossover> {
    let spps = swept(rows);
    let groups = |t: &str| -> Vec<Vec<f64>> {
        spps.iter()
            .map(|spp| {
                rounds(rows, t, &format!("pages-spp{spp}"), |m| {
                    m("total_ns_per_store")
                })
            })
            .collect()
    };
    let (tg, cg) = (groups(tracker), groups(card));
    if spps.len() < 2 || tg.iter().chain(&cg).any(|g| g.is_empty()) {
        return None;
    }
    let x: Vec<f64> = spps.iter().map(|&s| s as f64).collect();
    let k = spps.len();
    let all: Vec<&[f64]> = tg.iter().chain(&cg).map(|g| g.as_slice()).collect();
    let stat = |gs: &[Vec<f64>]| {
        let m: Vec<f64> = gs.iter().map(|g| median(g)).collect();
        crossing(&x, &m[..k], &m[k..])
    };
    let measured = stats::bootstrap_groups(&all, stats::seed_for(seed, tracker), stat);
    // The share of resamples that cross, for the reader to judge a missing interval.
    let share = stats::finite_share(&all, stats::seed_for(seed, card), 200, stat);
    Some(Crossover {
        measured,
        crossing_share: share,
        swept_to: x[k - 1],
    })
}

/// Writes `report.md` and the figures (`study.csv` was streamed as the study ran).
pub fn write_all(result: &StudyResult) -> Result<()> {
    let out = &result.config.out;
    let figures = plot::write_all(result)?;
    let path = out.join("report.md");
    std::fs::write(&path, markdown(result, &figures))
        .map_err(|e| Error::io(format!("write {}", path.display()), e))
}

/// Renders `report.md` and the figures again from a study folder's `study.csv` and
/// `meta.json` (after a change to the report's code, or when the CSV is all that is
/// trusted). The machine section comes from a probe run now, on this machine; the mode
/// and invocation count are the study's defaults for `mode`. Every number then comes from
/// the CSV as it is, rows that a run did not write included out.
pub fn rerender(dir: &std::path::Path, mode: super::Mode) -> Result<usize> {
    let rows = super::compare::read_rows(dir)?;
    let meta_path = dir.join("meta.json");
    let text = std::fs::read_to_string(&meta_path)
        .map_err(|e| Error::io(format!("read {}", meta_path.display()), e))?;
    let meta: super::meta::Meta = serde_json::from_str(&text).map_err(|e| {
        Error::InvalidArgument(format!(
            "{} is not a study's meta.json: {e}",
            meta_path.display()
        ))
    })?;
    // The figures of the old rendering go: a figure without rows is not drawn again.
    for f in ["crossover.svg", "pauses.svg", "mmu.svg", "heapmap.svg"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let n = rows.len();
    let result = StudyResult {
        probe: crate::probe::Probe::run(),
        rows,
        unavailable: Vec::new(),
        config: super::StudyConfig::new(mode, dir.to_path_buf()),
        meta,
    };
    write_all(&result)?;
    Ok(n)
}

/// Renders the Markdown report.
pub fn markdown(result: &StudyResult, figures: &[String]) -> String {
    let mut md = String::new();
    header(&mut md, result);
    micro(&mut md, result);
    shows(
        &mut md,
        "the price of each mechanism on its own: card marking costs a little on every store; \
         a page tracker costs nothing per store but a fault (microseconds) on the first write \
         to each page per cycle, and a per-page arm and harvest. The crossover is the number of \
         stores per dirtied page at which the two prices meet: a workload that writes each \
         dirtied page more often than that favours page protection.",
    );
    min_heaps(&mut md, result);
    shows(
        &mut md,
        "the unit of heap size: the smallest heap in which each workload completes with the \
         stop-the-world collector, and the largest size tested that failed. Heap sizes below \
         are multiples of it, as GC benchmark methodology uses them.",
    );
    end_to_end(&mut md, result);
    lower_bound(&mut md, result);
    shows(
        &mut md,
        "how far each barrier is from a run with no collection cost at all (the lower bound), \
         in wall and CPU time: the real cost of collecting, barrier included, rather than a \
         ratio to another collector that has costs of its own.",
    );
    invalid(&mut md, result);
    if !figures.is_empty() {
        let _ = writeln!(md, "\n## Figures\n");
        for f in figures {
            let _ = writeln!(md, "![{f}]({f})\n");
        }
    }
    let _ = writeln!(
        md,
        "\n## Raw kernel costs\n\nA C reference program is not shipped; compare the first-write costs \
         above with a minimal C program on the same machine that write-protects a page with \
         `UFFDIO_WRITEPROTECT`, writes it and serves the fault from a second thread (and the same with \
         `mprotect` and a SIGSEGV handler): a tracker within about 1.25× of it does no extra work."
    );
    md
}

/// A short "what this shows" paragraph under a section, for a reader new to the field.
fn shows(md: &mut String, text: &str) {
    let _ = writeln!(md, "\n*What this shows*: {text}\n");
}

fn header(md: &mut String, result: &StudyResult) {
    let (p, m) = (&result.probe, &result.meta);
    let _ = writeln!(md, "# barrierlab study\n");
    let _ = writeln!(
        md,
        "Mode `{:?}`, {} measured invocation(s) per end-to-end point, each in a fresh process, after one \
         discarded warm-up invocation per point; all invocations interleaved in a random order (seed {}). \
         Took {:.0} s.\n",
        result.config.mode, result.config.invocations, m.seed, m.elapsed_s
    );
    for w in &m.warnings {
        let _ = writeln!(md, "> **Warning**: {w}.\n");
    }
    let _ = writeln!(
        md,
        "Statistics: every figure is the median over invocations (or micro rounds) with its 95% \
         percentile-bootstrap interval in brackets ({} resamples of the invocations, seeded); every \
         ratio is a ratio of medians with its interval. \"Faster\" or \"slower\" is said only where the \
         interval excludes 1.\n",
        stats::RESAMPLES
    );
    let _ = writeln!(md, "## Machine\n\n| | |\n|---|---|");
    let _ = writeln!(md, "| commit | {} (version {}) |", m.commit, m.version);
    let _ = writeln!(md, "| command | `{}` |", m.command_line.join(" "));
    let _ = writeln!(md, "| date | {} |", m.date_utc);
    let _ = writeln!(md, "| kernel | {} |", m.kernel);
    let vm = if p.virtual_machine {
        " (virtual machine)"
    } else {
        ""
    };
    let _ = writeln!(md, "| CPU | {} × {}{vm} |", m.cpus, m.cpu_model);
    let _ = writeln!(
        md,
        "| load average | {:.2} before, {:.2} after |",
        m.load_before, m.load_after
    );
    let _ = writeln!(
        md,
        "| CPU steal during the run | {:.2}% |",
        m.steal_share * 100.0
    );
    let _ = writeln!(
        md,
        "| transparent huge pages | {} (heaps use MADV_NOHUGEPAGE) |",
        p.thp
    );
    let _ = writeln!(
        md,
        "| vm.unprivileged_userfaultfd | {} |",
        p.unprivileged_userfaultfd.as_deref().unwrap_or("?")
    );
    let availability = |a: &crate::probe::Availability| match a {
        crate::probe::Availability::Available { detail, .. } => format!("available ({detail})"),
        crate::probe::Availability::Unavailable { reason } => format!("**unavailable**: {reason}"),
    };
    for (kind, a) in &p.mechanisms {
        let _ = writeln!(md, "| {kind} | {} |", availability(a));
    }
    let _ = writeln!(
        md,
        "| soft-dirty (not built) | {} |",
        availability(&p.soft_dirty)
    );
    if !result.unavailable.is_empty() {
        let _ = writeln!(md, "\nNot run:\n");
        for (v, why) in &result.unavailable {
            let _ = writeln!(md, "- `{v}`: {why}");
            if v.starts_with("bdwgc") {
                let _ = writeln!(md, "  (add bdwgc with `apt-get install libgc1`)");
            }
        }
    }
}

/// "negative" when the interval lies below 0, "under noise" when it contains 0.
fn flag(i: &Option<Interval>) -> &'static str {
    match i.map(|i| i.beside(0.0)) {
        Some(Some(std::cmp::Ordering::Less)) => "negative",
        Some(None) => "under noise",
        _ => "",
    }
}

fn micro(md: &mut String, result: &StudyResult) {
    let rows = &result.rows;
    let seed = result.meta.seed;
    let spps = swept(rows);
    let (Some(&lo), Some(&hi)) = (spps.first(), spps.last()) else {
        return;
    };
    let ts = trackers(rows, "micro");
    let region = rows
        .iter()
        .find(|r| r.section == "micro")
        .map_or(0.0, |r| r.heap_mib);
    let _ = writeln!(md, "\n## Cost per store, per dirtied page, per cycle\n");
    let _ = writeln!(
        md,
        "Each tracker alone over a bare {} MiB region (`workload::pages`; the last-level cache is {} MiB), \
         one process per tracker and pattern, rounds of: arm, a first pass of stores, a second pass of \
         the same stores (nothing left to fault), harvest and disarm. *Per store*: second-pass time per \
         store at {hi} stores per page, minus `none`'s (medians; interval by bootstrap over rounds). \
         *First write per dirtied page*: (first pass − second pass) per page at {lo} store per page, \
         minus `none`'s: the fault and its service. A difference whose interval contains 0 is flagged \
         *under noise*, one below 0 *negative*: neither is a cost. *Arm*, *harvest + disarm*: per page \
         of the region. Here `uffd-wp[collector]`'s faults are served by a thread that only polls the \
         descriptor; the end-to-end rows run the real layout (the marking thread polls between mark \
         increments).\n",
        fmt(region),
        super::last_level_cache_bytes().map_or("?".into(), |b| fmt(b as f64 / (1 << 20) as f64)),
    );
    let _ = writeln!(
        md,
        "| tracker | per store (ns) | | first write per dirtied page (ns) | | arm (ns/page) | harvest + disarm (ns/page) |\n|---|---|---|---|---|---|---|"
    );
    let per_store = |t: &str| {
        rounds(rows, t, &format!("pages-spp{hi}"), |m| {
            m("steady_ns") / m("stores")
        })
    };
    let first = |t: &str, label: &str| {
        rounds(rows, t, label, |m| {
            (m("stores_ns") - m("steady_ns")) / m("pages_written")
        })
    };
    let lo_label = format!("pages-spp{lo}");
    let (ns, nf) = (per_store("none"), first("none", &lo_label));
    for t in &ts {
        let s = stats::bootstrap(&[&per_store(t), &ns], stats::seed_for(seed, t), |m| {
            m[0] - m[1]
        });
        let f = stats::bootstrap(
            &[&first(t, &lo_label), &nf],
            stats::seed_for(seed, t),
            |m| m[0] - m[1],
        );
        let per_page = |m: &str| {
            stats::median_ci(
                &rounds(rows, t, &lo_label, |r| r(m) / (region * 256.0)),
                stats::seed_for(seed, m),
            )
        };
        let _ = writeln!(
            md,
            "| {t} | {} | {} | {} | {} | {} | {} |",
            opt_ci(s),
            flag(&s),
            opt_ci(f),
            flag(&f),
            opt_ci(per_page("arm_ns")),
            opt_ci(per_page("harvest_ns")),
        );
    }
    crossover_table(md, rows, &ts, seed);
    pattern_tables(md, rows, &ts, seed);
}

fn crossover_table(md: &mut String, rows: &[Measurement], ts: &[String], seed: u64) {
    if !ts.iter().any(|t| t == "card-table") {
        return;
    }
    let _ = writeln!(md, "\n## Crossover with the card table\n");
    let _ = writeln!(
        md,
        "Stores per dirtied page above which a page tracker costs less per store than the card table \
         (arm, first pass and harvest counted, sequential pages, every page dirtied): where the measured \
         median curves cross (log-log interpolation), with the bootstrap interval over rounds at every \
         point of the sweep. No interval where fewer than half the resamples cross within the sweep.\n"
    );
    let _ = writeln!(
        md,
        "| tracker | crossover (stores/page) | resamples that cross |\n|---|---|---|"
    );
    for t in ts.iter().filter(|t| *t != "card-table" && *t != "none") {
        if let Some(c) = crossover(rows, t, "card-table", seed) {
            let text = match c.measured {
                Some(i) => fmt_ci(&i),
                None => format!("none within 1–{}", fmt(c.swept_to)),
            };
            let _ = writeln!(md, "| {t} | {text} | {:.0}% |", c.crossing_share * 100.0);
        }
    }
}

fn pattern_tables(md: &mut String, rows: &[Measurement], ts: &[String], seed: u64) {
    let total =
        |m: &dyn Fn(&str) -> f64| (m("stores_ns") + m("arm_ns") + m("harvest_ns")) / m("stores");
    let labels: Vec<String> = rows
        .iter()
        .filter(|r| r.section == "micro")
        .map(|r| r.workload.clone())
        .collect();
    let has = |l: &str| labels.iter().any(|x| x == l);
    if has("pages-spp1-random") {
        let _ = writeln!(md, "\n### Page order\n");
        let _ = writeln!(
            md,
            "Cost per store (arm + first pass + harvest) in random page order over sequential order.\n"
        );
        let _ = writeln!(
            md,
            "| tracker | random ÷ sequential, 1 store/page | 64 stores/page |\n|---|---|---|"
        );
        for t in ts {
            let r = |spp: u64| {
                stats::ratio_of_medians(
                    &rounds(rows, t, &format!("pages-spp{spp}-random"), total),
                    &rounds(rows, t, &format!("pages-spp{spp}"), total),
                    stats::seed_for(seed, t),
                )
            };
            let _ = writeln!(md, "| {t} | {} | {} |", opt_ratio(r(1)), opt_ratio(r(64)));
        }
    }
    if has("pages-spp16-f0.1") {
        let _ = writeln!(md, "\n### Share of the region dirtied\n");
        let _ = writeln!(
            md,
            "Cost per dirtied page (arm + first pass + harvest, divided by the pages written), 16 stores \
             per page, a random spread of the region's pages written in ascending order: arm and harvest \
             pay for the whole region, so their share grows as fewer pages are dirtied.\n"
        );
        let _ = writeln!(
            md,
            "| tracker | all pages (ns) | 10% (ns) | 1% (ns) |\n|---|---|---|---|"
        );
        let per_page = |m: &dyn Fn(&str) -> f64| {
            (m("stores_ns") + m("arm_ns") + m("harvest_ns")) / m("pages_written")
        };
        for t in ts {
            let c =
                |l: &str| stats::median_ci(&rounds(rows, t, l, per_page), stats::seed_for(seed, l));
            let _ = writeln!(
                md,
                "| {t} | {} | {} | {} |",
                opt_ci(c("pages-spp16")),
                opt_ci(c("pages-spp16-f0.1")),
                opt_ci(c("pages-spp16-f0.01"))
            );
        }
    }
    if has("pages-spp1-pinned") {
        let _ = writeln!(md, "\n### One CPU\n");
        let _ = writeln!(
            md,
            "First write per dirtied page (first pass − second pass, 1 store per page) with every thread \
             of the process pinned to one CPU (the fault-service thread then shares the writer's CPU), \
             against unpinned.\n"
        );
        let _ = writeln!(
            md,
            "| tracker | pinned (ns) | unpinned (ns) | pinned ÷ unpinned |\n|---|---|---|---|"
        );
        let first =
            |m: &dyn Fn(&str) -> f64| (m("stores_ns") - m("steady_ns")) / m("pages_written");
        for t in ts {
            let (p, u) = (
                rounds(rows, t, "pages-spp1-pinned", first),
                rounds(rows, t, "pages-spp1", first),
            );
            let s = stats::seed_for(seed, t);
            let (pi, ui) = (stats::median_ci(&p, s), stats::median_ci(&u, s));
            // A ratio of two costs only where both are costs (intervals above 0).
            let above = |i: &Option<Interval>| i.is_some_and(|i| i.lo > 0.0);
            let ratio = if above(&pi) && above(&ui) {
                opt_ratio(stats::ratio_of_medians(&p, &u, s))
            } else {
                "– (under noise)".into()
            };
            let _ = writeln!(md, "| {t} | {} | {} | {ratio} |", opt_ci(pi), opt_ci(ui));
        }
    }
}

fn min_heaps(md: &mut String, result: &StudyResult) {
    let rows: Vec<&Measurement> = result
        .rows
        .iter()
        .filter(|r| r.section == "minheap")
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(md, "\n## Minimum heaps\n");
    let _ = writeln!(
        md,
        "The smallest heap (1 MiB steps) in which the stop-the-world collector completes each workload, \
         found by doubling from 1 MiB and bisecting, each size in a fresh process; beside it the largest \
         size tested that ran out of memory (0: 1 MiB sufficed, nothing smaller was tried).\n"
    );
    let _ = writeln!(
        md,
        "| workload | threads | minimum (MiB) | tested and failed (MiB) |\n|---|---|---|---|"
    );
    for r in rows.iter().filter(|r| r.metric == "min_heap_mib") {
        let fails = rows
            .iter()
            .find(|f| {
                f.metric == "min_heap_fails_mib"
                    && f.workload == r.workload
                    && f.threads == r.threads
            })
            .map_or(f64::NAN, |f| f.value);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            r.workload,
            r.threads,
            fmt(r.value),
            fmt(fails)
        );
    }
}

/// The (workload, threads, heap) keys of a section, in order of appearance.
fn keys(rows: &[Measurement], section: &str) -> Vec<(String, usize, f64)> {
    let mut keys = Vec::new();
    for r in rows.iter().filter(|r| r.section == section) {
        let k = (r.workload.clone(), r.threads, r.heap_mib);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys
}

fn end_to_end(md: &mut String, result: &StudyResult) {
    let rows = &result.rows;
    let keys = keys(rows, "macro");
    if keys.is_empty() {
        return;
    }
    let _ = writeln!(md, "\n## End to end\n");
    let _ = writeln!(
        md,
        "Per point: *n* valid invocations; wall time and the process's CPU time with their ratios to \
         `none` (stop-the-world) and the verdict; CPU by thread role (mutators / collector thread / \
         `uffd-wp` fault-service thread); stop-the-world (STW) time; pause percentiles (HDR histogram) \
         and the longest pause's ratio to `none`'s; minimum mutator utilisation (MMU) over the pauses at \
         10 ms windows (with its interval), 1 and 100 ms; the MMU over pauses *and* the writers' fault \
         stalls at 10 ms (a stall of one of T mutators costs 1/T of the process while it lasts; – where \
         the tracker has no stalls to measure; how each measures them is listed below the tables); \
         full collections that an allocation forced (fallbacks); faults served (page trackers) or cards dirtied (card table); \
         granules dirty at remark; peak RSS. bdwgc rows (GCBench, one thread) come from \
         `libgc.so.1` in its own process; its CPU is the whole process's, its pauses its world-stopped \
         marks.\n"
    );
    for (wl, threads, heap) in &keys {
        let min_heap = select(rows, "minheap", "none", wl, *threads, None, "min_heap_mib").next();
        let _ = writeln!(
            md,
            "### {wl}, {threads} thread(s), {} MiB heap ({} times the minimum)\n",
            fmt(*heap),
            min_heap.map_or("?".into(), |m| fmt(heap / m))
        );
        const COLUMNS: &str = "| tracker | n | wall ms | wall ÷ none | | CPU ms | CPU ÷ none | | CPU mut / coll / service ms | STW ms | p50 µs | p99 µs | max µs | max ÷ none | MMU 10 ms | MMU 1 / 100 ms | MMU with stalls 10 ms | fallbacks | faults | remark dirty | RSS MiB |";
        let _ = writeln!(
            md,
            "{COLUMNS}\n|{}",
            "---|".repeat(COLUMNS.matches('|').count() - 1)
        );
        let get = |t: &str, m: &str| {
            select(rows, "macro", t, wl, *threads, Some(*heap), m).collect::<Vec<f64>>()
        };
        for t in trackers(rows, "macro") {
            let wall = get(&t, "wall_ms");
            if wall.is_empty() {
                continue;
            }
            let seed = stats::seed_for(result.meta.seed, &format!("{t}/{wl}/{threads}/{heap}"));
            let med = |m: &str| {
                let v = get(&t, m);
                (!v.is_empty()).then(|| median(&v)).map_or("–".into(), fmt)
            };
            // Counts print as integers (a median of an even number of counts may end in .5).
            let count = |m: &str| {
                let v = get(&t, m);
                (!v.is_empty())
                    .then(|| median(&v))
                    .map_or("–".into(), fmt_count)
            };
            let ratio = |m: &str| -> (String, &'static str) {
                if t == "none" {
                    return ("baseline".into(), "");
                }
                let i = stats::ratio_of_medians(&get(&t, m), &get("none", m), seed);
                (opt_ratio(i), i.map_or("", |i| i.time_verdict()))
            };
            let (wr, wv) = ratio("wall_ms");
            let (cr, cv) = ratio("cpu_total_ms");
            let (pr, _) = ratio("pause_max_us");
            let _ = writeln!(
                md,
                "| {t} | {} | {} | {wr} | {wv} | {} | {cr} | {cv} | {} / {} / {} | {} | {} | {} | {} | {pr} | {} | {} / {} | {} | {} | {} | {} | {} |",
                wall.len(),
                opt_ci(stats::median_ci(&wall, seed)),
                opt_ci(stats::median_ci(&get(&t, "cpu_total_ms"), seed)),
                med("cpu_mutator_ms"),
                med("cpu_collector_ms"),
                med("cpu_service_ms"),
                med("stw_ms"),
                med("pause_p50_us"),
                med("pause_p99_us"),
                med("pause_max_us"),
                opt_ci(stats::median_ci(&get(&t, &mmu_metric(10)), seed)),
                med(&mmu_metric(1)),
                med(&mmu_metric(100)),
                opt_ci(stats::median_ci(&get(&t, &mmu_stall_metric(10)), seed)),
                count("fallbacks"),
                count("faults"),
                count("remark_dirty"),
                med("peak_rss_mib"),
            );
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(
        md,
        "*What this shows*: what each barrier costs a whole program, in time and in CPU, beside \
         stopping the world. A ratio above 1 with its interval above 1 is a cost; the pause \
         columns and MMU are what the barrier buys (shorter pauses, more time for the mutator). \
         On 2 CPUs a concurrent collector marks on the CPU the mutator does not use, so wall \
         time can hide a cost that CPU time shows.\n"
    );
    dirty_split(md, rows, &keys);
    let _ = writeln!(
        md,
        "MMU windows in the CSV: {MMU_WINDOWS_MS:?} ms (`mmu_*`, `mmu_stall_*`).\n"
    );
    let mut methods: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r.section == "macro" && r.metric == "stalls")
        .map(|r| (r.tracker.as_str(), r.note.as_str()))
        .collect();
    methods.sort_unstable();
    methods.dedup();
    if !methods.is_empty() {
        let _ = writeln!(md, "How each tracker measures a writer's fault stall:\n");
        for (t, how) in methods {
            let _ = writeln!(md, "- `{t}`: {how}");
        }
    }
}

/// A count as the report prints it: an integer, or one decimal for a half.
fn fmt_count(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Harvested granules split by cause, per end-to-end point: first writes to pages the
/// cycle allocated into (the allocation frontier) against writes to older objects.
fn dirty_split(md: &mut String, rows: &[Measurement], keys: &[(String, usize, f64)]) {
    let _ = writeln!(
        md,
        "### Dirty granules by cause
"
    );
    let _ = writeln!(
        md,
        "Granules (pages for the page trackers, cards for the card table) handed over by each \
         cycle's harvests, summed over the run (median over invocations): on pages allocated into \
         during the cycle (*frontier*: the first writes to new objects, which a card table pays \
         only as card marks but a page tracker pays as faults) or on pages of objects older than \
         the cycle (*old*: the mutations the barrier exists for).\n"
    );
    let _ = writeln!(
        md,
        "| point | tracker | frontier | old | old share |\n|---|---|---|---|---|"
    );
    for (wl, threads, heap) in keys {
        for t in trackers(rows, "macro") {
            let get = |m: &str| {
                select(rows, "macro", &t, wl, *threads, Some(*heap), m).collect::<Vec<f64>>()
            };
            let (f, o) = (get("dirty_frontier"), get("dirty_old"));
            if f.is_empty() || o.is_empty() || t == "none" {
                continue;
            }
            let (f, o) = (median(&f), median(&o));
            let share = if f + o > 0.0 {
                format!("{:.1}%", 100.0 * o / (f + o))
            } else {
                "–".into()
            };
            let _ = writeln!(
                md,
                "| {wl} x{threads} {} MiB | {t} | {} | {} | {share} |",
                fmt(*heap),
                fmt_count(f),
                fmt_count(o)
            );
        }
    }
    let _ = writeln!(
        md,
        "\n*What this shows*: how much of a page tracker's work is the allocation frontier \
         (GCBench: nearly all) rather than mutation of old objects (the LRU cache and binary \
         trees: a large share), which is where page protection can compete with card marking.\n"
    );
}

fn lower_bound(md: &mut String, result: &StudyResult) {
    let rows = &result.rows;
    let keys = keys(rows, "macro");
    if keys.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n## Overhead over a lower bound (no barrier, no collector)\n"
    );
    let _ = writeln!(
        md,
        "After Cai et al., \"Distilling the Real Cost of Production Garbage Collectors\" (ISPASS 2022), \
         the cost of an ideal run with no barrier and no collector is bounded, per workload and heap, by \
         the least over barrierlab's variants of the median time spent outside the collector (wall time \
         less the pauses; CPU time less the collector, fault-service and pause-marking threads' CPU). \
         Each variant's overhead is its median over that bound, with a bootstrap interval that resamples \
         every variant's invocations (so the bound varies too); since the bound still contains some \
         collector cost, the overheads are lower bounds.\n"
    );
    for (wl, threads, heap) in &keys {
        let ts: Vec<String> = trackers(rows, "macro")
            .into_iter()
            .filter(|t| !t.starts_with("bdwgc"))
            .collect();
        let get = |t: &str, m: &str| {
            select(rows, "macro", t, wl, *threads, Some(*heap), m).collect::<Vec<f64>>()
        };
        let present: Vec<&String> = ts
            .iter()
            .filter(|t| !get(t, "wall_ms").is_empty())
            .collect();
        if present.is_empty() {
            continue;
        }
        let bound = |m: &str| {
            present
                .iter()
                .map(|t| median(&get(t, m)))
                .filter(|v| v.is_finite())
                .fold(f64::INFINITY, f64::min)
        };
        let _ = writeln!(
            md,
            "### {wl}, {threads} thread(s), {} MiB: bound {} ms wall, {} ms CPU\n",
            fmt(*heap),
            fmt(bound("wall_minus_gc_ms")),
            fmt(bound("cpu_minus_gc_ms"))
        );
        let _ = writeln!(
            md,
            "| tracker | wall ÷ bound | CPU ÷ bound |\n|---|---|---|"
        );
        for t in &present {
            let over = |total: &str, free: &str| {
                let mut groups = vec![get(t, total)];
                groups.extend(present.iter().map(|u| get(u, free)));
                let g: Vec<&[f64]> = groups.iter().map(|g| g.as_slice()).collect();
                stats::bootstrap(
                    &g,
                    stats::seed_for(result.meta.seed, &format!("lbo/{t}/{wl}/{heap}")),
                    |m| m[0] / m[1..].iter().copied().fold(f64::INFINITY, f64::min),
                )
            };
            let _ = writeln!(
                md,
                "| {t} | {} | {} |",
                opt_ratio(over("wall_ms", "wall_minus_gc_ms")),
                opt_ratio(over("cpu_total_ms", "cpu_minus_gc_ms"))
            );
        }
        let _ = writeln!(md);
    }
}

fn invalid(md: &mut String, result: &StudyResult) {
    // (section, tracker, workload, threads, heap) → (invocations, first reason)
    type Point = (String, String, String, usize, f64);
    let mut bad: Vec<(Point, (Vec<usize>, String))> = Vec::new();
    for r in result
        .rows
        .iter()
        .filter(|r| r.section == "invalid" || r.section == "error")
    {
        let k = (
            r.section.clone(),
            r.tracker.clone(),
            r.workload.clone(),
            r.threads,
            r.heap_mib,
        );
        match bad.iter_mut().find(|b| b.0 == k) {
            Some(b) => {
                if !b.1.0.contains(&r.invocation) {
                    b.1.0.push(r.invocation);
                }
            }
            None => bad.push((k, (vec![r.invocation], r.note.clone()))),
        }
    }
    let _ = writeln!(md, "\n## Invalid and failed invocations\n");
    if bad.is_empty() {
        let _ = writeln!(
            md,
            "None: every end-to-end invocation completed at least {MIN_CYCLES} collection cycles."
        );
        return;
    }
    let _ = writeln!(
        md,
        "Not results: `invalid` invocations completed fewer than {MIN_CYCLES} collection cycles or ran out \
         of memory; `error` ones crashed, failed or passed the timeout.\n"
    );
    let _ = writeln!(
        md,
        "| kind | tracker | workload | threads | heap MiB | invocations | reason |\n|---|---|---|---|---|---|---|"
    );
    for ((section, t, w, th, h), (inv, why)) in &bad {
        let _ = writeln!(
            md,
            "| {section} | {t} | {w} | {th} | {} | {} | {} |",
            fmt(*h),
            inv.len(),
            why.replace('|', "/")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micro_row(t: &str, spp: u64, round: usize, metric: &str, v: f64) -> Measurement {
        Measurement {
            section: "micro".into(),
            tracker: t.into(),
            workload: format!("pages-spp{spp}"),
            threads: 1,
            heap_mib: 16.0,
            invocation: round,
            metric: metric.into(),
            value: v,
            note: String::new(),
        }
    }

    #[test]
    fn summary_and_format() {
        let s = summarize(&[3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.5, 1.0, 10.0, 4));
        assert_eq!(fmt(1234.4), "1234");
        assert_eq!(fmt(0.12345), "0.123");
        let i = Interval {
            estimate: 1.234,
            lo: 1.1,
            hi: 1.4,
        };
        assert_eq!(fmt_ratio(&i), "1.23× [1.10–1.40]");
        let line = csv_line(&Measurement {
            note: "a, b\nc".into(),
            ..micro_row("x", 1, 0, "m", 1.5)
        });
        assert_eq!(line, "micro,x,pages-spp1,1,16,0,m,1.5,a  b c\n");
    }

    #[test]
    fn crossover_of_synthetic_curves() {
        // Card: 1 ns per store. Page: 1000 ns per page + 0.5 ns per store: per store
        // 1000/spp + 0.5, equal to 1 at spp = 2000. Three rounds with a little noise.
        let mut rows = Vec::new();
        for spp in [1u64, 10, 100, 1000, 10_000, 100_000] {
            for round in 0..3 {
                let noise = 1.0 + 0.01 * round as f64;
                for (t, v) in [("card-table", 1.0), ("page", 1000.0 / spp as f64 + 0.5)] {
                    rows.push(micro_row(t, spp, round, "total_ns_per_store", v * noise));
                }
            }
        }
        let c = crossover(&rows, "page", "card-table", 1).unwrap();
        let m = c.measured.unwrap();
        assert!(m.estimate > 1000.0 && m.estimate < 10_000.0, "{c:?}");
        assert!(m.lo <= m.estimate && m.estimate <= m.hi, "{c:?}");
        assert_eq!(c.crossing_share, 1.0);
        // A tracker that never gets cheaper: no crossover, no interval.
        let never: Vec<Measurement> = rows
            .iter()
            .filter(|r| r.tracker == "card-table")
            .map(|r| Measurement {
                tracker: "slow".into(),
                value: r.value * 2.0,
                ..r.clone()
            })
            .chain(rows.iter().cloned())
            .collect();
        let c = crossover(&never, "slow", "card-table", 1).unwrap();
        assert!(c.measured.is_none() && c.crossing_share == 0.0, "{c:?}");
    }
}
