//! Where a run's CPU time went, by the role of the thread that spent it: mutators, the
//! collector, the `uffd-wp` fault-service thread, and the rest.
//!
//! The roles come from thread names, each written once in [`ThreadRole`]: the collector
//! thread and its helpers that mark in pauses (both count as the collector), the fault
//! service, the driver's mutators ([`super::run`]).
//! Mutator threads have exited when the driver returns, so each one reads its own clock
//! as it finishes; the collector, its helpers and the service are read from
//! `/proc/self/task/*/schedstat` while the heap is still alive. What is left of the
//! process's CPU time (the main thread) is `other`.

use std::time::Duration;

use crate::error::Result;
use crate::sys::cpu::{self, TaskCpu, ThreadRole};

/// CPU time of a run by role. `total` is the process's whole CPU time from the start of
/// the run (so it includes building the heap only when the baseline was taken before).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuByRole {
    /// The process, all threads.
    pub total: Duration,
    /// The mutator threads, summed.
    pub mutator: Duration,
    /// The collector thread.
    pub collector: Duration,
    /// The fault-service thread (zero for trackers without one).
    pub service: Duration,
    /// The rest: `total` minus the three above.
    pub other: Duration,
    /// Of `mutator`, the time in user mode (the workload's own code and the store
    /// path; the rest is the kernel's: faults, signals, system calls).
    pub mutator_user: Duration,
    /// Time the mutator threads, summed, waited on a run queue for a CPU.
    pub mutator_waited: Duration,
    /// Time the fault-service thread waited on a run queue for a CPU: while it waits, the
    /// mutator whose fault it would serve waits too.
    pub service_waited: Duration,
}

impl CpuByRole {
    /// Attributes the CPU time of the live `threads` (read while the heap is alive) and
    /// the `mutators`' own times; `total` is the process clock's advance over the run,
    /// and `before` the live threads' times when the run started (the collector thread
    /// exists from the heap's creation).
    pub fn attribute(
        total: Duration,
        mutators: Mutators,
        before: &[TaskCpu],
        threads: &[TaskCpu],
    ) -> CpuByRole {
        let since_start = |role: ThreadRole, time: fn(&TaskCpu) -> Duration| -> Duration {
            threads
                .iter()
                .filter(|t| ThreadRole::of(&t.name) == Some(role))
                .map(|t| {
                    let base = before
                        .iter()
                        .find(|b| b.tid == t.tid)
                        .map_or(Duration::ZERO, time);
                    time(t).saturating_sub(base)
                })
                .sum()
        };
        let spent = |role| since_start(role, |t| t.cpu);
        let collector = spent(ThreadRole::Collector) + spent(ThreadRole::Marker);
        let service = spent(ThreadRole::FaultService);
        CpuByRole {
            total,
            mutator: mutators.cpu,
            collector,
            service,
            other: total.saturating_sub(mutators.cpu + collector + service),
            mutator_user: mutators.user,
            mutator_waited: mutators.waited,
            service_waited: since_start(ThreadRole::FaultService, |t| t.waited),
        }
    }
}

/// What the mutator threads, summed, read of themselves as they finished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mutators {
    /// Their CPU time.
    pub cpu: Duration,
    /// Of that, in user mode.
    pub user: Duration,
    /// Their time waiting on a run queue for a CPU.
    pub waited: Duration,
}

impl Mutators {
    /// The calling mutator thread's own times since it started (a thread's schedstat
    /// starts at zero).
    pub fn of_this_thread() -> Mutators {
        Mutators {
            cpu: cpu::thread_cpu_time().unwrap_or_default(),
            user: cpu::thread_user_time().unwrap_or_default(),
            waited: cpu::thread_run_queue_wait().unwrap_or_default(),
        }
    }
}

impl std::ops::AddAssign for Mutators {
    fn add_assign(&mut self, o: Mutators) {
        self.cpu += o.cpu;
        self.user += o.user;
        self.waited += o.waited;
    }
}

/// A baseline taken when the run starts: the process clock and the live threads.
pub(super) fn baseline() -> Result<(Duration, Vec<TaskCpu>)> {
    Ok((cpu::process_cpu_time()?, cpu::live_threads()?))
}

/// The run's CPU by role, from its [`baseline`] and the mutators' own times.
pub(super) fn finish(base: &(Duration, Vec<TaskCpu>), mutators: Mutators) -> Result<CpuByRole> {
    let threads = cpu::live_threads()?;
    let total = cpu::process_cpu_time()?.saturating_sub(base.0);
    Ok(CpuByRole::attribute(total, mutators, &base.1, &threads))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::cpu::COMM_LEN;

    /// A role's name as the kernel keeps it.
    fn comm(role: ThreadRole) -> &'static str {
        &role.name()[..role.name().len().min(COMM_LEN)]
    }
    const COLLECTOR: ThreadRole = ThreadRole::Collector;
    const SERVICE: ThreadRole = ThreadRole::FaultService;

    #[test]
    fn roles_from_names_and_baselines() {
        let ms = Duration::from_millis;
        // Each thread waited a tenth of its CPU time for a CPU.
        let t = |tid, name: &str, cpu: Duration| TaskCpu {
            tid,
            name: name.into(),
            cpu,
            waited: cpu / 10,
        };
        let before = [t(1, "barrierlab", ms(5)), t(2, comm(COLLECTOR), ms(10))];
        let after = [
            t(1, "barrierlab", ms(6)),
            t(2, comm(COLLECTOR), ms(40)),
            t(3, comm(SERVICE), ms(70)),
            t(4, comm(ThreadRole::Marker), ms(3)),
        ];
        let mutators = Mutators {
            cpu: ms(50),
            user: ms(30),
            waited: ms(4),
        };
        let c = CpuByRole::attribute(ms(160), mutators, &before, &after);
        assert_eq!(
            c.collector,
            ms(33),
            "only the run's share of the collector, with its marker helpers"
        );
        assert_eq!(
            c.service,
            ms(70),
            "a thread born in the run counts from zero"
        );
        assert_eq!(c.service_waited, ms(7), "the service's wait, from zero");
        assert_eq!(c.mutator, ms(50));
        assert_eq!(c.mutator_waited, ms(4), "the mutators' own reading");
        assert_eq!(c.mutator_user, ms(30));
        assert_eq!(c.other, ms(7));
    }
}
