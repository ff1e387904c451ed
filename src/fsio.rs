//! Every file the program writes goes through `write_atomic`: a crash at any moment leaves
//! either the old or the new file, never a mix, and a second Ctrl-C in the middle of a write
//! leaves no temporary file behind.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// The temporary file being written, so that an exit in the middle of a write (a second
/// Ctrl-C) can remove it instead of leaving it behind.
static PENDING: Mutex<Option<PathBuf>> = Mutex::new(None);

fn set_pending(tmp: Option<PathBuf>) {
    *PENDING.lock().unwrap_or_else(|p| p.into_inner()) = tmp;
}

/// Removes the temporary file of a write in progress, if any; for an exit that cannot wait
/// for the write to end. The target file is never touched.
pub fn remove_pending_write() {
    if let Some(tmp) = PENDING.lock().unwrap_or_else(|p| p.into_inner()).take() {
        let _ = std::fs::remove_file(tmp);
    }
}

/// temp file in the same directory + fsync + rename + fsync of the directory
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::file(path, "is not a file name", "pass a path like out/model.safetensors"))?;
    let tmp = dir.join(format!(".{}.tmp{}", name.to_string_lossy(), std::process::id()));
    let hint = "check that the directory exists, is writable and has free space";
    let fail = |op: &str, e: std::io::Error| Error::file(path, format!("cannot {op}: {e}"), hint);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    set_pending(Some(tmp.clone()));
    let written = write().map_err(|e| fail("write", e));
    let renamed = written.and_then(|_| std::fs::rename(&tmp, path).map_err(|e| fail("rename into place", e)));
    set_pending(None);
    if let Err(e) = renamed {
        // leave nothing half-written behind; the target itself was never touched
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // the rename is durable only once the directory entry is; not every file system allows
    // syncing a directory, and the data is already safe in the file
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
