//! The heap-size curves: per workload and thread count, each variant's wall and CPU time
//! (median and interval) at every heap multiple of the run; the figure draws the same.

use super::Doc;
use crate::study::data::{At, Metric, Row, Section, curve_grid, select, trackers};
use crate::study::format::fmt;
use crate::study::stats;
use crate::study::summary::Cell;

pub(super) fn write(doc: &mut Doc, rows: &[Row], seed: u64) {
    let grid = curve_grid(rows);
    if !grid.iter().any(|g| g.1.len() > 1) {
        return;
    }
    doc.heading(2, "Heap-size curves");
    doc.para(
        "Wall and CPU time against the heap size, as a multiple of each workload's minimum heap \
         (the same work at every size): the median over invocations with its 95% interval. The \
         `curves-*.svg` figures draw them.",
    );
    for ((wl, threads), heaps) in grid.iter().filter(|g| g.1.len() > 1) {
        doc.heading(3, &format!("{wl}, {threads} thread(s), by heap multiple"));
        let header: Vec<String> = std::iter::once("tracker".to_string())
            .chain(
                heaps
                    .iter()
                    .map(|(h, m)| format!("{} times the minimum ({} MiB)", fmt(*m), fmt(*h))),
            )
            .collect();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        for metric in [Metric::WallMs, Metric::CpuTotalMs] {
            let table = trackers(rows, Section::Macro)
                .into_iter()
                .filter_map(|t| {
                    let cells: Vec<Cell> = heaps
                        .iter()
                        .map(|(h, _)| {
                            let v: Vec<f64> = select(
                                rows,
                                At::new(Section::Macro, wl, *threads, Some(*h)),
                                &t,
                                metric,
                            )
                            .collect();
                            let s = stats::seed_for(seed, &format!("curve/{t}/{wl}/{h}/{metric}"));
                            Cell::estimate(stats::median_ci(&v, s))
                        })
                        .collect();
                    (!cells.iter().all(|c| *c == Cell::Missing)).then(|| {
                        std::iter::once(Cell::text(format!("{t} ({})", unit(metric))))
                            .chain(cells)
                            .collect()
                    })
                })
                .collect();
            doc.table(&header, table);
        }
    }
}

fn unit(m: Metric) -> &'static str {
    match m {
        Metric::CpuTotalMs => "CPU ms",
        _ => "wall ms",
    }
}
