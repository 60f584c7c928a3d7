//! The study's SVG figures, drawn with `plotters` (SVG backend only: no system
//! libraries). Each reads the study's rows, like the report.
//!
//! - `crossover.svg`: cost per store against stores per dirtied page, log-log, one line
//!   per tracker, the card-table crossovers marked.
//! - `pauses.svg`: the distribution (CDF) of pause times per tracker, GCBench, 1 thread.
//! - `mmu.svg`: minimum mutator utilisation against window, GCBench, 1 thread.
//! - `heapmap.svg`: the heap's pages as a grid, the pages one cycle dirtied filled.

use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::*;

use super::report::{crossover, micro_curve, select, trackers};
use super::{MMU_WINDOWS_MS, Measurement, StudyResult, mmu_metric};
use crate::error::{Error, Result};

/// A drawing failure. The SVG backend's errors are the I/O errors of writing the file;
/// the whole plotters error is kept inside the `io::Error` (`get_ref` gives it back), so
/// a font or layout failure keeps its cause too.
fn plot_err(e: DrawingAreaErrorKind<std::io::Error>) -> Error {
    Error::io("draw a figure", std::io::Error::other(e))
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

/// Writes every figure that has data; returns their file names.
pub fn write_all(result: &StudyResult) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let out = &result.config.out;
    // Every figure says which run it shows.
    let run = run_label(result);
    if crossover_svg(
        &result.rows,
        &out.join("crossover.svg"),
        result.meta.seed,
        &run,
    )? {
        names.push("crossover.svg".to_string());
    }
    if pauses_svg(&result.rows, &out.join("pauses.svg"), &run)? {
        names.push("pauses.svg".to_string());
    }
    if mmu_svg(&result.rows, &out.join("mmu.svg"), &run)? {
        names.push("mmu.svg".to_string());
    }
    if heap_map_svg(&result.rows, &out.join("heapmap.svg"))? {
        names.push("heapmap.svg".to_string());
    }
    Ok(names)
}

/// `run 2026-12-01 12:09 UTC, commit 05a8601`: the run a figure shows, for its title.
fn run_label(result: &StudyResult) -> String {
    let (date, commit) = (&result.meta.date_utc, &result.meta.commit);
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

fn crossover_svg(
    rows: &[Measurement],
    path: &std::path::Path,
    seed: u64,
    run: &str,
) -> Result<bool> {
    let ts = trackers(rows, "micro");
    let curves: Vec<(String, Vec<(f64, f64)>)> = ts
        .iter()
        .map(|t| (t.clone(), micro_curve(rows, t)))
        .collect();
    let Some((xlo, xhi)) = bounds(curves.iter().flat_map(|c| c.1.iter().map(|p| p.0))) else {
        return Ok(false);
    };
    let Some((ylo, yhi)) = bounds(curves.iter().flat_map(|c| c.1.iter().map(|p| p.1))) else {
        return Ok(false);
    };
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Cost per store against stores per dirtied page (micro, sequential; {run})"),
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
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
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
}

/// The end-to-end key the distribution figures use: GCBench-like workload, 1 thread, the
/// smallest heap.
fn figure_key(rows: &[Measurement]) -> Option<(String, f64)> {
    rows.iter()
        .filter(|r| r.section == "macro" && r.threads == 1 && r.workload.starts_with("gcbench"))
        .map(|r| (r.workload.clone(), r.heap_mib))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// The pause-time CDF: for each tracker, the pause distribution's quantiles from the HDR
/// histogram (`pause_cdf_*` rows, 1st to 100th percentile), each the median over
/// invocations, drawn as a step function on a log time axis.
fn pauses_svg(rows: &[Measurement], path: &std::path::Path, run: &str) -> Result<bool> {
    let Some((wl, heap)) = figure_key(rows) else {
        return Ok(false);
    };
    let ts = trackers(rows, "macro");
    let series: Vec<(String, Vec<(f64, f64)>)> = ts
        .iter()
        .map(|t| {
            let mut pts = Vec::new();
            for q in super::PAUSE_CDF_QUANTILES {
                let m = super::pause_cdf_metric(q);
                let v: Vec<f64> = select(rows, "macro", t, &wl, 1, Some(heap), &m).collect();
                if let Some(s) = super::report::summarize(&v) {
                    // A step: the share reached at this pause length, held until the next.
                    if let Some(&(_, prev)) = pts.last() {
                        pts.push((s.median.max(1e-3), prev));
                    }
                    pts.push((s.median.max(1e-3), q));
                }
            }
            (t.clone(), pts)
        })
        .filter(|(_, pts): &(String, Vec<(f64, f64)>)| !pts.is_empty())
        .collect();
    let Some((xlo, xhi)) = bounds(series.iter().flat_map(|s| s.1.iter().map(|p| p.0))) else {
        return Ok(false);
    };
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
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
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
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
}

fn mmu_svg(rows: &[Measurement], path: &std::path::Path, run: &str) -> Result<bool> {
    let Some((wl, heap)) = figure_key(rows) else {
        return Ok(false);
    };
    let ts = trackers(rows, "macro");
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
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
                let v: Vec<f64> =
                    select(rows, "macro", t, &wl, 1, Some(heap), &mmu_metric(w)).collect();
                super::report::summarize(&v).map(|s| (w as f64, s.median))
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
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
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
}

fn heap_map_svg(rows: &[Measurement], path: &std::path::Path) -> Result<bool> {
    let map: Vec<&Measurement> = rows.iter().filter(|r| r.section == "heapmap").collect();
    let Some(total) = map
        .iter()
        .find(|r| r.metric == "heap_pages")
        .map(|r| r.value as usize)
    else {
        return Ok(false);
    };
    let dirty: Vec<usize> = map
        .iter()
        .filter(|r| r.metric == "dirty_page")
        .map(|r| r.value as usize)
        .collect();
    let head = map[0];
    const COLS: usize = 128;
    let lines = total.div_ceil(COLS);
    let cell = 6i32;
    let (w, h) = (COLS as i32 * cell + 40, lines as i32 * cell + 70);
    let root = SVGBackend::new(path, (w as u32, h as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    root.draw(&Text::new(
        format!(
            "Pages dirtied in cycle {} ({} of {}), {}, {}, {} MiB; one square per 4 KiB page",
            head.invocation,
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
    for p in dirty {
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
