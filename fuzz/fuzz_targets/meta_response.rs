//! The meta response parser on arbitrary bytes: errors, never panics, and
//! every range it reports lies inside the frame.
#![no_main]

use astaire::memcached::proto::parse_meta;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(m)) = parse_meta(data) {
        assert!(m.len <= data.len());
        for r in [m.key, m.value, m.message].into_iter().flatten() {
            assert!(r.start <= r.end && r.end <= m.len);
        }
    }
});
