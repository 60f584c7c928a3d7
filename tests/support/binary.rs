//! Processes run from a test under a deadline: the real `barrierlab` binary ([`run`]),
//! or any command ([`run_command`]). Each runs in its own process group; past the
//! deadline the whole group (the command and any child it starts, such as a peer
//! collector) is killed and the test fails, so that a hung run cannot hang the suite.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use barrierlab::sys::child::run_with_deadline;

/// How a run ended.
#[derive(Debug)]
pub struct Output {
    /// The exit status; `None` when a signal ended it.
    pub code: Option<i32>,
    /// The raw wait status (for `WIFSIGNALED` and friends).
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The `key=value` fields of a one-line summary on standard output, after checking
    /// that it is one line starting with `prefix`.
    pub fn summary(&self, prefix: &str) -> HashMap<String, String> {
        let line = self.stdout.trim();
        assert_eq!(line.lines().count(), 1, "one line expected:\n{line}");
        let rest = line
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("`{line}` does not start with `{prefix}`"));
        rest.split_whitespace()
            .map(|w| {
                let (k, v) = w
                    .split_once('=')
                    .unwrap_or_else(|| panic!("`{w}` in {line}"));
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `barrierlab` with `args` and the extra environment `env`, stdin closed, and
/// collects its output; panics if it runs past `deadline` (after killing its process
/// group).
pub fn run(args: &[&str], env: &[(&str, &str)], deadline: Duration) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_barrierlab"));
    command.args(args).envs(env.iter().copied());
    run_command(command, &format!("barrierlab {}", args.join(" ")), deadline)
}

/// Runs `command` (named `what` in a failure) with stdin closed, collecting its output;
/// panics if it runs past `deadline`, after killing its process group
/// ([`run_with_deadline`], the library's runner).
pub fn run_command(mut command: Command, what: &str, deadline: Duration) -> Output {
    let finished = run_with_deadline(command.stdin(Stdio::null()), deadline)
        .unwrap_or_else(|e| panic!("run `{what}`: {e}"));
    let Some(status) = finished.status else {
        panic!(
            "`{what}` did not finish within {deadline:?}: killed\nstdout so far:\n{}",
            finished.stdout
        );
    };
    Output {
        code: status.code(),
        status: status.into_raw(),
        stdout: finished.stdout,
        stderr: finished.stderr,
    }
}
