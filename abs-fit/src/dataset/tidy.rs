//! What a dataset writer finds in its directory before it adopts it: temporary files of killed
//! writes (removed, under the directory's lock) and data that no manifest describes (refused).

use std::path::Path;

use super::MANIFEST_FILE;
use super::chunks::CHUNK_DIR;
use crate::lock::LOCK_FILE;
use crate::{AbsFitError, Result};

/// Readies `dir`, whose lock the caller holds, for a writer: removes what killed writes left
/// in it and in its chunk folder, then, where it has no manifest, refuses it if it holds
/// anything else.
pub(super) fn tidy(dir: &Path) -> Result<()> {
    remove_temporary_files(dir)?;
    remove_temporary_files(&dir.join(CHUNK_DIR))?;
    if dir.join(MANIFEST_FILE).exists() {
        Ok(())
    } else {
        refuse_undescribed_files(dir)
    }
}

/// Removes the temporary files that interrupted atomic writes left in `dir` (`.NAME.*.tmp`,
/// `.tmp*.npy.tmp`, and the older `.NAME.tmpPID` and `NAME.npy.tmp-PID-N`). Call it only under
/// the directory's lock, when no other writer can own them.
fn remove_temporary_files(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = (name.starts_with('.') && name.contains(".tmp")) || name.contains(".npy.tmp-");
        if ours && entry.path().is_file() {
            std::fs::remove_file(entry.path()).map_err(|source| AbsFitError::Io {
                path: entry.path(),
                source,
            })?;
        }
    }
    Ok(())
}

/// Fails if `dir` holds anything that no manifest describes: data without its manifest is
/// never adopted. Allowed are a missing or empty directory, an empty chunk directory and the
/// lock file (what a run killed before its manifest was written leaves, once its temporary
/// files are gone).
fn refuse_undescribed_files(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(AbsFitError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut unexplained = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| AbsFitError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let empty_dir =
            || std::fs::read_dir(entry.path()).is_ok_and(|mut inside| inside.next().is_none());
        if !(name == LOCK_FILE || (name == CHUNK_DIR && empty_dir())) {
            unexplained.push(name);
        }
    }
    if unexplained.is_empty() {
        return Ok(());
    }
    unexplained.sort();
    Err(AbsFitError::dataset(
        dir,
        format!(
            "holds {} but no {MANIFEST_FILE}: data that no manifest describes is never adopted; \
             choose an empty directory or delete it",
            unexplained.join(", ")
        ),
    ))
}
