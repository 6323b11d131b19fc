//! Opening the files someone else can put in our way: the configuration
//! we read (`cluster_settings`, `/etc/clearwater/config` and what it
//! includes, a memcached configuration to convert) and the files the
//! daemon writes (its pidfile and logs).
//!
//! Configuration is read through symlinks (a Clearwater node links its
//! files, a Kubernetes ConfigMap is `..data/` links), but only from a
//! regular file: a FIFO blocks its reader until a writer comes, a device
//! such as `/dev/zero` never ends, and opening some devices does something
//! (a watchdog starts counting). So the path is looked at before it is
//! opened, opened non-blocking, looked at again on the open file (the path
//! may have been swapped in between), and read up to a cap with an error
//! naming the file. Our own files are never opened through a symlink
//! (`O_NOFOLLOW`), never wait on a FIFO (`O_NONBLOCK`), and must be
//! regular files.
//!
//! std's `OpenOptionsExt::custom_flags` and `Metadata` are all this needs;
//! no crate offers the combination (regular file only, non-blocking open,
//! a size cap, errors naming the path), and it is short.
// Reads file input: no panicking access outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::fs::{File, FileType, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The most a configuration file may hold. The largest real ones are a few
/// KiB: Clearwater's `/etc/clearwater/config` with its includes, a
/// `memcached_11211.conf`, and a `cluster_settings` of 128 servers (about
/// 5 KiB; 66 KiB if every entry were a 253-character host name in both
/// lists). 1 MiB is fifteen times that worst case, and reading and parsing
/// it takes milliseconds and a few MiB.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Why a file was not read or opened.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The OS refused (missing, permissions, out of file descriptors, an
    /// I/O error): nothing is known about what the file holds.
    #[error("cannot {action} {}: {source}", path.display())]
    Os { path: PathBuf, action: &'static str, source: io::Error },
    /// The path leads to something other than a regular file.
    #[error("{} is {kind}, not a regular file: refusing it", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    /// Larger than any such file can be.
    #[error("{} is larger than {}, far more than any configuration file: refusing to read it", path.display(), size_text(*.limit))]
    TooLarge { path: PathBuf, limit: u64 },
    /// Not text.
    #[error("{} is not UTF-8 text (byte {at})", path.display())]
    NotText { path: PathBuf, at: usize },
}

impl FileError {
    /// Whether the OS refused the operation, as opposed to the path
    /// holding something that is refused.
    pub fn is_os_error(&self) -> bool {
        matches!(self, FileError::Os { .. })
    }

    pub fn path(&self) -> &Path {
        match self {
            FileError::Os { path, .. }
            | FileError::NotRegular { path, .. }
            | FileError::TooLarge { path, .. }
            | FileError::NotText { path, .. } => path,
        }
    }
}

/// `1 MiB`, `64 KiB`, `100 bytes`.
fn size_text(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// What a file of this type is, for an error; `None` for a regular file.
pub fn not_regular(file_type: FileType) -> Option<&'static str> {
    Some(match file_type {
        t if t.is_file() => return None,
        t if t.is_fifo() => "a FIFO",
        t if t.is_char_device() => "a character device",
        t if t.is_block_device() => "a block device",
        t if t.is_dir() => "a directory",
        t if t.is_socket() => "a socket",
        t if t.is_symlink() => "a symlink",
        _ => "of an unknown type",
    })
}

/// Whether `meta` is the null device, `/dev/null` wherever it is linked
/// from: empty to its readers, and `--config /dev/null` is how a node
/// without a configuration says so.
fn is_null_device(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == libc::makedev(1, 3)
}

/// Reads the text of a configuration file, following symlinks to a
/// regular file of at most `limit` bytes (or to `/dev/null`).
pub fn read_text(path: &Path, limit: u64) -> Result<String, FileError> {
    let os = |source| FileError::Os { path: path.to_owned(), action: "read", source };
    let check = |meta: &Metadata| match not_regular(meta.file_type()) {
        _ if is_null_device(meta) => Ok(()),
        Some(kind) => Err(FileError::NotRegular { path: path.to_owned(), kind }),
        None if meta.len() > limit => Err(FileError::TooLarge { path: path.to_owned(), limit }),
        None => Ok(()),
    };
    // Before opening: opening a device can itself do something.
    check(&std::fs::metadata(path).map_err(os)?)?;
    // Non-blocking: if a FIFO was swapped in since, the open returns at
    // once and the check below refuses it. (Reads of a regular file
    // ignore the flag.)
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path).map_err(os)?;
    let meta = file.metadata().map_err(os)?;
    check(&meta)?;
    // The cap holds even for a file that grows while it is read.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes).map_err(os)?;
    if bytes.len() as u64 > limit {
        return Err(FileError::TooLarge { path: path.to_owned(), limit });
    }
    String::from_utf8(bytes).map_err(|e| FileError::NotText { path: path.to_owned(), at: e.utf8_error().valid_up_to() })
}

/// How [`open_own`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writing {
    /// Each write at the end (logs).
    Append,
    /// Written from the start by the caller, not truncated at open (a
    /// pidfile, truncated once it is locked).
    InPlace,
}

/// Opens (creating with `mode` when missing) one of our own files for
/// writing: never through a symlink, never waiting on a FIFO, and only a
/// regular file.
pub fn open_own(path: &Path, writing: Writing, mode: u32) -> Result<File, FileError> {
    let os = |source| FileError::Os { path: path.to_owned(), action: "open", source };
    let refuse = |kind| FileError::NotRegular { path: path.to_owned(), kind };
    // What is there now, for a clear refusal; the checks on the open file
    // below are the ones that count.
    match std::fs::symlink_metadata(path).map(|m| not_regular(m.file_type())) {
        Ok(Some(kind)) => return Err(refuse(kind)),
        Ok(None) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(os(e)),
    }
    let file = OpenOptions::new()
        .write(true)
        .append(writing == Writing::Append)
        .create(true)
        .truncate(false)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            // A symlink (ELOOP) or a FIFO nobody reads (ENXIO) swapped in
            // since the look above.
            Some(libc::ELOOP | libc::ENXIO) => {
                match std::fs::symlink_metadata(path).ok().and_then(|m| not_regular(m.file_type())) {
                    Some(kind) => refuse(kind),
                    None => os(e),
                }
            }
            _ => os(e),
        })?;
    match not_regular(file.metadata().map_err(os)?.file_type()) {
        Some(kind) => Err(refuse(kind)),
        None => Ok(file),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn fifo(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        path
    }

    #[test]
    fn every_kind_of_non_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("socket");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        let kind = |p: &Path| not_regular(std::fs::symlink_metadata(p).unwrap().file_type());
        assert_eq!(kind(&fifo(dir.path(), "fifo")), Some("a FIFO"));
        assert_eq!(kind(Path::new("/dev/zero")), Some("a character device"));
        assert_eq!(kind(dir.path()), Some("a directory"));
        assert_eq!(kind(&socket), Some("a socket"));
        assert_eq!(kind(&link), Some("a symlink"));
        std::fs::write(dir.path().join("file"), "x").unwrap();
        assert_eq!(kind(&dir.path().join("file")), None);
    }

    #[test]
    fn a_regular_file_is_read_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config");
        std::fs::write(&file, "servers=a:1\n").unwrap();
        // As a ConfigMap mounts it: the name leads through `..data`.
        std::os::unix::fs::symlink(dir.path(), dir.path().join("..data")).unwrap();
        let link = dir.path().join("cluster_settings");
        std::os::unix::fs::symlink("..data/config", &link).unwrap();
        assert_eq!(read_text(&link, MAX_CONFIG_BYTES).unwrap(), "servers=a:1\n");
        // The null device is the empty file it reads as, through a link too.
        let null = dir.path().join("null");
        std::os::unix::fs::symlink("/dev/null", &null).unwrap();
        assert_eq!(read_text(&null, MAX_CONFIG_BYTES).unwrap(), "");
    }

    #[test]
    fn what_is_not_a_small_text_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = fifo(dir.path(), "fifo");
        let to_zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &to_zero).unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'#'; 1025]).unwrap();
        let binary = dir.path().join("binary");
        std::fs::write(&binary, b"ab\xff").unwrap();
        let err = |p: &Path| read_text(p, 1024).unwrap_err().to_string();
        assert_eq!(err(&fifo), format!("{} is a FIFO, not a regular file: refusing it", fifo.display()));
        assert_eq!(
            err(&to_zero),
            format!("{} is a character device, not a regular file: refusing it", to_zero.display())
        );
        assert!(err(dir.path()).ends_with("is a directory, not a regular file: refusing it"));
        assert_eq!(
            err(&big),
            format!(
                "{} is larger than 1 KiB, far more than any configuration file: refusing to read it",
                big.display()
            )
        );
        assert_eq!(err(&binary), format!("{} is not UTF-8 text (byte 2)", binary.display()));
        let missing = read_text(&dir.path().join("missing"), 1024).unwrap_err();
        assert!(missing.is_os_error());
        assert!(missing
            .to_string()
            .starts_with(&format!("cannot read {}/missing: No such file", dir.path().display())));
        assert!(!read_text(&fifo, 1024).unwrap_err().is_os_error());
    }

    #[test]
    fn sizes_read_as_an_operator_writes_them() {
        assert_eq!(size_text(1 << 20), "1 MiB");
        assert_eq!(size_text(3 << 10), "3 KiB");
        assert_eq!(size_text(1000), "1000 bytes");
    }

    #[test]
    fn our_files_are_opened_only_as_regular_files_of_our_own() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, "precious").unwrap();
        let link = dir.path().join("log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let fifo = fifo(dir.path(), "pid");
        let err = |p: &Path| open_own(p, Writing::Append, 0o640).unwrap_err().to_string();
        assert!(err(&link).ends_with("log is a symlink, not a regular file: refusing it"), "{}", err(&link));
        assert!(err(&fifo).ends_with("pid is a FIFO, not a regular file: refusing it"));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious", "never written through");
        // A FIFO someone reads: the open succeeds at once, the file is refused.
        let reader = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&fifo).unwrap();
        assert!(err(&fifo).ends_with("pid is a FIFO, not a regular file: refusing it"));
        drop(reader);
        let new = dir.path().join("new");
        let mut f = open_own(&new, Writing::Append, 0o640).unwrap();
        f.write_all(b"one\n").unwrap();
        let mut f = open_own(&new, Writing::Append, 0o640).unwrap();
        f.write_all(b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&new).unwrap(), "one\ntwo\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&new).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode & !0o640, 0, "created at most 0640: {mode:o}");
    }
}
