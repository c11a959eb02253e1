//! Property tests of the parser (proptest): arbitrary bytes and command-like lines.
//!
//! CI runs the proptest default of 256 cases per property. A long run:
//!
//!     PROPTEST_CASES=100000 cargo test --release --lib command_props

use super::command::{parse, Command};
use proptest::prelude::*;

/// Longest reply line, CRLF included (RFC 2449 §4): an error text must fit in one.
const MAX_REPLY: usize = 512;

/// Lines that look like commands more often than uniform bytes would.
fn command_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    let keyword = prop::sample::select(vec![
        "USER", "PASS", "QUIT", "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL",
        "CAPA", "user", "tOp", "STLS", "AUTH", "APOP", "UTF8", "LANG", "X",
    ]);
    let arg = prop_oneof![
        (0u64..10).prop_map(|n| n.to_string()),
        Just("4294967295".to_string()),
        Just("4294967296".to_string()),
        Just("0".to_string()),
        Just("007".to_string()),
        Just("-1".to_string()),
        Just("+1".to_string()),
        Just("".to_string()),
        prop::collection::vec(prop::sample::select(b"az.@/% ".to_vec()), 0..12)
            .prop_map(|b| String::from_utf8(b).expect("ASCII")),
    ];
    (
        keyword,
        prop::collection::vec((1usize..3, arg), 0..4),
        0usize..3,
    )
        .prop_map(|(kw, args, trailing)| {
            let mut line = kw.as_bytes().to_vec();
            for (spaces, a) in args {
                line.extend(std::iter::repeat_n(b' ', spaces));
                line.extend_from_slice(a.as_bytes());
            }
            line.extend(std::iter::repeat_n(b' ', trailing));
            line
        })
}

/// Checks what the parser made of `line`: an error is one safe, short line; a command agrees
/// with the bytes it came from.
fn check_parse(line: &[u8]) -> Result<(), TestCaseError> {
    match parse(line) {
        Err(e) => {
            let text = e.message();
            prop_assert!(!text.is_empty());
            prop_assert!(
                text.bytes().all(|b| (0x20..0x7f).contains(&b)),
                "unprintable error text {text:?}"
            );
            // "-ERR " + text must fit in a reply line with its CRLF.
            prop_assert!(
                5 + text.len() <= MAX_REPLY - 2,
                "error text too long: {text:?}"
            );
            if line.contains(&0) {
                prop_assert_eq!(text, "NUL byte in command");
            }
        }
        Ok(cmd) => {
            prop_assert!(!line.contains(&0));
            match cmd {
                Command::Pass(rest) => {
                    prop_assert!(line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"PASS"));
                    let want: &[u8] = if line.len() > 4 { &line[5..] } else { b"" };
                    prop_assert_eq!(rest, want);
                }
                Command::User(name) => {
                    prop_assert!(!name.is_empty() && !name.contains(' '));
                }
                _ => {}
            }
        }
    }
    // Keywords are case-insensitive: upper-casing the keyword alone changes nothing.
    let kw_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let mut upper = line.to_vec();
    upper[..kw_end].make_ascii_uppercase();
    prop_assert_eq!(parse(line), parse(&upper));
    Ok(())
}

proptest! {
    #[test]
    fn parser_on_arbitrary_bytes(line in prop::collection::vec(any::<u8>(), 0..300)) {
        check_parse(&line)?;
    }

    #[test]
    fn parser_on_command_like_lines(line in command_like_bytes(), nul in any::<Option<prop::sample::Index>>()) {
        let mut line = line;
        if let Some(at) = nul {
            let i = at.index(line.len() + 1);
            line.insert(i, 0);
        }
        check_parse(&line)?;
    }
}
