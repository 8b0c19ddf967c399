//! Reading config files without trusting them: at most [`MAX_FILE_BYTES`] of each, and a
//! drop-in only if it is a regular file (a symlink to one is fine). A FIFO, a device, a
//! directory, a dangling symlink or a symlink loop in `probes.d/` is an error naming the
//! path, never skipped in silence, and a FIFO or a device is never opened.

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use rustix::fs::{Mode, OFlags};

/// The largest config file read, main file or drop-in: 4 MiB.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Read the main config file: any file that can be read (`/dev/stdin` works), at most
/// [`MAX_FILE_BYTES`].
pub(crate) fn read_main_file(path: &Path) -> Result<String, String> {
    let file = File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    read_bounded(file)
}

/// Read one drop-in: it must be a regular file, checked before it is opened and again on
/// the open file (in case it was swapped for something else in between).
pub(crate) fn read_drop_in(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| stat_error(path, e))?;
    refuse_irregular(&meta)?;
    // Non-blocking: should a FIFO have taken the file's place since, opening it does not
    // wait for a writer; the check below then refuses it unread.
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| format!("cannot read: {}", std::io::Error::from(e)))?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    refuse_irregular(&meta)?;
    read_bounded(file)
}

fn read_bounded(file: File) -> Result<String, String> {
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "too large: more than {MAX_FILE_BYTES} bytes (a config file is at most 4 MiB)"
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

fn refuse_irregular(meta: &Metadata) -> Result<(), String> {
    let t = meta.file_type();
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(format!(
        "{what}, not a regular file (a drop-in must be a regular file, or a symlink to one)"
    ))
}

/// Why a drop-in cannot be looked at: a dangling symlink and a loop are named as such.
fn stat_error(path: &Path, e: std::io::Error) -> String {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        return format!("symlink loop ({e})");
    }
    if is_link && e.kind() == std::io::ErrorKind::NotFound {
        let target = std::fs::read_link(path)
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        return format!("dangling symlink: its target {target} does not exist");
    }
    format!("cannot read: {e}")
}
