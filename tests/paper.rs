//! The write-up stays reproducible: every figure it shows exists, every number it quotes
//! is in the committed report (or the C reference) exactly, every difference it claims
//! has an interval that excludes no-change, the committed report agrees with its CSV, and
//! the command it names still runs (in `--quick` mode).
//!
//! The paper's markup, checked here (fenced code blocks are not read):
//! - `` `1.23× [1.10–1.40]`<!-- report: HEADING / ROW / COLUMN --> ``: the backticked text
//!   (trimmed) is contained in that cell of `papers/results/report.md`. HEADING is a
//!   heading line's text without its `#`s; `HEADING #N` takes its N-th table (from 1)
//!   instead of the first. ROW is a data row's first cell. COLUMN is a header cell's
//!   exact text or `#K` (the K-th column, from 1, for empty or repeated headers). The
//!   body splits at the first two ` / `, so a column header may itself contain ` / `.
//! - `<!-- diff: HEADING / ROW / COLUMN -->` after a claimed difference: the cell's
//!   `[lo–hi]` excludes 1 when its estimate is printed with `×` (a ratio), else 0.
//!   `<!-- same: … -->` after a claim of no difference: the interval includes it.
//! - `` `5.25 µs`<!-- ref: c-probe KEY --> ``: the number equals, within 0.5%, the median
//!   of row KEY of `papers/reference/c-probe-2026-11-29.md` (in ns; the paper may write
//!   `ns`, `µs`, `us` or `ms`).
//!
//! A marker that does not resolve, or a `<!-- report:` (`diff:`, `same:`, `ref:`) whose
//! body is malformed, fails the test; other HTML comments are left alone.

use std::path::Path;
use std::process::Command;

use barrierlab::study::data::{self, CSV_HEADER, CSV_HEADER_V1};
use barrierlab::study::format::fmt;
use barrierlab::study::stats::median;
use barrierlab::study::{Metric, Row};

type Measurement = Row;

/// A study folder's rows, through the library's reader.
fn read_rows(dir: &Path) -> barrierlab::Result<Vec<Row>> {
    data::read(dir).map(|r| r.rows)
}

const PAPER: &str = "papers/write-barriers-on-linux.md";
const COMMAND: &str = "cargo run --release -- study --out papers/results";
const RESULTS: &str = "papers/results";
const C_PROBE: &str = "papers/reference/c-probe-2026-11-29.md";
/// The marker that says the paper quotes the report: from then on, results in an older
/// format fail instead of being skipped.
const QUOTES_THE_REPORT: &str = "<!-- report:";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn paper() -> String {
    read(PAPER)
}

// ---- The report's Markdown: headings and the pipe tables under them. ----

/// A pipe table: its header cells and its data rows' cells, trimmed.
#[derive(Debug, Default)]
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// A heading and the tables between it and the next heading.
#[derive(Debug)]
struct Section {
    level: usize,
    heading: String,
    tables: Vec<Table>,
}

/// The level and text of a heading line (`## End to end` → 2, `End to end`).
fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.bytes().take_while(|&b| b == b'#').count();
    let rest = &line[level..];
    ((1..=6).contains(&level) && rest.starts_with(' ')).then(|| (level, rest.trim()))
}

fn cells(line: &str) -> Vec<String> {
    let l = line.trim();
    let l = l.strip_prefix('|').unwrap_or(l);
    let l = l.strip_suffix('|').unwrap_or(l);
    l.split('|').map(|c| c.trim().to_string()).collect()
}

/// The `|---|---|` line under a table's header.
fn is_rule(line: &str) -> bool {
    let l = line.trim();
    l.starts_with('|') && l.contains("---") && l.chars().all(|c| "|-: ".contains(c))
}

fn sections(md: &str) -> Vec<Section> {
    let lines: Vec<&str> = md.lines().collect();
    let mut out: Vec<Section> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if let Some((level, text)) = heading(lines[i]) {
            out.push(Section {
                level,
                heading: text.to_string(),
                tables: Vec::new(),
            });
            i += 1;
        } else if lines[i].trim_start().starts_with('|')
            && lines.get(i + 1).is_some_and(|l| is_rule(l))
        {
            let mut table = Table {
                header: cells(lines[i]),
                rows: Vec::new(),
            };
            i += 2;
            while i < lines.len() && lines[i].trim_start().starts_with('|') {
                table.rows.push(cells(lines[i]));
                i += 1;
            }
            if let Some(s) = out.last_mut() {
                s.tables.push(table);
            }
        } else {
            i += 1;
        }
    }
    out
}

// ---- The paper's markers. ----

#[derive(Debug, PartialEq)]
enum Column {
    Named(String),
    /// From 1.
    Nth(usize),
}

/// `HEADING[ #N] / ROW / COLUMN`: one cell of the report.
#[derive(Debug, PartialEq)]
struct CellRef {
    heading: String,
    /// From 1.
    table: usize,
    row: String,
    column: Column,
}

/// A positive count written in a marker (`#3`).
fn ordinal(text: &str, what: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!(
            "`#{text}` is not a {what} number (they count from 1)"
        )),
    }
}

impl CellRef {
    fn parse(body: &str) -> Result<CellRef, String> {
        let parts: Vec<&str> = body.splitn(3, " / ").map(str::trim).collect();
        let [heading, row, column] = parts[..] else {
            return Err(format!("`{body}` is not `HEADING / ROW / COLUMN`"));
        };
        if [heading, row, column].iter().any(|p| p.is_empty()) {
            return Err(format!("`{body}` has an empty part"));
        }
        let (heading, table) = match heading.rsplit_once(" #") {
            Some((h, n)) if n.bytes().next().is_some_and(|b| b.is_ascii_digit()) => {
                (h.trim(), ordinal(n, "table")?)
            }
            _ => (heading, 1),
        };
        let column = match column.strip_prefix('#') {
            Some(k) => Column::Nth(ordinal(k, "column")?),
            None => Column::Named(column.to_string()),
        };
        Ok(CellRef {
            heading: heading.to_string(),
            table,
            row: row.to_string(),
            column,
        })
    }

    /// The cell's text.
    fn resolve<'a>(&self, report: &'a [Section]) -> Result<&'a str, String> {
        let found: Vec<&Section> = report
            .iter()
            .filter(|s| s.heading == self.heading)
            .collect();
        let section = match found[..] {
            [s] => s,
            [] => return Err(format!("report.md has no heading `{}`", self.heading)),
            _ => {
                return Err(format!(
                    "report.md has {} headings `{}`",
                    found.len(),
                    self.heading
                ));
            }
        };
        let table = section.tables.get(self.table - 1).ok_or_else(|| {
            format!(
                "`{}` has {} table(s), not {}",
                self.heading,
                section.tables.len(),
                self.table
            )
        })?;
        let rows: Vec<&Vec<String>> = table
            .rows
            .iter()
            .filter(|r| r.first() == Some(&self.row))
            .collect();
        let row = match rows[..] {
            [r] => r,
            [] => {
                return Err(format!(
                    "table {} of `{}` has no row `{}`",
                    self.table, self.heading, self.row
                ));
            }
            _ => {
                return Err(format!(
                    "table {} of `{}` has {} rows `{}`",
                    self.table,
                    self.heading,
                    rows.len(),
                    self.row
                ));
            }
        };
        let k = match &self.column {
            Column::Nth(k) if *k <= table.header.len() => k - 1,
            Column::Nth(k) => {
                return Err(format!(
                    "the table has {} columns, not {k}",
                    table.header.len()
                ));
            }
            Column::Named(name) => {
                let ks: Vec<usize> = (0..table.header.len())
                    .filter(|&k| table.header[k] == *name)
                    .collect();
                match ks[..] {
                    [k] => k,
                    [] => {
                        return Err(format!(
                            "no column `{name}` (the columns: {:?})",
                            table.header
                        ));
                    }
                    _ => return Err(format!("column `{name}` is repeated: write `#K`")),
                }
            }
        };
        row.get(k)
            .map(String::as_str)
            .ok_or_else(|| format!("row `{}` has only {} cells", self.row, row.len()))
    }
}

/// A cell's `[lo–hi]` (en dash between the bounds, which may be negative) and the value
/// of no difference: 1 when the estimate is printed with `×`, else 0.
fn interval(cell: &str) -> Result<(f64, f64, f64), String> {
    let no = || format!("`{cell}` has no interval `[lo–hi]`");
    let open = cell.find('[').ok_or_else(no)?;
    let close = open + cell[open..].find(']').ok_or_else(no)?;
    let (lo, hi) = cell[open + 1..close].split_once('–').ok_or_else(no)?;
    let bound = |s: &str| match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("`{cell}`: `{s}` is not a bound")),
    };
    let (lo, hi) = (bound(lo)?, bound(hi)?);
    if lo > hi {
        return Err(format!("`{cell}`: the bounds are reversed"));
    }
    let null = if cell[..open].contains('×') {
        1.0
    } else {
        0.0
    };
    Ok((lo, hi, null))
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
fn c_probe_median(c_probe: &str, key: &str) -> Result<(f64, String), String> {
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

const MARKERS: [&str; 4] = ["report", "diff", "same", "ref"];

/// What the paper's markers are checked against.
struct Sources<'a> {
    report: &'a [Section],
    c_probe: &'a str,
}

fn check_marker(kind: &str, arg: &str, before: &str, src: &Sources) -> Result<(), String> {
    match kind {
        "report" => {
            let quoted = backticked(before, false)?;
            let cell = CellRef::parse(arg)?.resolve(src.report)?;
            if cell.contains(quoted) {
                Ok(())
            } else {
                Err(format!("the cell reads `{cell}`, not `{quoted}`"))
            }
        }
        "diff" | "same" => {
            let cell = CellRef::parse(arg)?.resolve(src.report)?;
            let (lo, hi, null) = interval(cell)?;
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
        _ => {
            let parts: Vec<&str> = arg.split_whitespace().collect();
            let ["c-probe", key] = parts[..] else {
                return Err(format!("`{arg}` is not `c-probe KEY`"));
            };
            let quoted = backticked(before, true)?;
            let (v, has_unit) = quantity(quoted)?;
            let (m, unit) = c_probe_median(src.c_probe, key)?;
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
    }
}

/// Checks every marker of `paper`: how many there are, and what is wrong (by line).
fn check_markers(paper: &str, src: &Sources) -> (usize, Vec<String>) {
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
                .filter(|(kind, _)| MARKERS.contains(&kind.trim()));
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
                    if let Err(e) = check_marker(kind.trim(), arg.trim(), &line[..at], src) {
                        errors.push(format!("line {}: `<!--{body}-->`: {e}", n + 1));
                    }
                }
            }
        }
    }
    (checked, errors)
}

// ---- The stored results against their CSV. ----

/// (workload, threads, heap MiB as printed) of an end-to-end table's heading:
/// `gcbench-d16, 1 thread(s), 24.0 MiB heap (2.00 times the minimum)`.
fn point(heading: &str) -> Option<(&str, usize, &str)> {
    let mut parts = heading.splitn(3, ", ");
    let workload = parts.next()?;
    let threads = parts.next()?.strip_suffix(" thread(s)")?.parse().ok()?;
    let heap = parts.next()?.split_once(" MiB heap")?.0;
    Some((workload, threads, heap))
}

/// Checks every end-to-end table's `n` and `wall ms` estimate against the CSV's rows:
/// how many table rows were checked, and what disagrees.
fn end_to_end_errors(report: &[Section], rows: &[Measurement]) -> (usize, Vec<String>) {
    let (mut checked, mut errors, mut inside) = (0, Vec::new(), false);
    for s in report {
        if s.level <= 2 {
            inside = s.level == 2 && s.heading == "End to end";
            continue;
        }
        let Some((workload, threads, heap)) = point(&s.heading).filter(|_| inside) else {
            continue;
        };
        let Some(t) = s.tables.first() else {
            errors.push(format!("`{}` has no table", s.heading));
            continue;
        };
        let column = |name: &str| t.header.iter().position(|h| h == name);
        let (Some(n_at), Some(wall_at)) = (column("n"), column("wall ms")) else {
            errors.push(format!(
                "`{}`'s table has no `n` or no `wall ms` column",
                s.heading
            ));
            continue;
        };
        for row in &t.rows {
            checked += 1;
            let tracker = &row[0];
            let wall: Vec<f64> = rows
                .iter()
                .filter(|r| {
                    r.section == barrierlab::study::Section::Macro
                        && r.tracker == *tracker
                        && r.workload == workload
                        && r.threads == threads
                        && fmt(r.heap_mib) == heap
                        && r.metric == Metric::WallMs
                })
                .map(|r| r.value)
                .collect();
            let cell = |k: usize| row.get(k).map_or("", String::as_str);
            let n = wall.len().to_string();
            if cell(n_at) != n {
                errors.push(format!(
                    "`{}` / {tracker}: n is `{}`, the CSV has {n} wall_ms rows",
                    s.heading,
                    cell(n_at)
                ));
            }
            let estimate = cell(wall_at).split(" [").next().unwrap_or_default();
            let median = fmt(median(&wall));
            if estimate != median {
                errors.push(format!(
                    "`{}` / {tracker}: wall ms is `{estimate}`, the CSV's median is {median}",
                    s.heading
                ));
            }
        }
    }
    (checked, errors)
}

/// Results in a format older than this test's: a notice while the paper does not quote
/// the report yet, a failure once it does.
fn stale(why: &str) {
    let msg = format!(
        "{RESULTS}/ predates the current study format ({why}): regenerate it with `{COMMAND}`"
    );
    assert!(!paper().contains(QUOTES_THE_REPORT), "{msg}");
    eprintln!("NOTICE: {msg}; not checked until the paper quotes the report");
}

/// The stored report and rows, or why they predate the current format.
fn stored_results() -> Result<(Vec<Section>, Vec<Measurement>), String> {
    let report = sections(&read(&format!("{RESULTS}/report.md")));
    if !report
        .iter()
        .any(|s| s.level == 2 && s.heading == "End to end")
    {
        return Err("report.md has no `## End to end` section".into());
    }
    let csv = read(&format!("{RESULTS}/study.csv"));
    let header = csv.lines().next();
    if header != Some(CSV_HEADER) && header != Some(CSV_HEADER_V1) {
        return Err(format!("study.csv's first line is not `{CSV_HEADER}`"));
    }
    let rows = read_rows(&root().join(RESULTS)).unwrap_or_else(|e| panic!("{e}"));
    Ok((report, rows))
}

#[test]
fn every_number_the_paper_marks_is_where_it_says() {
    let report = sections(&read(&format!("{RESULTS}/report.md")));
    let c_probe = read(C_PROBE);
    let src = Sources {
        report: &report,
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
        eprintln!("NOTICE: the paper has no `<!-- report: / diff: / same: / ref: -->` marker yet");
    }
}

#[test]
fn the_stored_report_agrees_with_its_csv() {
    let (report, rows) = match stored_results() {
        Ok(r) => r,
        Err(why) => return stale(&why),
    };
    let (checked, errors) = end_to_end_errors(&report, &rows);
    assert!(
        errors.is_empty(),
        "report.md disagrees with study.csv:\n{}",
        errors.join("\n")
    );
    assert!(
        checked > 0,
        "report.md's `## End to end` has no point's table"
    );
}

/// What is missing from a `meta.json`, if anything.
fn meta_problem(text: &str) -> Option<String> {
    let meta: serde_json::Value = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => return Some(format!("meta.json is not JSON: {e}")),
    };
    // The study's `Meta` writes `command` and `date` as `command_line` and `date_utc`.
    let fields: [&[&str]; 4] = [
        &["commit"],
        &["command", "command_line"],
        &["date", "date_utc"],
        &["seed"],
    ];
    fields
        .iter()
        .find(|names| {
            !names
                .iter()
                .any(|f| meta.get(f).is_some_and(|v| !v.is_null()))
        })
        .map(|names| format!("meta.json has no `{}` field", names.join("` or `")))
}

#[test]
fn the_stored_results_say_how_they_were_made() {
    let Ok(text) = std::fs::read_to_string(root().join(RESULTS).join("meta.json")) else {
        return stale("there is no meta.json");
    };
    if let Some(problem) = meta_problem(&text) {
        panic!("{RESULTS}/{problem}");
    }
}

// ---- The checker on inline samples, so that it is tested before the paper uses it. ----

const SAMPLE_REPORT: &str = "# barrierlab study

## End to end

### gcbench, 1 thread(s), 24.0 MiB heap (2.00 times the minimum)

| tracker | n | wall ms | wall ÷ none | | CPU mut / coll / service ms |
|---|---|---|---|---|---|
| none | 3 | 100 [90.0–110] | baseline | | 50.0 / 20.0 / – |
| card-table | 3 | 120 [110–130] | 1.20× [1.10–1.30] | slower | 60.0 / 20.0 / – |
| uffd-wp[thread] | 2 | 101 [95.0–108] | 1.01× [0.950–1.08] | no difference measured | 51.0 / 20.0 / 3.00 |

### Dirty granules by cause

| tracker | delta ns |
|---|---|
| card-table | -0.010 [-0.090–0.090] |
| mprotect | -0.500 [-0.900–-0.100] |

| tracker | second |
|---|---|
| card-table | 7.00 |
";

const SAMPLE_C_PROBE: &str = "key  min  median  max  unit  what
mprot_fault_seq   4867.63   5252.74   5971.80  ns/fault   SIGSEGV + log + mprotect per first write
store_l2_seq_card_delta   0.24   0.28   0.32  ns/store   card mark overhead
";

const E2E: &str = "gcbench, 1 thread(s), 24.0 MiB heap (2.00 times the minimum)";

/// The sample's markers, each alone on a line: how many were checked, the errors.
fn check_sample(line: &str) -> (usize, Vec<String>) {
    let report = sections(SAMPLE_REPORT);
    let src = Sources {
        report: &report,
        c_probe: SAMPLE_C_PROBE,
    };
    check_markers(&line.replace("E2E", E2E), &src)
}

#[test]
fn the_marker_checker_accepts_what_holds() {
    for line in [
        "costs `1.20× [1.10–1.30]`<!-- report: E2E / card-table / wall ÷ none --> in wall time",
        "`1.20×`<!-- report: E2E / card-table / #4 -->",
        "`slower`<!-- report: E2E / card-table / #5 -->",
        "`20.0 / 3.00`<!-- report: E2E / uffd-wp[thread] / CPU mut / coll / service ms -->",
        "`7.00`<!-- report: Dirty granules by cause #2 / card-table / second -->",
        "slower<!-- diff: E2E / card-table / wall ÷ none -->",
        "no slower<!-- same: E2E / uffd-wp[thread] / wall ÷ none -->",
        "within noise <!-- same: Dirty granules by cause / card-table / delta ns -->",
        "fewer <!-- diff: Dirty granules by cause / mprotect / delta ns -->",
        "`5.25 µs`<!-- ref: c-probe mprot_fault_seq -->",
        "`5253 ns` <!-- ref: c-probe mprot_fault_seq -->",
        "`0.28`<!-- ref: c-probe store_l2_seq_card_delta -->",
        "`1.20×`<!-- report: E2E / card-table / #4 --> and `7.00`<!-- report: Dirty granules by cause #2 / card-table / second -->",
    ] {
        let (checked, errors) = check_sample(line);
        assert!(checked >= 1 && errors.is_empty(), "`{line}`: {errors:?}");
    }
    // The parser reads the real reference's rows.
    let reference = c_probe_median(&read(C_PROBE), "mprot_fault_seq");
    assert_eq!(reference, Ok((5252.74, "ns/fault".to_string())));
    for ignored in [
        "<!-- TODO: a note -->",
        "```\n`9.99`<!-- report: E2E / card-table / #4 -->\n```",
    ] {
        assert_eq!(check_sample(ignored), (0, Vec::new()), "`{ignored}`");
    }
}

#[test]
fn the_marker_checker_rejects_what_does_not_hold() {
    for line in [
        // The number differs from the cell.
        "`1.21×`<!-- report: E2E / card-table / wall ÷ none -->",
        // Not immediately after the backticks, or no backticks.
        "`1.20×` <!-- report: E2E / card-table / wall ÷ none -->",
        "1.20× <!-- report: E2E / card-table / wall ÷ none -->",
        // Nothing of that name.
        "`1.20×`<!-- report: No such heading / card-table / wall ÷ none -->",
        "`1.20×`<!-- report: E2E / card-tables / wall ÷ none -->",
        "`1.20×`<!-- report: E2E / card-table / wall / none -->",
        "`1.20×`<!-- report: E2E / card-table / #9 -->",
        "`7.00`<!-- report: Dirty granules by cause #3 / card-table / second -->",
        // Malformed bodies.
        "`1.20×`<!-- report: card-table / wall ÷ none -->",
        "`1.20×`<!-- report: -->",
        "`1.20×`<!-- report: E2E /  / #4 -->",
        "`1.20×`<!-- report: E2E / card-table / #0 -->",
        "`1.20×`<!-- report: E2E / card-table / #x -->",
        "`7.00`<!-- report: Dirty granules by cause #0 / card-table / second -->",
        "`1.20×`<!-- report: E2E / card-table / #4",
        // A difference whose interval includes no-change, and the converse.
        "faster<!-- diff: E2E / uffd-wp[thread] / wall ÷ none -->",
        "the same<!-- same: E2E / card-table / wall ÷ none -->",
        "more<!-- diff: Dirty granules by cause / card-table / delta ns -->",
        "the same<!-- same: Dirty granules by cause / mprotect / delta ns -->",
        // No interval at all.
        "<!-- diff: E2E / none / wall ÷ none -->",
        // A reference number 0.9% off, in the wrong unit, or not in the file.
        "`5.3 µs`<!-- ref: c-probe mprot_fault_seq -->",
        "`0.28 µs`<!-- ref: c-probe store_l2_seq_card_delta -->",
        "`5.25 µs`<!-- ref: c-probe mprot_fault_rand -->",
        "`5.25 µs`<!-- ref: other-probe mprot_fault_seq -->",
        "`5.25 µs`<!-- ref: c-probe -->",
        "`about 5 µs`<!-- ref: c-probe mprot_fault_seq -->",
    ] {
        let (checked, errors) = check_sample(line);
        assert!(
            checked == 1 && errors.len() == 1,
            "`{line}` passed: {errors:?}"
        );
    }
}

#[test]
fn the_report_checker_compares_n_and_the_median_with_the_csv() {
    let row = |tracker: &str, invocation: usize, value: f64| Measurement {
        section: barrierlab::study::Section::Macro,
        tracker: tracker.into(),
        workload: "gcbench".into(),
        threads: 1,
        heap_mib: 24.0,
        invocation,
        round: 0,
        metric: Metric::WallMs,
        value,
        note: String::new(),
    };
    let mut rows = vec![
        row("none", 0, 90.0),
        row("none", 1, 100.0),
        row("none", 2, 110.0),
        row("card-table", 0, 110.0),
        row("card-table", 1, 120.0),
        row("card-table", 2, 130.0),
        row("uffd-wp[thread]", 0, 100.0),
        row("uffd-wp[thread]", 1, 102.0),
    ];
    let report = sections(SAMPLE_REPORT);
    assert_eq!(end_to_end_errors(&report, &rows), (3, Vec::new()));
    // Another metric, section or heap size does not count; a changed value does.
    rows.push(Measurement {
        metric: Metric::CpuTotalMs,
        ..row("none", 3, 1.0)
    });
    rows.push(Measurement {
        section: barrierlab::study::Section::Invalid,
        ..row("none", 3, 1.0)
    });
    rows.push(Measurement {
        heap_mib: 48.0,
        ..row("none", 3, 1.0)
    });
    assert_eq!(end_to_end_errors(&report, &rows), (3, Vec::new()));
    rows[4].value = 135.0;
    rows.push(row("none", 3, 100.0));
    let (_, errors) = end_to_end_errors(&report, &rows);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains("none: n is `3`, the CSV has 4"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("card-table: wall ms is `120`, the CSV's median is 130"),
        "{errors:?}"
    );
}

#[test]
fn every_figure_the_paper_shows_exists() {
    let root = root().join("papers");
    let text = paper();
    let mut figures = 0;
    for chunk in text.split("](").skip(1) {
        let target = chunk.split(')').next().unwrap_or_default();
        if target.ends_with(".svg") || target.ends_with(".md") || target.ends_with(".csv") {
            assert!(
                root.join(target).is_file(),
                "the paper links {target}, which is missing"
            );
            if target.ends_with(".svg") {
                let svg = std::fs::read_to_string(root.join(target)).expect("readable");
                assert!(svg.contains("</svg>"), "{target} is a complete SVG");
                figures += 1;
            }
        }
    }
    assert!(
        figures >= 3,
        "the paper shows the study's figures ({figures} found)"
    );
    assert!(
        !text.contains("RESULTS_"),
        "the paper has no unfilled placeholder"
    );
}

#[test]
fn the_papers_command_runs_in_quick_mode() {
    assert!(paper().contains(COMMAND), "the paper names `{COMMAND}`");
    let out = std::env::temp_dir().join(format!("barrierlab-paper-test-{}", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_barrierlab"))
        .args([
            "study",
            "--quick",
            "--no-progress",
            "--trackers",
            "card-table,uffd-wp-async",
            "--out",
        ])
        .arg(&out)
        .status()
        .expect("the binary runs");
    assert!(status.success(), "`study --quick` failed: {status}");
    for f in ["report.md", "study.csv", "crossover.svg"] {
        assert!(out.join(f).is_file(), "`study --quick` wrote no {f}");
    }
    // The checks of the stored results hold for what the current code writes.
    let report = sections(&std::fs::read_to_string(out.join("report.md")).expect("readable"));
    let rows = read_rows(&out).unwrap_or_else(|e| panic!("{e}"));
    let (checked, errors) = end_to_end_errors(&report, &rows);
    assert!(
        checked > 0 && errors.is_empty(),
        "`study --quick`'s report disagrees with its CSV ({checked} rows checked):\n{}",
        errors.join("\n")
    );
    let meta =
        std::fs::read_to_string(out.join("meta.json")).expect("`study --quick` wrote meta.json");
    assert_eq!(meta_problem(&meta), None);
    let _ = std::fs::remove_dir_all(&out);
}

/// The stored `summary.json` (rendered by `barrierlab report papers/results` from the
/// stored CSV) holds the report's end-to-end numbers: for every point's table, each
/// variant's `n` and `wall ms` cells as report.md prints them.
#[test]
fn the_stored_summary_holds_the_reports_end_to_end_numbers() {
    use barrierlab::study::summary::{Cell, Summary};
    let Ok(summary) = Summary::load(&root().join(RESULTS)) else {
        return stale("there is no summary.json (`barrierlab report papers/results` writes one)");
    };
    let report = sections(&read(&format!("{RESULTS}/report.md")));
    let mut checked = 0;
    for s in report.iter().filter(|s| point(&s.heading).is_some()) {
        let (Some(md), Some(json)) = (s.tables.first(), summary.table(&s.heading, 1)) else {
            continue;
        };
        for row in &md.rows {
            for column in ["n", "wall ms"] {
                let k = md.header.iter().position(|h| h == column).expect(column);
                let cell = json
                    .cell(&row[0], column)
                    .map(Cell::render)
                    .unwrap_or_else(|| {
                        panic!("{} / {} / {column} not in summary.json", s.heading, row[0])
                    });
                assert_eq!(cell, row[k], "{} / {} / {column}", s.heading, row[0]);
                checked += 1;
            }
        }
    }
    assert!(checked > 0, "no end-to-end table was compared");
}
