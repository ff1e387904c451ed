//! One writer per output: a run holds an advisory lock (flock) on `<output>.lock` for as
//! long as it may write the output, so a second run with the same output fails at once
//! instead of the two replacing each other's checkpoints. The kernel releases the lock when
//! the process dies, however it dies, so a lock file left behind never blocks a later run.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::set_pending;
use crate::error::{Error, Result};

/// What the holder writes into its lock file, so that the run refused can name it.
const TAG: &str = "wgrnn";
/// A lock file larger than this is not one of ours.
const MAX_LOCK_FILE: u64 = 4096;

/// The lock on one output, released (and its file removed) on drop.
pub struct OutputLock {
    path: PathBuf,
    _file: File,
}

impl OutputLock {
    pub fn acquire(flag: &str, output: &Path) -> Result<Self> {
        let mut name = output.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let fail = |e: std::io::Error| {
            Error::file(
                &path,
                format!("cannot lock {flag}: {e}"),
                "check that the output's directory is writable",
            )
        };
        loop {
            // never through a symlink: the file is written to
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .map_err(fail)?;
            let m = file.metadata().map_err(fail)?;
            if !m.is_file() || m.len() > MAX_LOCK_FILE {
                return Err(Error::file(
                    &path,
                    format!("exists and is not the lock file of {flag}"),
                    "move it away, or pass another output path",
                ));
            }
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = (&mut file).take(MAX_LOCK_FILE).read_to_string(&mut holder);
                    let holder = holder.lines().next().unwrap_or("").trim();
                    let who = match holder.strip_prefix(TAG) {
                        Some(rest) => format!(" ({TAG}{rest})"),
                        None => String::new(),
                    };
                    return Err(Error::file(
                        output,
                        format!("{flag} is being written by another run{who}"),
                        format!("wait for that run to end, or pass another {flag}"),
                    ));
                }
                // a file system without flock (some network mounts): nothing to exclude with
                Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {}
                Err(TryLockError::Error(e)) => return Err(fail(e)),
            }
            // the previous holder removes the file on exit; a lock taken on the removed file
            // excludes nobody, so take it again on the file now at the path
            let current = std::fs::symlink_metadata(&path);
            if !current.is_ok_and(|c| c.dev() == m.dev() && c.ino() == m.ino()) {
                continue;
            }
            if m.len() > 0 && !has_tag(&mut file) {
                return Err(Error::file(
                    &path,
                    format!("exists and is not the lock file of {flag}"),
                    "move it away, or pass another output path",
                ));
            }
            // naming this run is a courtesy to the next one; a full disk must not stop it
            let args: Vec<String> = std::env::args().skip(1).collect();
            let _ = file.set_len(0).and_then(|_| file.rewind()).and_then(|_| {
                writeln!(
                    file,
                    "{TAG} pid {}: {}",
                    std::process::id(),
                    args.join(" ").replace('\n', " ")
                )
            });
            set_pending(&path, true);
            return Ok(OutputLock { path, _file: file });
        }
    }
}

fn has_tag(file: &mut File) -> bool {
    let mut head = [0u8; TAG.len()];
    file.read_exact(&mut head).is_ok() && head == *TAG.as_bytes()
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // removed while still held, so no other run can lock this file after we let go
        set_pending(&self.path, false);
        let _ = std::fs::remove_file(&self.path);
    }
}
