//! The marker checker on inline samples (three sample runs' tables and a sample
//! comparison), so that it is tested before the paper uses it.

use barrierlab::study::summary::{Cell, Table};

use super::markers::{Sources, Verdict, c_probe_median, check_markers, verdicts};
use super::{C_PROBE, read};

const E2E: &str = "gcbench, 1 thread(s), 24.0 MiB heap (2.00 times the minimum)";

pub(crate) fn text(s: &str) -> Cell {
    Cell::text(s)
}

pub(crate) fn estimate(estimate: f64, lo: f64, hi: f64) -> Cell {
    Cell::Estimate { estimate, lo, hi }
}

pub(crate) fn ratio(estimate: f64, lo: f64, hi: f64, verdict: &str) -> Cell {
    Cell::Ratio {
        estimate,
        lo,
        hi,
        verdict: verdict.into(),
    }
}

pub(crate) fn table(heading: &str, index: usize, header: &[&str], rows: Vec<Vec<Cell>>) -> Table {
    Table {
        heading: heading.into(),
        index,
        header: header.iter().map(|h| h.to_string()).collect(),
        rows,
    }
}

/// A crossover table: `mprotect`'s and `uffd-wp[thread]`'s cells, and `odd`'s missing.
fn crossover(mprotect: Cell, thread: Cell) -> Table {
    let share = || text("100%");
    table(
        "Crossover with the card table",
        1,
        &["tracker", "crossover (stores/page)", "resamples that cross"],
        vec![
            vec![text("mprotect"), mprotect, share()],
            vec![text("uffd-wp[thread]"), thread, share()],
            vec![text("odd"), Cell::Missing, share()],
        ],
    )
}

/// An end-to-end table whose `card-table` row has `wall ÷ none` = `card`.
pub(crate) fn end_to_end(card: Cell) -> Table {
    table(
        E2E,
        1,
        &[
            "tracker",
            "n",
            "wall ms",
            "wall ÷ none",
            "",
            "CPU mut / coll / service ms",
        ],
        vec![
            vec![
                text("none"),
                Cell::count(3.0),
                estimate(100.0, 90.0, 110.0),
                text("baseline"),
                text(""),
                text("50.0 / 20.0 / –"),
            ],
            vec![
                text("card-table"),
                Cell::count(3.0),
                estimate(120.0, 110.0, 130.0),
                card,
                text("slower"),
                text("60.0 / 20.0 / –"),
            ],
            vec![
                text("uffd-wp[thread]"),
                Cell::count(2.0),
                estimate(101.0, 95.0, 108.0),
                ratio(1.01, 0.95, 1.08, "no difference measured"),
                text("no difference measured"),
                text("51.0 / 20.0 / 3.00"),
            ],
        ],
    )
}

/// Run 1's tables, in file order. The end-to-end heading heads a second table later on,
/// whose `index` is 1 as well (it sits in another section): `E2E #2` must find it by
/// file order.
fn run_1() -> Vec<Table> {
    vec![
        crossover(
            estimate(5394.0, 5104.0, 8121.0),
            text("none within 1–16384"),
        ),
        end_to_end(ratio(1.2, 1.1, 1.3, "slower")),
        table(
            "Dirty granules by cause",
            1,
            &["tracker", "delta ns"],
            vec![
                vec![text("card-table"), estimate(-0.01, -0.09, 0.09)],
                vec![text("mprotect"), estimate(-0.5, -0.9, -0.1)],
            ],
        ),
        table(
            "Dirty granules by cause",
            2,
            &["tracker", "second"],
            vec![vec![text("card-table"), Cell::number(7.0)]],
        ),
        table(
            E2E,
            1,
            &["barrier", "granule", "wall ÷ card-table"],
            vec![vec![
                text("mprotect"),
                text("page"),
                ratio(2.5, 2.2, 2.8, ""),
            ]],
        ),
    ]
}

/// Run 2: the crossings the other way round, no difference for the card table.
fn run_2() -> Vec<Table> {
    vec![
        crossover(text("none within 1–16384"), estimate(900.0, 800.0, 1000.0)),
        end_to_end(ratio(1.04, 0.98, 1.10, "no difference measured")),
    ]
}

/// Run 3: run 1 without its crossover table.
fn run_3() -> Vec<Table> {
    let mut tables = run_1();
    tables.remove(0);
    tables
}

const SAMPLE_COMPARE: &str = r#"{"runs": ["run-1", "run-2", "run-3"], "margin": 0.05,
  "verdicts": {"judged": 2, "stated": 1, "reversed": 0, "same_in_every_run": 1, "points": [
    {"point": "gcbench-l64 x1 heap #2", "tracker": "card-table", "metric": "wall_ms",
     "ratios": [null, null, null], "statement": "slower", "same_in_every_run": true},
    {"point": "gcbench-l64 x1 heap #2", "tracker": "card-table", "metric": "cpu_total_ms",
     "ratios": [null, null, null], "statement": "no difference stated",
     "same_in_every_run": false},
    {"point": "lru-l64 x1 heap #1", "tracker": "mprotect", "metric": "wall_ms",
     "ratios": [null, null, null], "statement": "not judged (run 1: too few cycles)",
     "same_in_every_run": false},
    {"point": "lru-l64 x1 heap #1", "tracker": "write-watch", "metric": "wall_ms",
     "ratios": [null, null, null], "statement": "faster", "same_in_every_run": true},
    {"point": "lru-l64 x1 heap #1", "tracker": "write-watch", "metric": "wall_ms",
     "ratios": [null, null, null], "statement": "faster", "same_in_every_run": true}
  ]}, "run_to_run": []}"#;

fn sample_verdicts() -> Vec<Verdict> {
    verdicts(&serde_json::from_str(SAMPLE_COMPARE).expect("JSON")).expect("verdicts")
}

const SAMPLE_C_PROBE: &str = "key  min  median  max  unit  what
mprot_fault_seq   4867.63   5252.74   5971.80  ns/fault   SIGSEGV + log + mprotect per first write
store_l2_seq_card_delta   0.24   0.28   0.32  ns/store   card mark overhead
";

/// The sample's markers: how many were checked, the errors.
fn check_sample(line: &str) -> (usize, Vec<String>) {
    let runs = [run_1(), run_2(), run_3()];
    let verdicts = sample_verdicts();
    let src = Sources {
        runs: &runs,
        verdicts: &verdicts,
        c_probe: SAMPLE_C_PROBE,
    };
    check_markers(&line.replace("E2E", E2E), &src)
}

/// Every kind of marker, with and without `@N`, passes where the samples say what the
/// text claims; comments that are not markers, and fenced code, are not read.
#[test]
fn the_marker_checker_accepts_what_holds() {
    for line in [
        "costs `1.20× [1.10–1.30]`<!-- report: E2E / card-table / wall ÷ none --> in wall time",
        "`1.20×`<!-- report: E2E / card-table / #4 -->",
        "`slower`<!-- report: E2E / card-table / #5 -->",
        "`20.0 / 3.00`<!-- report: E2E / uffd-wp[thread] / CPU mut / coll / service ms -->",
        "`120 [110–130]`<!-- report: E2E / card-table / wall ms -->, `3`<!-- report: E2E / none / n -->",
        "`7.00`<!-- report: Dirty granules by cause #2 / card-table / second -->",
        "`none within 1–16384`<!-- report: Crossover with the card table / uffd-wp[thread] / #2 -->",
        // `@N` reads run N; `@1` is run 1.
        "`1.04× [0.980–1.10]`<!-- report@2: E2E / card-table / wall ÷ none -->",
        "`1.20×`<!-- report@1: E2E / card-table / wall ÷ none -->",
        "`1.20×`<!-- report@3: E2E / card-table / wall ÷ none -->",
        // The N-th table so headed in file order, not the table's `index`.
        "`page`<!-- report: E2E #2 / mprotect / granule -->",
        "`2.50×`<!-- report@3: E2E #2 / mprotect / wall ÷ card-table -->",
        "slower<!-- diff: E2E #2 / mprotect / wall ÷ card-table -->",
        "slower<!-- diff: E2E / card-table / wall ÷ none -->",
        "no slower<!-- same: E2E / uffd-wp[thread] / wall ÷ none -->",
        "no slower<!-- same@2: E2E / card-table / wall ÷ none -->",
        "within noise <!-- same: Dirty granules by cause / card-table / delta ns -->",
        "fewer <!-- diff: Dirty granules by cause / mprotect / delta ns -->",
        // A verdict across runs, exactly as stated, after any non-letter.
        "slower<!-- held: gcbench-l64 x1 heap #2 / card-table / wall_ms -->",
        "was (slower<!-- held: gcbench-l64 x1 heap #2 / card-table / wall_ms -->)",
        "| no difference stated<!-- held: gcbench-l64 x1 heap #2 / card-table / cpu_total_ms --> |",
        "not judged (run 1: too few cycles)<!-- held: lru-l64 x1 heap #1 / mprotect / wall_ms -->",
        // Crossings, per run.
        "mprotect crosses<!-- crosses: mprotect -->",
        "it does not cross <!-- no-cross: uffd-wp[thread] -->",
        "<!-- crosses@1: mprotect --><!-- crosses@2: uffd-wp[thread] -->",
        "<!-- no-cross@2: mprotect -->",
        "`5.25 µs`<!-- ref: c-probe mprot_fault_seq -->",
        "`5253 ns` <!-- ref: c-probe mprot_fault_seq -->",
        "`0.28`<!-- ref: c-probe store_l2_seq_card_delta -->",
        "`1.20×`<!-- report: E2E / card-table / #4 --> and `7.00`<!-- report: Dirty granules by cause #2 / card-table / second -->",
    ] {
        let (checked, errors) = check_sample(line);
        assert!(checked >= 1 && errors.is_empty(), "`{line}`: {errors:?}");
    }
    // The parser reads the real reference's rows.
    let reference = c_probe_median(&read(C_PROBE), "mprotect_fault_unprotect");
    assert_eq!(reference, Ok((5677.76, "ns/page".to_string())));
    for ignored in [
        "<!-- TODO: a note -->",
        "<!-- note@2: crosses -->",
        "<!-- crossing: mprotect -->",
        "```\n`9.99`<!-- report: E2E / card-table / #4 -->\n<!-- crosses: odd -->\n```",
    ] {
        assert_eq!(check_sample(ignored), (0, Vec::new()), "`{ignored}`");
    }
}

/// Each marker that does not hold, names no stored run or is malformed fails, alone.
#[test]
fn the_marker_checker_rejects_what_does_not_hold() {
    for line in [
        // The number differs from the cell.
        "`1.21×`<!-- report: E2E / card-table / wall ÷ none -->",
        "`1.20×`<!-- report@2: E2E / card-table / wall ÷ none -->",
        // Not immediately after the backticks, or no backticks.
        "`1.20×` <!-- report: E2E / card-table / wall ÷ none -->",
        "1.20× <!-- report: E2E / card-table / wall ÷ none -->",
        // Nothing of that name.
        "`1.20×`<!-- report: No such heading / card-table / wall ÷ none -->",
        "`1.20×`<!-- report: E2E / card-tables / wall ÷ none -->",
        "`1.20×`<!-- report: E2E / card-table / wall / none -->",
        "`1.20×`<!-- report: E2E / card-table / #9 -->",
        "`7.00`<!-- report: Dirty granules by cause #3 / card-table / second -->",
        "`page`<!-- report: E2E #3 / mprotect / granule -->",
        "`page`<!-- report@2: E2E #2 / mprotect / granule -->",
        // No such run, or a run on a marker that reads none.
        "`1.20×`<!-- report@4: E2E / card-table / wall ÷ none -->",
        "`1.20×`<!-- report@0: E2E / card-table / wall ÷ none -->",
        "`1.20×`<!-- report@: E2E / card-table / wall ÷ none -->",
        "`1.20×`<!-- report@two: E2E / card-table / wall ÷ none -->",
        "slower<!-- diff@4: E2E / card-table / wall ÷ none -->",
        "<!-- crosses@0: mprotect -->",
        "<!-- no-cross@4: uffd-wp[thread] -->",
        "`5.25 µs`<!-- ref@2: c-probe mprot_fault_seq -->",
        "slower<!-- held@2: gcbench-l64 x1 heap #2 / card-table / wall_ms -->",
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
        "slower<!-- diff@2: E2E / card-table / wall ÷ none -->",
        "more<!-- diff: Dirty granules by cause / card-table / delta ns -->",
        "the same<!-- same: Dirty granules by cause / mprotect / delta ns -->",
        // No interval at all.
        "<!-- diff: E2E / none / wall ÷ none -->",
        // A verdict across runs that is not the stored one, not there, or not marked.
        "faster<!-- held: gcbench-l64 x1 heap #2 / card-table / wall_ms -->",
        "slower<!-- held: gcbench-l64 x1 heap #2 / card-table / cpu_total_ms -->",
        "no difference stated<!-- held: gcbench-l64 x1 heap #2 / card-table / wall_ms -->",
        "slower <!-- held: gcbench-l64 x1 heap #2 / card-table / wall_ms -->",
        "unslower<!-- held: gcbench-l64 x1 heap #2 / card-table / wall_ms -->",
        "slower<!-- held: gcbench-l64 x1 heap #1 / card-table / wall_ms -->",
        "slower<!-- held: gcbench-l64 x1 heap #2 / mprotect / wall_ms -->",
        "slower<!-- held: gcbench-l64 x1 heap #2 / card-table / stw_ms -->",
        "faster<!-- held: lru-l64 x1 heap #1 / write-watch / wall_ms -->",
        "slower<!-- held: gcbench-l64 x1 heap #2 / card-table -->",
        "slower<!-- held: gcbench-l64 x1 heap #2 / card-table / wall_ms / x -->",
        "slower<!-- held: gcbench-l64 x1 heap #2 /  / wall_ms -->",
        // A crossing claimed where the tracker does not cross, and the converse.
        "<!-- crosses: uffd-wp[thread] -->",
        "<!-- no-cross: mprotect -->",
        "<!-- crosses@2: mprotect -->",
        "<!-- no-cross@2: uffd-wp[thread] -->",
        // A crossover that is neither, a tracker not in the table, a run without it.
        "<!-- crosses: odd -->",
        "<!-- no-cross: odd -->",
        "<!-- crosses: card-table -->",
        "<!-- crosses@3: mprotect -->",
        "<!-- crosses: -->",
        "<!-- no-cross: mprotect / uffd-wp[thread] -->",
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

/// The verdicts are read from `compare.json`'s `verdicts.points`, or not at all.
#[test]
fn the_verdicts_are_read_from_the_comparisons_points() {
    let v = sample_verdicts();
    assert_eq!(v.len(), 5);
    assert_eq!(
        (
            v[2].point.as_str(),
            v[2].tracker.as_str(),
            v[2].metric.as_str()
        ),
        ("lru-l64 x1 heap #1", "mprotect", "wall_ms")
    );
    assert_eq!(v[2].statement, "not judged (run 1: too few cycles)");
    for bad in [
        r#"{"verdicts": {}}"#,
        r#"{"verdicts": {"points": [{"point": "p"}]}}"#,
    ] {
        let json = serde_json::from_str(bad).expect("JSON");
        assert!(verdicts(&json).is_err(), "{bad}");
    }
}
