//! The schema's round trip, and what the reader does with a cut or malformed line.

use std::path::Path;

use super::*;

fn row(section: Section, metric: Metric, value: f64, note: &str) -> Row {
    Row {
        section,
        tracker: "uffd-wp[thread]".into(),
        workload: "gcbench-l64".into(),
        threads: 1,
        heap_mib: 160.0,
        invocation: 3,
        round: 0,
        metric,
        value,
        note: note.into(),
    }
}

fn sample() -> Vec<Row> {
    vec![
        row(Section::Macro, Metric::WallMs, 1234.75, ""),
        row(Section::Macro, Metric::Mmu(10), 0.5, ""),
        row(Section::Macro, Metric::pause_cdf(99.9), 17.0, ""),
        row(
            Section::Error,
            Metric::Crash,
            1.0,
            "a, b \"quoted\"\nsecond line | pipe",
        ),
        row(Section::Micro, Metric::StoresNs, 1e9, ""),
    ]
}

#[test]
fn every_metric_name_reads_back_as_itself() {
    for (m, name) in Metric::FIXED {
        assert_eq!(m.name(), *name);
        assert_eq!(name.parse::<Metric>(), Ok(*m));
    }
    for m in [
        Metric::Mmu(1),
        Metric::MmuStall(100),
        Metric::pause_cdf(99.9),
        Metric::pause_cdf(1.0),
        Metric::pause_cdf(100.0),
    ] {
        assert_eq!(m.name().parse::<Metric>(), Ok(m), "{m}");
    }
    assert_eq!(Metric::pause_cdf(99.9).name(), "pause_cdf_99.9");
    assert_eq!(Metric::pause_cdf(1.0).name(), "pause_cdf_1");
    assert_eq!(Metric::MmuStall(10).name(), "mmu_stall_10ms");
    assert!("no_such_metric".parse::<Metric>().is_err());
    assert!("mmu_xms".parse::<Metric>().is_err());
}

#[test]
fn rows_round_trip_through_the_csv_notes_and_all() {
    let rows = sample();
    let text = to_csv(&rows);
    assert!(text.starts_with(CSV_HEADER));
    let back = parse(Path::new("t.csv"), text.as_bytes()).unwrap();
    assert_eq!(back.rows, rows);
    assert!(back.warnings.is_empty(), "{:?}", back.warnings);
}

#[test]
fn a_cut_last_line_is_skipped_with_a_warning_never_read_as_complete() {
    let text = to_csv(&sample()[..1]);
    // Every cut of the last row short of its terminator: `1234.75` must never read
    // back as `12`.
    let full = text.trim_end_matches('\n');
    let start = full.rfind('\n').unwrap() + 1;
    for cut in start + 1..full.len() {
        let back = parse(Path::new("d/study.csv"), &full.as_bytes()[..cut]).unwrap();
        assert!(back.rows.is_empty(), "cut at {cut}: {:?}", back.rows);
        assert_eq!(back.warnings.len(), 1, "cut at {cut}");
        assert!(
            back.warnings[0].contains("d/study.csv line 2") && back.warnings[0].contains("cut"),
            "{:?}",
            back.warnings
        );
    }
    // Without its newline but whole, the row is complete.
    assert_eq!(
        parse(Path::new("x"), full.as_bytes()).unwrap().rows.len(),
        1
    );
}

#[test]
fn a_malformed_line_before_the_end_is_an_error_naming_file_and_line() {
    let text = to_csv(&sample()[..2]);
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1] = "macro,x,w,1,2,0,0,wall_ms,12";
    let broken = lines.join("\n") + "\n";
    let e = parse(Path::new("d/study.csv"), broken.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("d/study.csv line 2"), "{e}");
    let e = parse(Path::new("d/study.csv"), b"a,b\n").unwrap_err();
    assert!(e.to_string().contains("line 1"), "{e}");
    let unknown = text.replace("wall_ms", "wall_minutes");
    let e = parse(Path::new("d/study.csv"), unknown.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("wall_minutes"), "{e}");
}

#[test]
fn the_older_format_reads_with_a_warning_and_micro_rounds_become_rounds() {
    let text = format!(
        "{CSV_HEADER_V1}\nmicro,card-table,pages-spp1,1,64,4,stores_ns,10,\n\
         macro,none,lru,1,NaN,2,wall_ms,5.5,\n"
    );
    let back = parse(Path::new("old.csv"), text.as_bytes()).unwrap();
    assert_eq!(back.rows.len(), 2);
    assert_eq!((back.rows[0].invocation, back.rows[0].round), (0, 4));
    assert_eq!((back.rows[1].invocation, back.rows[1].round), (2, 0));
    assert!(back.rows[1].heap_mib.is_nan());
    assert_eq!(back.warnings.len(), 1);
}

#[test]
fn the_streamed_file_reads_back_and_micro_samples_are_per_process() {
    let dir = std::env::temp_dir().join(format!("barrierlab-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut sink = Sink::create(dir.join("study.csv")).unwrap();
    for p in 0..3 {
        for round in 0..3 {
            let mut r = row(
                Section::Micro,
                Metric::TotalNsPerStore,
                (10 * p + round) as f64,
                "",
            );
            r.workload = "pages-spp1".into();
            r.invocation = p;
            r.round = round;
            sink.push(r).unwrap();
        }
    }
    let back = read(&dir).unwrap();
    assert_eq!(back.rows, sink.rows);
    let v = micro_samples(&back.rows, "uffd-wp[thread]", "pages-spp1", |m| {
        m(Metric::TotalNsPerStore)
    });
    assert_eq!(
        v,
        vec![1.0, 11.0, 21.0],
        "the median of each process's rounds"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
