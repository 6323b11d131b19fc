//! `astaire migrate-memcached-config`: the file I/O around
//! [`astaire::memcached_config::convert`].

use super::args::MigrateArgs;
use super::output::{self, say};
use astaire::exit::Exit;
use astaire::files::{read_text, MAX_CONFIG_BYTES};
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
            if !kept.exists() {
                if let Err(e) = std::fs::copy(file, &kept) {
                    output::error(format!("cannot keep the original as {}: {e}; nothing was changed", kept.display()));
                    return Exit::Usage;
                }
                eprintln!("astaire: the original is kept as {}", kept.display());
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
