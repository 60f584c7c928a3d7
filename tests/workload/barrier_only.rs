//! Barrier-only mode (`HeapConfig::duty_cycle`): the tracker armed and harvested on a
//! fixed schedule with no collection, for measuring a barrier with the collection held
//! fixed. Every barrier: periods run while the mutator writes, the writes are recorded,
//! no cycle starts by itself, an explicit collection still works (it interrupts a period
//! and arms a clean tracker; the verifier finds nothing), and bad schedules are refused.

use crate::support;

use std::time::{Duration, Instant};

use barrierlab::{BarrierKind, Error, Heap, HeapConfig, ObjRef};

use support::{heap_or_skip, with_timeout};

/// A heap of every barrier in barrier-only mode: 2 ms periods, armed for half of each.
fn duty_heap(kind: BarrierKind) -> HeapConfig {
    HeapConfig::new()
        .heap_bytes(64 << 20)
        .barrier(kind)
        .pacing(false)
        .trigger(1.0)
        .verify(true)
        .duty_cycle(Duration::from_millis(2), 0.5)
}

/// Rewrites slot 0 of `objs` round robin for `run`, each store into an old object.
fn rewrite(heap: &Heap, run: Duration) -> u64 {
    let mut m = heap.mutator();
    let objs: Vec<ObjRef> = (0..512)
        .map(|_| {
            let o = m.alloc(1, 4000).expect("alloc");
            m.push_root(o).expect("root");
            o
        })
        .collect();
    let (t0, mut stores) = (Instant::now(), 0u64);
    while t0.elapsed() < run {
        for w in objs.windows(2) {
            m.write_ref(w[0], 0, Some(w[1])).expect("store");
            stores += 1;
        }
        m.safepoint();
    }
    stores
}

#[test]
fn periods_record_the_writes_and_no_cycle_runs() {
    for kind in BarrierKind::ALL {
        let what = format!("barrier-only [{kind}]");
        let Some(heap) = heap_or_skip(duty_heap(kind), &what) else {
            continue;
        };
        with_timeout(60, &what.clone(), move || {
            let stores = rewrite(&heap, Duration::from_millis(200));
            let s = heap.stats();
            assert!(stores > 0, "{what}: no store");
            assert_eq!(s.cycles, 0, "{what}: a cycle ran in barrier-only mode");
            if kind == BarrierKind::None {
                // Nothing to arm: the periods are slept out and not counted.
                assert_eq!(s.duty.periods, 0, "{what}");
                return;
            }
            // 200 ms of 2 ms periods: many, whatever the scheduling.
            assert!(s.duty.periods >= 5, "{what}: {} periods", s.duty.periods);
            assert_eq!(
                s.duty.failures, 0,
                "{what}: {:?}",
                s.tracker.last_degradation
            );
            // The mutator wrote 512 pages (or their cards) over and over: each armed
            // window saw some of it.
            assert!(s.duty.recorded > 0, "{what}: nothing recorded");
            assert!(s.duty.armed > Duration::ZERO, "{what}");
            if kind.is_page_level() && kind != BarrierKind::UffdWpAsync {
                assert!(s.tracker.faults > 0, "{what}: no write fault");
            }
        });
    }
}

#[test]
fn a_collection_interrupts_a_period_and_runs_clean() {
    for kind in BarrierKind::ALL {
        let what = format!("barrier-only collect [{kind}]");
        let Some(heap) = heap_or_skip(duty_heap(kind), &what) else {
            continue;
        };
        with_timeout(60, &what.clone(), move || {
            let mut m = heap.mutator();
            let head = m.alloc(1, 8).expect("alloc");
            m.push_root(head).expect("root");
            let mut node = head;
            for _ in 0..10_000 {
                let next = m.alloc(1, 8).expect("alloc");
                m.write_ref(node, 0, Some(next)).expect("store");
                node = next;
            }
            for _ in 0..5 {
                // Garbage, then a collection while periods run.
                for _ in 0..10_000 {
                    m.alloc(1, 8).expect("alloc");
                }
                m.collect().expect("collect");
            }
            let mut n = 0;
            let mut at = Some(head);
            while let Some(o) = at {
                n += 1;
                at = m.read_ref(o, 0).expect("a live node");
            }
            drop(m);
            let s = heap.stats();
            assert_eq!(n, 10_001, "{what}: the list survived");
            assert_eq!(s.cycles, 5, "{what}: exactly the collections asked for");
            assert_eq!(s.verifier_failures, 0, "{what}: {:?}", s.verifier_messages);
            assert_eq!(
                s.duty.failures, 0,
                "{what}: {:?}",
                s.tracker.last_degradation
            );
            assert_eq!(
                s.tracker.degradations, 0,
                "{what}: {:?}",
                s.tracker.last_degradation
            );
        });
    }
}

#[test]
fn a_schedule_out_of_range_is_refused() {
    for (period, share) in [
        (Duration::ZERO, 0.5),
        (Duration::from_secs(61), 0.5),
        (Duration::from_millis(10), 0.0),
        (Duration::from_millis(10), 1.5),
        (Duration::from_millis(10), f64::NAN),
    ] {
        let r = Heap::new(
            HeapConfig::new()
                .heap_bytes(1 << 20)
                .barrier(BarrierKind::CardTable)
                .duty_cycle(period, share),
        );
        match r {
            Err(Error::InvalidArgument(msg)) => assert!(msg.contains("duty-cycle"), "{msg}"),
            other => {
                panic!("period {period:?} share {share}: expected InvalidArgument, got {other:?}")
            }
        }
    }
}

/// A placement is two CPUs; one the thread may not run on fails at the pin, with a hint.
#[test]
fn a_placement_on_one_cpu_or_on_a_cpu_out_of_reach_is_refused() {
    use barrierlab::heap::Placement;
    let on = |mutators, collector| {
        Heap::new(
            HeapConfig::new()
                .heap_bytes(1 << 20)
                .barrier(BarrierKind::CardTable)
                .placement(Placement {
                    mutators,
                    collector,
                }),
        )
    };
    match on(0, 0) {
        Err(Error::InvalidArgument(msg)) => assert!(msg.contains("same CPU 0"), "{msg}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    match on(0, 1 << 20) {
        Err(e) => assert!(e.to_string().contains("beyond the affinity mask"), "{e}"),
        Ok(_) => panic!("a collector CPU beyond the mask was accepted"),
    }
}

/// A heap that has not allocated yet has no page to arm: a collection of it (and a
/// barrier-only period, which skips it) must not degrade the tracker (a zero-length
/// write-protect is `EINVAL` for userfaultfd).
#[test]
fn an_empty_heap_collects_without_degrading() {
    for kind in BarrierKind::ALL {
        let what = format!("empty heap [{kind}]");
        let Some(heap) = heap_or_skip(HeapConfig::new().heap_bytes(4 << 20).barrier(kind), &what)
        else {
            continue;
        };
        with_timeout(60, &what.clone(), move || {
            heap.collect().expect("collect");
            heap.collect().expect("collect");
            let s = heap.stats();
            assert_eq!(s.cycles, 2, "{what}");
            assert_eq!(
                s.tracker.degradations, 0,
                "{what}: {:?}",
                s.tracker.last_degradation
            );
        });
    }
}

/// The CPUs thread `tid` of this process may run on, from `/proc` (`Cpus_allowed_list`,
/// as `0-1,3`).
fn allowed_cpus_of(tid: &str) -> Option<Vec<usize>> {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).ok()?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
    let mut cpus = Vec::new();
    for part in list.trim().split(',') {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>().ok()?..=b.parse().ok()?),
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

/// The CPUs each live thread named `name` may run on.
fn threads_named(name: &str) -> Vec<Vec<usize>> {
    let tasks = std::fs::read_dir("/proc/self/task").expect("read /proc/self/task");
    tasks
        .flatten()
        .filter_map(|e| {
            let tid = e.file_name().into_string().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            (comm.trim_end() == name).then(|| allowed_cpus_of(&tid))?
        })
        .collect()
}

/// A placed heap (`HeapConfig::placement`): the collector and the marker helpers start on
/// the collector's CPU, the `uffd-wp` service thread and the thread that built the heap
/// keep that thread's CPUs, and `workload::run` pins its mutators to theirs. In a fresh
/// process, where no other test's threads carry the same names.
#[test]
fn a_placed_run_puts_the_heaps_threads_on_one_cpu_and_the_mutators_on_the_other() {
    use barrierlab::heap::Placement;
    let Some(p) = Placement::first_two_allowed().expect("the affinity mask") else {
        skip!("a placement needs two CPUs this process may run on");
    };
    let outcome = support::in_fresh_process(test_name!(), move || placed_run(p));
    if outcome.status == support::SKIP_STATUS {
        skip!("{}", outcome.message);
    }
    outcome.assert_ok();
}

/// The body of the test above, in its fresh process.
fn placed_run(p: barrierlab::heap::Placement) -> Result<String, String> {
    use barrierlab::workload::{self, GcBenchParams, Workload};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    let cfg = HeapConfig::new()
        .heap_bytes(64 << 20)
        .barrier(BarrierKind::UffdWp)
        .marker_threads(2)
        .placement(p);
    let mine = barrierlab::sys::process::allowed_cpus().map_err(|e| e.to_string())?;
    let heap = match Heap::new(cfg.clone()) {
        Ok(h) => h,
        Err(e @ Error::Unavailable { .. }) => return Ok(format!("SKIP: uffd-wp: {e}")),
        Err(e) => return Err(e.to_string()),
    };
    assert_eq!(barrierlab::sys::process::allowed_cpus().unwrap(), mine);
    for (role, cpus) in [
        ("barrierlab-coll", vec![p.collector]),
        ("barrierlab-mark", vec![p.collector]),
        ("uffd-wp-service", mine.clone()),
    ] {
        // A thread names itself once it runs: wait for it.
        let t0 = Instant::now();
        let mut found = threads_named(role);
        while found.is_empty() && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(1));
            found = threads_named(role);
        }
        assert!(!found.is_empty(), "no {role} thread");
        assert!(
            found.iter().all(|c| c == &cpus),
            "{role}: {found:?}, not {cpus:?}"
        );
    }
    drop(heap);
    let (done, seen) = (AtomicBool::new(false), Mutex::new(Vec::new()));
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Acquire) {
                let found = threads_named("mutator-0");
                seen.lock().unwrap().extend(found);
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        // Runs until the watcher has seen a mutator, whatever the scheduling.
        for _ in 0..20 {
            let w = Workload::GcBench(GcBenchParams::QUICK);
            workload::run(&cfg, &w, 1).expect("the placed run");
            if !seen.lock().unwrap().is_empty() {
                break;
            }
        }
        done.store(true, Ordering::Release);
    });
    let seen = seen.into_inner().unwrap();
    assert!(!seen.is_empty(), "the watcher never saw the mutator");
    assert!(seen.iter().all(|c| c == &[p.mutators]), "{seen:?}");
    Ok(format!(
        "{} sightings of the mutator on CPU {}",
        seen.len(),
        p.mutators
    ))
}
