//! The study's output folder, held by one study at a time.
//!
//! A study takes an exclusive lock on `.barrierlab.lock` in the folder before it writes
//! anything (a second study on the same folder is refused, naming the folder), lists
//! every file it writes in `.barrierlab-manifest` as it writes it, and on its next run
//! deletes exactly the files an earlier study listed there, never a file of the user's.
//! It also copies the running binary into the folder, so that every point of the study
//! runs the same program even if the build tree is rebuilt meanwhile, and hashes it.
//! It must never delete a file that no manifest names.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The lock file's name.
pub const LOCK: &str = ".barrierlab.lock";
/// The manifest's name: one file name per line, each a file a study wrote here.
pub const MANIFEST: &str = ".barrierlab-manifest";
/// The copy of the binary the points run.
pub const BINARY: &str = ".barrierlab-point-binary";

/// The files a study of a version before the manifest wrote here, removed when no
/// manifest exists (their names are the study's own).
const LEGACY: [&str; 9] = [
    "study.csv",
    "report.md",
    "meta.json",
    "study.json",
    "summary.json",
    "crossover.svg",
    "pauses.svg",
    "mmu.svg",
    "heapmap.svg",
];

/// Whether `--out` can name a study's folder: not an existing file. Checked before
/// anything runs or is printed (a usage error).
pub fn check_out(out: &Path) -> Result<()> {
    if out.exists() && !out.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "--out {}: it exists and is not a folder",
            out.display()
        )));
    }
    Ok(())
}

/// The output folder, locked for this study.
pub struct OutFolder {
    dir: PathBuf,
    _lock: File,
    manifest: File,
    written: Vec<String>,
}

impl OutFolder {
    /// Creates and locks `dir`, removes what an earlier study wrote there (naming each
    /// file on stderr), and starts a new manifest.
    pub fn open(dir: &Path) -> Result<OutFolder> {
        check_out(dir)?;
        let fail =
            |what: &str, e| Error::io(format!("{what} in the output folder {}", dir.display()), e);
        std::fs::create_dir_all(dir).map_err(|e| fail("create", e))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK))
            .map_err(|e| fail("create the lock file", e))?;
        if !crate::sys::process::try_lock_exclusive(&lock)? {
            return Err(busy(dir));
        }
        let old = std::fs::read_to_string(dir.join(MANIFEST)).ok();
        let names: Vec<String> = match &old {
            Some(text) => text.lines().map(str::to_string).collect(),
            None => LEGACY.iter().map(|s| s.to_string()).collect(),
        };
        for name in names.iter().filter(|n| is_plain_name(n)) {
            let path = dir.join(name);
            if path.is_file() {
                eprintln!("removing {} from an earlier study", path.display());
                std::fs::remove_file(&path).map_err(|e| fail("remove an earlier output", e))?;
            }
        }
        let manifest = File::create(dir.join(MANIFEST)).map_err(|e| fail("write", e))?;
        Ok(OutFolder {
            dir: dir.to_path_buf(),
            _lock: lock,
            manifest,
            written: Vec::new(),
        })
    }

    /// Locks an existing study's folder to render it again: nothing is removed, and
    /// files written now are added to its manifest.
    pub fn reopen(dir: &Path) -> Result<OutFolder> {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK))
            .map_err(|e| Error::io(format!("lock the study folder {}", dir.display()), e))?;
        if !crate::sys::process::try_lock_exclusive(&lock)? {
            return Err(busy(dir));
        }
        let written: Vec<String> = std::fs::read_to_string(dir.join(MANIFEST))
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_default();
        let manifest = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(MANIFEST))
            .map_err(|e| Error::io(format!("write {}", dir.join(MANIFEST).display()), e))?;
        Ok(OutFolder {
            dir: dir.to_path_buf(),
            _lock: lock,
            manifest,
            written,
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records that this study writes `name` here (before writing it), and returns its
    /// path.
    pub fn claim(&mut self, name: &str) -> Result<PathBuf> {
        if !self.written.iter().any(|n| n == name) {
            writeln!(self.manifest, "{name}")
                .and_then(|()| self.manifest.flush())
                .map_err(|e| {
                    Error::io(format!("write {}", self.dir.join(MANIFEST).display()), e)
                })?;
            self.written.push(name.to_string());
        }
        Ok(self.dir.join(name))
    }

    /// Copies `exe` into the folder (claimed) and returns the copy's path and its hash
    /// (FNV-1a 64 of the bytes, in hex).
    pub fn copy_binary(&mut self, exe: &Path) -> Result<(PathBuf, String)> {
        let bytes =
            std::fs::read(exe).map_err(|e| Error::io(format!("read {}", exe.display()), e))?;
        let path = self.claim(BINARY)?;
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, &bytes)
            .map_err(|e| Error::io(format!("copy the binary to {}", path.display()), e))?;
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io(format!("make {} executable", path.display()), e))?;
        Ok((path, format!("{:016x}", fnv1a64(&bytes))))
    }
}

/// The error for a folder another study holds.
fn busy(dir: &Path) -> Error {
    Error::io(
        format!("lock the study folder {}", dir.display()),
        std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            format!(
                "another study is writing into it (it holds {LOCK}); wait for it to finish or \
                 choose another --out"
            ),
        ),
    )
}

/// A bare file name (no folder, not `..`): the only kind a manifest may make us delete.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && name != LOCK
        && name != MANIFEST
}

/// FNV-1a, 64 bits: identifies a binary (not a security hash).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Writes `bytes` to `path` whole or not at all: into a temporary file beside it, then
/// renamed over it. A failure names `path` and leaves no partial file.
pub fn write_whole(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map_or("out".into(), |n| n.to_string_lossy());
    let tmp = path.with_file_name(format!(".{name}.partial"));
    let r = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    r.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(format!("write {}", path.display()), e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("barrierlab-folder-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn only_files_an_earlier_study_listed_are_removed() {
        let d = scratch("manifest");
        std::fs::write(d.join("thesis-figure.svg"), "mine").unwrap();
        std::fs::write(d.join("curves.svg"), "old").unwrap();
        std::fs::write(d.join(MANIFEST), "curves.svg\n../escape\n/etc/passwd\n").unwrap();
        let mut f = OutFolder::open(&d).unwrap();
        assert!(!d.join("curves.svg").exists(), "listed: removed");
        assert!(d.join("thesis-figure.svg").exists(), "the user's: kept");
        f.claim("study.csv").unwrap();
        drop(f);
        let listed = std::fs::read_to_string(d.join(MANIFEST)).unwrap();
        assert_eq!(listed, "study.csv\n");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_second_study_on_a_locked_folder_is_refused_naming_it() {
        let d = scratch("lock");
        let first = OutFolder::open(&d).unwrap();
        let e = OutFolder::open(&d).err().expect("refused");
        assert!(
            e.to_string().contains("another study")
                && e.to_string().contains(&*d.to_string_lossy()),
            "{e}"
        );
        drop(first);
        assert!(OutFolder::open(&d).is_ok(), "free again");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_failed_whole_write_names_the_file_and_leaves_nothing() {
        let d = scratch("whole");
        write_whole(&d.join("a.svg"), b"<svg/>").unwrap();
        assert_eq!(std::fs::read(d.join("a.svg")).unwrap(), b"<svg/>");
        let e = write_whole(&d.join("no-such-dir").join("b.svg"), b"x").unwrap_err();
        assert!(e.to_string().contains("b.svg"), "{e}");
        assert_eq!(
            std::fs::read_dir(&d).unwrap().count(),
            1,
            "no partial file left"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
