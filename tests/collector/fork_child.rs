//! A heap used in a child of `fork` is refused with a clear error. Regression test for a
//! child that kept using its inherited heap and hung at its first collection: `fork`
//! copies the heap's memory but not its collector thread, so nothing in the child could
//! ever complete a cycle.
//!
//! How it is tested without forking this (multi-threaded) test binary: the test body runs
//! in a fresh process of its own ([`in_fresh_process`]), which makes a heap per barrier,
//! lets one collection run, and forks once per heap. The child of that fork is a child of
//! a process with threads (the heaps' collector, marker and fault-service threads, idle
//! at the fork), so it does only what is safe there: the calls under test, which check
//! the process first and return before they lock or allocate, matching their results
//! without formatting anything, and `_exit` with a status that says which check failed.
//! The fresh process waits for the child (with a deadline: a hang fails) and then checks
//! that its own heap still collects.

use crate::support;

use std::time::{Duration, Instant};

use barrierlab::{BarrierKind, Error, Heap, HeapConfig, Mutator, Result};

use support::{heap_or_skip, in_fresh_process};

/// The statuses of the forked child: 0, or the first check that failed.
const CHECKS: [&str; 5] = [
    "all refused",
    "Mutator::collect was not ForkedChild",
    "Heap::collect was not ForkedChild",
    "a large allocation was not ForkedChild",
    "Heap::try_mutator was not ForkedChild",
];

fn forked<T>(r: Result<T>) -> bool {
    matches!(r, Err(Error::ForkedChild { .. }))
}

/// The forked child's checks: each call must be refused. Allocation-free and lock-free
/// as long as the calls are (which is what is tested: a call that locks or waits hangs
/// the child, and the parent's deadline fails the test).
fn child_checks(heap: &Heap, m: &mut Mutator) -> i32 {
    if !forked(m.collect()) {
        return 1;
    }
    if !forked(heap.collect()) {
        return 2;
    }
    // A large object never comes from the mutator's current run: the slow path.
    if !forked(m.alloc(0, 64 << 10)) {
        return 3;
    }
    if !forked(heap.try_mutator()) {
        return 4;
    }
    // A safepoint and a wait for a cycle return at once.
    m.safepoint();
    heap.wait_for_cycle();
    0
}

/// Forks; the child runs [`child_checks`] and `_exit`s with its status. Returns the
/// child's wait status, or an error if it did not finish within 10 s.
fn fork_and_check(heap: &Heap, m: &mut Mutator) -> std::result::Result<i32, String> {
    // SAFETY: the child runs only `child_checks` (no lock, no allocation: see the module
    // docs) and leaves with `_exit`, never returning into the test.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        let status = child_checks(heap, m);
        // SAFETY: ends the child without running anything of the parent's (no
        // destructors, no atexit handlers, no buffered output).
        unsafe { libc::_exit(status) };
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if rc == pid {
            return Ok(status);
        }
        if Instant::now() > deadline {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return Err("the forked child did not finish within 10 s (it hung)".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_heap_used_in_a_forked_child_is_refused_with_a_clear_error() {
    let outcome = in_fresh_process(test_name!(), || {
        let mut checked = Vec::new();
        for kind in BarrierKind::ALL {
            let cfg = HeapConfig::new().heap_bytes(1 << 20).barrier(kind);
            let Some(heap) = heap_or_skip(cfg, "a_heap_used_in_a_forked_child") else {
                continue;
            };
            let mut m = heap.mutator();
            let head = m.alloc(1, 8).map_err(|e| e.to_string())?;
            m.push_root(head).map_err(|e| e.to_string())?;
            // A collection has run, and none runs at the fork.
            m.collect().map_err(|e| e.to_string())?;
            heap.wait_for_cycle();
            let status = fork_and_check(&heap, &mut m).map_err(|e| format!("{kind}: {e}"))?;
            if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
                let what = CHECKS
                    .get(libc::WEXITSTATUS(status) as usize)
                    .filter(|_| libc::WIFEXITED(status))
                    .map_or_else(|| support::describe(status), |c| c.to_string());
                return Err(format!("{kind}: in the forked child: {what}"));
            }
            // The parent's heap is untouched by the child.
            m.collect()
                .map_err(|e| format!("{kind}: the parent collects: {e}"))?;
            if m.root(0) != Some(head) || !heap.is_live(head) {
                return Err(format!("{kind}: the parent's rooted object is gone"));
            }
            checked.push(kind.name());
        }
        Ok(format!("refused in a forked child: {}", checked.join(", ")))
    });
    outcome.assert_ok();
    eprintln!("{}", outcome.message);
}

/// The error names both processes and says what to do.
#[test]
fn the_forked_child_error_says_why_and_what_to_do() {
    let e = Error::ForkedChild {
        heap_pid: 100,
        pid: 101,
    };
    let msg = e.to_string();
    for part in [
        "process 100",
        "process 101",
        "child of fork",
        "collector thread",
        "new heap",
    ] {
        assert!(msg.contains(part), "{part:?} in {msg:?}");
    }
}
