//! A child process run under a deadline, with its output collected: the one runner the
//! study (one point per child), the CLI tests (the real binary) and the example tests
//! use.
//!
//! The child runs in a process group of its own. Both pipes are drained on their own
//! threads while it runs, so that a full pipe cannot stall it. IF it is still running at
//! the deadline THEN its whole group (the child and anything it started, such as a peer
//! collector) is killed with SIGKILL and reaped, and the run reports no status. Stdin,
//! the environment and any `pre_exec` step are the caller's, set on the `Command`.
//!
//! Never: kill anything but the group this runner created.

use std::io::Read;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How often the runner checks whether the child has exited.
const POLL: Duration = Duration::from_millis(2);

/// How a child run by [`run_with_deadline`] ended.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status; `None` when it ran past the deadline and was killed.
    pub status: Option<ExitStatus>,
    /// Everything it wrote to stdout (until it exited or was killed).
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

/// Starts `command` in a process group of its own with stdout and stderr piped, waits
/// for it for at most `deadline` (then kills its group), and returns how it ended. An
/// error only if it could not be started or waited for (after killing its group).
pub fn run_with_deadline(command: &mut Command, deadline: Duration) -> std::io::Result<Finished> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let kill_group = |pid: u32| {
        // SAFETY: kill(2) on the process group this runner created (`process_group(0)`
        // made the child its leader, and it is not reaped yet, so the id is still
        // ours); no memory is passed.
        unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
    };
    let t0 = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if t0.elapsed() > deadline => {
                kill_group(child.id());
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => {
                kill_group(child.id());
                let _ = child.wait();
                return Err(e);
            }
        }
    };
    Ok(Finished {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_that_exits_is_collected_and_one_past_its_deadline_is_killed() {
        let mut echo = Command::new("sh");
        echo.args(["-c", "echo out; echo err >&2; exit 3"]);
        let f = run_with_deadline(&mut echo, Duration::from_secs(30)).unwrap();
        assert_eq!(f.status.and_then(|s| s.code()), Some(3));
        assert_eq!((f.stdout.as_str(), f.stderr.as_str()), ("out\n", "err\n"));

        // The shell's own child (the sleep) is in its group, so it dies too and the
        // pipes close: the run returns soon after the deadline.
        let mut hang = Command::new("sh");
        hang.args(["-c", "echo started; sleep 60"]);
        let t0 = Instant::now();
        let f = run_with_deadline(&mut hang, Duration::from_secs(1)).unwrap();
        assert!(f.status.is_none(), "killed at the deadline");
        assert_eq!(f.stdout, "started\n");
        assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    }
}
