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
    if crossover_svg(&result.rows, &out.join("crossover.svg"), result.meta.seed)? {
        names.push("crossover.svg".to_string());
    }
    if pauses_svg(&result.rows, &out.join("pauses.svg"))? {
        names.push("pauses.svg".to_string());
    }
    if mmu_svg(&result.rows, &out.join("mmu.svg"))? {
        names.push("mmu.svg".to_string());
    }
    if heap_map_svg(&result.rows, &out.join("heapmap.svg"))? {
        names.push("heapmap.svg".to_string());
    }
    Ok(names)
}

fn crossover_svg(rows: &[Measurement], path: &std::path::Path, seed: u64) -> Result<bool> {
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
            "Cost per store against stores per dirtied page",
            ("sans-serif", 20),
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
        .draw()
        .map_err(plot_err)?;
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
            }
        }
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

fn pauses_svg(rows: &[Measurement], path: &std::path::Path) -> Result<bool> {
    let Some((wl, heap)) = figure_key(rows) else {
        return Ok(false);
    };
    let ts = trackers(rows, "macro");
    let pcts = [
        ("pause_p50_us", 50.0),
        ("pause_p90_us", 90.0),
        ("pause_p99_us", 99.0),
        ("pause_p999_us", 99.9),
        ("pause_max_us", 100.0),
    ];
    let series: Vec<(String, Vec<(f64, f64)>)> = ts
        .iter()
        .map(|t| {
            let pts = pcts
                .iter()
                .filter_map(|(m, q)| {
                    let v: Vec<f64> = select(rows, "macro", t, &wl, 1, Some(heap), m).collect();
                    super::report::summarize(&v).map(|s| (s.median, *q))
                })
                .collect();
            (t.clone(), pts)
        })
        .collect();
    let Some((xlo, xhi)) = bounds(series.iter().flat_map(|s| s.1.iter().map(|p| p.0))) else {
        return Ok(false);
    };
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Pause-time distribution, {wl}, 1 thread, {heap} MiB"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((xlo..xhi).log_scale(), 40f64..101f64)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("pause (µs)")
        .y_desc("percentile")
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

fn mmu_svg(rows: &[Measurement], path: &std::path::Path) -> Result<bool> {
    let Some((wl, heap)) = figure_key(rows) else {
        return Ok(false);
    };
    let ts = trackers(rows, "macro");
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Minimum mutator utilisation, {wl}, 1 thread, {heap} MiB"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((0.8f64..120f64).log_scale(), 0f64..1.02f64)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("window (ms)")
        .y_desc("MMU")
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
