//! The files one command reads and writes, checked before it does any work: no output may
//! be the same file as an input or another output (through symlinks and hard links too),
//! and every output must be a regular file or a new one in a writable directory.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{kind_of, parent_dir};
use crate::error::{Error, Result};

/// A command's paths, each with the flag (or description) that named it.
#[derive(Default)]
pub struct Paths<'a> {
    inputs: Vec<(&'a str, &'a Path)>,
    outputs: Vec<(&'a str, &'a Path)>,
    /// (output, input) pairs where the output is meant to replace the input: a resumed run
    /// updating its own checkpoint, which is read whole before anything is written
    updates: Vec<(&'a str, &'a str)>,
    /// (output, hint) for outputs that must not exist yet
    new_only: Vec<(&'a str, &'a str)>,
}

/// What makes two paths the same file: the device and inode of an existing one, the
/// canonical directory and name of one still to be created.
#[derive(PartialEq)]
enum Identity {
    Inode(u64, u64),
    Entry(PathBuf),
}

impl<'a> Paths<'a> {
    pub fn new() -> Self {
        Self::default()
    }

    /// `flag` names the path in messages: `--data`, or a description such as "the data the
    /// checkpoint names".
    pub fn input(mut self, flag: &'a str, path: Option<&'a Path>) -> Self {
        self.inputs.extend(path.map(|p| (flag, p)));
        self
    }

    pub fn output(mut self, flag: &'a str, path: Option<&'a Path>) -> Self {
        self.outputs.extend(path.map(|p| (flag, p)));
        self
    }

    /// Allows `output` to be the same file as `input`.
    pub fn updates(mut self, output: &'a str, input: &'a str) -> Self {
        self.updates.push((output, input));
        self
    }

    /// Refuses `output` if anything exists under its name; `hint` says how to proceed
    /// (`export --force`). Write it with `fsio::write_atomic_new`.
    pub fn new_only(mut self, output: &'a str, hint: &'a str) -> Self {
        self.new_only.push((output, hint));
        self
    }

    /// Refuses outputs that cannot be written or would destroy another path; one line
    /// naming both flags.
    pub fn check(&self) -> Result<()> {
        for (flag, path) in &self.outputs {
            if let Some((_, hint)) = self.new_only.iter().find(|(f, _)| f == flag) {
                if std::fs::symlink_metadata(path).is_ok() {
                    return Err(Error::file(path, format!("{flag} exists already"), *hint));
                }
            }
            check_output(flag, path)?;
        }
        let ids: Vec<_> = self.outputs.iter().map(|(_, p)| identity(p)).collect();
        for (i, ((flag, path), id)) in self.outputs.iter().zip(&ids).enumerate() {
            if let Some((other, _)) = self.outputs[..i].iter().zip(&ids).find(|(_, o)| *o == id) {
                return Err(Error::file(
                    path,
                    format!("{flag} and {} name the same file", other.0),
                    "give each output a path of its own",
                ));
            }
            let clash = self
                .inputs
                .iter()
                .filter(|(input, _)| !self.updates.contains(&(flag, input)))
                .find(|(_, p)| identity(p) == *id);
            if let Some((input, _)) = clash {
                return Err(Error::file(
                    path,
                    format!("{flag} and {input} name the same file; writing it would destroy the input"),
                    format!("pass another path as {flag}"),
                ));
            }
        }
        Ok(())
    }
}

/// The output is a regular file or does not exist yet, and its directory takes new files
/// (the atomic writer creates a temporary file beside it): found before the first step,
/// not after the last.
fn check_output(flag: &str, path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            return Err(Error::file(
                path,
                format!("{flag} is a directory"),
                "name a file inside it, e.g. DIR/model.safetensors",
            ))
        }
        Ok(m) if !m.is_file() => {
            return Err(Error::file(
                path,
                format!("{flag} is {}, not a regular file", kind_of(&m)),
                "name a regular file (or a new one): outputs are replaced whole",
            ))
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::file(path, format!("cannot write {flag}: {e}"), "check the path")),
    }
    let Some(name) = path.file_name() else {
        return Err(Error::file(
            path,
            format!("{flag} is not a file name"),
            "pass a path like out/model.safetensors",
        ));
    };
    let dir = parent_dir(path);
    if !dir.is_dir() {
        return Err(Error::file(
            path,
            format!("cannot write {flag}: the directory {} does not exist", dir.display()),
            format!("create it first (mkdir -p {})", dir.display()),
        ));
    }
    let probe = dir.join(format!(".{}.probe{}", name.to_string_lossy(), std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| {
            Error::file(
                path,
                format!("cannot write {flag} into {}: {e}", dir.display()),
                "check that the directory is writable (and its file system not read-only)",
            )
        })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// How many symbolic links a dangling chain is followed through, as the kernel's limit.
const MAX_LINKS: usize = 40;

fn identity(path: &Path) -> Identity {
    let mut path = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        if let Ok(m) = std::fs::metadata(&path) {
            return Identity::Inode(m.dev(), m.ino());
        }
        // a dangling symlink: writing through it creates its target
        match std::fs::read_link(&path) {
            Ok(target) => path = parent_dir(&path).join(target),
            Err(_) => break,
        }
    }
    let entry = match (std::fs::canonicalize(parent_dir(&path)), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => std::path::absolute(&path).unwrap_or(path),
    };
    Identity::Entry(entry)
}
