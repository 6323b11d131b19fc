//! Round trips, net-snmp's own bytes, and malformed input.
use super::*;
use proptest::prelude::*;

fn oid(s: &str) -> Oid {
    s.parse().unwrap()
}

/// A GetNext as net-snmp sends it for `snmpwalk` of the Astaire subtree:
/// little-endian, range end …9.10 (A+1).
fn getnext_le() -> Vec<u8> {
    let mut b = vec![1, 6, 0, 0];
    b.extend_from_slice(&7u32.to_le_bytes()); // session
    b.extend_from_slice(&9u32.to_le_bytes()); // transaction
    b.extend_from_slice(&11u32.to_le_bytes()); // packet
    b.extend_from_slice(&72u32.to_le_bytes()); // payload length: 2 × (4 + 8 × 4)
    let start = [1u32, 2, 826, 0, 1, 1578918, 9, 9];
    let end = [1u32, 2, 826, 0, 1, 1578918, 9, 10];
    b.extend_from_slice(&[8, 0, 1, 0]); // start: 8 subids, include
    start.iter().for_each(|v| b.extend_from_slice(&v.to_le_bytes()));
    b.extend_from_slice(&[8, 0, 0, 0]);
    end.iter().for_each(|v| b.extend_from_slice(&v.to_le_bytes()));
    b
}

#[test]
fn decodes_a_little_endian_getnext() {
    let b = getnext_le();
    assert_eq!(frame_len(&b), Ok(Some(b.len())));
    let pdu = decode(&b).unwrap();
    assert!(!pdu.network_order);
    assert_eq!((pdu.session_id, pdu.transaction_id, pdu.packet_id), (7, 9, 11));
    let Payload::GetNext(ranges) = pdu.payload else { panic!("not a GetNext") };
    assert_eq!(
        ranges,
        vec![SearchRange {
            start: oid("1.2.826.0.1.1578918.9.9"),
            include: true,
            end: oid("1.2.826.0.1.1578918.9.10"),
        }]
    );
}

#[test]
fn partial_frames_ask_for_more_and_bad_headers_are_errors() {
    let b = getnext_le();
    for cut in 0..b.len() {
        assert_eq!(frame_len(&b[..cut]), Ok(None), "cut {cut}");
        assert!(decode(&b[..cut]).is_err());
    }
    let mut bad = b.clone();
    bad[0] = 2;
    assert!(frame_len(&bad).is_err());
    let mut bad = b.clone();
    bad[16] = 63; // not a multiple of 4
    assert!(frame_len(&bad).is_err());
    let mut bad = b.clone();
    bad[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(frame_len(&bad).is_err());
    let mut bad = b;
    bad[1] = 99;
    assert!(frame_len(&bad).is_err());
}

#[test]
fn prefix_compression_and_network_order_response() {
    // sysUpTime.0 is sent with prefix 2: 1.3.6.1.2 + 1.1.3.0
    let pdu = Pdu::new(
        1,
        2,
        3,
        Payload::Response {
            sys_uptime: 0x01020304,
            error: errors::NOT_WRITABLE,
            index: 1,
            varbinds: vec![VarBind { name: oid("1.3.6.1.2.1.1.3.0"), value: Value::Gauge32(5) }],
        },
    );
    let mut b = Vec::new();
    encode(&pdu, &mut b);
    assert_eq!(&b[..4], &[1, 18, flags::NETWORK_BYTE_ORDER, 0]);
    assert_eq!(&b[16..20], &36u32.to_be_bytes(), "8 + varbind (4 + 4 + 16 + 4)");
    assert_eq!(&b[20..28], &[1, 2, 3, 4, 0, 17, 0, 1]);
    assert_eq!(&b[28..32], &[0, 66, 0, 0]);
    assert_eq!(&b[32..36], &[4, 2, 0, 0], "4 subids after prefix 2");
    assert_eq!(decode(&b).unwrap(), pdu);
}

#[test]
fn octet_strings_are_padded_and_may_be_binary() {
    let mut pdu = Pdu::new(1, 0, 0, Payload::Open { timeout: 5, id: Oid(vec![]), descr: vec![0xff, 0, 0xc0] });
    pdu.network_order = false;
    let mut b = Vec::new();
    encode(&pdu, &mut b);
    assert_eq!(b.len(), HEADER_LEN + 4 + 4 + 8);
    assert_eq!(&b[28..36], &[3, 0, 0, 0, 0xff, 0, 0xc0, 0]);
    assert_eq!(decode(&b).unwrap(), pdu);
}

#[test]
fn a_context_travels_with_the_pdus_that_carry_one() {
    let mut pdu = Pdu::new(1, 2, 3, Payload::Get(vec![]));
    pdu.context = Some(b"ctx".to_vec());
    let mut b = Vec::new();
    encode(&pdu, &mut b);
    assert_ne!(b[2] & flags::NON_DEFAULT_CONTEXT, 0);
    assert_eq!(decode(&b).unwrap(), pdu);
}

#[test]
fn leftover_bytes_and_unknown_value_types_are_errors() {
    let mut b = Vec::new();
    encode(&Pdu::new(1, 2, 3, Payload::Ping), &mut b);
    b.extend_from_slice(&[0, 0, 0, 0]);
    b[19] = 4;
    assert!(decode(&b).unwrap_err().what.contains("left over"));
    let mut b = Vec::new();
    encode(&Pdu::new(1, 2, 3, Payload::TestSet(vec![VarBind { name: oid("1.2"), value: Value::Null }])), &mut b);
    b[21] = 99; // varbind type 99
    assert!(decode(&b).unwrap_err().what.contains("unknown varbind type"));
}

fn arb_oid() -> impl Strategy<Value = Oid> {
    prop_oneof![
        prop::collection::vec(any::<u32>(), 0..20).prop_map(Oid),
        (1u32..256, prop::collection::vec(any::<u32>(), 0..10)).prop_map(|(x, rest)| {
            let mut v = vec![1, 3, 6, 1, x];
            v.extend(rest);
            Oid(v)
        }),
    ]
}

fn arb_value() -> impl Strategy<Value = Value> {
    let bytes = || prop::collection::vec(any::<u8>(), 0..20);
    prop_oneof![
        any::<i32>().prop_map(Value::Integer),
        bytes().prop_map(Value::OctetString),
        Just(Value::Null),
        arb_oid().prop_map(Value::ObjectIdentifier),
        bytes().prop_map(Value::IpAddress),
        any::<u32>().prop_map(Value::Counter32),
        any::<u32>().prop_map(Value::Gauge32),
        any::<u32>().prop_map(Value::TimeTicks),
        bytes().prop_map(Value::Opaque),
        any::<u64>().prop_map(Value::Counter64),
        Just(Value::NoSuchObject),
        Just(Value::NoSuchInstance),
        Just(Value::EndOfMibView),
    ]
}

fn arb_varbinds() -> impl Strategy<Value = Vec<VarBind>> {
    prop::collection::vec((arb_oid(), arb_value()).prop_map(|(name, value)| VarBind { name, value }), 0..6)
}

fn arb_ranges() -> impl Strategy<Value = Vec<SearchRange>> {
    prop::collection::vec(
        (arb_oid(), any::<bool>(), arb_oid()).prop_map(|(start, include, end)| SearchRange { start, include, end }),
        0..6,
    )
}

fn arb_payload() -> impl Strategy<Value = Payload> {
    let bytes = || prop::collection::vec(any::<u8>(), 0..20);
    prop_oneof![
        (any::<u8>(), arb_oid(), bytes()).prop_map(|(timeout, id, descr)| Payload::Open { timeout, id, descr }),
        any::<u8>().prop_map(|reason| Payload::Close { reason }),
        (any::<u8>(), any::<u8>(), any::<u8>(), arb_oid(), any::<u32>()).prop_map(|(t, p, r, subtree, b)| {
            Payload::Register { timeout: t, priority: p, range_subid: r, subtree, upper_bound: (r != 0).then_some(b) }
        }),
        (any::<u8>(), any::<u8>(), arb_oid(), any::<u32>()).prop_map(|(p, r, subtree, b)| {
            Payload::Unregister { priority: p, range_subid: r, subtree, upper_bound: (r != 0).then_some(b) }
        }),
        arb_ranges().prop_map(Payload::Get),
        arb_ranges().prop_map(Payload::GetNext),
        (any::<u16>(), any::<u16>(), arb_ranges())
            .prop_map(|(n, m, ranges)| { Payload::GetBulk { non_repeaters: n, max_repetitions: m, ranges } }),
        arb_varbinds().prop_map(Payload::TestSet),
        Just(Payload::CommitSet),
        Just(Payload::UndoSet),
        Just(Payload::CleanupSet),
        arb_varbinds().prop_map(Payload::Notify),
        Just(Payload::Ping),
        arb_varbinds().prop_map(Payload::IndexAllocate),
        arb_varbinds().prop_map(Payload::IndexDeallocate),
        (arb_oid(), bytes()).prop_map(|(id, descr)| Payload::AddAgentCaps { id, descr }),
        arb_oid().prop_map(|id| Payload::RemoveAgentCaps { id }),
        (any::<u32>(), any::<u16>(), any::<u16>(), arb_varbinds())
            .prop_map(|(s, e, i, varbinds)| { Payload::Response { sys_uptime: s, error: e, index: i, varbinds } }),
    ]
}

proptest! {
    #[test]
    fn every_pdu_round_trips_in_both_byte_orders(
        payload in arb_payload(),
        ids in (any::<u32>(), any::<u32>(), any::<u32>()),
        network_order in any::<bool>(),
        context in prop::option::of(prop::collection::vec(any::<u8>(), 0..9)),
        extra_flags in 0u8..8,
    ) {
        let code = payload.type_code();
        let mut pdu = Pdu::new(ids.0, ids.1, ids.2, payload);
        pdu.network_order = network_order;
        pdu.flags = extra_flags;
        pdu.context = context.filter(|_| Payload::has_context(code));
        let mut b = Vec::new();
        encode(&pdu, &mut b);
        prop_assert_eq!(frame_len(&b), Ok(Some(b.len())));
        prop_assert_eq!(decode(&b).unwrap(), pdu);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = frame_len(&bytes);
        let _ = decode(&bytes);
    }

    /// A valid header (so the payload decoders are reached, which
    /// random bytes almost never do) over an arbitrary payload of
    /// mostly small words: plausible lengths, counts and sub-ids.
    #[test]
    fn well_framed_headers_with_arbitrary_payloads_never_panic(
        type_code in 1u8..=18,
        hflags in any::<u8>(),
        ids in any::<[u32; 3]>(),
        words in prop::collection::vec(prop_oneof![0u32..8, 0u32..300, any::<u32>()], 0..64),
    ) {
        let big = hflags & flags::NETWORK_BYTE_ORDER != 0;
        let word = |v: u32| if big { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut b = vec![1, type_code, hflags, 0];
        for v in ids {
            b.extend_from_slice(&word(v));
        }
        let payload: Vec<u8> = words.iter().flat_map(|w| word(*w)).collect();
        b.extend_from_slice(&word(payload.len() as u32));
        b.extend_from_slice(&payload);
        prop_assert_eq!(frame_len(&b), Ok(Some(b.len())), "the header is well framed");
        let _ = decode(&b);
    }

    #[test]
    fn corrupted_pdus_never_panic(payload in arb_payload(), flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let mut b = Vec::new();
        encode(&Pdu::new(1, 2, 3, payload), &mut b);
        for (at, v) in flips {
            let i = at % b.len();
            b[i] = v;
        }
        let _ = decode(&b);
    }
}
