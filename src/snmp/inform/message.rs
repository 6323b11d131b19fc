//! The RFC 3877 alarm INFORM as an SNMPv2c message, encoded and its
//! acknowledgement decoded with rasn / rasn-snmp (BER).
// Reads network or file input: no panicking access outside tests (issue 7).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::alarm::Notification;
use rasn::types::{Integer, ObjectIdentifier, OctetString};
use rasn_smi::v1::TimeTicks;
use rasn_snmp::v2::{InformRequest, ObjectSyntax, Pdu, Pdus, VarBind, VarBindValue};
use rasn_snmp::v2c::Message;

pub const SYS_UPTIME: [u32; 9] = [1, 3, 6, 1, 2, 1, 1, 3, 0];
pub const SNMP_TRAP_OID: [u32; 11] = [1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0];
pub const ALARM_ACTIVE_STATE: [u32; 9] = [1, 3, 6, 1, 2, 1, 118, 0, 2];
pub const ALARM_CLEAR_STATE: [u32; 9] = [1, 3, 6, 1, 2, 1, 118, 0, 3];
/// alarmActiveModelPointer.0
pub const ALARM_ACTIVE_MODEL_POINTER: [u32; 13] = [1, 3, 6, 1, 2, 1, 118, 1, 2, 2, 1, 13, 0];
pub const ALARM_MODEL_STATE: [u32; 13] = [1, 3, 6, 1, 2, 1, 118, 1, 1, 2, 1, 3, 0];
/// alarmActiveResourceId.0
pub const ALARM_ACTIVE_RESOURCE_ID: [u32; 13] = [1, 3, 6, 1, 2, 1, 118, 1, 2, 2, 1, 10, 0];

/// One of the constant OIDs above (all valid: they start 1.3.6.1 or are 0.0).
fn oid(arcs: &[u32]) -> ObjectIdentifier {
    ObjectIdentifier::new_unchecked(arcs.to_vec().into())
}

fn oid_value(arcs: &[u32]) -> VarBindValue {
    VarBindValue::Value(ObjectSyntax::Simple(rasn_smi::v2::SimpleSyntax::ObjectId(oid(arcs))))
}

/// The four varbinds of the alarm, in order.
pub fn varbinds(n: &Notification, uptime_centis: u32) -> Vec<VarBind> {
    let trap = if n.raised { &ALARM_ACTIVE_STATE } else { &ALARM_CLEAR_STATE };
    let mut model = ALARM_MODEL_STATE.to_vec();
    model.extend_from_slice(&[n.index, n.model_state()]);
    vec![
        VarBind {
            name: oid(&SYS_UPTIME),
            value: VarBindValue::Value(ObjectSyntax::ApplicationWide(rasn_smi::v2::ApplicationSyntax::Ticks(
                TimeTicks(uptime_centis),
            ))),
        },
        VarBind { name: oid(&SNMP_TRAP_OID), value: oid_value(trap) },
        VarBind { name: oid(&ALARM_ACTIVE_MODEL_POINTER), value: oid_value(&model) },
        VarBind { name: oid(&ALARM_ACTIVE_RESOURCE_ID), value: oid_value(&[0, 0]) },
    ]
}

/// `SEQ{1, community, InformRequest{request_id, 0, 0, varbinds}}` in BER.
pub fn encode_inform(
    community: &[u8],
    request_id: i32,
    uptime_centis: u32,
    n: &Notification,
) -> Result<Vec<u8>, rasn::error::EncodeError> {
    let message = Message {
        version: Integer::from(1),
        community: OctetString::from(community.to_vec()),
        data: Pdus::InformRequest(InformRequest(Pdu {
            request_id,
            error_status: Pdu::ERROR_STATUS_NO_ERROR,
            error_index: 0,
            variable_bindings: varbinds(n, uptime_centis),
        })),
    };
    rasn::ber::encode(&message)
}

/// The fields of an acknowledgement that decide whether it is ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub version: i64,
    pub community: Vec<u8>,
    pub request_id: i32,
    pub error_status: u32,
}

/// Decodes a Response PDU; anything else (or garbage) is `None`.
pub fn decode_ack(bytes: &[u8]) -> Option<Ack> {
    let message: Message<Pdus> = rasn::ber::decode(bytes).ok()?;
    let Pdus::Response(response) = message.data else {
        return None;
    };
    Some(Ack {
        version: i64::try_from(&message.version).ok()?,
        community: message.community.to_vec(),
        request_id: response.0.request_id,
        error_status: response.0.error_status,
    })
}

/// Whether `ack` acknowledges our INFORM `request_id` sent with `community`:
/// a Response with an error (say `tooBig` or `genErr`) means the receiver
/// did not take the notification, so it is no acknowledgement.
pub fn acknowledges(ack: &Ack, community: &[u8], request_id: i32) -> bool {
    ack.version == 1 && ack.community == community && ack.request_id == request_id && ack.error_status == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snmp::inform::alarm::RESYNC_ALARM_INDEX;

    #[test]
    fn raise_round_trips_and_matches_the_spec_layout() {
        let n = Notification { index: RESYNC_ALARM_INDEX, raised: true };
        let bytes = encode_inform(b"clearwater", 1234, 4200, &n).unwrap();
        assert_eq!(&bytes[..2], &[0x30, bytes.len() as u8 - 2], "one short SEQUENCE");
        let decoded: Message<Pdus> = rasn::ber::decode(&bytes).unwrap();
        assert_eq!(decoded.community.as_ref(), b"clearwater");
        let Pdus::InformRequest(InformRequest(pdu)) = decoded.data else { panic!("not an InformRequest") };
        assert_eq!(pdu.request_id, 1234);
        let names: Vec<String> = pdu.variable_bindings.iter().map(|v| v.name.to_string()).collect();
        assert_eq!(
            names,
            [
                "1.3.6.1.2.1.1.3.0",
                "1.3.6.1.6.3.1.1.4.1.0",
                "1.3.6.1.2.1.118.1.2.2.1.13.0",
                "1.3.6.1.2.1.118.1.2.2.1.10.0"
            ]
        );
        assert_eq!(pdu.variable_bindings[2].value, oid_value(&[1, 3, 6, 1, 2, 1, 118, 1, 1, 2, 1, 3, 0, 5501, 4]));
    }

    #[test]
    fn only_a_matching_response_acknowledges() {
        let response = |version: i64, community: &[u8], id: i32| {
            rasn::ber::encode(&Message {
                version: Integer::from(version),
                community: OctetString::from(community.to_vec()),
                data: Pdus::Response(rasn_snmp::v2::Response(Pdu {
                    request_id: id,
                    error_status: 0,
                    error_index: 0,
                    variable_bindings: vec![],
                })),
            })
            .unwrap()
        };
        let ok = decode_ack(&response(1, b"clearwater", 7)).unwrap();
        assert!(acknowledges(&ok, b"clearwater", 7));
        assert!(!acknowledges(&ok, b"clearwater", 8), "other request-id");
        assert!(!acknowledges(&decode_ack(&response(1, b"public", 7)).unwrap(), b"clearwater", 7));
        assert!(!acknowledges(&decode_ack(&response(0, b"clearwater", 7)).unwrap(), b"clearwater", 7));
        let inform = encode_inform(b"clearwater", 7, 0, &Notification { index: 5501, raised: false }).unwrap();
        assert_eq!(decode_ack(&inform), None, "an INFORM is not an acknowledgement");
        assert_eq!(decode_ack(b"\x30\x03garbage"), None);
        assert_eq!(decode_ack(&[]), None);
    }
}
