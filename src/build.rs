//! The build script: bakes the commit this binary is built from into it, as
//! `BARRIERLAB_COMMIT` (`git rev-parse HEAD`, with `-dirty` when tracked files differ from
//! it, `unknown` outside a git checkout), so that a study's `meta.json` names the build's
//! commit. Read at run time instead, it named whatever the checkout held when the study
//! started: a binary copied aside and run after later commits reported the later commit.
//!
//! It lives in `src/` (`build = "src/build.rs"` in `Cargo.toml`) to keep the repository's
//! top level to its fixed set of entries; it is not a module of the crate.

use std::process::Command;

/// A git command's trimmed output in the package's folder, if it succeeded.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let commit = match git(&["rev-parse", "HEAD"]) {
        Some(head) if !head.is_empty() => {
            match git(&["status", "--porcelain", "--untracked-files=no"]) {
                Some(changes) if !changes.is_empty() => format!("{head}-dirty"),
                _ => head,
            }
        }
        _ => "unknown".to_string(),
    };
    println!("cargo:rustc-env=BARRIERLAB_COMMIT={commit}");
    // Run again when HEAD moves (a commit, a checkout) or a tracked file may have changed.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/index");
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={dir}/{branch}");
        }
    }
    // Every tracked top-level entry, so that `-dirty` follows an edit to any of them.
    for path in [
        "Cargo.toml",
        "Cargo.lock",
        "README.md",
        ".gitignore",
        ".ci",
        "src",
        "tests",
        "benches",
        "examples",
        "papers",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
}
