//! Reading the files operators point netwarden at (policy, network lists,
//! block page template, certificates, GeoIP databases): regular files only,
//! and never more than a limit. A path to `/dev/zero` would otherwise be
//! read until memory ran out, and a FIFO would block `check` or a reload
//! forever.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Policy files, network files and block page templates are read whole;
/// this is far above any real one (a 120,000-prefix network list is about
/// 2 MB).
pub const MAX_TEXT_BYTES: u64 = 64 * 1024 * 1024;

/// Fails unless `path` is a regular file (symlinks followed, as Kubernetes
/// ConfigMap and Secret mounts need). Checked before opening: opening a
/// FIFO for reading blocks until a writer comes.
pub fn check_regular(path: &Path) -> io::Result<()> {
    let kind = std::fs::metadata(path)?.file_type();
    if kind.is_file() {
        return Ok(());
    }
    let what = if kind.is_dir() {
        "a directory"
    } else if is_fifo(&kind) {
        "a named pipe"
    } else {
        "a device or socket"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what}, not a regular file"),
    ))
}

#[cfg(unix)]
fn is_fifo(kind: &std::fs::FileType) -> bool {
    std::os::unix::fs::FileTypeExt::is_fifo(kind)
}

#[cfg(not(unix))]
fn is_fifo(_: &std::fs::FileType) -> bool {
    false
}

/// The bytes of the regular file at `path`, at most `limit` of them.
pub fn read(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    check_regular(path)?;
    let file = File::open(path)?;
    let mut bytes = Vec::new();
    // One byte more than allowed tells "exactly at the limit" from "over".
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(bytes)
}

/// [`read`], as UTF-8 text.
pub fn read_to_string(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read(path, limit)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// A file's identity: inode, size, modification time. Following symlinks,
/// so that a Kubernetes ConfigMap's `..data` swap shows as a new inode.
pub type FileStamp = Option<(u64, u64, std::time::SystemTime)>;

pub fn file_stamp(path: &Path) -> FileStamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.len(), m.modified().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_within_the_limit_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read(&p, 10).unwrap(), b"0123456789");
        let err = read(&p, 9).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("larger than 9 bytes"), "{err}");
    }

    #[test]
    fn devices_directories_and_pipes_are_refused_without_reading() {
        let err = read(Path::new("/dev/zero"), MAX_TEXT_BYTES).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let err = read(dir.path(), MAX_TEXT_BYTES).unwrap_err();
        assert!(err.to_string().contains("a directory"), "{err}");
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Would block forever if it were opened.
        let err = read(&fifo, MAX_TEXT_BYTES).unwrap_err();
        assert!(err.to_string().contains("a named pipe"), "{err}");
    }

    #[test]
    fn text_must_be_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert!(
            read_to_string(&p, 10)
                .unwrap_err()
                .to_string()
                .contains("UTF-8")
        );
    }
}
