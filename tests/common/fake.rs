//! A hostile or broken memcached, for the faults no real memcached gives on
//! demand: a dump that drips or never ends, a crawler busy for ever, huge
//! values, TTLs no memcached prints. One thread per connection; each
//! request line goes to the test's handler, which writes what it likes on
//! the stream (for as long as it likes: a write to a client that has gone
//! fails, and the thread ends).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

/// What a handler does after answering.
pub enum Then {
    /// Reads the next request.
    Next,
    /// Closes the connection.
    Close,
}

/// A fake memcached on loopback; its address. `handle(line, stream)`
/// answers each request line; it returns `Ok(None)` to leave the line to
/// [`usual_answer`].
pub fn fake_memcached(
    handle: impl Fn(&str, &mut TcpStream) -> std::io::Result<Option<Then>> + Send + Sync + 'static,
) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a fake memcached");
    let addr = listener.local_addr().expect("its address").to_string();
    let handle = std::sync::Arc::new(handle);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let handle = handle.clone();
            std::thread::spawn(move || {
                let Ok(read) = stream.try_clone() else { return };
                let mut reader = BufReader::new(read);
                let mut line = String::new();
                while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    let then = match handle(&line, &mut stream) {
                        Ok(Some(then)) => then,
                        Ok(None) => match stream.write_all(usual_answer(&line).as_bytes()) {
                            Ok(()) => Then::Next,
                            Err(_) => return,
                        },
                        Err(_) => return, // the client has gone
                    };
                    if let Then::Close = then {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}

/// What memcached 1.6.18 says to the requests a fake leaves alone:
/// `version`, `stats` (no removals), `stats settings`, `mn`; `mgdump` is
/// unknown to it.
pub fn usual_answer(line: &str) -> String {
    let mut words = line.split_whitespace();
    match (words.next().unwrap_or(""), words.next()) {
        ("version", _) => "VERSION 1.6.18\r\n".into(),
        ("stats", Some("settings")) => "STAT item_size_max 1048576\r\nEND\r\n".into(),
        ("stats", _) => "STAT pid 1\r\nSTAT delete_hits 0\r\nEND\r\n".into(),
        ("mn", _) => "MN\r\n".into(),
        _ => "ERROR\r\n".into(),
    }
}

/// The opaque token of a request line (`O…`), to echo.
pub fn opaque(line: &str) -> &str {
    line.split_whitespace().find(|t| t.starts_with('O')).unwrap_or("")
}

/// The key of an `mg` request line.
pub fn mg_key(line: &str) -> &str {
    line.split_whitespace().nth(1).unwrap_or("")
}

/// A metadump line for `key` (plain text, no `%`), claiming `size` bytes.
pub fn dump_line(key: &str, size: usize) -> String {
    format!("key={key} exp=-1 la=1 cas=1 fetch=no cls=1 size={size}\n")
}
