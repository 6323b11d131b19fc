//! The AgentX decoder on arbitrary bytes: it may reject them, never panic;
//! whatever it accepts must encode back to a PDU that decodes the same.
#![no_main]

use astaire::snmp::agentx::pdu::{decode, encode, frame_len};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = frame_len(data);
    if let Ok(pdu) = decode(data) {
        let mut out = Vec::new();
        encode(&pdu, &mut out);
        assert_eq!(decode(&out).as_ref(), Ok(&pdu), "re-encoding changed the PDU");
    }
});
