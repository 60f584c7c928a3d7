//! Docs cite only what the repository holds: every `tests/…` path named in the sources,
//! the README, the write-up, the benches, the examples and CI exists. (A test that moves
//! to another module or binary takes the sentences that cite it along.) The stored study
//! results are records of what a past run printed and are not read.

use std::path::{Path, PathBuf};

/// Where citations are read: files, or folders walked for `.rs`, `.md` and `.py` files.
const READ: [&str; 8] = [
    "src",
    "benches",
    "examples",
    "tests",
    "papers",
    "README.md",
    ".ci/run",
    "Cargo.toml",
];

/// Folders under `papers` that hold a past run's output.
const NOT_READ: [&str; 1] = ["papers/results"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(path: &Path, out: &mut Vec<PathBuf>) {
    let relative = path.strip_prefix(root()).unwrap_or(path);
    if NOT_READ.iter().any(|n| relative == Path::new(n)) {
        return;
    }
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
            .map(|e| e.expect("a folder entry").path())
            .collect();
        entries.sort();
        for entry in entries {
            files(&entry, out);
        }
    } else if path.is_file() {
        let name = path.to_string_lossy();
        let text = [".rs", ".md", ".py", ".toml"]
            .iter()
            .any(|x| name.ends_with(x));
        if text || name.ends_with("/run") {
            out.push(path.to_path_buf());
        }
    }
}

/// The `tests/…` paths cited in `text`: `tests/` not preceded by a letter, digit, `_`, `-`
/// or `/` (so a kernel selftest path is not one), then path characters, without a
/// trailing `.` or `/`.
fn cited(text: &str) -> Vec<String> {
    let is_path = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_./-".contains(c);
    let mut found = Vec::new();
    for (at, _) in text.match_indices("tests/") {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || "_-/".contains(c)) {
            continue;
        }
        let rest = &text[at + "tests/".len()..];
        let len = rest.find(|c| !is_path(c)).unwrap_or(rest.len());
        let path = rest[..len].trim_end_matches(['.', '/']);
        if !path.is_empty() {
            found.push(format!("tests/{path}"));
        }
    }
    found
}

#[test]
fn every_cited_test_path_exists() {
    let mut read = Vec::new();
    for path in READ {
        files(&root().join(path), &mut read);
    }
    assert!(read.len() > 50, "only {} files read", read.len());
    let mut missing = Vec::new();
    let mut checked = 0;
    for file in &read {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        for path in cited(&text) {
            checked += 1;
            if !root().join(&path).exists() {
                let relative = file.strip_prefix(root()).unwrap_or(file);
                missing.push(format!("{}: {path}", relative.display()));
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} citations found: is the scan broken?"
    );
    assert!(
        missing.is_empty(),
        "cited paths that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn a_citation_is_read_up_to_its_last_path_character() {
    assert_eq!(
        cited("see `tests/barrier/edges.rs`, and tests/docs/paper. Also x/tests/no"),
        ["tests/barrier/edges.rs", "tests/docs/paper"]
    );
    assert_eq!(
        cited("tools/testing/selftests/mm/uffd-unit-tests.c"),
        Vec::<String>::new()
    );
}
