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
}

impl CpuByRole {
    /// Attributes the CPU time of the live `threads` (read while the heap is alive) and
    /// the `mutators`' own times; `total` is the process clock's advance over the run,
    /// and `before` the live threads' times when the run started (the collector thread
    /// exists from the heap's creation).
    pub fn attribute(
        total: Duration,
        mutators: Duration,
        before: &[TaskCpu],
        threads: &[TaskCpu],
    ) -> CpuByRole {
        let spent = |role: ThreadRole| -> Duration {
            threads
                .iter()
                .filter(|t| ThreadRole::of(&t.name) == Some(role))
                .map(|t| {
                    let base = before
                        .iter()
                        .find(|b| b.tid == t.tid)
                        .map_or(Duration::ZERO, |b| b.cpu);
                    t.cpu.saturating_sub(base)
                })
                .sum()
        };
        let collector = spent(ThreadRole::Collector) + spent(ThreadRole::Marker);
        let service = spent(ThreadRole::FaultService);
        CpuByRole {
            total,
            mutator: mutators,
            collector,
            service,
            other: total.saturating_sub(mutators + collector + service),
        }
    }
}

/// A baseline taken when the run starts: the process clock and the live threads.
pub(super) fn baseline() -> Result<(Duration, Vec<TaskCpu>)> {
    Ok((cpu::process_cpu_time()?, cpu::live_threads()?))
}

/// The run's CPU by role, from its [`baseline`] and the mutators' own times.
pub(super) fn finish(base: &(Duration, Vec<TaskCpu>), mutators: Duration) -> Result<CpuByRole> {
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
        let t = |tid, name: &str, cpu| TaskCpu {
            tid,
            name: name.into(),
            cpu,
        };
        let before = [t(1, "barrierlab", ms(5)), t(2, comm(COLLECTOR), ms(10))];
        let after = [
            t(1, "barrierlab", ms(6)),
            t(2, comm(COLLECTOR), ms(40)),
            t(3, comm(SERVICE), ms(7)),
            t(4, comm(ThreadRole::Marker), ms(3)),
        ];
        let c = CpuByRole::attribute(ms(100), ms(50), &before, &after);
        assert_eq!(
            c.collector,
            ms(33),
            "only the run's share of the collector, with its marker helpers"
        );
        assert_eq!(
            c.service,
            ms(7),
            "a thread born in the run counts from zero"
        );
        assert_eq!(c.mutator, ms(50));
        assert_eq!(c.other, ms(10));
    }
}
