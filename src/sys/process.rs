//! Process-level calls the study needs: an exclusive advisory lock on a file (`flock`),
//! a parent-death signal for a child (`prctl(PR_SET_PDEATHSIG)`), the CPUs this
//! process may run on (`sched_getaffinity`), its peak resident set
//! (`/proc/self/status`, reset through `/proc/self/clear_refs`); and, for the heap, this
//! process's id as a single load that a `fork` changes in the child ([`pid`]).
//!
//! Exists so that the study's output folder can be held by one study at a time, a
//! killed study takes its running child with it, and a CPU to pin to is checked against
//! the mask the user gave (`taskset`), not against the machine. It never changes another
//! process's state.

use std::os::fd::AsRawFd;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};

/// Takes an exclusive `flock` on `file` without waiting: `Ok(false)` when another open
/// file description holds it. Released when every descriptor of it is closed (at the
/// latest when the process exits, however it exits).
pub fn try_lock_exclusive(file: &std::fs::File) -> Result<bool> {
    // SAFETY: flock on a descriptor this `File` owns; no memory is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    match super::errno() {
        libc::EWOULDBLOCK => Ok(false),
        e => Err(Error::from_errno("flock(LOCK_EX)", None, e)),
    }
}

/// Asks the kernel to send SIGKILL to the calling process when the thread that started
/// it exits. Meant for a child between `fork` and `exec` (`CommandExt::pre_exec`): it
/// only makes the `prctl` system call, which is async-signal-safe, and allocates nothing.
pub fn kill_me_with_my_parent() -> std::io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number; no memory is passed.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The CPUs the calling thread may run on (its affinity mask), ascending.
pub fn allowed_cpus() -> Result<Vec<usize>> {
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: passes a pointer to the local set and its exact size; pid 0 is this thread.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if rc != 0 {
        return Err(Error::last_os("sched_getaffinity", None));
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, so CPU_ISSET reads inside `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// This process's id, as [`pid`] returns it.
static PID: AtomicU32 = AtomicU32::new(0);

/// Registers the `fork` handler of [`pid`], once per process.
static TRACK_FORKS: Once = Once::new();

/// This process's id, kept in a static: one relaxed load, where `getpid(2)` is a system
/// call. A `pthread_atfork` child handler, registered by the first call, stores the
/// child's id in the child of every later `fork(3)` before `fork` returns there (it only
/// calls `getpid` and stores: async-signal-safe). So a value recorded by an object and
/// compared with `pid()` later tells whether the object was inherited through a fork
/// (a child made by a raw `clone`, which runs no such handler, is not seen).
pub fn pid() -> u32 {
    TRACK_FORKS.call_once(|| {
        // SAFETY: getpid has no preconditions.
        PID.store(unsafe { libc::getpid() } as u32, Ordering::Relaxed);
        // SAFETY: registers a handler that calls only getpid and an atomic store, which
        // is what a child of a multi-threaded fork may do. It cannot fail but for lack
        // of memory, and then `pid` goes on returning the parent's id in children.
        unsafe { libc::pthread_atfork(None, None, Some(forked_child)) };
    });
    PID.load(Ordering::Relaxed)
}

/// The `pthread_atfork` child handler of [`pid`].
extern "C" fn forked_child() {
    // SAFETY: getpid has no preconditions and is async-signal-safe.
    PID.store(unsafe { libc::getpid() } as u32, Ordering::Relaxed);
}

/// Peak RSS of this process in KiB (`VmHWM`).
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets the peak RSS counter (`echo 5 > /proc/self/clear_refs`, Linux 4.0+).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_file_is_refused_until_the_first_is_dropped() {
        let path = std::env::temp_dir().join(format!("barrierlab-lock-{}", std::process::id()));
        let a = std::fs::File::create(&path).unwrap();
        assert!(try_lock_exclusive(&a).unwrap());
        let b = std::fs::File::open(&path).unwrap();
        assert!(!try_lock_exclusive(&b).unwrap(), "held by `a`");
        drop(a);
        assert!(try_lock_exclusive(&b).unwrap(), "released with `a`");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn pid_is_this_process_id() {
        assert_eq!(pid(), std::process::id());
        assert_eq!(pid(), std::process::id(), "and again, from the static");
    }

    #[test]
    fn the_allowed_cpus_are_a_subset_of_the_machine() {
        let cpus = allowed_cpus().unwrap();
        assert!(!cpus.is_empty());
        // std counts the same mask, less any cgroup CPU quota.
        let n = std::thread::available_parallelism().unwrap().get();
        assert!(cpus.len() >= n, "{cpus:?} against {n}");
        assert!(cpus.windows(2).all(|w| w[0] < w[1]));
    }
}
