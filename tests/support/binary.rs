//! Processes run from a test under a deadline: the real `barrierlab` binary ([`run`]),
//! or any command ([`run_command`]). Each runs in its own process group; past the
//! deadline the whole group (the command and any child it starts, such as a peer
//! collector) is killed and the test fails, so that a hung run cannot hang the suite.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

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
/// panics if it runs past `deadline`, after killing its process group.
pub fn run_command(mut command: Command, what: &str, deadline: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn `{what}`: {e}"));
    // Both pipes are drained meanwhile, so that a full pipe cannot stall the child.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let start = Instant::now();
    let status: ExitStatus = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if start.elapsed() > deadline {
            // SAFETY: kill(2) on the process group this test created (`process_group(0)`
            // made the child its leader); no memory is involved.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            panic!("`{what}` did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        code: status.code(),
        status: status.into_raw(),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}
