//! The CSV: its schema, the streaming writer and the reader (through the `csv` crate).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Metric, Row, Section};
use crate::error::{Error, Result};

/// The CSV's columns, in order.
pub const CSV_HEADER: &str =
    "section,tracker,workload,threads,heap_mib,invocation,round,metric,value,note,end";

/// The columns of the CSV before rows had a round and a terminator (read, never written).
pub const CSV_HEADER_V1: &str =
    "section,tracker,workload,threads,heap_mib,invocation,metric,value,note";

/// The last field of every row: a line that does not end with it was cut.
pub const END: &str = ";";

/// A row as the CSV writes it: the row's fields and the terminator.
#[derive(Serialize)]
struct Record<'a> {
    section: Section,
    tracker: &'a str,
    workload: &'a str,
    threads: usize,
    heap_mib: f64,
    invocation: usize,
    round: usize,
    metric: Metric,
    value: f64,
    note: &'a str,
    end: &'static str,
}

/// A row as the CSV is read: `end` is checked, `round` is absent from the old format.
#[derive(Deserialize)]
struct ReadRecord {
    section: Section,
    tracker: String,
    workload: String,
    threads: usize,
    heap_mib: f64,
    invocation: usize,
    #[serde(default)]
    round: Option<usize>,
    metric: Metric,
    value: f64,
    note: String,
    #[serde(default)]
    end: Option<String>,
}

fn record(r: &Row) -> Record<'_> {
    Record {
        section: r.section,
        tracker: &r.tracker,
        workload: &r.workload,
        threads: r.threads,
        heap_mib: r.heap_mib,
        invocation: r.invocation,
        round: r.round,
        metric: r.metric,
        value: r.value,
        note: &r.note,
        end: END,
    }
}

/// Renders rows as a whole CSV (header included).
pub fn to_csv(rows: &[Row]) -> String {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    for r in rows {
        w.serialize(record(r))
            .expect("a row serialises into memory");
    }
    let body = w.into_inner().expect("writing into memory cannot fail");
    format!("{CSV_HEADER}\n{}", String::from_utf8_lossy(&body))
}

/// The rows of a study and what was wrong with its CSV but could be read around.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    /// Every complete row, in file order.
    pub rows: Vec<Row>,
    /// A cut last line skipped, or an old format read (each names the file).
    pub warnings: Vec<String>,
}

/// Reads `dir/study.csv`. A cut last line is skipped with a warning; any other line that
/// does not read is an error naming the file and the line.
pub fn read(dir: &Path) -> Result<Rows> {
    let path = dir.join("study.csv");
    let text =
        std::fs::read(&path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    parse(&path, &text)
}

/// Reads a study's CSV held in memory (`path` names it in messages).
pub fn parse(path: &Path, text: &[u8]) -> Result<Rows> {
    let bad = |line: u64, why: String| {
        Error::InvalidArgument(format!("{} line {line}: {why}", path.display()))
    };
    let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    let v1 = match first.trim_end_matches('\r') {
        CSV_HEADER => false,
        CSV_HEADER_V1 => true,
        other => {
            return Err(bad(
                1,
                format!("not a study's CSV (the header is `{other}`, expected `{CSV_HEADER}`)"),
            ));
        }
    };
    let mut out = Rows::default();
    if v1 {
        out.warnings.push(format!(
            "{}: an older study's CSV (no row terminator: a cut last line cannot be told from a \
             complete one)",
            path.display()
        ));
    }
    let last_line = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count() as u64;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text);
    let columns = if v1 { 9 } else { 11 };
    for (i, rec) in reader.records().enumerate() {
        let line = rec
            .as_ref()
            .ok()
            .and_then(|r| r.position())
            .map_or(i as u64 + 2, |p| p.line());
        let parsed = rec.map_err(|e| e.to_string()).and_then(|rec| {
            if rec.len() != columns {
                return Err(format!("{} fields, expected {columns}", rec.len()));
            }
            let headers = csv::StringRecord::from(if v1 {
                CSV_HEADER_V1.split(',').collect::<Vec<_>>()
            } else {
                CSV_HEADER.split(',').collect::<Vec<_>>()
            });
            let r: ReadRecord = rec.deserialize(Some(&headers)).map_err(|e| e.to_string())?;
            if !v1 && r.end.as_deref() != Some(END) {
                return Err(format!("the row does not end with `{END}`"));
            }
            Ok(r)
        });
        match parsed {
            Ok(r) => {
                // The old format numbered a micro process's rounds as invocations.
                let (invocation, round) = match (r.round, r.section) {
                    (Some(round), _) => (r.invocation, round),
                    (None, Section::Micro) => (0, r.invocation),
                    (None, _) => (r.invocation, 0),
                };
                out.rows.push(Row {
                    section: r.section,
                    tracker: r.tracker,
                    workload: r.workload,
                    threads: r.threads,
                    heap_mib: r.heap_mib,
                    invocation,
                    round,
                    metric: r.metric,
                    value: r.value,
                    note: r.note,
                });
            }
            Err(why) if line >= last_line && !text.ends_with(b"\n") => {
                out.warnings.push(format!(
                    "{} line {line}: the last line was cut short ({why}); skipped",
                    path.display()
                ));
            }
            Err(why) => return Err(bad(line, why)),
        }
    }
    Ok(out)
}

/// The rows, streamed to `study.csv` as they are measured (flushed per row, so that an
/// interrupted run keeps every complete row) and kept in memory.
pub struct Sink {
    writer: csv::Writer<std::fs::File>,
    path: PathBuf,
    /// Every row written.
    pub rows: Vec<Row>,
}

impl Sink {
    /// Creates `path` with the header.
    pub fn create(path: PathBuf) -> Result<Sink> {
        let file = std::fs::File::create(&path)
            .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(file);
        writer
            .write_record(CSV_HEADER.split(','))
            .and_then(|()| writer.flush().map_err(csv::Error::from))
            .map_err(|e| {
                Error::io(
                    format!("write {}", path.display()),
                    std::io::Error::other(e),
                )
            })?;
        Ok(Sink {
            writer,
            path,
            rows: Vec::new(),
        })
    }

    /// Writes one row and flushes it.
    pub fn push(&mut self, row: Row) -> Result<()> {
        self.writer
            .serialize(record(&row))
            .and_then(|()| self.writer.flush().map_err(csv::Error::from))
            .map_err(|e| {
                Error::io(
                    format!("write {}", self.path.display()),
                    std::io::Error::other(e),
                )
            })?;
        self.rows.push(row);
        Ok(())
    }
}
