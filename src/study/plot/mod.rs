//! The study's SVG figures, drawn with `plotters` (SVG backend only: no system
//! libraries). Each reads the study's rows, like the report.
//!
//! - `crossover.svg`: cost per store against stores per dirtied page, log-log, one line
//!   per tracker, the card-table crossovers marked.
//! - `pauses.svg`: the distribution (CDF) of pause times per tracker, GCBench, 1 thread.
//! - `mmu.svg`: minimum mutator utilisation against window, GCBench, 1 thread.
//! - `heapmap.svg`: the heap's pages as a grid, the pages one cycle dirtied filled.
//! - `curves-<workload>-x<threads>.svg`: wall and CPU time against the heap multiple, one
//!   line per variant with its intervals (drawn in `plot/end_to_end.rs`).
//! - `invocations.svg`: every invocation's wall time over `none`'s median, per workload
//!   and variant (a strip plot), at each workload's middle heap size.
//!
//! Each figure is drawn into memory and written whole ([`super::folder::write_whole`]):
//! a failure names the file and leaves no cut-off SVG. It never computes a statistic the
//! report does not also state from the same rows.

mod end_to_end;

use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::*;

use super::crossover::crossover;
use super::data::{At, Metric, Row, Section, micro_curve, select, trackers};
use super::meta::Meta;
use super::point::{MMU_WINDOWS_MS, PAUSE_CDF_QUANTILES};
use crate::error::{Error, Result};

/// A drawing failure, naming the figure. The SVG backend draws into memory, so its
/// errors are layout or font failures; the plotters error is kept as the cause.
fn plot_err(e: DrawingAreaErrorKind<std::io::Error>) -> Error {
    Error::io("draw a figure", std::io::Error::other(e.to_string()))
}

/// Draws a figure of `size` into memory with `draw`; `Ok(None)` when it had no data.
fn draw_svg(
    size: (u32, u32),
    draw: impl FnOnce(DrawingArea<SVGBackend, plotters::coord::Shift>) -> Result<bool>,
) -> Result<Option<String>> {
    let mut svg = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw(root)?
    };
    Ok(drawn.then_some(svg))
}

fn color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 9] = [
        RGBColor(0, 0, 0),
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
    ];
    COLORS[i % COLORS.len()]
}

fn bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for v in values.filter(|v| v.is_finite() && *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    (lo <= hi).then(|| (lo / 1.5, hi * 1.5))
}

/// Writes every figure that has data, each path from `claim` (which records it as the
/// study's); returns their file names.
pub fn write_all(
    rows: &[Row],
    meta: &Meta,
    claim: &mut dyn FnMut(&str) -> Result<std::path::PathBuf>,
) -> Result<Vec<String>> {
    let run = run_label(meta);
    let mut figures: Vec<(String, Option<String>)> = vec![
        (
            "crossover.svg".into(),
            crossover_svg(rows, meta.seed, &run)?,
        ),
        ("pauses.svg".into(), pauses_svg(rows, &run)?),
        ("mmu.svg".into(), mmu_svg(rows, &run)?),
        ("heapmap.svg".into(), heap_map_svg(rows)?),
    ];
    figures.extend(end_to_end::curves(rows, meta.seed, &run)?);
    figures.push(("invocations.svg".into(), end_to_end::strip(rows, &run)?));
    let mut names = Vec::new();
    for (name, svg) in figures {
        let Some(svg) = svg else { continue };
        let path = claim(&name)?;
        super::folder::write_whole(&path, svg.as_bytes())?;
        names.push(name);
    }
    Ok(names)
}

/// `run 2026-12-01 12:09 UTC, commit 05a8601`: the run a figure shows, for its title.
fn run_label(meta: &Meta) -> String {
    let (date, commit) = (&meta.date_utc, &meta.commit);
    let date = date.get(..16).unwrap_or(date).replace('T', " ");
    format!(
        "run {date} UTC, commit {}",
        commit.get(..7).unwrap_or(commit)
    )
}

/// A tick label a reader can read: `10`, `1k`, `10k`, `0.1`, never `10000.0`.
fn human(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 && (v / 1e6).fract() == 0.0 {
        format!("{}M", v / 1e6)
    } else if a >= 1e3 && (v / 1e3).fract() == 0.0 {
        format!("{}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn crossover_svg(rows: &[Row], seed: u64, run: &str) -> Result<Option<String>> {
    let ts = trackers(rows, Section::Micro);
    let curves: Vec<(String, Vec<(f64, f64)>)> = ts
        .iter()
        .map(|t| (t.clone(), micro_curve(rows, t)))
        .collect();
    let Some((xlo, xhi)) = bounds(curves.iter().flat_map(|c| c.1.iter().map(|p| p.0))) else {
        return Ok(None);
    };
    let Some((ylo, yhi)) = bounds(curves.iter().flat_map(|c| c.1.iter().map(|p| p.1))) else {
        return Ok(None);
    };
    draw_svg((900, 560), |root| {
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "Cost per store against stores per dirtied page (micro, sequential; {run})"
                ),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d((xlo..xhi).log_scale(), (ylo..yhi).log_scale())
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("stores per dirtied page")
            .y_desc("ns per store (arm + stores + harvest)")
            .x_labels(8)
            .y_labels(8)
            .x_label_formatter(&|v| human(*v))
            .y_label_formatter(&|v| human(*v))
            .draw()
            .map_err(plot_err)?;
        let mut marked = false;
        for (i, (name, pts)) in curves.iter().enumerate() {
            let c = color(i);
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                .map_err(plot_err)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(plot_err)?;
            if name != "card-table" && name != "none" {
                if let Some(x) = crossover(rows, name, "card-table", seed)
                    .and_then(|c| c.measured.map(|i| i.estimate))
                {
                    let y = pts
                        .windows(2)
                        .find(|w| w[0].0 <= x && x <= w[1].0)
                        .map(|w| {
                            (w[0].1.ln()
                                + (w[1].1.ln() - w[0].1.ln()) * (x.ln() - w[0].0.ln())
                                    / (w[1].0.ln() - w[0].0.ln()))
                            .exp()
                        })
                        .unwrap_or(ylo);
                    chart
                        .draw_series(std::iter::once(TriangleMarker::new((x, y), 8, c.filled())))
                        .map_err(plot_err)?;
                    marked = true;
                }
            }
        }
        if marked {
            // The markers' own legend entry (an empty series that only labels them).
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                .map_err(plot_err)?
                .label("▲ crossover with card-table")
                .legend(|(x, y)| TriangleMarker::new((x + 10, y), 6, BLACK.filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
        Ok(true)
    })
}

/// The end-to-end key the distribution figures use: GCBench-like workload, 1 thread, the
/// smallest heap.
fn figure_key(rows: &[Row]) -> Option<(String, f64)> {
    rows.iter()
        .filter(|r| {
            r.section == Section::Macro && r.threads == 1 && r.workload.starts_with("gcbench")
        })
        .map(|r| (r.workload.clone(), r.heap_mib))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// The pause-time CDF: for each tracker, the pause distribution's quantiles from the HDR
/// histogram (`pause_cdf_*` rows, 1st to 100th percentile), each the median over
/// invocations, drawn as a step function on a log time axis.
fn pauses_svg(rows: &[Row], run: &str) -> Result<Option<String>> {
    let Some((wl, heap)) = figure_key(rows) else {
        return Ok(None);
    };
    let ts = trackers(rows, Section::Macro);
    let series: Vec<(String, Vec<(f64, f64)>)> = ts
        .iter()
        .map(|t| {
            let mut pts = Vec::new();
            for q in PAUSE_CDF_QUANTILES {
                let v: Vec<f64> = select(
                    rows,
                    At::new(Section::Macro, &wl, 1, Some(heap)),
                    t,
                    Metric::pause_cdf(q),
                )
                .collect();
                if !v.is_empty() {
                    let m = super::stats::median(&v).max(1e-3);
                    // A step: the share reached at this pause length, held until the next.
                    if let Some(&(_, prev)) = pts.last() {
                        pts.push((m, prev));
                    }
                    pts.push((m, q));
                }
            }
            (t.clone(), pts)
        })
        .filter(|(_, pts): &(String, Vec<(f64, f64)>)| !pts.is_empty())
        .collect();
    let Some((xlo, xhi)) = bounds(series.iter().flat_map(|s| s.1.iter().map(|p| p.0))) else {
        return Ok(None);
    };
    draw_svg((900, 560), |root| {
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Pause-time CDF, {wl}, 1 thread, {heap} MiB ({run})"),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d((xlo..xhi).log_scale(), 0f64..101f64)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("pause (µs, log scale)")
            .y_desc("pauses at most this long (%)")
            .x_labels(8)
            .x_label_formatter(&|v| human(*v))
            .y_label_formatter(&|v| human(*v))
            .draw()
            .map_err(plot_err)?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let c = color(i);
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                .map_err(plot_err)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(plot_err)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
        Ok(true)
    })
}

fn mmu_svg(rows: &[Row], run: &str) -> Result<Option<String>> {
    let Some((wl, heap)) = figure_key(rows) else {
        return Ok(None);
    };
    let ts = trackers(rows, Section::Macro);
    draw_svg((900, 560), |root| {
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Minimum mutator utilisation, {wl}, 1 thread, {heap} MiB ({run})"),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d((0.8f64..120f64).log_scale(), 0f64..1.02f64)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("window (ms, log scale)")
            .y_desc("MMU")
            .x_labels(8)
            .x_label_formatter(&|v| human(*v))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .draw()
            .map_err(plot_err)?;
        let mut any = false;
        for (i, t) in ts.iter().enumerate() {
            let pts: Vec<(f64, f64)> = MMU_WINDOWS_MS
                .iter()
                .filter_map(|&w| {
                    let v: Vec<f64> = select(
                        rows,
                        At::new(Section::Macro, &wl, 1, Some(heap)),
                        t,
                        Metric::Mmu(w),
                    )
                    .collect();
                    (!v.is_empty()).then(|| (w as f64, super::stats::median(&v)))
                })
                .collect();
            if pts.is_empty() {
                continue;
            }
            any = true;
            let c = color(i);
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                .map_err(plot_err)?
                .label(t.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(plot_err)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
        Ok(any)
    })
}

fn heap_map_svg(rows: &[Row]) -> Result<Option<String>> {
    let map: Vec<&Row> = rows
        .iter()
        .filter(|r| r.section == Section::Heapmap)
        .collect();
    let Some(total) = map
        .iter()
        .find(|r| r.metric == Metric::HeapPages)
        .map(|r| r.value as usize)
    else {
        return Ok(None);
    };
    let dirty: Vec<usize> = map
        .iter()
        .filter(|r| r.metric == Metric::DirtyPage)
        .map(|r| r.value as usize)
        .collect();
    let head = map[0];
    const COLS: usize = 128;
    let lines = total.div_ceil(COLS);
    let cell = 6i32;
    let (w, h) = (COLS as i32 * cell + 40, lines as i32 * cell + 70);
    draw_svg((w as u32, h as u32), |root| {
        root.fill(&WHITE).map_err(plot_err)?;
        root.draw(&Text::new(
            format!(
                "Pages dirtied in cycle {} ({} of {}), {}, {}, {} MiB; one square per 4 KiB page",
                head.round,
                dirty.len(),
                total,
                head.tracker,
                head.workload,
                head.heap_mib
            ),
            (20, 15),
            ("sans-serif", 14),
        ))
        .map_err(plot_err)?;
        let origin = (20, 40);
        root.draw(&Rectangle::new(
            [
                origin,
                (
                    origin.0 + COLS as i32 * cell,
                    origin.1 + lines as i32 * cell,
                ),
            ],
            RGBColor(235, 235, 235).filled(),
        ))
        .map_err(plot_err)?;
        for &p in &dirty {
            let (x, y) = (
                (p % COLS) as i32 * cell + origin.0,
                (p / COLS) as i32 * cell + origin.1,
            );
            root.draw(&Rectangle::new(
                [(x, y), (x + cell - 1, y + cell - 1)],
                color(2).filled(),
            ))
            .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
        Ok(true)
    })
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn tick_labels_read_as_numbers_not_floats() {
        let cases = [
            (10_000.0, "10k"),
            (1000.0, "1k"),
            (2_000_000.0, "2M"),
            (1500.0, "1.5k"),
            (100.0, "100"),
            (2.5, "2.5"),
            (0.25, "0.25"),
        ];
        for (v, s) in cases {
            assert_eq!(human(v), s, "{v}");
        }
    }
}
