//! The paper's markers: the checker, and the paper checked against the stored results.
//! (The checker on inline samples is in `marker_samples.rs`.)

use barrierlab::study::summary::{Cell, Summary, Table};
use serde::Deserialize;

use super::cells::{CellRef, Column, column_at, interval, ordinal, row_named};
use super::{C_PROBE, COMPARE, RUNS, paper, read, run_path};

/// The kinds of marker, each checked by [`check_marker`].
const MARKERS: [&str; 7] = [
    "report", "diff", "same", "ref", "held", "crosses", "no-cross",
];

/// The kinds that read one run's `summary.json`, and so may name it with `@N`.
const PER_RUN: [&str; 5] = ["report", "diff", "same", "crosses", "no-cross"];

/// The table that says where each tracker's cost crosses the card table's.
const CROSSOVER: &str = "Crossover with the card table";
const CROSSOVER_COLUMN: &str = "crossover (stores/page)";

/// One verdict across runs of `compare.json` (`verdicts.points[]`), as far as a `held`
/// marker reads it.
#[derive(Debug, Deserialize)]
pub(crate) struct Verdict {
    pub(crate) point: String,
    pub(crate) tracker: String,
    pub(crate) metric: String,
    pub(crate) statement: String,
}

/// The verdicts across runs of a `compare.json`.
pub(crate) fn verdicts(compare: &serde_json::Value) -> Result<Vec<Verdict>, String> {
    let points = compare
        .pointer("/verdicts/points")
        .ok_or("compare.json has no `verdicts.points`")?;
    serde_json::from_value(points.clone()).map_err(|e| format!("compare.json's verdicts: {e}"))
}

/// What the paper's markers are checked against.
pub(crate) struct Sources<'a> {
    /// Each run's tables, in file order, run 1 first.
    pub(crate) runs: &'a [Vec<Table>],
    /// The verdicts across runs.
    pub(crate) verdicts: &'a [Verdict],
    /// The C reference's text.
    pub(crate) c_probe: &'a str,
}

/// A comment's kind if it is a marker's: the kind without its `@N`, and the `N` as
/// written (`report@2` → `report`, `2`).
fn marker_kind(kind: &str) -> Option<(&str, Option<&str>)> {
    let (name, run) = match kind.trim().split_once('@') {
        Some((name, run)) => (name, Some(run)),
        None => (kind.trim(), None),
    };
    MARKERS.contains(&name).then_some((name, run))
}

/// The tables of the run a marker names (run 1 without `@N`).
fn run_tables<'a>(kind: &str, at: Option<&str>, src: &Sources<'a>) -> Result<&'a [Table], String> {
    if !PER_RUN.contains(&kind) {
        return match at {
            Some(n) => Err(format!("`{kind}` reads no run: `@{n}` is not allowed")),
            None => Ok(&[]),
        };
    }
    let n = match at {
        Some(n) => ordinal(n, "run")?,
        None => 1,
    };
    src.runs
        .get(n - 1)
        .map(Vec::as_slice)
        .ok_or_else(|| format!("there are {} runs, not {n}", src.runs.len()))
}

/// A quoted number, in ns when it carries a time unit; whether it carried one.
fn quantity(text: &str) -> Result<(f64, bool), String> {
    const UNITS: [(&str, f64); 5] = [
        ("ns", 1.0),
        ("µs", 1e3),
        ("μs", 1e3),
        ("us", 1e3),
        ("ms", 1e6),
    ];
    let (number, scale) = UNITS
        .iter()
        .find_map(|&(u, s)| text.strip_suffix(u).map(|n| (n, Some(s))))
        .unwrap_or((text, None));
    let v: f64 = number
        .trim()
        .replace([',', '\u{2009}', '\u{202f}'], "")
        .parse()
        .map_err(|_| format!("`{text}` is not a number with an optional ns/µs/us/ms unit"))?;
    Ok((v * scale.unwrap_or(1.0), scale.is_some()))
}

/// The median and unit of row `key` of the C reference's table (key min median max unit what).
pub(crate) fn c_probe_median(c_probe: &str, key: &str) -> Result<(f64, String), String> {
    let rows: Vec<Vec<&str>> = c_probe
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() >= 5 && f[0] == key)
        .collect();
    match rows.as_slice() {
        [f] => {
            let m = f[2]
                .parse()
                .map_err(|_| format!("the reference's median of `{key}` is `{}`", f[2]))?;
            Ok((m, f[4].to_string()))
        }
        [] => Err(format!("the C reference has no row `{key}`")),
        _ => Err(format!("the C reference has {} rows `{key}`", rows.len())),
    }
}

/// The trimmed backticked text that `before` ends with (after spaces if `spaced`).
fn backticked(before: &str, spaced: bool) -> Result<&str, String> {
    let b = if spaced { before.trim_end() } else { before };
    let missing = || "the marker does not immediately follow a backticked number".to_string();
    let inner = b.strip_suffix('`').ok_or_else(missing)?;
    let open = inner.rfind('`').ok_or_else(missing)?;
    match inner[open + 1..].trim() {
        "" => Err("the backticks before the marker are empty".into()),
        q => Ok(q),
    }
}

/// `report`: the backticked text before the marker is in the cell.
fn check_report(arg: &str, before: &str, tables: &[Table]) -> Result<(), String> {
    let quoted = backticked(before, false)?;
    let cell = CellRef::parse(arg)?.resolve(tables)?;
    if cell.contains(quoted) {
        Ok(())
    } else {
        Err(format!("the cell reads `{cell}`, not `{quoted}`"))
    }
}

/// `diff` / `same`: the cell's interval excludes / includes no-change.
fn check_interval(kind: &str, arg: &str, tables: &[Table]) -> Result<(), String> {
    let cell = CellRef::parse(arg)?.resolve(tables)?;
    let (lo, hi, null) = interval(&cell)?;
    match (kind, lo <= null && null <= hi) {
        ("diff", true) => Err(format!(
            "a difference is claimed but `{cell}` includes {null}"
        )),
        ("same", false) => Err(format!(
            "no difference is claimed but `{cell}` excludes {null}"
        )),
        _ => Ok(()),
    }
}

/// `ref`: the backticked number before the marker is the C reference's median.
fn check_ref(arg: &str, before: &str, c_probe: &str) -> Result<(), String> {
    let parts: Vec<&str> = arg.split_whitespace().collect();
    let ["c-probe", key] = parts[..] else {
        return Err(format!("`{arg}` is not `c-probe KEY`"));
    };
    let quoted = backticked(before, true)?;
    let (v, has_unit) = quantity(quoted)?;
    let (m, unit) = c_probe_median(c_probe, key)?;
    if has_unit && !unit.starts_with("ns") {
        return Err(format!(
            "`{quoted}` has a time unit but `{key}` is in {unit}"
        ));
    }
    if (v - m).abs() <= 0.005 * m.abs() {
        Ok(())
    } else {
        let in_ns = if has_unit { " ns" } else { "" };
        Err(format!(
            "`{quoted}` is {v}{in_ns}, the reference's median of `{key}` is {m} {unit}"
        ))
    }
}

/// `held`: `compare.json` has exactly one verdict for (POINT, TRACKER, METRIC) and the
/// text before the marker ends with its statement, as a whole word.
fn check_held(arg: &str, before: &str, verdicts: &[Verdict]) -> Result<(), String> {
    let parts: Vec<&str> = arg.split(" / ").map(str::trim).collect();
    let [point, tracker, metric] = parts[..] else {
        return Err(format!("`{arg}` is not `POINT / TRACKER / METRIC`"));
    };
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("`{arg}` has an empty part"));
    }
    let found: Vec<&Verdict> = verdicts
        .iter()
        .filter(|v| v.point == point && v.tracker == tracker && v.metric == metric)
        .collect();
    let statement = match found[..] {
        [v] => &v.statement,
        [] => return Err(format!("compare.json has no verdict for `{arg}`")),
        _ => {
            return Err(format!(
                "compare.json has {} verdicts for `{arg}`",
                found.len()
            ));
        }
    };
    let Some(rest) = before.strip_suffix(statement.as_str()) else {
        return Err(format!(
            "the text before the marker does not end with the verdict, `{statement}`"
        ));
    };
    if rest.chars().next_back().is_some_and(char::is_alphanumeric) {
        return Err(format!(
            "`{statement}` is part of a longer word before the marker"
        ));
    }
    Ok(())
}

/// `crosses` / `no-cross`: the tracker's crossover cell is an estimate / a text.
fn check_crossing(kind: &str, arg: &str, tables: &[Table]) -> Result<(), String> {
    if arg.is_empty() || arg.contains(" / ") {
        return Err(format!("`{arg}` is not `TRACKER`"));
    }
    let found: Vec<&Table> = tables.iter().filter(|t| t.heading == CROSSOVER).collect();
    let [table] = found[..] else {
        return Err(format!(
            "summary.json has {} tables `{CROSSOVER}`, not one",
            found.len()
        ));
    };
    let row = row_named(table, arg)?;
    let k = column_at(table, &Column::Named(CROSSOVER_COLUMN.into()))?;
    let cell = row.get(k).unwrap_or(&Cell::Missing);
    let crosses = match cell {
        Cell::Estimate { .. } => true,
        Cell::Text { .. } => false,
        _ => {
            return Err(format!(
                "`{arg}`'s crossover is `{}`: neither a crossing nor none",
                cell.render()
            ));
        }
    };
    match (kind == "crosses", crosses) {
        (true, false) => Err(format!(
            "`{arg}` does not cross: its crossover reads `{}`",
            cell.render()
        )),
        (false, true) => Err(format!("`{arg}` crosses, at `{}`", cell.render())),
        _ => Ok(()),
    }
}

/// Checks one marker of kind `kind` (`@N` in `at`), `before` being its line up to it.
fn check_marker(
    (kind, at): (&str, Option<&str>),
    arg: &str,
    before: &str,
    src: &Sources,
) -> Result<(), String> {
    let tables = run_tables(kind, at, src)?;
    match kind {
        "report" => check_report(arg, before, tables),
        "diff" | "same" => check_interval(kind, arg, tables),
        "held" => check_held(arg, before, src.verdicts),
        "crosses" | "no-cross" => check_crossing(kind, arg, tables),
        _ => check_ref(arg, before, src.c_probe),
    }
}

/// Checks every marker of `paper`: how many there are, and what is wrong (by line).
pub(crate) fn check_markers(paper: &str, src: &Sources) -> (usize, Vec<String>) {
    let (mut checked, mut errors, mut fenced) = (0, Vec::new(), false);
    for (n, line) in paper.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if fenced {
            continue;
        }
        let mut from = 0;
        while let Some(at) = line[from..].find("<!--").map(|a| from + a) {
            let rest = &line[at + 4..];
            let end = rest.find("-->");
            let body = &rest[..end.unwrap_or(rest.len())];
            let marker = body
                .split_once(':')
                .and_then(|(kind, arg)| Some((marker_kind(kind)?, arg)));
            match (marker, end) {
                (None, None) => break,
                (None, Some(end)) => from = at + 4 + end + 3,
                (Some(_), None) => {
                    checked += 1;
                    errors.push(format!(
                        "line {}: `<!--{body}`: no `-->` on its line",
                        n + 1
                    ));
                    break;
                }
                (Some((kind, arg)), Some(end)) => {
                    checked += 1;
                    from = at + 4 + end + 3;
                    if let Err(e) = check_marker(kind, arg.trim(), &line[..at], src) {
                        errors.push(format!("line {}: `<!--{body}-->`: {e}", n + 1));
                    }
                }
            }
        }
    }
    (checked, errors)
}

/// The stored runs' tables, run 1 first, and the stored comparison's verdicts.
pub(crate) fn stored_sources() -> (Vec<Vec<Table>>, Vec<Verdict>) {
    let runs = (1..=RUNS.len())
        .map(|n| {
            Summary::load(&run_path(n))
                .unwrap_or_else(|e| panic!("run {n}: {e}"))
                .tables
        })
        .collect();
    let compare: serde_json::Value = serde_json::from_str(&read(COMPARE))
        .unwrap_or_else(|e| panic!("{COMPARE} is not JSON: {e}"));
    let verdicts = verdicts(&compare).unwrap_or_else(|e| panic!("{COMPARE}: {e}"));
    (runs, verdicts)
}

/// Every marker of the paper resolves, against the stored runs' `summary.json`, the
/// stored comparison and the C reference, and holds.
#[test]
fn every_number_the_paper_marks_is_where_it_says() {
    let (runs, verdicts) = stored_sources();
    let c_probe = read(C_PROBE);
    let src = Sources {
        runs: &runs,
        verdicts: &verdicts,
        c_probe: &c_probe,
    };
    let (checked, errors) = check_markers(&paper(), &src);
    assert!(
        errors.is_empty(),
        "{} of the paper's {checked} markers do not hold:\n{}",
        errors.len(),
        errors.join("\n")
    );
    if checked == 0 {
        eprintln!("NOTICE: the paper has no marker (`<!-- report: -->` and the others) yet");
    }
}
