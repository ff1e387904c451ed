//! Every file the program reads or writes goes through here. Inputs are read by `read_file`:
//! regular files only, bounded by their size and the memory available. Outputs are checked
//! by `Paths::check` before any work starts, locked by `OutputLock` for the whole run, and
//! written by `write_atomic`: a crash at any moment leaves either the old or the new file,
//! never a mix, and a second Ctrl-C in the middle of a write leaves no temporary file behind.

mod lock;
mod paths;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};
pub use lock::OutputLock;
pub use paths::Paths;

/// Files to remove when the process exits without unwinding (a second Ctrl-C, a closed
/// stdout): the temporary file of a write in progress and the lock files held.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn pending() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    PENDING.lock().unwrap_or_else(|p| p.into_inner())
}

fn set_pending(p: &Path, on: bool) {
    let mut v = pending();
    v.retain(|q| q != p);
    if on {
        v.push(p.to_path_buf());
    }
}

/// Removes the temporary file of a write in progress and the lock files, for an exit that
/// cannot wait for the write to end. No target file is ever touched.
pub fn cleanup_before_exit() {
    for p in pending().drain(..) {
        let _ = std::fs::remove_file(p);
    }
}

/// The directory a path's entry lives in.
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// What kind of non-regular file `m` is, for messages.
fn kind_of(m: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// temp file in the same directory + fsync + rename + fsync of the directory
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_via_temp(&write_target(path), bytes, true)
}

/// `write_atomic` for an output that must not replace anything: the temporary file is
/// linked into place under the output's name, which fails if that name exists (a file, a
/// symlink, anything), so nothing created since the output was checked is overwritten.
pub fn write_atomic_new(path: &Path, bytes: &[u8]) -> Result<()> {
    write_via_temp(path, bytes, false)
}

/// The temporary file, then a rename (`replace`) or a link into place.
fn write_via_temp(path: &Path, bytes: &[u8], replace: bool) -> Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .ok_or_else(|| Error::file(path, "is not a file name", "pass a path like out/model.safetensors"))?;
    // the rename would replace a device node, FIFO or socket by a regular file (and fail on
    // a directory only after the whole write)
    if let Ok(m) = std::fs::metadata(path) {
        if !m.is_file() {
            return Err(Error::file(
                path,
                format!("is {}, not a regular file", kind_of(&m)),
                "name a regular file (or a new one) as the output",
            ));
        }
    }
    let hint = "check that the directory exists, is writable and has free space";
    let fail = |op: &str, e: std::io::Error| Error::file(path, format!("cannot {op}: {e}"), hint);
    let (tmp, mut file) = create_temp(&dir, &name.to_string_lossy()).map_err(|e| fail("create a temporary file", e))?;
    set_pending(&tmp, true);
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| fail("write", e));
    drop(file);
    let placed = written.and_then(|_| match replace {
        true => std::fs::rename(&tmp, path).map_err(|e| fail("rename into place", e)),
        false => std::fs::hard_link(&tmp, path).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                Error::file(path, "exists already", "remove it first or name a new file")
            }
            _ => fail("link into place", e),
        }),
    });
    set_pending(&tmp, false);
    if placed.is_err() || !replace {
        // leave nothing half-written behind; the target itself was never touched (a link
        // leaves the temporary name as a second name of the output)
        let _ = std::fs::remove_file(&tmp);
    }
    placed?;
    // the new entry is durable only once the directory is; not every file system allows
    // syncing a directory, and the data is already safe in the file
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The file a write to `path` lands in: a symlink's final target, so that an output that is
/// a link updates the file it points to (as the output checks in `paths` assume), else
/// `path` itself.
fn write_target(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    // the kernel's own bound on a chain of links (ELOOP)
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => match std::fs::read_link(&p) {
                Ok(t) if t.is_absolute() => p = t,
                Ok(t) => p = parent_dir(&p).join(t),
                Err(_) => break,
            },
            _ => break,
        }
    }
    p
}

/// A new temporary file beside the output. Created exclusively and never through a symlink:
/// its name is predictable, and in a shared directory a link planted under it would
/// otherwise make the write truncate whatever file the link points to.
fn create_temp(dir: &Path, name: &str) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut last = None;
    for i in 0..64 {
        let tmp = dir.join(format!(".{name}.tmp{}.{i}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary name")))
}

/// Reads a whole input file. Opened without blocking (a FIFO without a writer would hang the
/// open), then only a regular file is read: a device such as /dev/zero never ends, and a
/// pipe has no size to check. The size is checked against the memory available before
/// anything is allocated, and at most that many bytes (+1, to notice growth) are read.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::NotFound => "check the path (relative paths start at the current directory)",
                std::io::ErrorKind::NotADirectory => {
                    "a component of the path is a file, not a directory; check the path"
                }
                std::io::ErrorKind::PermissionDenied => "check the file's permissions",
                _ => "check that the path names a readable file",
            };
            Error::file(path, format!("cannot read: {e}"), hint)
        })?;
    let fail = |e: std::io::Error| Error::file(path, format!("cannot read: {e}"), "check that the file is readable");
    let m = f.metadata().map_err(fail)?;
    if m.is_dir() {
        return Err(Error::file(path, "is a directory", "pass a file inside it"));
    }
    if !m.is_file() {
        return Err(Error::file(
            path,
            format!("is {}, not a regular file", kind_of(&m)),
            "save the data to a regular file first: inputs are read whole and need a size",
        ));
    }
    let size = m.len();
    if size == 0 {
        return Err(Error::file(path, "is empty", "pass a file with data in it"));
    }
    if let Some(avail) = crate::mem::available_memory().filter(|&a| size > a) {
        let gib = |x: u64| x as f64 / (1u64 << 30) as f64;
        return Err(Error::file(
            path,
            format!(
                "is {:.1} GiB but only {:.1} GiB of memory are available",
                gib(size),
                gib(avail)
            ),
            "pass a smaller file or free memory",
        ));
    }
    let cap = usize::try_from(size).map_err(|_| Error::file(path, "is too large", "pass a smaller file"))?;
    let mut bytes = Vec::with_capacity(cap);
    f.take(size + 1).read_to_end(&mut bytes).map_err(fail)?;
    if bytes.len() as u64 != size {
        return Err(Error::file(
            path,
            format!("changed size while being read ({size} bytes, then {})", bytes.len()),
            "wait until whatever writes the file has finished",
        ));
    }
    Ok(bytes)
}

/// One line on stdout (see `stdout_write`).
pub fn stdout_line(s: &str) -> Result<()> {
    stdout_write(&format!("{s}\n"))
}

/// Text on stdout, flushed. A reader that went away (`wgrnn info | head -1`) wanted no more:
/// the process ends quietly with 0 instead of panicking as `println!` does. Any other
/// failure (a full disk behind a redirection) is an error.
pub fn stdout_write(s: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            cleanup_before_exit();
            std::process::exit(0)
        }
        r => r.map_err(|e| {
            Error::file(
                "standard output",
                format!("cannot write: {e}"),
                "check where the output is redirected to",
            )
        }),
    }
}

/// One line on stderr. A closed stderr must not stop a run (`eprintln!` would panic), and
/// there is nowhere left to report it.
pub fn stderr_line(s: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{s}");
}
