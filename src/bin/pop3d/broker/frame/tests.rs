use super::*;

fn account() -> Account {
    let mut a = Account::new("bob@example.org").with_home("/home/b\u{e9}b");
    a.uid = Some(1234);
    a
}

fn requests() -> Vec<Request> {
    vec![
        Request::Authenticate {
            user: "bob".into(),
            password: b"s3cret \xff pw".to_vec(),
        },
        Request::Open(account()),
        Request::Open(Account::new("x").with_ids(1000, 100)),
        Request::Read { index: u64::MAX },
        Request::Delete { indices: vec![] },
        Request::Delete {
            indices: vec![0, 7, 1 << 40],
        },
        Request::Expire { age_secs: 86_400 },
        Request::Retrieved {
            indices: vec![3, 1],
        },
        Request::ReadTls,
    ]
}

fn replies() -> Vec<Reply> {
    vec![
        Reply::Account(account()),
        Reply::AuthFailed {
            kind: AuthErrorKind::Rejected,
            detail: "bad password".into(),
        },
        Reply::AuthFailed {
            kind: AuthErrorKind::Unavailable,
            detail: String::new(),
        },
        Reply::Opened { count: 3 },
        Reply::Messages(vec![
            MessageInfo {
                size: 0,
                uidl: "a".into(),
            },
            MessageInfo {
                size: u64::MAX,
                uidl: "~".repeat(70),
            },
        ]),
        Reply::Failed {
            kind: StoreErrorKind::InUse,
            detail: "locked".into(),
        },
        Reply::Failed {
            kind: StoreErrorKind::Temporary,
            detail: "disk".into(),
        },
        Reply::Failed {
            kind: StoreErrorKind::Permanent,
            detail: "gone".into(),
        },
        Reply::Reading,
        Reply::Sent { octets: 42 },
        Reply::Deleted,
        Reply::Expired { removed: None },
        Reply::Expired { removed: Some(5) },
        Reply::Recorded,
        Reply::File {
            ranges: vec![0..10, 20..20, 30..1 << 40],
        },
        Reply::TlsFiles {
            cert: b"-----BEGIN CERTIFICATE-----\n".to_vec(),
            key: vec![],
        },
    ]
}

/// The body of a whole frame, after checking its prefix.
fn body(frame: &[u8]) -> &[u8] {
    let n = body_length(frame[..4].try_into().unwrap()).unwrap();
    assert_eq!(n, frame.len() - 4);
    &frame[4..]
}

#[test]
fn every_request_and_reply_survives_the_round_trip() {
    for r in requests() {
        assert_eq!(Request::decode(body(&r.encode())), Ok(r.clone()), "{r:?}");
    }
    for r in replies() {
        assert_eq!(Reply::decode(body(&r.encode())), Ok(r.clone()), "{r:?}");
    }
}

#[test]
fn every_cut_and_every_extra_byte_is_an_error() {
    for r in requests() {
        let frame = r.encode();
        let whole = body(&frame);
        for end in 0..whole.len() {
            assert!(
                Request::decode(&whole[..end]).is_err(),
                "{r:?} cut at {end}"
            );
        }
        let mut longer = whole.to_vec();
        longer.push(0);
        assert!(
            Request::decode(&longer).is_err(),
            "{r:?} with one more byte"
        );
    }
    for r in replies() {
        let frame = r.encode();
        let whole = body(&frame);
        for end in 0..whole.len() {
            assert!(Reply::decode(&whole[..end]).is_err(), "{r:?} cut at {end}");
        }
        let mut longer = whole.to_vec();
        longer.push(0);
        assert!(Reply::decode(&longer).is_err(), "{r:?} with one more byte");
    }
}

#[test]
fn a_frame_length_is_bounded() {
    assert!(body_length([0, 0, 0, 0]).is_err());
    assert_eq!(body_length([0, 0, 0, 1]), Ok(1));
    assert_eq!(body_length((MAX_FRAME as u32).to_be_bytes()), Ok(MAX_FRAME));
    assert!(body_length((MAX_FRAME as u32 + 1).to_be_bytes()).is_err());
    assert!(body_length([0xff; 4]).is_err());
}

#[test]
fn a_uidl_that_could_forge_a_reply_line_is_refused() {
    for uidl in ["", "a b", "a\r\n+OK", "\u{e9}", &"x".repeat(71)] {
        let frame = Reply::Messages(vec![MessageInfo {
            size: 1,
            uidl: uidl.into(),
        }])
        .encode();
        assert!(Reply::decode(&frame[4..]).is_err(), "{uidl:?}");
    }
}

#[test]
fn counts_the_frame_cannot_hold_are_refused_before_allocating() {
    // A Delete claiming four billion indices, in a 5-byte body.
    assert!(Request::decode(&[4, 0xff, 0xff, 0xff, 0xff]).is_err());
    // Messages claiming more entries than fit, or none, or more than a batch.
    assert!(Reply::decode(&[4, 0xff, 0xff, 0xff, 0xff]).is_err());
    assert!(Reply::decode(&[4, 0, 0, 0, 0]).is_err());
    let many = vec![
        MessageInfo {
            size: 1,
            uidl: "u".into()
        };
        BATCH + 1
    ];
    assert!(Reply::decode(&Reply::Messages(many).encode()[4..]).is_err());
}

#[test]
fn unknown_tags_flags_and_kinds_are_errors() {
    assert!(Request::decode(&[0]).is_err());
    assert!(Request::decode(&[9]).is_err());
    assert!(Reply::decode(&[0]).is_err());
    assert!(Reply::decode(&[99]).is_err());
    // AuthFailed and Failed with an unknown kind.
    assert!(Reply::decode(&[2, 7, 0, 0, 0, 0]).is_err());
    assert!(Reply::decode(&[5, 3, 0, 0, 0, 0]).is_err());
    // An account whose home flag is neither 0 nor 1.
    let mut open = Request::Open(Account::new("a")).encode()[4..].to_vec();
    open[6] = 2;
    assert!(Request::decode(&open).is_err());
    // An account without a name.
    assert!(Request::decode(&[2, 0, 0, 0, 0, 0, 0, 0]).is_err());
}

#[test]
fn a_long_detail_is_clipped_at_a_character_boundary() {
    let detail = "\u{e9}".repeat(MAX_FIELD);
    let frame = Reply::Failed {
        kind: StoreErrorKind::Temporary,
        detail,
    }
    .encode();
    match Reply::decode(&frame[4..]) {
        Ok(Reply::Failed { detail, .. }) => {
            assert!(detail.len() <= MAX_FIELD && detail.len() >= MAX_FIELD - 1);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A small deterministic generator: every decoder sees many shapes of garbage.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 40) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|i| (seed.rotate_left(i as u32 * 7) % 11) as u8)
            .collect();
        let _ = Request::decode(&bytes);
        let _ = Reply::decode(&bytes);
    }
}
