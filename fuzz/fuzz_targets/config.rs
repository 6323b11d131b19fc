//! Shell-style configuration parsing (no includes: a path that does not
//! exist) on arbitrary text.
#![no_main]

use astaire::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Config::parse(text, std::path::Path::new("/nonexistent/fuzz/config"));
});
