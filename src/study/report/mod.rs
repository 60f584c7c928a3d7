//! `report.md` and `summary.json`, from the study's rows: every number in a table is a
//! statistic of rows in the CSV, typed as a [`Cell`] first and printed from it, so the
//! Markdown and the JSON hold the same values.
//!
//! Each end-to-end figure is the median over invocations with its 95% bootstrap interval
//! in brackets; each ratio to a baseline is formed as the run's order allows (pair by
//! pair within blocks with a *t* interval, or a ratio of medians; [`super::stats`]),
//! written `1.23× [1.10–1.40]`; a verdict ("faster", "slower") is drawn only where the
//! interval excludes 1, and only at a point that passes the health rule
//! ([`super::health`]). One file per section of the report; this one holds the document
//! they write into. It reads rows and writes text; it never runs anything or draws.

mod barrier_only;
mod curves;
mod end_to_end;
mod granule;
mod header;
mod huge_pages;
mod invalid;
mod lower_bound;
mod micro;
mod min_heap;
mod mutation_sweep;
mod steadiness;

use std::fmt::Write as _;

use super::data::Row;
use super::meta::Meta;
use super::summary::{Cell, Summary, Table};

/// The report being written: its Markdown and its tables.
pub(crate) struct Doc {
    md: String,
    tables: Vec<Table>,
    heading: String,
}

impl Doc {
    fn new() -> Doc {
        Doc {
            md: String::new(),
            tables: Vec::new(),
            heading: String::new(),
        }
    }

    /// A heading of `level` (1 to 6).
    pub(crate) fn heading(&mut self, level: usize, text: &str) {
        let text = text.replace(['\n', '\r'], " ");
        let _ = writeln!(self.md, "\n{} {text}\n", "#".repeat(level));
        self.heading = text;
    }

    /// A paragraph.
    pub(crate) fn para(&mut self, text: &str) {
        let _ = writeln!(self.md, "{text}\n");
    }

    /// A short "what this shows" paragraph, for a reader new to the field.
    pub(crate) fn shows(&mut self, text: &str) {
        let _ = writeln!(self.md, "*What this shows*: {text}\n");
    }

    /// A table under the current heading: `header`, then rows of cells (each as wide).
    pub(crate) fn table(&mut self, header: &[&str], rows: Vec<Vec<Cell>>) {
        let _ = writeln!(self.md, "| {} |", header.join(" | "));
        let _ = writeln!(self.md, "|{}", "---|".repeat(header.len()));
        for r in &rows {
            let cells: Vec<String> = r.iter().map(Cell::render).collect();
            let _ = writeln!(self.md, "| {} |", cells.join(" | "));
        }
        let _ = writeln!(self.md);
        let index = 1 + self
            .tables
            .iter()
            .filter(|t| t.heading == self.heading)
            .count();
        self.tables.push(Table {
            heading: self.heading.clone(),
            index,
            header: header.iter().map(|h| h.to_string()).collect(),
            rows,
        });
    }
}

/// Renders the report: its Markdown and the summary of its tables.
pub fn render(rows: &[Row], meta: &Meta, figures: &[String]) -> (String, Summary) {
    let mut doc = Doc::new();
    header::write(&mut doc, rows, meta);
    steadiness::write(&mut doc, rows);
    micro::write(&mut doc, rows, meta.seed);
    min_heap::write(&mut doc, rows);
    end_to_end::write(&mut doc, rows, meta.seed, meta.design());
    curves::write(&mut doc, rows, meta.seed);
    granule::write(&mut doc, rows, meta.seed);
    mutation_sweep::write(&mut doc, rows, meta.seed);
    huge_pages::write(&mut doc, rows, meta.seed, meta.design());
    barrier_only::write(&mut doc, rows, meta.seed, meta.design());
    lower_bound::write(&mut doc, rows, meta.seed);
    invalid::write(&mut doc, rows);
    if !figures.is_empty() {
        doc.heading(2, "Figures");
        for f in figures {
            doc.para(&format!("![{f}]({f})"));
        }
    }
    doc.heading(2, "Raw kernel costs");
    doc.para(
        "The C reference program `papers/reference/probe.c` measures the same kernel costs \
         without barrierlab (a write-protect fault served by a second thread, by a SIGBUS or \
         SIGSEGV handler on the writer, resolved by the kernel with async write-protect; a \
         `PAGEMAP_SCAN`; card-marking stores). Run `papers/reference/run-probe.sh` on the \
         machine that ran this study and compare its medians with the first-write costs \
         above: a tracker within about 1.25× of the C figure does no extra work.",
    );
    let summary = Summary {
        meta: meta.clone(),
        tables: doc.tables,
    };
    (doc.md.trim_start().to_string(), summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::meta::Meta;

    fn meta(command: &str) -> Meta {
        let json = format!(
            r#"{{"commit":"c","version":"0.1.0","command_line":{},"seed":1,
            "date_utc":"2026-12-01T12:35:03Z","cpu_model":"x","cpus":2,"kernel":"k",
            "load_before":1.0,"load_after":2.0,"steal_share":0.0,"elapsed_s":9.0,
            "warnings":[]}}"#,
            serde_json::to_string(&["barrierlab", "study", "--out", command]).unwrap()
        );
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn the_header_says_where_the_time_went_part_by_part() {
        let mut m = meta("d");
        let (md, _) = render(&[], &m, &[]);
        assert!(!md.contains("Where the time went"), "no parts, no table");
        m.parts = vec![
            crate::study::meta::Part {
                name: "micro".into(),
                seconds: 300.0,
                load_after: 1.5,
            },
            crate::study::meta::Part {
                name: "end to end and huge pages".into(),
                seconds: 900.0,
                load_after: 3.25,
            },
        ];
        let (md, _) = render(&[], &m, &[]);
        assert!(md.contains("| micro | 300 s | 25% | 1.50 |"), "{md}");
        assert!(
            md.contains("| end to end and huge pages | 900 s | 75% | 3.25 |"),
            "{md}"
        );
    }

    #[test]
    fn the_machine_table_says_what_damons_threads_took_where_they_ran() {
        let mut m = meta("d");
        let (md, _) = render(&[], &m, &[]);
        assert!(!md.contains("DAMON"), "none ran, no row");
        m.kdamond_cpu = Some((9.44, 0.0027));
        let (md, _) = render(&[], &m, &[]);
        assert!(
            md.contains("| DAMON (kdamond threads) | running: 9.4 s of CPU during the run (0.27% of the machine's);"),
            "{md}"
        );
    }

    #[test]
    fn the_header_says_when_the_time_budget_cut_the_extra_invocations() {
        let mut m = meta("d");
        m.complete = true;
        m.invocations = Some(crate::study::meta::InvocationPolicy {
            min: 3,
            max: 5,
            target_width: 0.1,
            budget_s: Some(1800.0),
        });
        let (md, _) = render(&[], &m, &[]);
        assert!(
            md.contains("budget of 30 minutes (it did: every point settled)"),
            "{md}"
        );
        m.cut_by_budget = Some(17);
        let (md, _) = render(&[], &m, &[]);
        assert!(
            md.contains("**17 point(s) still wider than the target**"),
            "{md}"
        );
        m.invocations.as_mut().unwrap().budget_s = None;
        let (md, _) = render(&[], &m, &[]);
        assert!(!md.contains("budget"), "no budget, no sentence: {md}");
    }

    #[test]
    fn a_pipe_or_a_line_break_in_the_command_cannot_break_a_table() {
        let (md, summary) = render(&[], &meta("a|b\nc"), &[]);
        let lines: Vec<&str> = md.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if l.starts_with("|---") {
                let cols = l.matches('|').count();
                assert_eq!(lines[i - 1].matches('|').count(), cols);
                for row in lines[i + 1..].iter().take_while(|r| r.starts_with('|')) {
                    assert_eq!(row.matches('|').count(), cols, "`{row}`");
                }
            }
        }
        assert!(md.contains("a/b c"), "{md}");
        let machine = summary.table("Machine", 1).expect("the machine table");
        assert_eq!(
            machine.rows[1][1].render(),
            "`barrierlab study --out a/b c`"
        );
    }
}
