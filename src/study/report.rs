//! `study.csv` and `report.md`, both from the study's rows: every number in a table is a
//! median (with min–max) of rows in the CSV, formatted by [`fmt`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{MMU_WINDOWS_MS, Measurement, StudyResult, mmu_metric, plot};
use crate::error::{Error, Result};

/// The CSV header.
pub const CSV_HEADER: &str = "section,tracker,workload,threads,heap_mib,invocation,metric,value";

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
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Summary {
        median,
        min: v[0],
        max: v[n - 1],
        n,
    })
}

/// The rows matching a key.
pub fn select<'a>(
    rows: &'a [Measurement],
    section: &str,
    tracker: &str,
    workload: &str,
    threads: usize,
    heap_mib: Option<f64>,
    metric: &str,
) -> impl Iterator<Item = f64> + 'a {
    let (section, tracker, workload, metric) = (
        section.to_string(),
        tracker.to_string(),
        workload.to_string(),
        metric.to_string(),
    );
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

fn median_of(
    rows: &[Measurement],
    section: &str,
    tracker: &str,
    workload: &str,
    threads: usize,
    heap: Option<f64>,
    metric: &str,
) -> Option<f64> {
    summarize(&select(rows, section, tracker, workload, threads, heap, metric).collect::<Vec<_>>())
        .map(|s| s.median)
}

/// Renders the rows as CSV.
pub fn csv(rows: &[Measurement]) -> String {
    let mut out = String::with_capacity(rows.len() * 64);
    out.push_str(CSV_HEADER);
    out.push('\n');
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            r.section,
            r.tracker,
            r.workload,
            r.threads,
            r.heap_mib,
            r.invocation,
            r.metric,
            r.value
        );
    }
    out
}

/// The crossover analysis of one page tracker against the card table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crossover {
    /// Stores per dirtied page at which the measured costs per store cross (log-log
    /// interpolation), if they cross within the sweep.
    pub measured: Option<f64>,
    /// The largest stores-per-page of the sweep (the crossover, if not measured, lies
    /// beyond it or nowhere).
    pub swept_to: f64,
    /// What the fitted cost model predicts.
    pub predicted: Option<f64>,
    /// Fitted cost per store, ns.
    pub per_store_ns: f64,
    /// Fitted cost per dirtied page (fault + its share of arm and harvest), ns.
    pub per_page_ns: f64,
    /// Coefficient of determination of the fit.
    pub r2: f64,
}

/// Weighted least squares `y = a + b x` minimising the *relative* error
/// `Σ ((y − a − b x) / y)²` (the points span orders of magnitude, and plain least squares
/// would fit only the largest); returns (a, b, R² of the weighted fit).
pub fn fit_line(points: &[(f64, f64)]) -> (f64, f64, f64) {
    let w: Vec<f64> = points
        .iter()
        .map(|p| 1.0 / p.1.abs().max(1e-9).powi(2))
        .collect();
    let sw: f64 = w.iter().sum();
    let mx = points.iter().zip(&w).map(|(p, w)| w * p.0).sum::<f64>() / sw;
    let my = points.iter().zip(&w).map(|(p, w)| w * p.1).sum::<f64>() / sw;
    let sxx: f64 = points
        .iter()
        .zip(&w)
        .map(|(p, w)| w * (p.0 - mx).powi(2))
        .sum();
    let sxy: f64 = points
        .iter()
        .zip(&w)
        .map(|(p, w)| w * (p.0 - mx) * (p.1 - my))
        .sum();
    let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let a = my - b * mx;
    let ss_tot: f64 = points
        .iter()
        .zip(&w)
        .map(|(p, w)| w * (p.1 - my).powi(2))
        .sum();
    let ss_res: f64 = points
        .iter()
        .zip(&w)
        .map(|(p, w)| w * (p.1 - a - b * p.0).powi(2))
        .sum();
    let r2 = if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        1.0
    };
    (a, b, r2)
}

/// The micro curve of a variant: (stores per page, median total ns per store).
pub fn micro_curve(rows: &[Measurement], tracker: &str) -> Vec<(f64, f64)> {
    let mut by_spp: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for r in rows.iter().filter(|r| {
        r.section == "micro" && r.tracker == tracker && r.metric == "total_ns_per_store"
    }) {
        if let Some(spp) = r
            .workload
            .strip_prefix("pages-spp")
            .and_then(|s| s.parse().ok())
        {
            by_spp.entry(spp).or_default().push(r.value);
        }
    }
    by_spp
        .into_iter()
        .filter_map(|(spp, v)| summarize(&v).map(|s| (spp as f64, s.median)))
        .collect()
}

/// Fits `cost per store = s + g / spp` and finds where `tracker` crosses `card`.
pub fn crossover(rows: &[Measurement], tracker: &str, card: &str) -> Option<Crossover> {
    let curve = micro_curve(rows, tracker);
    let card_curve = micro_curve(rows, card);
    if curve.len() < 2 || card_curve.len() < 2 {
        return None;
    }
    // Cost per store = s + g / spp: a line in 1 / spp, which weighs the many-stores
    // points (where s shows) as much as the few-stores ones (where g shows).
    let inverse = |c: &[(f64, f64)]| {
        c.iter()
            .map(|&(spp, ns)| (1.0 / spp, ns))
            .collect::<Vec<_>>()
    };
    let (s, g, r2) = fit_line(&inverse(&curve));
    let (sc, gc, _) = fit_line(&inverse(&card_curve));
    let predicted = (sc > s && g > gc).then(|| (g - gc) / (sc - s));
    // Measured: the first sign change of ln(cost / card cost) along the sweep.
    let mut measured = None;
    let ratio: Vec<(f64, f64)> = curve
        .iter()
        .filter_map(|&(spp, ns)| {
            card_curve
                .iter()
                .find(|c| c.0 == spp)
                .map(|c| (spp.ln(), (ns / c.1).ln()))
        })
        .collect();
    for w in ratio.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if y0 > 0.0 && y1 <= 0.0 {
            measured = Some((x0 + (x1 - x0) * y0 / (y0 - y1)).exp());
            break;
        }
    }
    Some(Crossover {
        measured,
        swept_to: curve.last().map_or(0.0, |c| c.0),
        predicted,
        per_store_ns: s,
        per_page_ns: g,
        r2,
    })
}

fn opt(v: Option<f64>) -> String {
    v.map_or("–".into(), fmt)
}

/// Writes `study.csv`, `report.md` and the figures.
pub fn write_all(result: &StudyResult) -> Result<()> {
    let out = &result.config.out;
    let write = |name: &str, text: String| {
        std::fs::write(out.join(name), text)
            .map_err(|e| Error::io(format!("write {}", out.join(name).display()), e))
    };
    write("study.csv", csv(&result.rows))?;
    let figures = plot::write_all(result)?;
    write("report.md", markdown(result, &figures))
}

/// The variants present in the rows, in run order.
pub fn trackers(rows: &[Measurement], section: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for r in rows.iter().filter(|r| r.section == section) {
        if !seen.contains(&r.tracker) {
            seen.push(r.tracker.clone());
        }
    }
    seen
}

/// Renders the Markdown report.
pub fn markdown(result: &StudyResult, figures: &[String]) -> String {
    let rows = &result.rows;
    let p = &result.probe;
    let mut md = String::new();
    let _ = writeln!(md, "# barrierlab study\n");
    let _ = writeln!(
        md,
        "Mode `{:?}`, {} invocation(s) per end-to-end point, took {:.0} s. Every number below is \
         the median of rows in `study.csv` (min–max in brackets where there are several).\n",
        result.config.mode,
        result.config.invocations,
        result.elapsed.as_secs_f64()
    );
    let _ = writeln!(md, "## Machine\n");
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| kernel | {} |", p.kernel);
    let _ = writeln!(
        md,
        "| CPU | {} × {}{} |",
        p.cpus,
        p.cpu,
        if p.virtual_machine {
            " (virtual machine)"
        } else {
            ""
        }
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
        crate::probe::Availability::Unavailable { reason } => {
            format!("**unavailable**: {reason}")
        }
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
        }
    }

    // Micro.
    let micro = trackers(rows, "micro");
    let card = micro.iter().find(|t| t.as_str() == "card-table").cloned();
    let spps: Vec<u64> = {
        let mut s: Vec<u64> = rows
            .iter()
            .filter(|r| r.section == "micro")
            .filter_map(|r| {
                r.workload
                    .strip_prefix("pages-spp")
                    .and_then(|s| s.parse().ok())
            })
            .collect();
        s.sort();
        s.dedup();
        s
    };
    if let (Some(&lo), Some(&hi)) = (spps.first(), spps.last()) {
        let pages_wl = |spp: u64| format!("pages-spp{spp}");
        let _ = writeln!(md, "\n## Cost per store, per dirtied page, per cycle\n");
        let _ = writeln!(
            md,
            "Each tracker alone over a bare region (`workload::pages`), every page written, sequential \
             pages, stores per page swept from {lo} to {hi}. *Per store*: a second pass of the {hi} stores \
             per page while still armed (nothing left to fault), minus `none`'s. *Per dirtied page*: the \
             fit cost per store = s + g / stores-per-page (first pass, arm and harvest counted), g minus \
             `none`'s. *First write*: first-pass store time per page at {lo} store per page, minus `none`'s \
             (the fault and its service, nothing else). *Arm*, *harvest + disarm*: per heap page.\n"
        );
        let _ = writeln!(
            md,
            "| tracker | per store (ns) | per dirtied page (ns) | first write (ns) | arm (ns/page) | harvest + disarm (ns/page) |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|");
        let m = |t: &str, spp: u64, metric: &str| {
            median_of(rows, "micro", t, &pages_wl(spp), 1, None, metric)
        };
        let fit = |t: &str| {
            let c = micro_curve(rows, t);
            (c.len() >= 2).then(|| {
                fit_line(
                    &c.iter()
                        .map(|&(spp, ns)| (1.0 / spp, ns))
                        .collect::<Vec<_>>(),
                )
            })
        };
        let none_fit = fit("none");
        let none_lo = m("none", lo, "stores_ns_per_store");
        for t in &micro {
            let g = match (fit(t), none_fit) {
                (Some((_, g, _)), Some((_, gn, _))) => Some(g - gn),
                _ => None,
            };
            let s = m(t, hi, "steady_ns_per_store")
                .zip(m("none", hi, "steady_ns_per_store"))
                .map(|(a, b)| a - b);
            let first = m(t, lo, "stores_ns_per_store")
                .zip(none_lo)
                .map(|(a, b)| (a - b) * lo as f64);
            let _ = writeln!(
                md,
                "| {t} | {} | {} | {} | {} | {} |",
                opt(s),
                opt(g),
                opt(first),
                opt(m(t, lo, "arm_ns_per_page")),
                opt(m(t, lo, "harvest_ns_per_page"))
            );
        }
        if let Some(card) = &card {
            let _ = writeln!(md, "\n## Crossover with the card table\n");
            let _ = writeln!(
                md,
                "Stores per dirtied page above which a page tracker costs less per store than the card \
                 table (arm, stores and harvest counted). *Model*: relative least-squares fit of cost per store = \
                 s + g / stores-per-page; the predicted crossover is (g − g_card) / (s_card − s).\n"
            );
            let _ = writeln!(
                md,
                "| tracker | measured crossover | model crossover | fitted s (ns/store) | fitted g (ns/page) | fit R² |"
            );
            let _ = writeln!(md, "|---|---|---|---|---|---|");
            for t in micro.iter().filter(|t| *t != card && t.as_str() != "none") {
                if let Some(c) = crossover(rows, t, card) {
                    let _ = writeln!(
                        md,
                        "| {t} | {} | {} | {} | {} | {} |",
                        c.measured
                            .map_or_else(|| format!("> {}", fmt(c.swept_to)), fmt),
                        opt(c.predicted),
                        fmt(c.per_store_ns),
                        fmt(c.per_page_ns),
                        fmt(c.r2)
                    );
                }
            }
        }
    }

    // Macro.
    let mut keys: Vec<(String, usize, f64)> = Vec::new();
    for r in rows.iter().filter(|r| r.section == "macro") {
        let k = (r.workload.clone(), r.threads, r.heap_mib);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    if !keys.is_empty() {
        let _ = writeln!(md, "\n## End to end\n");
        let _ = writeln!(
            md,
            "Wall time with min–max over invocations; throughput relative to `none` (higher is better); \
             stop-the-world (STW) time; pause percentiles from an HDR histogram; minimum mutator \
             utilisation (MMU) at 1, 10 and 100 ms windows (the other windows are in the CSV); faults \
             served (page trackers) or cards dirtied (card table); granules dirty at remark and objects \
             rescanned there; peak RSS.\n"
        );
        for (wl, threads, heap) in &keys {
            let min_heap = median_of(rows, "minheap", "none", wl, *threads, None, "min_heap_mib");
            let _ = writeln!(
                md,
                "### {wl}, {threads} thread(s), {} MiB heap ({} × minimum)\n",
                fmt(*heap),
                opt(min_heap.map(|m| heap / m))
            );
            let _ = writeln!(
                md,
                "| tracker | wall ms | rel. throughput | STW ms | pauses | p50 µs | p99 µs | max µs | MMU 1ms | MMU 10ms | MMU 100ms | faults | remark dirty | remark rescanned | RSS MiB |"
            );
            let _ = writeln!(
                md,
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
            );
            let none_wall = median_of(rows, "macro", "none", wl, *threads, Some(*heap), "wall_ms");
            for t in trackers(rows, "macro") {
                let get =
                    |metric: &str| median_of(rows, "macro", &t, wl, *threads, Some(*heap), metric);
                if get("oom").is_some() && get("wall_ms").is_none() {
                    let _ = writeln!(md, "| {t} | out of memory | | | | | | | | | | | | | |");
                    continue;
                }
                let Some(wall) = summarize(
                    &select(rows, "macro", &t, wl, *threads, Some(*heap), "wall_ms")
                        .collect::<Vec<_>>(),
                ) else {
                    continue;
                };
                let wall_text = if wall.n > 1 {
                    format!("{} [{}–{}]", fmt(wall.median), fmt(wall.min), fmt(wall.max))
                } else {
                    fmt(wall.median)
                };
                let _ = writeln!(
                    md,
                    "| {t} | {wall_text} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    opt(none_wall.map(|n| n / wall.median)),
                    opt(get("stw_ms")),
                    opt(get("pauses")),
                    opt(get("pause_p50_us")),
                    opt(get("pause_p99_us")),
                    opt(get("pause_max_us")),
                    opt(get(mmu_metric(1))),
                    opt(get(mmu_metric(10))),
                    opt(get(mmu_metric(100))),
                    opt(get("faults")),
                    opt(get("remark_dirty")),
                    opt(get("remark_rescanned")),
                    opt(get("peak_rss_mib")),
                );
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md, "MMU windows in the CSV: {MMU_WINDOWS_MS:?} ms.");
    }

    if !figures.is_empty() {
        let _ = writeln!(md, "\n## Figures\n");
        for f in figures {
            let _ = writeln!(md, "![{f}]({f})\n");
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_and_fit() {
        let s = summarize(&[3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.5, 1.0, 10.0, 4));
        let (a, b, r2) = fit_line(&[(1.0, 5.0), (2.0, 7.0), (4.0, 11.0)]);
        assert!((a - 3.0).abs() < 1e-9 && (b - 2.0).abs() < 1e-9 && (r2 - 1.0).abs() < 1e-9);
        assert_eq!(fmt(1234.4), "1234");
        assert_eq!(fmt(0.12345), "0.123");
    }

    #[test]
    fn crossover_of_synthetic_curves() {
        // Card: 1 ns per store. Page: 1000 ns per page + 0.5 ns per store: per store
        // 1000/spp + 0.5, equal to 1 at spp = 2000.
        let mut rows = Vec::new();
        for spp in [1u64, 10, 100, 1000, 10_000, 100_000] {
            for (t, v) in [("card-table", 1.0), ("page", 1000.0 / spp as f64 + 0.5)] {
                rows.push(Measurement {
                    section: "micro",
                    tracker: t.into(),
                    workload: format!("pages-spp{spp}"),
                    threads: 1,
                    heap_mib: 16.0,
                    invocation: 0,
                    metric: "total_ns_per_store",
                    value: v,
                });
            }
        }
        let c = crossover(&rows, "page", "card-table").unwrap();
        assert!((c.predicted.unwrap() - 2000.0).abs() < 1e-6, "{c:?}");
        let m = c.measured.unwrap();
        assert!(m > 1000.0 && m < 10_000.0, "{c:?}");
    }
}
