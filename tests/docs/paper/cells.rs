//! One cell of a run's `summary.json`, as a marker names it (`HEADING[ #N] / ROW /
//! COLUMN`), and the interval a cell prints.

use barrierlab::study::summary::{Cell, Table};

#[derive(Debug, PartialEq)]
pub(crate) enum Column {
    Named(String),
    /// From 1.
    Nth(usize),
}

/// `HEADING[ #N] / ROW / COLUMN`: one cell of a run's tables.
#[derive(Debug, PartialEq)]
pub(crate) struct CellRef {
    pub(crate) heading: String,
    /// The N-th table with that heading, in file order, from 1.
    pub(crate) table: usize,
    pub(crate) row: String,
    pub(crate) column: Column,
}

/// A positive count written in a marker (`#3`, `@2`).
pub(crate) fn ordinal(text: &str, what: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!(
            "`{text}` is not a {what} number (they count from 1)"
        )),
    }
}

/// The table headed `heading` that comes `nth` (from 1) among those so headed, in file
/// order (never by the tables' own `index`).
pub(crate) fn nth_table<'a>(
    tables: &'a [Table],
    heading: &str,
    nth: usize,
) -> Result<&'a Table, String> {
    let found: Vec<&Table> = tables.iter().filter(|t| t.heading == heading).collect();
    match found.get(nth - 1) {
        Some(t) => Ok(t),
        None if found.is_empty() => Err(format!("summary.json has no table headed `{heading}`")),
        None => Err(format!(
            "summary.json has {} table(s) headed `{heading}`, not {nth}",
            found.len()
        )),
    }
}

/// The unique row of `table` whose first cell renders to `name`.
pub(crate) fn row_named<'a>(table: &'a Table, name: &str) -> Result<&'a [Cell], String> {
    let rows: Vec<&Vec<Cell>> = table
        .rows
        .iter()
        .filter(|r| r.first().map(Cell::render).as_deref() == Some(name))
        .collect();
    match rows[..] {
        [r] => Ok(r),
        [] => Err(format!("table `{}` has no row `{name}`", table.heading)),
        _ => Err(format!(
            "table `{}` has {} rows `{name}`",
            table.heading,
            rows.len()
        )),
    }
}

/// The place of `column` in `table`'s header (from 0).
pub(crate) fn column_at(table: &Table, column: &Column) -> Result<usize, String> {
    let header = &table.header;
    match column {
        Column::Nth(k) if *k <= header.len() => Ok(k - 1),
        Column::Nth(k) => Err(format!("the table has {} columns, not {k}", header.len())),
        Column::Named(name) => {
            let ks: Vec<usize> = (0..header.len()).filter(|&k| header[k] == *name).collect();
            match ks[..] {
                [k] => Ok(k),
                [] => Err(format!("no column `{name}` (the columns: {header:?})")),
                _ => Err(format!("column `{name}` is repeated: write `#K`")),
            }
        }
    }
}

impl CellRef {
    pub(crate) fn parse(body: &str) -> Result<CellRef, String> {
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

    /// The cell, typed.
    pub(crate) fn cell<'a>(&self, tables: &'a [Table]) -> Result<&'a Cell, String> {
        let table = nth_table(tables, &self.heading, self.table)?;
        let row = row_named(table, &self.row)?;
        let k = column_at(table, &self.column)?;
        row.get(k)
            .ok_or_else(|| format!("row `{}` has only {} cells", self.row, row.len()))
    }

    /// The cell's text, as the report prints it.
    pub(crate) fn resolve(&self, tables: &[Table]) -> Result<String, String> {
        self.cell(tables).map(Cell::render)
    }
}

/// A cell's `[lo–hi]` (en dash between the bounds, which may be negative) and the value
/// of no difference: 1 when the estimate is printed with `×`, else 0.
pub(crate) fn interval(cell: &str) -> Result<(f64, f64, f64), String> {
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
