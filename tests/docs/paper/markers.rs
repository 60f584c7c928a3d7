//! The paper's markers: the checker, on the paper and on inline samples.

use super::markdown::{Section, sections};
use super::{C_PROBE, RESULTS, paper, read};

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

// ---- The checker on inline samples, so that it is tested before the paper uses it. ----

pub(crate) const SAMPLE_REPORT: &str = "# barrierlab study

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
