//! The study's configuration: its defaults, the heaps it plans, and its checks.

use super::*;

#[test]
fn a_heap_raised_to_the_floor_beside_a_true_multiple_is_left_out() {
    let mut c = StudyConfig::new(Mode::Default, ".".into());
    c.heap_multiples = vec![1.5, 2.0, 3.0];
    let w = &c.workloads()[0];
    let grain = crate::study::minheap::GRAIN;
    let mib = |b: usize| b >> 20;
    // A 66 MiB minimum: 1.5x (99 MiB) is raised to 128, 8% from 2x (132): left out.
    let min = 66 << 20;
    let heaps: Vec<usize> = c.point_heaps(w, min).into_iter().map(mib).collect();
    let at = |m: f64| mib((min as f64 * m / grain as f64).ceil() as usize * grain);
    assert_eq!(heaps, [at(2.0), at(3.0)]);
    // A 45 MiB minimum: 1.5x and 2x are both raised to 128, 5% below 3x (135): the
    // raised heap would be the same point as 3x.
    let min = 45 << 20;
    let at = |m: f64| mib((min as f64 * m / grain as f64).ceil() as usize * grain);
    let heaps: Vec<usize> = c.point_heaps(w, min).into_iter().map(mib).collect();
    assert_eq!(heaps, [at(3.0)]);
    // A 20 MiB minimum: every multiple is raised, to one heap.
    assert_eq!(c.point_heaps(w, 20 << 20), [128 << 20]);
    // A 100 MiB minimum: nothing is raised, all three stay.
    assert_eq!(c.point_heaps(w, 100 << 20).len(), 3);
}

#[test]
fn workloads_hold_their_live_set_and_do_the_same_work_at_every_heap() {
    let c = StudyConfig::new(Mode::Default, ".".into());
    let labels: Vec<String> = c.workloads().iter().map(|w| w.label.clone()).collect();
    assert_eq!(
        labels,
        [
            "gcbench-l64",
            "graph-spp1024-l64",
            "lru-l64",
            "binary-trees-l64",
            "gcold-m100-l64",
            "gcold-m10000-l64"
        ]
    );
    for w in c.workloads() {
        let one = w.at_threads(1);
        let alloc = one.allocation_estimate() as f64;
        assert!(alloc >= 8.0 * w.live_bytes as f64, "{}: {alloc}", w.label);
        match one {
            Workload::GcBench(p) => {
                let live = p.live_bytes() as f64 / w.live_bytes as f64;
                assert!((0.75..=1.05).contains(&live), "gcbench live share {live}");
            }
            Workload::Graph(p) => {
                let live = p.live_bytes() as f64 / w.live_bytes as f64;
                assert!((0.9..=1.1).contains(&live), "graph live share {live}");
            }
            Workload::BinaryTrees(p) => {
                let tree = BinaryTreesParams::tree_size(p.depth) * 32;
                assert!(tree * 2 > w.live_bytes && tree <= w.live_bytes, "{tree}");
            }
            Workload::Lru(p) => {
                let entry = crate::workload::cell_bytes(4, 8)
                    + crate::workload::cell_bytes(0, p.value_bytes)
                    + 8;
                let live = (p.capacity as u64 * entry) as f64 / w.live_bytes as f64;
                assert!((0.9..=1.0).contains(&live), "lru live share {live}: {p:?}");
            }
            Workload::GcOld(p) => {
                assert_eq!(p.live_bytes, w.live_bytes);
                assert_eq!(w.multiples, Some(vec![GCOLD_MULTIPLE]), "{}", w.label);
            }
        }
        // Two threads share the same live set and allocation.
        let two = w.at_threads(2);
        let ratio = 2.0 * two.allocation_estimate() as f64 / alloc;
        assert!((0.8..=1.25).contains(&ratio), "{}: {ratio}", w.label);
    }
    assert!(
        StudyConfig::new(Mode::Full, ".".into())
            .live_mib
            .contains(&1024)
    );
}

#[test]
fn each_run_draws_its_own_seed() {
    let a = StudyConfig::new(Mode::Quick, ".".into()).seed;
    std::thread::sleep(Duration::from_millis(2));
    let b = StudyConfig::new(Mode::Quick, ".".into()).seed;
    assert_ne!(a, b);
}

#[test]
fn a_cpu_outside_the_affinity_mask_is_refused_naming_the_flag() {
    let mut c = StudyConfig::new(Mode::Quick, ".".into());
    let allowed = crate::sys::process::allowed_cpus().unwrap();
    c.pin_cpu = Some(allowed[allowed.len() - 1]);
    c.validate().unwrap();
    c.pin_cpu = Some(100_000);
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("--pin-cpu") && e.contains("affinity"), "{e}");
}

#[test]
fn the_default_study_has_three_heaps_above_the_floor_at_its_minimum_heaps() {
    let c = StudyConfig::new(Mode::Default, ".".into());
    let w = &c.workloads()[0];
    // The default study's minimum heaps are 66-70 MiB (64 MiB live sets).
    for min_mib in [66usize, 70] {
        let heaps = c.point_heaps(w, min_mib << 20);
        assert_eq!(heaps.len(), 3, "{min_mib} MiB: {heaps:?}");
        assert!(heaps.iter().all(|&h| h >= MIN_POINT_HEAP_MIB << 20));
    }
}

/// A largest heap whose room (heap less the 64 MiB live set) asks for no more work than
/// the time does in these tests: 96 MiB of room, four times 1.5 bytes per live byte.
const HEAP: usize = 160 << 20;

#[test]
fn calibration_allocates_enough_for_the_largest_heap_to_collect() {
    let c = StudyConfig::new(Mode::Default, ".".into());
    for w in c.workloads() {
        // A run far too slow for the time: the work falls to the room's floor, 4 rooms
        // of 200 MiB for a 264 MiB heap, 12.5 bytes per live byte (GCBench: whole passes
        // at least that).
        let per_live = w
            .calibrated_per_live(1e9, RUN_MS_TARGET, 264 << 20)
            .unwrap();
        let floor = MIN_ROOMS_ALLOCATED * 200.0 / 64.0;
        assert!(per_live >= floor, "{}: {per_live}", w.label);
        assert!(per_live < floor + 31.0, "{}: {per_live}", w.label);
    }
}

#[test]
fn calibration_scales_the_work_to_the_target_time() {
    let c = StudyConfig::new(Mode::Default, ".".into());
    let lru = c
        .workloads()
        .into_iter()
        .find(|w| w.label == "lru-l64")
        .unwrap();
    let start = lru.allocated_per_live;
    // Twice the target: half the work; half of it: twice the work.
    let half = lru
        .calibrated_per_live(2.0 * RUN_MS_TARGET, RUN_MS_TARGET, HEAP)
        .unwrap();
    assert!((half - start / 2.0).abs() < 1e-9, "{half}");
    let double = lru
        .calibrated_per_live(RUN_MS_TARGET / 2.0, RUN_MS_TARGET, HEAP)
        .unwrap();
    assert!((double - start * 2.0).abs() < 1e-9, "{double}");
    // Never below a minimum-heap step's work, never above the cap.
    let floor = lru.calibrated_per_live(1e9, RUN_MS_TARGET, HEAP).unwrap();
    assert_eq!(floor, FITS_ALLOCATED_PER_LIVE);
    let top = lru.calibrated_per_live(1e-3, RUN_MS_TARGET, HEAP).unwrap();
    assert_eq!(top, start * MAX_CALIBRATION_SCALE);
    // No time, no calibration.
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert_eq!(
            lru.calibrated_per_live(bad, RUN_MS_TARGET, HEAP),
            None,
            "{bad}"
        );
    }
}

#[test]
fn calibrated_gcbench_runs_the_whole_passes_nearest_the_target_and_never_under_the_shortest() {
    let c = StudyConfig::new(Mode::Default, ".".into());
    let gcb = c.workloads().into_iter().next().unwrap();
    let Workload::GcBench(p) = gcb.at_threads(1) else {
        panic!("the first workload is GCBench");
    };
    let passes_now = f64::from(p.repeat);
    let passes = |w: &StudyWorkload| match w.at_threads(1) {
        Workload::GcBench(p) => f64::from(p.repeat),
        _ => unreachable!(),
    };
    let sized = |pass_ms: f64| {
        let per_live = gcb
            .calibrated_per_live(pass_ms * passes_now, RUN_MS_TARGET, HEAP)
            .unwrap();
        passes(&gcb.with_allocated_per_live(per_live))
    };
    // A pass of 850 ms: 2.74 passes to the 2,333 ms target, so 3 (2 would run 1,700 ms).
    assert_eq!(sized(850.0), 3.0);
    // A pass of 571 ms (the study of 2026-12-07): 4.09 passes, so 4 (2,284 ms), not 5.
    assert_eq!(sized(571.0), 4.0);
    // A pass of 960 ms: 2.43 passes round to 2, which would run 1,920 ms, under the
    // shortest a point may take: 3.
    assert_eq!(sized(960.0), 3.0);
    // A pass as long as the target: one pass.
    assert_eq!(sized(RUN_MS_TARGET), 1.0);
}
