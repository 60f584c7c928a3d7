//! `summary.json`: every number the report prints, typed, with its interval and its
//! verdict, under the same headings, rows and columns as the report's tables.
//!
//! The report is rendered *from* these tables ([`super::report`] builds them, then writes
//! Markdown and this file from the same values), so the two cannot disagree; the paper's
//! generator and its tests read this file, never the Markdown. It holds data and renders
//! a cell; it never computes a statistic.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::format::{cell_text, fmt, fmt_count};
use super::meta::Meta;
use super::stats::Interval;
use crate::error::{Error, Result};

/// One cell of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Cell {
    /// Words (a name, a verdict, a reason).
    Text {
        /// The text.
        text: String,
    },
    /// A value (3 significant digits).
    Number {
        /// The value.
        value: f64,
    },
    /// A count (an integer, or a half).
    Count {
        /// The value.
        value: f64,
    },
    /// A share printed as a percentage.
    Percent {
        /// The share (0.25 is 25%).
        value: f64,
    },
    /// An estimate with its 95% interval.
    Estimate {
        /// The estimate.
        estimate: f64,
        /// Lower bound.
        lo: f64,
        /// Upper bound.
        hi: f64,
    },
    /// A ratio with its 95% interval and the verdict it allows.
    Ratio {
        /// The ratio.
        estimate: f64,
        /// Lower bound.
        lo: f64,
        /// Upper bound.
        hi: f64,
        /// The verdict drawn from it (empty where none is drawn).
        verdict: String,
    },
    /// Nothing to show.
    Missing,
}

impl Cell {
    /// A text cell.
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text { text: s.into() }
    }

    /// A number, or missing when not finite.
    pub fn number(v: f64) -> Cell {
        if v.is_finite() {
            Cell::Number { value: v }
        } else {
            Cell::Missing
        }
    }

    /// A count, or missing when not finite.
    pub fn count(v: f64) -> Cell {
        if v.is_finite() {
            Cell::Count { value: v }
        } else {
            Cell::Missing
        }
    }

    /// A percentage, or missing when not finite.
    pub fn percent(v: f64) -> Cell {
        if v.is_finite() {
            Cell::Percent { value: v }
        } else {
            Cell::Missing
        }
    }

    /// An estimate with its interval, or missing.
    pub fn estimate(i: Option<Interval>) -> Cell {
        i.map_or(Cell::Missing, |i| Cell::Estimate {
            estimate: i.estimate,
            lo: i.lo,
            hi: i.hi,
        })
    }

    /// A ratio with its interval and verdict, or missing.
    pub fn ratio(i: Option<Interval>, verdict: &str) -> Cell {
        i.map_or(Cell::Missing, |i| Cell::Ratio {
            estimate: i.estimate,
            lo: i.lo,
            hi: i.hi,
            verdict: verdict.into(),
        })
    }

    /// The cell as the Markdown table prints it.
    pub fn render(&self) -> String {
        match self {
            Cell::Text { text } => cell_text(text),
            Cell::Number { value } => fmt(*value),
            Cell::Count { value } => fmt_count(*value),
            Cell::Percent { value } => format!("{:.1}%", value * 100.0),
            Cell::Estimate { estimate, lo, hi } => {
                format!("{} [{}–{}]", fmt(*estimate), fmt(*lo), fmt(*hi))
            }
            Cell::Ratio {
                estimate, lo, hi, ..
            } => format!("{}× [{}–{}]", fmt(*estimate), fmt(*lo), fmt(*hi)),
            Cell::Missing => "–".into(),
        }
    }
}

/// One table of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// The heading it sits under.
    pub heading: String,
    /// Its place under that heading (from 1).
    pub index: usize,
    /// Column names.
    pub header: Vec<String>,
    /// Rows; the first cell names the row.
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// The cell at (row named `row`, column named `column`), if there is exactly one.
    pub fn cell(&self, row: &str, column: &str) -> Option<&Cell> {
        let k = self.header.iter().position(|h| h == column)?;
        let mut found = self
            .rows
            .iter()
            .filter(|r| matches!(r.first(), Some(Cell::Text { text }) if text == row));
        let r = found.next()?;
        found.next().is_none().then(|| r.get(k)).flatten()
    }
}

/// The whole of `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Where and how the run happened.
    pub meta: Meta,
    /// Every table of the report, in order.
    pub tables: Vec<Table>,
}

impl Summary {
    /// The `index`-th table (from 1) under `heading`.
    pub fn table(&self, heading: &str, index: usize) -> Option<&Table> {
        self.tables
            .iter()
            .find(|t| t.heading == heading && t.index == index)
    }

    /// Reads `dir/summary.json`.
    pub fn load(dir: &Path) -> Result<Summary> {
        let path = dir.join("summary.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        serde_json::from_str(&text).map_err(|e| {
            Error::InvalidArgument(format!("{}: not a study's summary: {e}", path.display()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_render_as_the_report_prints_them_and_tables_are_found_by_name() {
        let i = Interval {
            estimate: 1.234,
            lo: 1.1,
            hi: 1.4,
        };
        assert_eq!(Cell::ratio(Some(i), "slower").render(), "1.23× [1.10–1.40]");
        assert_eq!(Cell::estimate(Some(i)).render(), "1.23 [1.10–1.40]");
        assert_eq!(Cell::number(f64::NAN), Cell::Missing);
        assert_eq!(Cell::percent(0.125).render(), "12.5%");
        assert_eq!(Cell::text("a|b").render(), "a/b");
        let t = Table {
            heading: "H".into(),
            index: 1,
            header: vec!["tracker".into(), "x".into()],
            rows: vec![vec![Cell::text("card-table"), Cell::count(3.0)]],
        };
        assert_eq!(t.cell("card-table", "x"), Some(&Cell::count(3.0)));
        assert_eq!(t.cell("card-table", "y"), None);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Table>(&json).unwrap(), t);
    }

    /// The median of two invocations is often a value just below a rounding tie (the
    /// mean of 1.21 and 1.22 is 1.2149999999999999): `summary.json` must read back the
    /// very same number, or a cell re-rendered from it prints 1.22 where `report.md`
    /// printed 1.21 (serde_json's default float parser is off by one unit in the last
    /// place for about one number in eight; the crate enables `float_roundtrip`).
    #[test]
    fn a_number_just_below_a_rounding_tie_reads_back_as_the_report_printed_it() {
        let v = (1.21_f64 + 1.22) / 2.0;
        assert_eq!(Cell::number(v).render(), "1.21");
        let json = serde_json::to_string(&Cell::number(v)).unwrap();
        let back: Cell = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Cell::number(v));
        assert_eq!(back.render(), "1.21");
    }
}
