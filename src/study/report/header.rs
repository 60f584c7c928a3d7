//! The report's header: how the study ran (mode, invocations, seed, time), its warnings,
//! and the machine table from `meta.json` (the probe's findings recorded when the study
//! started, so that rendering again never runs the probe).

use super::Doc;
use crate::study::data::Row;
use crate::study::meta::Meta;
use crate::study::stats;
use crate::study::summary::Cell;

/// What the time budget did to the extra invocations, for the header's sentence.
fn budget(budget_s: Option<f64>, cut: Option<usize>, complete: bool) -> String {
    let Some(b) = budget_s else {
        return String::new();
    };
    let minutes = b / 60.0;
    match cut {
        None if !complete => {
            format!(", while the study's time stayed within its budget of {minutes:.0} minutes")
        }
        None => format!(
            ", while the study's time stayed within its budget of {minutes:.0} minutes (it \
             did: every point settled)"
        ),
        Some(n) => format!(
            ", while the study's time stayed within its budget of {minutes:.0} minutes: the \
             budget ended them with **{n} point(s) still wider than the target** below the \
             most"
        ),
    }
}

pub(super) fn write(doc: &mut Doc, _rows: &[Row], m: &Meta) {
    doc.heading(1, "barrierlab study");
    let policy = match &m.invocations {
        Some(p) => format!(
            "end-to-end points get at least {} invocation(s), then more until the 95% interval of \
             {} is within {:.0}% of it, at most {}{} (each point's *n* is in its table)",
            p.min,
            if m.blocks {
                "each barrier's wall time over `none`'s in its block"
            } else {
                "the median wall time"
            },
            p.target_width * 100.0,
            p.max,
            budget(p.budget_s, m.cut_by_budget, m.complete)
        ),
        None => "a fixed number of invocations per end-to-end point".into(),
    };
    let took = m.elapsed_s.map_or(
        "It did not finish (interrupted or still running).".into(),
        |s| format!("Took {s:.0} s."),
    );
    let order = if m.blocks {
        "the invocations run in blocks, invocation *k* of every variant of a point (huge \
         pages included) back to back, the blocks and the variants inside each in a random \
         order"
    } else {
        "all invocations interleaved in one random order"
    };
    doc.para(&format!(
        "Mode `{}`: {policy}; every invocation in a fresh process, none discarded as a \
         warm-up (a fresh process inherits no warmed state); {order} (seed {}, {}). {took}",
        m.mode.as_deref().unwrap_or("default"),
        m.seed,
        if m.seed_given {
            "given with --seed"
        } else {
            "drawn for this run"
        }
    ));
    if !m.complete {
        doc.para(
            "> **Warning**: this study did not run to its end: the tables hold what it \
             measured before it stopped.",
        );
    }
    for w in &m.warnings {
        doc.para(&format!("> **Warning**: {w}."));
    }
    let ratios = if m.blocks {
        "a ratio of a variant to the baseline beside it (`none`; 4 KiB pages for huge \
         pages) is the geometric mean over blocks of the two invocations' ratio in the same \
         block, with Student's t interval on the ratios' logarithms (95% at any number of \
         blocks, where a bootstrap over three would cover about 75%), so that the host's \
         drift between blocks cancels (the micro's ratios are ratios of medians over \
         processes)"
    } else {
        "every ratio is a ratio of medians with its interval"
    };
    doc.para(&format!(
        "Statistics: every figure is the median over invocations (for the micro: over \
         processes, each the median of its rounds) with its 95% percentile-bootstrap interval \
         in brackets ({} resamples, seeded); {ratios}. \"Faster\" or \"slower\" is said only \
         where the interval excludes 1, at a point whose concurrency health passes.",
        stats::RESAMPLES
    ));
    doc.heading(2, "Machine");
    let mut rows = vec![
        ("commit", format!("{} (version {})", m.commit, m.version)),
        ("command", format!("`{}`", m.command_line.join(" "))),
        ("date", m.date_utc.clone()),
        ("kernel", m.kernel.clone()),
        ("CPU", format!("{} × {}", m.cpus, m.cpu_model)),
        (
            "load average",
            format!(
                "{:.2} before, {} after",
                m.load_before,
                m.load_after.map_or("–".into(), |l| format!("{l:.2}"))
            ),
        ),
        (
            "CPU steal during the run",
            m.steal_share
                .map_or("–".into(), |s| format!("{:.2}%", s * 100.0)),
        ),
    ];
    if let Some(h) = &m.binary_fnv1a64 {
        rows.push(("binary (FNV-1a 64)", h.clone()));
    }
    if let Some((seconds, share)) = m.kdamond_cpu {
        rows.push((
            "DAMON (kdamond threads)",
            format!(
                "running: {seconds:.1} s of CPU during the run ({:.2}% of the machine's); \
                 each of its passes runs for up to milliseconds on one of the study's CPUs, \
                 and whatever was to run there waits",
                share * 100.0
            ),
        ));
    }
    let mut cells: Vec<Vec<Cell>> = rows
        .into_iter()
        .map(|(k, v)| vec![Cell::text(k), Cell::text(v)])
        .collect();
    for (k, v) in &m.machine {
        cells.push(vec![Cell::text(k.clone()), Cell::text(v.clone())]);
    }
    doc.table(&["", ""], cells);
    if !m.parts.is_empty() {
        doc.para("Where the time went (the load average is the one-minute figure as each part ended; above the CPU count, other work competed with it):");
        let total: f64 = m.parts.iter().map(|p| p.seconds).sum();
        let cells = m
            .parts
            .iter()
            .map(|p| {
                vec![
                    Cell::text(p.name.clone()),
                    Cell::text(format!("{:.0} s", p.seconds)),
                    Cell::text(format!(
                        "{:.0}%",
                        100.0 * p.seconds / total.max(f64::MIN_POSITIVE)
                    )),
                    Cell::text(format!("{:.2}", p.load_after)),
                ]
            })
            .collect();
        doc.table(&["part", "time", "share", "load after"], cells);
    }
    if !m.not_run.is_empty() {
        let mut text = String::from("Not run:\n");
        for (v, why) in &m.not_run {
            text.push_str(&format!("\n- `{v}`: {}", why.replace('\n', " ")));
            if v.starts_with("bdwgc") {
                text.push_str(" (add bdwgc with `apt-get install libgc1`)");
            }
        }
        doc.para(&text);
    }
}
