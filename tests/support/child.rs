//! A test body run in a fresh process of its own: the test binary executed again for
//! that one test, instead of `fork(2)`.
//!
//! A test binary is multi-threaded (libtest's threads, the other tests'), and a forked
//! child inherits every lock that another thread held at the fork, held forever: a child
//! that allocates, registers a signal handler or prints can hang on it. A fresh process
//! has no such past. Use this for any child body that does more than async-signal-safe
//! work; [`super::fork_and_wait`] stays only for tests whose subject is `fork` itself.
//!
//! How: the parent runs `<this binary> <test> --exact --nocapture --test-threads=1` with
//! `BARRIERLAB_TEST_CHILD=<key>`. In that process the same test function runs again,
//! reaches the same [`in_fresh_process`] call, sees its key, runs the body, writes the
//! body's message between two marker lines on stdout and exits; it never returns into
//! the test.

use std::process::Command;
use std::time::Duration;

use super::binary;
use super::{SKIP_STATUS, TIMEOUT_SECS, no_core_file};

const CHILD_ENV: &str = "BARRIERLAB_TEST_CHILD";
const BEGIN: &str = "<<barrierlab-child-message";
const END: &str = "barrierlab-child-message>>";

/// How a fresh-process child ended.
#[derive(Debug)]
pub struct Outcome {
    /// The raw wait status.
    pub status: i32,
    /// What the body reported (empty if it died before reporting).
    pub message: String,
    /// Everything the child wrote on stderr (panic messages among it).
    pub stderr: String,
}

impl Outcome {
    /// Panics unless the child exited 0, with its status, message and stderr.
    pub fn assert_ok(&self) {
        assert_eq!(
            self.status,
            0,
            "{}; {}; {}",
            super::describe(self.status),
            self.message,
            self.stderr
        );
    }
}

/// Runs `body` in a fresh process of this test binary, as the test `test` (the name
/// libtest knows it by, its module path included: `test_name!()`; one call per test), and returns how it ended: exit 0
/// for `Ok(message)`, 1 for `Err(message)` or a panic, [`SKIP_STATUS`] for an `Ok`
/// message that starts with `SKIP:`, or the signal that killed it. Core dumps are off in
/// the child. The parent waits at most [`TIMEOUT_SECS`], then kills the child and fails.
pub fn in_fresh_process(test: &str, body: impl FnOnce() -> Result<String, String>) -> Outcome {
    match std::env::var(CHILD_ENV) {
        Ok(key) if key == test => run_as_child(body),
        Ok(key) => panic!(
            "in_fresh_process({test:?}) reached inside the child for {key:?}: one call per \
             test, and the test name must be the one libtest runs"
        ),
        Err(_) => {}
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = Command::new(exe);
    command
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test);
    let out = binary::run_command(
        command,
        &format!("{test} in a fresh process"),
        Duration::from_secs(TIMEOUT_SECS),
    );
    let message = out
        .stdout
        .split_once(BEGIN)
        .and_then(|(_, rest)| rest.split_once(END))
        .map(|(m, _)| m.trim_matches('\n').to_string())
        .unwrap_or_default();
    Outcome {
        status: out.status,
        message,
        stderr: out.stderr,
    }
}

/// The child's side: run the body, report, exit.
fn run_as_child(body: impl FnOnce() -> Result<String, String>) -> ! {
    no_core_file();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or_else(|p| {
        Err(p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".into()))
    });
    let (code, message) = match result {
        Ok(m) if m.starts_with("SKIP:") => (SKIP_STATUS, m),
        Ok(m) => (0, m),
        Err(m) => (1, m),
    };
    println!("\n{BEGIN}\n{message}\n{END}");
    std::process::exit(code);
}
