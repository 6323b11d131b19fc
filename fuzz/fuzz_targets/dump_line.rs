//! metadump and mgdump line parsing and key decoding on arbitrary bytes.
#![no_main]

use astaire::memcached::dump::{decode_dump_key, parse_dump_line, DumpLine, DumpMode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for mode in [DumpMode::Metadump, DumpMode::Mgdump] {
        if let Ok(Some((line, len))) = parse_dump_line(data, mode) {
            assert!(len <= data.len());
            if let DumpLine::Key { key, encoding, .. } = line {
                let mut out = Vec::new();
                let _ = decode_dump_key(&data[key], encoding, &mut out);
            }
        }
    }
});
