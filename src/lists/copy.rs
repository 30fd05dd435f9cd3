//! The last good copy of a published list, kept in `state_dir` (one JSON
//! file per source), so that a restart with the publisher down starts from
//! what was last applied. Only a list that passed [`super::judge`] and went
//! live is written here; a file that cannot be read back whole is no copy
//! (never a partial one): writes go to a temporary file that is synced and
//! renamed over.

use std::io::Write;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Largest copy read back: the iCloud Private Relay list (287k prefixes)
/// stores as about 7 MB.
pub const MAX_COPY_BYTES: u64 = 128 * 1024 * 1024;

/// A list as last applied, with what the next fetch needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copy {
    /// What the list came from: the feed's URL, or `dns: name, ...`.
    pub source: String,
    /// Canonical: sorted, without duplicates.
    pub prefixes: Vec<IpNet>,
    /// When the publisher last confirmed the list (an answer of 200 or
    /// 304): its age is counted from here.
    pub fetched_at: Timestamp,
    /// When its content last changed.
    pub changed_at: Timestamp,
    /// Validators for the next conditional request (RFC 9110 §13.1).
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// Bumped by each applied change.
    pub generation: u64,
    /// A DNS name: since when it has answered NXDOMAIN (or no address),
    /// kept across restarts so that a restart does not restart the grace.
    pub no_address_since: Option<Timestamp>,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    /// The file's own format version.
    netwarden_list: u32,
    source: String,
    fetched_at: String,
    changed_at: String,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    last_modified: Option<String>,
    generation: u64,
    prefixes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    no_address_since: Option<String>,
}

/// Why a copy could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a list netwarden wrote: {detail}", path.display())]
    Invalid { path: PathBuf, detail: String },
}

impl Copy {
    /// The copy at `path`; `Ok(None)` when there is none.
    pub fn read(path: &Path) -> Result<Option<Copy>, CopyError> {
        let bytes = match crate::files::read(path, MAX_COPY_BYTES) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CopyError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Self::from_json(&bytes)
            .map(Some)
            .map_err(|detail| CopyError::Invalid {
                path: path.to_path_buf(),
                detail,
            })
    }

    fn from_json(bytes: &[u8]) -> Result<Copy, String> {
        let d: OnDisk = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if d.netwarden_list != 1 {
            return Err(format!("format {} is not 1", d.netwarden_list));
        }
        let time = |s: &str| s.parse::<Timestamp>().map_err(|e| format!("'{s}': {e}"));
        let prefixes = d
            .prefixes
            .iter()
            .map(|p| crate::addr::parse_prefix(p).map_err(|_| format!("'{p}' is not a prefix")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Copy {
            source: d.source,
            prefixes: super::canonical(prefixes),
            fetched_at: time(&d.fetched_at)?,
            changed_at: time(&d.changed_at)?,
            etag: d.etag,
            last_modified: d.last_modified,
            generation: d.generation,
            no_address_since: d.no_address_since.as_deref().map(time).transpose()?,
        })
    }

    fn to_json(&self) -> Vec<u8> {
        let d = OnDisk {
            netwarden_list: 1,
            source: self.source.clone(),
            fetched_at: self.fetched_at.to_string(),
            changed_at: self.changed_at.to_string(),
            etag: self.etag.clone(),
            last_modified: self.last_modified.clone(),
            generation: self.generation,
            prefixes: self.prefixes.iter().map(ToString::to_string).collect(),
            no_address_since: self.no_address_since.map(|t| t.to_string()),
        };
        // PANIC SAFETY: strings and integers always serialize.
        serde_json::to_vec(&d).expect("serializable")
    }

    /// Writes the copy to `path` whole or not at all: a temporary file
    /// beside it, synced, then renamed over.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // A name nobody can guess, created anew (O_EXCL, never through a
        // symlink someone placed in state_dir: red-team review).
        let mut nonce = [0u8; 8];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce);
        let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = dir.join(format!(".{name}.{nonce}.tmp"));
        let result = (|| {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .mode(0o640)
                .open(&tmp)?;
            f.write_all(&self.to_json())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            // The rename itself is durable once the directory is synced.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// How old the list is at `now` (from when the publisher last
    /// confirmed it).
    pub fn age(&self, now: Timestamp) -> std::time::Duration {
        now.duration_since(self.fetched_at)
            .try_into()
            .unwrap_or_default()
    }
}

/// The file in `state_dir` that holds network `network`'s copy of
/// `identity` (its URL and format, or its names): a new source never
/// starts from another's copy.
pub fn path_for(state_dir: &Path, network: &str, identity: &str) -> PathBuf {
    let digest = ring::digest::digest(&ring::digest::SHA256, identity.as_bytes());
    let short: String = digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    state_dir.join(format!("{network}.{short}.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy() -> Copy {
        Copy {
            source: "https://example.com/ips".into(),
            prefixes: vec![
                "192.0.2.0/24".parse().expect("net"),
                "2001:db8::/32".parse().expect("net"),
            ],
            fetched_at: "2026-12-07T10:00:00Z".parse().expect("time"),
            changed_at: "2026-12-06T10:00:00Z".parse().expect("time"),
            etag: Some("\"abc\"".into()),
            last_modified: None,
            generation: 3,
            no_address_since: Some("2026-12-07T09:00:00Z".parse().expect("time")),
        }
    }

    #[test]
    fn a_copy_reads_back_as_written_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = path_for(dir.path(), "cloudflare", "https://example.com/ips lines");
        assert!(Copy::read(&path).expect("no error").is_none());
        copy().write(&path).expect("write");
        assert_eq!(Copy::read(&path).expect("read"), Some(copy()));
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn a_symlink_planted_in_state_dir_is_never_written_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim.txt");
        std::fs::write(&victim, b"precious").expect("write");
        let path = dir.path().join("state").join("n.json");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        // The copy itself as a symlink: the rename replaces the link, and
        // the file it pointed to is untouched.
        std::os::unix::fs::symlink(&victim, &path).expect("symlink");
        copy().write(&path).expect("write");
        assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
        assert!(
            !std::fs::symlink_metadata(&path)
                .expect("meta")
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn a_damaged_copy_is_an_error_not_an_empty_list() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.json");
        let mut text = String::from_utf8(copy().to_json()).expect("utf8");
        text.truncate(text.len() - 10);
        std::fs::write(&path, text).expect("write");
        assert!(matches!(Copy::read(&path), Err(CopyError::Invalid { .. })));
    }

    #[test]
    fn another_source_has_another_file() {
        let d = Path::new("/state");
        assert_ne!(
            path_for(d, "n", "https://a/"),
            path_for(d, "n", "https://b/")
        );
        assert_eq!(
            path_for(d, "n", "https://a/"),
            path_for(d, "n", "https://a/")
        );
    }
}
