//! cluster_settings parsing, then the view and every work list of a valid
//! file: errors for bad input, never panics.
#![no_main]

use astaire::view::{ClusterSettings, View};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(settings) = ClusterSettings::parse(text, std::path::Path::new("fuzz")) {
        let view = View::new(&settings);
        for name in settings.servers.iter().chain(settings.new_servers.iter().flatten()).take(8) {
            let _ = view.work_list(name, false);
            let _ = view.work_list(name, true);
        }
    }
});
