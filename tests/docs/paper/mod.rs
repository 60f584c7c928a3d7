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

mod markdown;
mod markers;
mod reproducible;
mod results;

use std::path::Path;

use barrierlab::study::Row;
use barrierlab::study::data;

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
