//! Reading a file the user names as hostile input: only a regular file (a symbolic link is
//! followed to one), and never more than a stated number of bytes; and writing every file the
//! user keeps whole ([`write_atomically`]).
//!
//! A FIFO, socket, device or folder is refused from its metadata without being opened: opening a
//! FIFO blocks until a writer comes, and a device such as `/dev/zero` never ends. The file is then
//! opened non-blocking and looked at again through its handle, in case it was swapped for
//! something else between the two looks, and read through a cap of one byte over the limit, so a
//! file that grows (or lies about its size, as `/proc` files do) is still stopped there.

use std::fs::{File, FileType, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;

/// Why a file's bytes were not read.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ReadError {
    /// A FIFO, socket, device or folder: `kind` says which ("a FIFO (named pipe)").
    #[error("not a regular file: it is {kind}")]
    NotRegular { kind: &'static str },
    #[error("a symbolic link loop: following its links never reaches a file")]
    SymlinkLoop,
    /// `size` bytes (or more, when `at_least`), over `limit`.
    #[error("{} {}, over the limit of {}", if *.at_least { "more than" } else { "it is" }, human_bytes(*.size), human_bytes(*.limit))]
    TooLarge { size: u64, limit: u64, at_least: bool },
    #[error("cannot read it: {0}")]
    Io(String),
}

/// The bytes of the regular file at `path` (symbolic links followed), at most `limit` of them.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let metadata = std::fs::metadata(path).map_err(io_error)?;
    check_regular(metadata.file_type())?;
    check_size(metadata.len(), limit, false)?;
    let file = open_nonblocking(path).map_err(io_error)?;
    let metadata = file.metadata().map_err(io_error)?;
    check_regular(metadata.file_type())?;
    check_size(metadata.len(), limit, false)?;
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes).map_err(io_error)?;
    check_size(bytes.len() as u64, limit, true)?;
    Ok(bytes)
}

/// `bytes` in the largest unit that keeps it at least 1: "512 bytes", "3.5 MiB", "2 GiB".
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64;
    let mut unit = "bytes";
    for name in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = name;
    }
    let text = format!("{value:.1}");
    format!("{} {unit}", text.strip_suffix(".0").unwrap_or(&text))
}

fn check_regular(file_type: FileType) -> Result<(), ReadError> {
    if file_type.is_file() {
        return Ok(());
    }
    Err(ReadError::NotRegular { kind: kind_of(file_type) })
}

fn check_size(size: u64, limit: u64, at_least: bool) -> Result<(), ReadError> {
    match size > limit {
        true => Err(ReadError::TooLarge { size, limit, at_least }),
        false => Ok(()),
    }
}

fn kind_of(file_type: FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
    }
    if file_type.is_dir() { "a folder" } else { "not a file of a known kind" }
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).open(path)
}

fn io_error(error: std::io::Error) -> ReadError {
    #[cfg(unix)]
    if error.raw_os_error() == Some(libc::ELOOP) {
        return ReadError::SymlinkLoop;
    }
    ReadError::Io(error.to_string())
}

/// Writes `bytes` to a temporary file next to `path`, flushes it to disk and renames it into place,
/// so `path` never holds a partial file; the temporary file is removed on failure.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);
    let Some(file_name) = path.file_name() else {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path does not name a file"));
    };
    let temp = path.with_file_name(format!(
        ".{}.{}-{}.tmp",
        file_name.to_string_lossy(),
        std::process::id(),
        NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
    ));
    let written = File::create(&temp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, path))
        .and_then(|()| sync_folder(path));
    if written.is_err() {
        // The temporary file may not exist (creating it failed); the write's error is the one to report.
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Flushes the folder holding `path`, so that a rename into it survives a power cut too.
#[cfg(unix)]
fn sync_folder(path: &Path) -> std::io::Result<()> {
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(folder)?.sync_all()
}

#[cfg(not(unix))]
fn sync_folder(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn human_bytes_picks_the_unit() {
        assert_eq!(human_bytes(0), "0 bytes");
        assert_eq!(human_bytes(1023), "1023 bytes");
        assert_eq!(human_bytes(1024), "1 KiB");
        assert_eq!(human_bytes(3 << 19), "1.5 MiB");
        assert_eq!(human_bytes(10 << 20), "10 MiB");
        assert_eq!(human_bytes(4 << 30), "4 GiB");
    }
}
