//! CPU time and CPU affinity: the clocks that say how much processor a run used, per
//! thread and for the whole process, and pinning a process to one CPU.
//!
//! Exists so that a measurement can say where the time went (mutator, collector, fault
//! service) rather than wall time alone. It never changes the scheduling of a thread it
//! did not start: [`pin_to_cpu`] applies to the calling thread (and the threads it spawns
//! afterwards inherit it).

use std::time::Duration;

use crate::error::{Error, Result};

fn clock(id: libc::clockid_t, op: &'static str) -> Result<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the local `ts`.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    if rc != 0 {
        return Err(Error::last_os(op, None));
    }
    Ok(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// CPU time of the whole process so far, every thread that ever ran in it included
/// (`CLOCK_PROCESS_CPUTIME_ID`).
pub fn process_cpu_time() -> Result<Duration> {
    clock(
        libc::CLOCK_PROCESS_CPUTIME_ID,
        "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)",
    )
}

/// CPU time of the calling thread so far (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_time() -> Result<Duration> {
    clock(
        libc::CLOCK_THREAD_CPUTIME_ID,
        "clock_gettime(CLOCK_THREAD_CPUTIME_ID)",
    )
}

/// The role of a thread barrierlab starts, by which its CPU time is attributed
/// (`workload::cpu`): each role's thread name is written here once, and the threads are
/// named from it where they are spawned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThreadRole {
    /// A heap's collector thread (`collector`).
    Collector,
    /// A helper that marks in pauses (`collector/marker_pool.rs`); counts as the
    /// collector.
    Marker,
    /// The `uffd-wp` fault-service thread (`barrier/uffd_wp.rs`).
    FaultService,
    /// A mutator thread of the workload driver (`workload::run`), numbered: `mutator-N`.
    Mutator,
}

/// The bytes of a thread name the kernel keeps (`comm`, without its NUL).
pub const COMM_LEN: usize = 15;

impl ThreadRole {
    /// Every role.
    pub const ALL: [ThreadRole; 4] = [
        ThreadRole::Collector,
        ThreadRole::Marker,
        ThreadRole::FaultService,
        ThreadRole::Mutator,
    ];

    /// The name its threads get (a mutator's is this, `-`, and its number).
    pub const fn name(self) -> &'static str {
        match self {
            ThreadRole::Collector => "barrierlab-collector",
            ThreadRole::Marker => "barrierlab-mark",
            ThreadRole::FaultService => "uffd-wp-service",
            ThreadRole::Mutator => "mutator",
        }
    }

    /// The role of a thread whose kernel name (`comm`, as [`TaskCpu::name`] holds it) is
    /// `comm`, if it is one of barrierlab's.
    pub fn of(comm: &str) -> Option<ThreadRole> {
        ThreadRole::ALL.into_iter().find(|r| {
            let name = r.name();
            match r {
                ThreadRole::Mutator => comm.strip_prefix(name).is_some_and(|n| n.starts_with('-')),
                _ => comm == &name[..name.len().min(COMM_LEN)],
            }
        })
    }

    /// A thread builder with this role's name (`number` only for [`ThreadRole::Mutator`]).
    pub fn builder(self, number: Option<usize>) -> std::thread::Builder {
        let name = match number {
            Some(n) => format!("{}-{n}", self.name()),
            None => self.name().to_string(),
        };
        std::thread::Builder::new().name(name)
    }
}

/// One live thread of this process: its name (`comm`, at most 15 bytes: the kernel
/// truncates longer names), the CPU time it has run and the time it has waited for a
/// CPU, from `/proc/self/task/<tid>/schedstat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskCpu {
    /// The thread id.
    pub tid: u32,
    /// The thread's name.
    pub name: String,
    /// Time on the CPU.
    pub cpu: Duration,
    /// Time runnable but waiting on a run queue for a CPU.
    pub waited: Duration,
}

/// The two times of a `schedstat` line, `<ns on the CPU> <ns waiting on a run queue>
/// <time slices>` (the kernel's `CONFIG_SCHED_INFO` accounting, readable without
/// privileges): `None` for a line that is not one.
fn parse_schedstat(line: &str) -> Option<(Duration, Duration)> {
    let mut f = line.split_whitespace().map(|v| v.parse::<u64>().ok());
    let (cpu, waited) = (f.next()??, f.next()??);
    Some((Duration::from_nanos(cpu), Duration::from_nanos(waited)))
}

/// The calling thread's CPU time in user mode so far (`getrusage(RUSAGE_THREAD)`'s
/// `ru_utime`: the kernel splits the thread's run time between user and system mode by
/// where its ticks landed, so take it as an estimate at the tick's grain).
pub fn thread_user_time() -> Result<Duration> {
    // SAFETY: `rusage` is plain old data, valid when zeroed.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one `rusage` into the local `u`.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) } != 0 {
        return Err(Error::last_os("getrusage(RUSAGE_THREAD)", None));
    }
    Ok(Duration::new(
        u.ru_utime.tv_sec as u64,
        u.ru_utime.tv_usec as u32 * 1000,
    ))
}

/// How long the calling thread has waited on a run queue for a CPU, runnable but not
/// running (`/proc/thread-self/schedstat`, the second field): the scheduling delay a
/// thread's own clock does not see.
pub fn thread_run_queue_wait() -> Result<Duration> {
    let path = "/proc/thread-self/schedstat";
    let line = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_schedstat(&line)
        .map(|(_, waited)| waited)
        .ok_or_else(|| Error::io(path, std::io::Error::other(format!("unexpected `{line}`"))))
}

/// The threads of this process alive now, with their CPU times. A thread that exits
/// while the folder is read is skipped; threads that exited before are not listed (the
/// process clock still counts them).
pub fn live_threads() -> Result<Vec<TaskCpu>> {
    let dir =
        std::fs::read_dir("/proc/self/task").map_err(|e| Error::io("read /proc/self/task", e))?;
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let path = entry.path();
        let (Ok(name), Ok(stat)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("schedstat")),
        ) else {
            continue;
        };
        let Some((cpu, waited)) = parse_schedstat(&stat) else {
            continue;
        };
        out.push(TaskCpu {
            tid,
            name: name.trim_end().to_string(),
            cpu,
            waited,
        });
    }
    Ok(out)
}

/// Pins the calling thread to CPU `cpu` (`sched_setaffinity`); threads it spawns later
/// inherit the mask, so called first thing in `main` it pins the whole process.
pub fn pin_to_cpu(cpu: usize) -> Result<()> {
    pin_to_cpus(&[cpu])
}

/// Restricts the calling thread to the CPUs `cpus` (`sched_setaffinity`); threads it
/// spawns later inherit the mask.
pub fn pin_to_cpus(cpus: &[usize]) -> Result<()> {
    if let Some(&cpu) = cpus.iter().find(|&&c| c >= libc::CPU_SETSIZE as usize) {
        return Err(Error::InvalidArgument(format!(
            "CPU {cpu} is beyond the affinity mask's {} CPUs",
            libc::CPU_SETSIZE
        )));
    }
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: `cpu` is below CPU_SETSIZE (checked above), so CPU_SET stays in `set`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: passes a pointer to the local set and its exact size; pid 0 is this thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    if rc != 0 {
        return Err(Error::last_os("sched_setaffinity", None).with_hint(format!(
            "pin to CPU(s) {cpus:?}: online and in this cgroup's set?"
        )));
    }
    Ok(())
}

/// The calling thread pinned to one CPU until this is dropped, when it gets back the
/// CPUs it had ([`pinned_for_now`]).
#[derive(Debug)]
#[must_use = "the thread is unpinned when this is dropped"]
pub struct PinnedForNow {
    before: Vec<usize>,
}

/// Pins the calling thread to `cpu` while the returned guard lives: the threads it
/// starts meanwhile keep that CPU, and it gets its own mask back at the drop (a failure
/// to restore it is ignored: the thread then stays on `cpu`).
pub fn pinned_for_now(cpu: usize) -> Result<PinnedForNow> {
    let before = crate::sys::process::allowed_cpus()?;
    pin_to_cpu(cpu)?;
    Ok(PinnedForNow { before })
}

impl Drop for PinnedForNow {
    fn drop(&mut self) {
        let _ = pin_to_cpus(&self.before);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_named_for_its_role_is_read_back_as_that_role() {
        for role in ThreadRole::ALL {
            let number = (role == ThreadRole::Mutator).then_some(12);
            let (tx, rx) = std::sync::mpsc::channel();
            let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
            let h = role
                .builder(number)
                .spawn(move || {
                    let tid = std::fs::read_link("/proc/thread-self")
                        .ok()
                        .and_then(|p| p.file_name()?.to_str()?.parse::<u32>().ok());
                    tx.send(tid).unwrap();
                    let _ = stop_rx.recv();
                })
                .unwrap();
            let tid = rx.recv().unwrap().expect("own tid");
            let comm = live_threads()
                .unwrap()
                .into_iter()
                .find(|t| t.tid == tid)
                .expect("the thread is listed")
                .name;
            assert_eq!(ThreadRole::of(&comm), Some(role), "{role:?} as {comm:?}");
            drop(stop_tx);
            h.join().unwrap();
        }
        assert_eq!(ThreadRole::of("barrierlab"), None);
        assert_eq!(ThreadRole::of("mutators"), None);
    }

    #[test]
    fn clocks_advance_and_threads_are_listed() {
        let t0 = thread_cpu_time().unwrap();
        let p0 = process_cpu_time().unwrap();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        std::hint::black_box(x);
        let t1 = thread_cpu_time().unwrap();
        assert!(t1 > t0, "the thread clock advances while computing");
        assert!(process_cpu_time().unwrap() >= p0 + (t1 - t0) / 2);
        let me = std::fs::read_link("/proc/thread-self")
            .ok()
            .and_then(|p| p.file_name()?.to_str()?.parse::<u32>().ok())
            .expect("own tid");
        let threads = live_threads().unwrap();
        let mine = threads
            .iter()
            .find(|t| t.tid == me)
            .expect("this thread is listed");
        assert!(
            mine.cpu >= t1 / 2,
            "schedstat agrees with the thread clock: {mine:?} vs {t1:?}"
        );
    }

    #[test]
    fn user_time_grows_with_computation_and_not_with_system_calls() {
        let u0 = thread_user_time().unwrap();
        let t0 = thread_cpu_time().unwrap();
        let mut x = 0u64;
        while thread_cpu_time().unwrap() - t0 < Duration::from_millis(100) {
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
        }
        let u1 = thread_user_time().unwrap();
        // The clock reads above are vDSO calls, in user mode.
        assert!(
            u1 - u0 >= Duration::from_millis(50),
            "100 ms of computation showed {:?} of user time",
            u1 - u0
        );
        assert!(u1 <= thread_cpu_time().unwrap() + Duration::from_millis(10));
    }

    #[test]
    fn schedstat_lines() {
        let ms = Duration::from_millis;
        assert_eq!(
            parse_schedstat("233000000 7000000 34\n"),
            Some((ms(233), ms(7)))
        );
        assert_eq!(parse_schedstat("233000000"), None, "no wait field");
        assert_eq!(parse_schedstat("x 1 2"), None);
    }

    #[test]
    fn two_spinners_on_one_cpu_wait_for_it() {
        // Two threads pinned to one CPU, each spinning 100 ms of its own CPU time: the
        // one that is not running waits on the run queue, and its schedstat says so.
        let spin = || {
            pin_to_cpu(0).unwrap();
            let before = thread_run_queue_wait().unwrap();
            let start = thread_cpu_time().unwrap();
            while thread_cpu_time().unwrap() - start < Duration::from_millis(100) {
                std::hint::spin_loop();
            }
            thread_run_queue_wait().unwrap() - before
        };
        let (a, b) = (std::thread::spawn(spin), std::thread::spawn(spin));
        let waited = a.join().unwrap() + b.join().unwrap();
        assert!(
            waited >= Duration::from_millis(20),
            "two threads sharing one CPU for 100 ms each waited only {waited:?} between them"
        );
    }

    #[test]
    fn pinning_rejects_impossible_cpus() {
        assert!(pin_to_cpu(1 << 20).is_err());
        let h = std::thread::spawn(|| {
            pin_to_cpu(0).unwrap();
            // SAFETY: sched_getcpu takes no arguments.
            unsafe { libc::sched_getcpu() }
        });
        assert_eq!(h.join().unwrap(), 0, "a pinned thread runs on its CPU");
    }
}
