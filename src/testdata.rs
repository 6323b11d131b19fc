//! Clearwater-style test data, shared by the load generator and the
//! benchmarks: SIP registration keys, values that name their key, the write
//! time (ms, low 32 bits) in the flags, and a mix of TTLs. Not used by the
//! product itself.

use crate::memcached::proto::{self, SetMode, WireKey};

/// Key `i`: a SIP registration, as Clearwater's stores name them.
pub fn key(i: u64) -> Vec<u8> {
    format!("reg\\\\sip:user{i}@example.com").into_bytes()
}

/// A value of `size` bytes that names its key.
pub fn value(i: u64, size: usize) -> Vec<u8> {
    let head = format!("v{i}:");
    head.bytes().chain(std::iter::repeat(b'x')).take(size).collect()
}

/// A third no expiry, a third an hour, a third 40 days (sent absolute, as
/// memcached requires above 30 days).
pub fn ttl(i: u64, now: u64) -> u64 {
    match i % 3 {
        0 => 0,
        1 => 3600,
        _ => now + 40 * 24 * 3600,
    }
}

/// Appends `ms` for item `i` in the given mode, no reply requested for
/// success (`q`) so the stream can be replayed with `nc`.
pub fn push_ms_quiet(out: &mut Vec<u8>, i: u64, size: usize, flags: u32, now: u64, add: bool) {
    let k = key(i);
    let mut line = Vec::new();
    proto::ms(
        &mut line,
        WireKey { bytes: &k, base64: false },
        &value(i, size),
        flags,
        ttl(i, now),
        if add { SetMode::Add } else { SetMode::Set { cas: None } },
        0,
    );
    // `ms <key> <len> F T ME c O0\r\n` → `… ME q\r\n`: quiet, no CAS, no opaque.
    let header_end = line.windows(2).position(|w| w == b"\r\n").unwrap_or(line.len());
    let header = String::from_utf8_lossy(&line[..header_end]).replace(" c O0", " q");
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&line[header_end..]);
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The write time in ms, low 32 bits, as Clearwater clients store it.
pub fn stamp() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u32).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_sets_replay_as_memcached_expects() {
        let mut out = Vec::new();
        push_ms_quiet(&mut out, 7, 5, 9, 1000, true);
        assert_eq!(out, b"ms reg\\\\sip:user7@example.com 5 F9 T3600 ME q\r\nv7:xx\r\n");
    }
}
