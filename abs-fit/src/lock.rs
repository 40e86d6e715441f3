//! An advisory lock on an output directory, so that two processes never write the same
//! dataset or stage directory at once.
//!
//! The lock is the operating system's (`File::try_lock`, `flock` on Unix) on a file in the
//! directory, so it dies with its process: a lock file left by a killed run holds no lock and
//! the next run takes it over. The file names the holder's pid for the refusal message and is
//! removed when the lock is released.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::{AbsFitError, Result};

/// The lock file inside a locked directory.
pub const LOCK_FILE: &str = ".radar-face.lock";

/// Holds the lock of a directory until dropped.
#[derive(Debug)]
pub struct DirLock {
    file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock of `dir` (created if missing). Fails with [`AbsFitError::Locked`],
    /// naming the holder's pid, while another process (or another lock in this one) holds it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AbsFitError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(LOCK_FILE);
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io(&path))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let holder = match holder.trim() {
                        "" => "unknown".to_string(),
                        pid => pid.to_string(),
                    };
                    return Err(AbsFitError::Locked {
                        dir: dir.to_path_buf(),
                        lock_file: path,
                        holder,
                    });
                }
                Err(TryLockError::Error(source)) => return Err(io(&path)(source)),
            }
            // A holder that was releasing may have removed the file we opened: then the lock
            // is on a file nobody else will find, and the path must be opened again.
            if !is_same_file(&file, &path) {
                continue;
            }
            file.set_len(0).map_err(io(&path))?;
            file.rewind().map_err(io(&path))?;
            write!(file, "{}", std::process::id()).map_err(io(&path))?;
            return Ok(Self { file, path });
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Remove the file while still holding the lock; closing the file releases it.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// Whether `path` still names the file `file` is open on.
#[cfg(unix)]
fn is_same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Whether `path` still names the file `file` is open on (elsewhere: that it exists).
#[cfg(not(unix))]
fn is_same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_refuses_a_second_holder_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let held = DirLock::acquire(dir.path()).unwrap();
        let err = DirLock::acquire(dir.path()).unwrap_err();
        match &err {
            AbsFitError::Locked { holder, .. } => {
                assert_eq!(holder, &std::process::id().to_string())
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        assert!(
            err.to_string()
                .contains("in use by another radar-face process")
        );
        drop(held);
        assert!(
            !dir.path().join(LOCK_FILE).exists(),
            "released locks leave no file"
        );
        DirLock::acquire(dir.path()).expect("free again");
    }

    #[test]
    fn a_stale_lock_file_of_a_killed_run_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), "4294967").unwrap();
        let lock = DirLock::acquire(dir.path()).expect("nobody holds it");
        let pid = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(pid, std::process::id().to_string());
        drop(lock);
    }
}
