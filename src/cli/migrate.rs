//! `astaire migrate-memcached-config`: the file I/O around
//! [`astaire::memcached_config::convert`].

use super::args::MigrateArgs;
use super::output::{self, say};
use astaire::exit::Exit;
use astaire::files::{not_regular, read_text, MAX_CONFIG_BYTES};
use astaire::memcached_config::{convert, large_pages, Host};
use std::io::Write;
use std::path::Path;

pub fn run(args: MigrateArgs) -> Exit {
    let file = &args.file;
    // A regular text file of at most 1 MiB: the OS's refusal is exit 2,
    // anything else at the path (a FIFO, /dev/zero) is refused as content.
    let text = match read_text(file, MAX_CONFIG_BYTES) {
        Ok(t) => t,
        Err(e) => {
            output::error(&e);
            return if e.is_os_error() { Exit::Usage } else { Exit::BadSettings };
        }
    };
    let converted = match convert(&text, host()) {
        Ok(c) => c,
        Err(e) => {
            output::error(format!("{}: {e}; nothing was changed", file.display()));
            return Exit::BadSettings;
        }
    };
    for change in &converted.changes {
        eprintln!("astaire: {}: {change}", file.display());
    }
    if converted.changes.is_empty() {
        eprintln!("astaire: {}: no engine options: already upstream memcached's", file.display());
    }
    let target = match (&args.output, args.in_place) {
        (Some(out), _) => out.clone(),
        (None, true) => {
            if converted.changes.is_empty() {
                return Exit::Ok;
            }
            let kept = file.with_extension("conf.clearwater");
            match keep_original(file, &kept, text.as_bytes()) {
                Ok(true) => eprintln!("astaire: the original is kept as {}", kept.display()),
                Ok(false) => eprintln!("astaire: {} holds an earlier original; left as it is", kept.display()),
                Err(e) => {
                    output::error(format!("cannot keep the original as {}: {e}; nothing was changed", kept.display()));
                    return Exit::Usage;
                }
            }
            file.clone()
        }
        (None, false) => {
            say!("{}", converted.text.trim_end_matches('\n'));
            return Exit::Ok;
        }
    };
    match write_atomically(&target, converted.text.as_bytes()) {
        Ok(()) => Exit::Ok,
        Err(e) => {
            output::error(format!("cannot write {}: {e}; it was not changed", target.display()));
            Exit::Usage
        }
    }
}

/// Writes `original` (the text of `file` that was converted) to `kept`,
/// once: created exclusively and never through a symlink (`O_CREAT |
/// O_EXCL | O_NOFOLLOW`), so a link planted at the name is refused instead
/// of written through. A regular file already there is an earlier run's
/// original and is left alone (`Ok(false)`).
fn keep_original(file: &Path, kept: &Path, original: &[u8]) -> Result<bool, String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mode = std::fs::metadata(file).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644);
    let created =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).custom_flags(libc::O_NOFOLLOW).open(kept);
    let mut f = match created {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return match std::fs::symlink_metadata(kept) {
                Ok(m) => match not_regular(m.file_type()) {
                    None => Ok(false),
                    Some(kind) => Err(format!("it is {kind}, not a regular file: refusing it")),
                },
                Err(e) => Err(e.to_string()),
            };
        }
        Err(e) => return Err(e.to_string()),
    };
    // A half-written original would pass for a whole one next time.
    f.write_all(original).and_then(|()| f.sync_all()).map(|()| true).map_err(|e| {
        let _ = std::fs::remove_file(kept);
        e.to_string()
    })
}

/// This machine, as memcached would find it: its transparent huge pages
/// setting, where memcached 1.6.18 looks for it.
fn host() -> Host {
    let paths = ["/sys/kernel/mm/transparent_hugepage/enabled", "/sys/kernel/mm/redhat_transparent_hugepage/enabled"];
    let thp = paths.iter().find_map(|p| read_text(Path::new(p), 4096).ok());
    Host { large_pages: large_pages(thp.as_deref()) }
}

/// Writes `bytes` beside `path`, then renames it into place: a reader sees
/// the old file or the new one, never half of it. Keeps the mode of a
/// file it replaces.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.astaire-{}", std::process::id()));
    let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
