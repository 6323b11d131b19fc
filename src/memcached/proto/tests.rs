//! Parsing every answer form, keys both ways, and random or corrupted input.
use super::*;

#[test]
fn printable_keys_cannot_forge_lines_or_drive_terminals() {
    assert_eq!(printable(b"reg\\\\sip:a@b"), "reg\\\\sip:a@b");
    assert_eq!(printable(b"k\n2026 INFO forged\x1b[31m"), "k\\x0a2026 INFO forged\\x1b[31m");
    assert_eq!(printable("é".as_bytes()), "\\xc3\\xa9");
    assert!(printable(&(0u8..=255).collect::<Vec<_>>()).chars().all(|c| (' '..='~').contains(&c)));
}

fn one(buf: &[u8]) -> Meta {
    parse_meta(buf).unwrap().unwrap()
}

#[test]
fn numbers_parse_in_range_and_nothing_else() {
    let m = one(b"HD f4294967295 t-1 c18446744073709551615\r\n");
    assert_eq!((m.flags, m.ttl, m.cas), (Some(u32::MAX), Some(-1), Some(u64::MAX)));
    for bad in [&b"HD f4294967296\r\n"[..], b"HD f-1\r\n", b"HD f\r\n", b"HD f1a\r\n", b"HD f+1\r\n", b"HD t-\r\n"] {
        assert!(parse_meta(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn value_with_flags_ttl_and_cas() {
    let buf = b"VA 2 f5 t-1 c17\r\nhi\r\nEN\r\n";
    let m = one(buf);
    assert_eq!(m.status, Status::Value);
    assert_eq!((m.flags, m.ttl, m.cas), (Some(5), Some(-1), Some(17)));
    assert_eq!(&buf[m.value.unwrap().range()], b"hi");
    assert_eq!(m.len, 21);
    assert_eq!(one(&buf[m.len..]).status, Status::Miss);
}

#[test]
fn partial_frames_ask_for_more() {
    let buf = b"VA 10 f1\r\n0123456789\r\n";
    for cut in 0..buf.len() {
        assert_eq!(parse_meta(&buf[..cut]).unwrap(), None, "cut at {cut}");
    }
    assert!(parse_meta(buf).unwrap().is_some());
}

#[test]
fn echoed_key_and_base64() {
    let buf = b"HD kZm9v b\r\n";
    let m = one(buf);
    assert_eq!(&buf[m.key.unwrap().range()], b"Zm9v");
    assert!(m.base64);
}

#[test]
fn status_codes() {
    for (text, status) in [
        (&b"HD c9\r\n"[..], Status::Stored),
        (b"NS c0\r\n", Status::NotStored),
        (b"EX\r\n", Status::Exists),
        (b"NF\r\n", Status::NotFound),
        (b"MN\r\n", Status::Noop),
        (b"SERVER_ERROR out of memory storing object\r\n", Status::ServerError),
        (b"CLIENT_ERROR bad token in command line format\r\n", Status::ClientError),
    ] {
        assert_eq!(one(text).status, status);
    }
    let buf = b"SERVER_ERROR object too large for cache\r\n";
    assert_eq!(&buf[one(buf).message.unwrap().range()], b"object too large for cache");
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for bad in [
        &b"XX\r\n"[..],
        b"VA\r\n",
        b"VA x\r\n",
        b"VA 2 fzz\r\nhi\r\n",
        b"VA 2\r\nhiXX",
        b"VA 99999999999\r\n",
        b"ERROR\r\n",
        b"ERRORS\r\n",
    ] {
        assert!(parse_meta(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
    assert_eq!(parse_meta(&[b'a'; MAX_LINE + 1]), Err(ProtoError::LineTooLong));
}

#[test]
fn keys_choose_their_wire_form() {
    let mut out = Vec::new();
    assert_eq!(encode_key("clé".as_bytes(), &mut out), Ok(false));
    out.clear();
    assert_eq!(encode_key(b"a key", &mut out), Ok(true));
    assert_eq!(out, b"YSBrZXk=");
    assert_eq!(decode_key(WireKey { bytes: &out, base64: true }), b"a key");
    assert!(encode_key(&[b'k'; 250], &mut Vec::new()).is_ok());
    assert!(encode_key(&[b'k'; 251], &mut Vec::new()).is_err());
    assert!(encode_key(&[b' '; 186], &mut Vec::new()).is_ok());
    assert!(encode_key(&[b' '; 187], &mut Vec::new()).is_err());
    assert!(encode_key(b"", &mut Vec::new()).is_err());
    // A control byte goes as base64 while it fits, raw when it does not.
    assert_eq!(encode_key(b"tab\tkey", &mut Vec::new()), Ok(true));
    assert_eq!(encode_key(&[1u8; 200], &mut Vec::new()), Ok(false));
}

#[test]
fn requests_are_byte_exact() {
    let key = WireKey { bytes: b"k", base64: false };
    let b64 = WireKey { bytes: b"YSBr", base64: true };
    let mut out = Vec::new();
    mg(&mut out, b64, "f t v u", 0);
    ms(&mut out, key, b"hi", 7, 0, SetMode::Add, 1);
    ms(&mut out, key, b"", 7, 30, SetMode::Set { cas: Some(5) }, 2);
    ms(&mut out, b64, b"x", 0, 0, SetMode::Add, 3);
    md(&mut out, key, Some(9), 4);
    mn(&mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "mg YSBr b f t v u O0\r\nms k 2 F7 T0 ME c O1\r\nhi\r\nms k 0 F7 T30 MS c C5 O2\r\n\r\nms YSBr 1 b F0 T0 ME c O3\r\nx\r\nmd k C9 O4\r\nmn\r\n"
    );
}

mod properties {
    use super::super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_meta(&b);
        }

        /// Every strict prefix of an answer is "need more", never an
        /// error; the whole answer parses to its parts.
        #[test]
        fn an_answer_is_incomplete_until_its_last_byte(
            value in prop::collection::vec(any::<u8>(), 0..200),
            flags in any::<u32>(),
            opaque in any::<u32>(),
            ttl in -1i64..100_000,
        ) {
            let mut frame = format!("VA {} f{flags} t{ttl} O{opaque}\r\n", value.len()).into_bytes();
            frame.extend_from_slice(&value);
            frame.extend_from_slice(b"\r\n");
            for cut in 0..frame.len() {
                prop_assert_eq!(parse_meta(&frame[..cut]), Ok(None), "cut at {}", cut);
            }
            let m = parse_meta(&frame).unwrap().unwrap();
            prop_assert_eq!((m.status, m.len, m.flags, m.ttl, m.opaque), (Status::Value, frame.len(), Some(flags), Some(ttl), Some(opaque)));
            prop_assert_eq!(&frame[m.value.unwrap().range()], &value[..]);
        }

        /// The one-pass header reading and the general one read every
        /// answer alike: lines built from the tokens memcached prints and
        /// from ones it does not (odd spacing, signs, numbers past their
        /// type, keys, unknown flags, error lines), with a value or not.
        #[test]
        fn the_fast_header_reading_agrees_with_the_general_one(
            code in prop::sample::select(vec!["VA", "HD", "EN", "NS", "EX", "NF", "MN", "SERVER_ERROR", "CLIENT_ERROR", "ERROR", "XX", "H", "VAX", ""]),
            tokens in prop::collection::vec(prop_oneof![
                (prop::sample::select(vec!["f", "t", "c", "O", "s", "k", "b", "W", ""]), prop_oneof![
                    any::<u64>().prop_map(|n| n.to_string()),
                    (0u64..5000).prop_map(|n| n.to_string()),
                    (0u64..5000).prop_map(|n| format!("-{n}")),
                    Just(String::new()),
                    Just("4294967296".to_owned()),
                    Just("9223372036854775808".to_owned()),
                    Just("99999999999999999999".to_owned()),
                    Just("1x".to_owned()),
                    Just("reg\\\\sip:a@b".to_owned()),
                ]).prop_map(|(f, v)| format!("{f}{v}")),
            ], 0..6),
            size in prop_oneof![Just(None), (0usize..40).prop_map(Some), Just(Some(MAX_VALUE + 1))],
            spaces in prop::collection::vec(prop::sample::select(vec![" ", " ", " ", "  ", ""]), 8),
            value_fits in any::<bool>(),
            max_value in prop_oneof![Just(MAX_VALUE), 0usize..30],
        ) {
            let mut line = code.to_owned();
            if let Some(n) = size {
                line.push_str(spaces[7]);
                line.push_str(&n.to_string());
            }
            for (i, t) in tokens.iter().enumerate() {
                line.push_str(spaces[i]);
                line.push_str(t);
            }
            let mut frame = format!("{line}\r\n").into_bytes();
            let n = size.unwrap_or(0).min(40);
            frame.extend(std::iter::repeat_n(b'v', if value_fits { n } else { n + 1 }));
            frame.extend_from_slice(b"\r\n");
            prop_assert_eq!(parse_meta_by(&frame, max_value, true), parse_meta_by(&frame, max_value, false), "{:?}", line);
        }

        /// The same, for answers shaped as memcached prints them (the ones
        /// the one-pass reading takes), with every number it may carry.
        #[test]
        fn the_fast_header_reading_agrees_with_the_general_one_on_real_answers(
            code in prop::sample::select(vec!["VA", "HD", "EN", "NS", "EX", "NF", "MN"]),
            tokens in prop::collection::vec((prop::sample::select(vec!['f', 't', 'c', 'O']), any::<i64>()), 0..5),
            size in 0usize..40,
            cut in any::<usize>(),
        ) {
            let mut line = code.to_owned();
            if code == "VA" {
                line.push_str(&format!(" {size}"));
            }
            for (flag, n) in &tokens {
                line.push_str(&format!(" {flag}{}", if *flag == 't' { *n } else { n.unsigned_abs() as i64 }));
            }
            let mut frame = format!("{line}\r\n").into_bytes();
            if code == "VA" {
                frame.extend(std::iter::repeat_n(b'v', size));
                frame.extend_from_slice(b"\r\n");
            }
            let fast = parse_meta_by(&frame, MAX_VALUE, true);
            prop_assert_eq!(&fast, &parse_meta_by(&frame, MAX_VALUE, false), "{:?}", line);
            let cut = cut % (frame.len() + 1);
            prop_assert_eq!(parse_meta_by(&frame[..cut], MAX_VALUE, true), parse_meta_by(&frame[..cut], MAX_VALUE, false));
        }

        /// Bytes changed, and the frame cut anywhere (a corrupted answer
        /// may also be a short one).
        #[test]
        fn corrupted_answers_never_panic(
            value in prop::collection::vec(any::<u8>(), 0..50),
            flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            cut in any::<usize>(),
        ) {
            let mut frame = format!("VA {} f1 t-1 O7\r\n", value.len()).into_bytes();
            frame.extend_from_slice(&value);
            frame.extend_from_slice(b"\r\n");
            for (at, v) in flips {
                let i = at % frame.len();
                frame[i] = v;
            }
            let _ = parse_meta(&frame);
            let _ = parse_meta(&frame[..cut % (frame.len() + 1)]);
        }
    }
}

#[test]
fn a_span_is_a_range_of_the_frame_in_32_bits() {
    let span = Span::new(3..8).unwrap();
    assert_eq!(span.of(b"0123456789"), Some(&b"34567"[..]));
    assert_eq!(span.range(), 3..8);
    assert_eq!(span.of(b"0123"), None, "past the frame: nothing, not a panic");
    assert_eq!(Span::new(0..(1usize << 32)), None, "past 32 bits");
    assert!(std::mem::size_of::<Meta>() <= 128, "a Meta is moved inline, not by a memcpy call");
}

/// The wide check against the portable one: every byte value at every
/// position of keys of every length up to 80 (past the 64 the wide one
/// takes).
#[test]
fn a_key_is_plain_by_either_check_alike() {
    for len in 0..=80usize {
        let base: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        assert!(plain(&base) && plain_portable(&base), "{len}");
        for at in 0..len {
            for byte in 0..=255u8 {
                let mut key = base.clone();
                key[at] = byte;
                assert_eq!(plain(&key), plain_portable(&key), "byte {byte:#x} at {at} of {len}");
                assert_eq!(plain(&key), byte > b' ' && byte != 0x7f, "byte {byte:#x} at {at} of {len}");
            }
        }
    }
}
