//! The end-to-end figures: heap-size curves (wall and CPU against the heap multiple,
//! with intervals) and the strip plot of every invocation.

use plotters::prelude::*;

use super::{bounds, color, draw_svg, plot_err};
use crate::error::Result;
use crate::study::data::{At, Metric, Row, Section, curve_grid, points, select, trackers};
use crate::study::stats::{self, median};

/// A variant's curve: its name and (multiple, lo, median, hi) per heap size.
type Series = (String, Vec<(f64, f64, f64, f64)>);

/// One `curves-<workload>-x<threads>.svg` per workload and thread count with more than
/// one heap size: wall time (left) and CPU time (right) against the heap multiple, the
/// median with its 95% interval as an error bar, one line per variant.
pub(super) fn curves(rows: &[Row], seed: u64, run: &str) -> Result<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    for ((wl, threads), heaps) in curve_grid(rows).into_iter().filter(|g| g.1.len() > 1) {
        let ts = trackers(rows, Section::Macro);
        // (tracker, metric) → [(multiple, lo, median, hi)]
        let series = |metric: Metric| -> Vec<Series> {
            ts.iter()
                .map(|t| {
                    let pts = heaps
                        .iter()
                        .filter_map(|&(h, m)| {
                            let v: Vec<f64> = select(
                                rows,
                                At::new(Section::Macro, &wl, threads, Some(h)),
                                t,
                                metric,
                            )
                            .collect();
                            let s = stats::seed_for(seed, &format!("curve/{t}/{wl}/{h}/{metric}"));
                            stats::median_ci(&v, s).map(|i| (m, i.lo, i.estimate, i.hi))
                        })
                        .collect();
                    (t.clone(), pts)
                })
                .filter(|(_, p): &(String, Vec<_>)| !p.is_empty())
                .collect()
        };
        let panels = [
            ("wall time (ms)", series(Metric::WallMs)),
            ("CPU time (ms)", series(Metric::CpuTotalMs)),
        ];
        let svg = draw_svg((1200, 520), |root| {
            root.fill(&WHITE).map_err(plot_err)?;
            let root = root
                .titled(
                    &format!("{wl}, {threads} thread(s): time against heap size ({run})"),
                    ("sans-serif", 18),
                )
                .map_err(plot_err)?;
            let halves = root.split_evenly((1, 2));
            let mut any = false;
            for (area, (label, series)) in halves.iter().zip(&panels) {
                let xs = series.iter().flat_map(|s| s.1.iter().map(|p| p.0));
                let ys = series
                    .iter()
                    .flat_map(|s| s.1.iter().flat_map(|p| [p.1, p.3]));
                let (Some((xlo, xhi)), Some((ylo, yhi))) = (bounds(xs), bounds(ys)) else {
                    continue;
                };
                any = true;
                let mut chart = ChartBuilder::on(area)
                    .margin(12)
                    .x_label_area_size(40)
                    .y_label_area_size(60)
                    .build_cartesian_2d(xlo * 1.2..xhi / 1.2, ylo * 1.2..yhi / 1.2)
                    .map_err(plot_err)?;
                chart
                    .configure_mesh()
                    .x_desc("heap size ÷ minimum heap")
                    .y_desc(*label)
                    .x_label_formatter(&|v| format!("{v:.2}"))
                    .y_label_formatter(&|v| super::human(*v))
                    .draw()
                    .map_err(plot_err)?;
                for (i, (name, pts)) in series.iter().enumerate() {
                    let c = color(i);
                    chart
                        .draw_series(LineSeries::new(
                            pts.iter().map(|p| (p.0, p.2)),
                            c.stroke_width(2),
                        ))
                        .map_err(plot_err)?
                        .label(name.clone())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                        });
                    chart
                        .draw_series(
                            pts.iter()
                                .map(|p| ErrorBar::new_vertical(p.0, p.1, p.2, p.3, c.filled(), 8)),
                        )
                        .map_err(plot_err)?;
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.9))
                    .border_style(BLACK)
                    .position(SeriesLabelPosition::UpperRight)
                    .draw()
                    .map_err(plot_err)?;
            }
            root.present().map_err(plot_err)?;
            Ok(any)
        })?;
        out.push((format!("curves-{wl}-x{threads}.svg"), svg));
    }
    Ok(out)
}

/// `invocations.svg`: every valid invocation's wall time over `none`'s median at the same
/// point, per workload (one thread, its middle heap size) and variant, jittered
/// sideways so that equal values stay visible; the median as a bar.
pub(super) fn strip(rows: &[Row], run: &str) -> Result<Option<String>> {
    // The middle heap size of each workload with one thread.
    let mut chosen: Vec<(String, f64)> = Vec::new();
    for (wl, threads, _) in points(rows, Section::Macro) {
        if threads != 1 || chosen.iter().any(|c| c.0 == wl) {
            continue;
        }
        let mut hs: Vec<f64> = points(rows, Section::Macro)
            .into_iter()
            .filter(|p| p.0 == wl && p.1 == 1)
            .map(|p| p.2)
            .collect();
        hs.sort_by(f64::total_cmp);
        chosen.push((wl, hs[hs.len() / 2]));
    }
    let ts: Vec<String> = trackers(rows, Section::Macro);
    // (x, values, median): one column per (workload, tracker).
    let mut columns: Vec<(String, Vec<f64>)> = Vec::new();
    for (wl, heap) in &chosen {
        let none: Vec<f64> = select(
            rows,
            At::new(Section::Macro, wl, 1, Some(*heap)),
            "none",
            Metric::WallMs,
        )
        .collect();
        if none.is_empty() {
            continue;
        }
        let base = median(&none);
        for t in &ts {
            let v: Vec<f64> = select(
                rows,
                At::new(Section::Macro, wl, 1, Some(*heap)),
                t,
                Metric::WallMs,
            )
            .map(|x| x / base)
            .collect();
            if !v.is_empty() {
                columns.push((format!("{wl} {t}"), v));
            }
        }
    }
    let Some((ylo, yhi)) = bounds(columns.iter().flat_map(|c| c.1.iter().copied())) else {
        return Ok(None);
    };
    let width = (columns.len() as u32 * 28 + 160).max(600);
    draw_svg((width, 620), |root| {
        root.fill(&WHITE).map_err(plot_err)?;
        let n = columns.len() as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Every invocation's wall time ÷ none's median, 1 thread ({run})"),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(200)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5..n - 0.5, (ylo.min(0.9) / 1.2)..(yhi.max(1.1) * 1.2))
            .map_err(plot_err)?;
        let names: Vec<String> = columns.iter().map(|c| c.0.clone()).collect();
        chart
            .configure_mesh()
            .x_labels(columns.len())
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                    names[i as usize].clone()
                } else {
                    String::new()
                }
            })
            .x_label_style(
                ("sans-serif", 11)
                    .into_font()
                    .transform(FontTransform::Rotate90),
            )
            .y_desc("wall time ÷ none's median")
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(LineSeries::new(
                [(-0.5, 1.0), (n - 0.5, 1.0)],
                BLACK.mix(0.4).stroke_width(1),
            ))
            .map_err(plot_err)?;
        for (i, (_, values)) in columns.iter().enumerate() {
            let c = color(i % 9 + 1);
            let k = values.len().max(1) as f64;
            chart
                .draw_series(values.iter().enumerate().map(|(j, &v)| {
                    let dx = 0.3 * ((j as f64 + 0.5) / k - 0.5);
                    Circle::new((i as f64 + dx, v), 3, c.filled())
                }))
                .map_err(plot_err)?;
            let m = median(values);
            chart
                .draw_series(LineSeries::new(
                    [(i as f64 - 0.3, m), (i as f64 + 0.3, m)],
                    c.stroke_width(2),
                ))
                .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
        Ok(true)
    })
}
