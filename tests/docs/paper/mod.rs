//! The write-up stays reproducible: every figure it shows exists, every number it quotes
//! is in the stored results (or the C reference) exactly, every difference it claims has
//! an interval that excludes no-change, every verdict it says held across runs is the
//! stored comparison's, every claim that a tracker crosses the card table (or does not)
//! is marked and holds, each stored run's report agrees with its CSV, the three runs are
//! independent, the stored comparison is the comparison of the stored runs, and the
//! command the paper names still runs (in `--quick` mode).
//!
//! The sources: three study runs, `papers/results/run-1`, `run-2` and `run-3`, each read
//! through its typed `summary.json` (never its Markdown), and their comparison,
//! `papers/results/compare.json` (`barrierlab compare run-1 run-2 run-3 --json`, run in
//! `papers/results`).
//!
//! The paper's markup, checked here (fenced code blocks are not read). A marker that
//! takes a run may name it with `@N` after its kind (`report@2:`, `no-cross@3:`); without
//! it, it reads run 1. `@0` or a run that is not stored fails.
//! - `` `1.23× [1.10–1.40]`<!-- report: HEADING / ROW / COLUMN --> ``: the backticked text
//!   (trimmed) is contained in that cell of the run's `summary.json`, rendered as the
//!   report prints it (`Cell::render`). HEADING is a table's heading; `HEADING #N` takes
//!   the N-th table (from 1) with that heading in file order (the same heading can head an
//!   end-to-end table and a granule table in different sections). ROW is the unique row
//!   whose first cell renders to ROW. COLUMN is a header cell's exact text or `#K` (the
//!   K-th column, from 1, for empty or repeated headers). The body splits at the first two
//!   ` / `, so a column header may itself contain ` / `.
//! - `<!-- diff: HEADING / ROW / COLUMN -->` after a claimed difference: the cell's
//!   `[lo–hi]` excludes 1 when its estimate is printed with `×` (a ratio), else 0.
//!   `<!-- same: … -->` after a claim of no difference: the interval includes it.
//! - `no difference stated<!-- held: POINT / TRACKER / METRIC -->`: `compare.json` has
//!   exactly one verdict across runs for that point (`gcbench-l64 x1 heap #2`), tracker
//!   and metric (`wall_ms`, `cpu_total_ms`), and the text before the marker ends with its
//!   statement (`slower`, `faster`, `no difference stated`, …) as a whole word. No `@N`.
//! - `<!-- crosses: TRACKER -->` / `<!-- no-cross: TRACKER -->`: in the run's table
//!   `Crossover with the card table`, the tracker's `crossover (stores/page)` cell is an
//!   estimate (it crosses) / a text such as `none within 1–16384` (it does not).
//! - `` `5.25 µs`<!-- ref: c-probe KEY --> ``: the number equals, within 0.5%, the median
//!   of row KEY of `papers/reference/probe-2026-12-06.md` (in ns; the paper may write
//!   `ns`, `µs`, `us` or `ms`). No `@N`.
//!
//! And no free-standing claim ([`claims`]): every sentence that says a tracker crosses
//! (the words `cross`, `crosses`, `crossed`) carries a `crosses`/`no-cross` marker, and
//! every sentence that says something adds nothing carries a `same` marker.
//!
//! A marker that does not resolve, or a marker of one of these kinds whose body is
//! malformed, fails the test; other HTML comments are left alone.

mod cells;
mod claims;
mod markdown;
mod marker_samples;
mod markers;
mod reproducible;
mod results;
mod runs;

use std::path::{Path, PathBuf};

use barrierlab::study::Row;
use barrierlab::study::data;

type Measurement = Row;

/// A study folder's rows, through the library's reader.
fn read_rows(dir: &Path) -> barrierlab::Result<Vec<Row>> {
    data::read(dir).map(|r| r.rows)
}

const PAPER: &str = "papers/write-barriers-on-linux.md";
/// The command the paper names; the other runs differ only in their folder.
const COMMAND: &str = "cargo run --release -- study --out papers/results/run-1";
/// Where the stored runs and their comparison are.
const RESULTS: &str = "papers/results";
/// The stored runs' folders under [`RESULTS`], run 1 first (the names `compare.json`
/// lists).
const RUNS: [&str; 3] = ["run-1", "run-2", "run-3"];
/// `barrierlab compare run-1 run-2 run-3 --json`, run in [`RESULTS`].
const COMPARE: &str = "papers/results/compare.json";
const C_PROBE: &str = "papers/reference/probe-2026-12-06.md";
/// The marker that says the paper quotes the results (`<!-- report:` and
/// `<!-- report@N:`): from then on, results in an older format fail instead of being
/// skipped.
const QUOTES_THE_REPORT: &str = "<!-- report";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Run `n`'s folder (from 1), as a path under the repository.
fn run_dir(n: usize) -> String {
    format!("{RESULTS}/{}", RUNS[n - 1])
}

/// Run `n`'s folder (from 1), absolute.
fn run_path(n: usize) -> PathBuf {
    root().join(run_dir(n))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn paper() -> String {
    read(PAPER)
}
