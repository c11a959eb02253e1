//! The command parser: one line in (CRLF already removed), a typed command or a precise error out.

use std::fmt;
use std::num::NonZeroU32;

/// A message number as the client gives it: 1-based and never zero.
pub type MessageNumber = NonZeroU32;

/// A POP3 command with its arguments checked for form (not yet for meaning: whether a message
/// exists is the session's business).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `USER name`
    User(&'a str),
    /// `PASS secret`: the rest of the line, spaces included, as raw bytes.
    Pass(&'a [u8]),
    /// `QUIT`
    Quit,
    /// `STAT`
    Stat,
    /// `LIST [n]`
    List(Option<MessageNumber>),
    /// `RETR n`
    Retr(MessageNumber),
    /// `DELE n`
    Dele(MessageNumber),
    /// `NOOP`
    Noop,
    /// `RSET`
    Rset,
    /// `TOP n lines`
    Top(MessageNumber, u32),
    /// `UIDL [n]`
    Uidl(Option<MessageNumber>),
    /// `CAPA`
    Capa,
    /// `STLS` (RFC 2595)
    Stls,
    /// `AUTH [mechanism [initial-response]]` (RFC 5034); bare `AUTH` asks for the list.
    Auth(Option<(&'a [u8], Option<&'a [u8]>)>),
    /// `APOP name digest` (RFC 1939 §7)
    Apop(&'a str, &'a [u8]),
    /// `UTF8` (RFC 6856 §2)
    Utf8,
    /// `LANG [range]` (RFC 6856 §3): no argument asks for the list.
    Lang(Option<&'a str>),
}

impl Command<'_> {
    /// The command as a debug trace shows it: keyword and arguments, except that a password,
    /// an APOP digest and a SASL initial response are never shown.
    pub fn trace(&self) -> String {
        let number = |n: &Option<MessageNumber>| n.map_or(String::new(), |n| format!(" {n}"));
        match self {
            Command::User(name) => format!("USER {}", name.escape_debug()),
            Command::Pass(_) => "PASS <hidden>".into(),
            Command::Quit => "QUIT".into(),
            Command::Stat => "STAT".into(),
            Command::List(n) => format!("LIST{}", number(n)),
            Command::Retr(n) => format!("RETR {n}"),
            Command::Dele(n) => format!("DELE {n}"),
            Command::Noop => "NOOP".into(),
            Command::Rset => "RSET".into(),
            Command::Top(n, lines) => format!("TOP {n} {lines}"),
            Command::Uidl(n) => format!("UIDL{}", number(n)),
            Command::Capa => "CAPA".into(),
            Command::Stls => "STLS".into(),
            Command::Auth(None) => "AUTH".into(),
            Command::Auth(Some((mechanism, initial))) => format!(
                "AUTH {}{}",
                String::from_utf8_lossy(mechanism).escape_debug(),
                if initial.is_some() { " <hidden>" } else { "" }
            ),
            Command::Apop(name, _) => format!("APOP {} <hidden>", name.escape_debug()),
            Command::Utf8 => "UTF8".into(),
            Command::Lang(range) => {
                format!("LANG{}", range.map_or(String::new(), |r| format!(" {r}")))
            }
        }
    }
}

/// Why a line is not a command. Each maps to one precise `-ERR` text, and none echoes the
/// client's bytes (which could forge a reply line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The line is empty.
    Empty,
    /// The line contains a NUL byte.
    Nul,
    /// The keyword is not a command we know.
    UnknownCommand,
    /// A required argument is missing.
    MissingArgument,
    /// More arguments than the command takes.
    TooManyArguments,
    /// A message number that is not a decimal number.
    InvalidNumber,
    /// Message number 0, or one beyond 4294967295.
    NumberOutOfRange,
    /// A line count for TOP that is not a decimal number up to 4294967295.
    InvalidLineCount,
    /// The user name is not valid UTF-8.
    BadUtf8,
    /// A LANG argument that is not a language range (letters, digits and `-`, or `*`).
    BadLanguage,
}

impl ParseError {
    /// The text after `-ERR `.
    pub fn message(self) -> &'static str {
        match self {
            ParseError::Empty => "Empty command",
            ParseError::Nul => "NUL byte in command",
            ParseError::UnknownCommand => "Unknown command",
            ParseError::MissingArgument => "Missing argument",
            ParseError::TooManyArguments => "Too many arguments",
            ParseError::InvalidNumber => "Invalid message number",
            ParseError::NumberOutOfRange => "Message number out of range",
            ParseError::InvalidLineCount => "Invalid line count",
            ParseError::BadUtf8 => "User name is not valid UTF-8",
            ParseError::BadLanguage => "Invalid language range",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for ParseError {}

/// Parses one command line, without its line end.
///
/// Keywords are case-insensitive. Arguments are separated by spaces; trailing spaces are
/// ignored, except by PASS, whose argument is everything after the first space.
pub fn parse(line: &[u8]) -> Result<Command<'_>, ParseError> {
    if line.contains(&0) {
        return Err(ParseError::Nul);
    }
    let (keyword, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &line[line.len()..]),
    };
    if keyword.is_empty() {
        return Err(if line.iter().all(|&b| b == b' ') {
            ParseError::Empty
        } else {
            ParseError::UnknownCommand
        });
    }
    // Every keyword is 3 or 4 letters; anything longer is unknown without looking further.
    if keyword.len() > 4 {
        return Err(ParseError::UnknownCommand);
    }
    let mut upper = [0u8; 4];
    let kw = &mut upper[..keyword.len()];
    kw.copy_from_slice(keyword);
    kw.make_ascii_uppercase();
    if kw == b"PASS" {
        return Ok(Command::Pass(rest));
    }
    let mut args = Args::new(rest);
    let cmd = match &*kw {
        b"USER" => {
            let name = args.required()?;
            Command::User(std::str::from_utf8(name).map_err(|_| ParseError::BadUtf8)?)
        }
        b"QUIT" => Command::Quit,
        b"STAT" => Command::Stat,
        b"LIST" => Command::List(args.optional_number()?),
        b"RETR" => Command::Retr(args.number()?),
        b"DELE" => Command::Dele(args.number()?),
        b"NOOP" => Command::Noop,
        b"RSET" => Command::Rset,
        b"TOP" => {
            let n = args.number()?;
            Command::Top(n, args.line_count()?)
        }
        b"UIDL" => Command::Uidl(args.optional_number()?),
        b"CAPA" => Command::Capa,
        b"STLS" => Command::Stls,
        b"AUTH" => Command::Auth(match args.next() {
            None => None,
            Some(mechanism) => Some((mechanism, args.next())),
        }),
        b"APOP" => {
            let name = args.required()?;
            let name = std::str::from_utf8(name).map_err(|_| ParseError::BadUtf8)?;
            Command::Apop(name, args.required()?)
        }
        b"UTF8" => Command::Utf8,
        b"LANG" => Command::Lang(match args.next() {
            None => None,
            Some(range) => Some(language_range(range)?),
        }),
        _ => return Err(ParseError::UnknownCommand),
    };
    args.end()?;
    Ok(cmd)
}

/// A LANG argument: `*`, or a language range of letters, digits and `-` (RFC 4647 §2.1), at
/// most as long as any real one.
fn language_range(arg: &[u8]) -> Result<&str, ParseError> {
    let ok = arg == b"*"
        || (!arg.is_empty()
            && arg.len() <= 64
            && arg[0].is_ascii_alphabetic()
            && arg.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-'));
    match std::str::from_utf8(arg) {
        Ok(range) if ok => Ok(range),
        _ => Err(ParseError::BadLanguage),
    }
}

/// The space-separated arguments after a keyword.
struct Args<'a> {
    rest: &'a [u8],
}

impl<'a> Args<'a> {
    fn new(rest: &'a [u8]) -> Self {
        Args { rest }
    }

    fn next(&mut self) -> Option<&'a [u8]> {
        let start = self.rest.iter().position(|&b| b != b' ')?;
        let rest = &self.rest[start..];
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        self.rest = &rest[end..];
        Some(&rest[..end])
    }

    fn required(&mut self) -> Result<&'a [u8], ParseError> {
        self.next().ok_or(ParseError::MissingArgument)
    }

    fn number(&mut self) -> Result<MessageNumber, ParseError> {
        message_number(self.required()?)
    }

    fn optional_number(&mut self) -> Result<Option<MessageNumber>, ParseError> {
        self.next().map(message_number).transpose()
    }

    fn line_count(&mut self) -> Result<u32, ParseError> {
        decimal(self.required()?).ok_or(ParseError::InvalidLineCount)
    }

    fn end(mut self) -> Result<(), ParseError> {
        match self.next() {
            Some(_) => Err(ParseError::TooManyArguments),
            None => Ok(()),
        }
    }
}

fn message_number(arg: &[u8]) -> Result<MessageNumber, ParseError> {
    if arg.is_empty() || !arg.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::InvalidNumber);
    }
    decimal(arg)
        .and_then(NonZeroU32::new)
        .ok_or(ParseError::NumberOutOfRange)
}

/// A decimal number that fits in u32: digits only, no sign, no wrap-around.
fn decimal(arg: &[u8]) -> Option<u32> {
    if arg.is_empty() {
        return None;
    }
    arg.iter().try_fold(0u32, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u32::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(x: u32) -> MessageNumber {
        NonZeroU32::new(x).unwrap()
    }

    #[test]
    fn parses_every_command() {
        let cases: &[(&[u8], Command)] = &[
            (b"USER bob", Command::User("bob")),
            (b"user bob@example.org", Command::User("bob@example.org")),
            (b"PASS", Command::Pass(b"")),
            (b"PASS two  words ", Command::Pass(b"two  words ")),
            (b"PASS  lead", Command::Pass(b" lead")),
            (b"pass \xff\xfe", Command::Pass(b"\xff\xfe")),
            (b"QUIT", Command::Quit),
            (b"stat", Command::Stat),
            (b"LIST", Command::List(None)),
            (b"LIST 3", Command::List(Some(n(3)))),
            (b"LiSt 007", Command::List(Some(n(7)))),
            (b"LIST 1 ", Command::List(Some(n(1)))),
            (b"RETR 1", Command::Retr(n(1))),
            (b"DELE 4294967295", Command::Dele(n(4294967295))),
            (b"NOOP", Command::Noop),
            (b"RSET", Command::Rset),
            (b"TOP 1 0", Command::Top(n(1), 0)),
            (b"top 2 10", Command::Top(n(2), 10)),
            (b"UIDL", Command::Uidl(None)),
            (b"UIDL 9", Command::Uidl(Some(n(9)))),
            (b"CAPA", Command::Capa),
            (b"stls", Command::Stls),
            (b"AUTH", Command::Auth(None)),
            (b"AUTH PLAIN", Command::Auth(Some((b"PLAIN", None)))),
            (
                b"auth plain AGJvYgBwdw==",
                Command::Auth(Some((b"plain", Some(b"AGJvYgBwdw==")))),
            ),
            (b"AUTH PLAIN =", Command::Auth(Some((b"PLAIN", Some(b"="))))),
            (
                b"APOP bob c4c9334bac560ecc979e58001b3e22fb",
                Command::Apop("bob", b"c4c9334bac560ecc979e58001b3e22fb"),
            ),
            (b"USER j\xc3\xbcrgen", Command::User("j\u{fc}rgen")),
            (b"utf8", Command::Utf8),
            (b"LANG", Command::Lang(None)),
            (b"LANG *", Command::Lang(Some("*"))),
            (b"lang en-US", Command::Lang(Some("en-US"))),
        ];
        for (line, want) in cases {
            assert_eq!(
                parse(line).as_ref(),
                Ok(want),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn the_trace_never_shows_a_secret() {
        for (line, want) in [
            (&b"PASS hunter2"[..], "PASS <hidden>"),
            (
                b"APOP bob c4c9334bac560ecc979e58001b3e22fb",
                "APOP bob <hidden>",
            ),
            (b"AUTH PLAIN AGJvYgBwdw==", "AUTH PLAIN <hidden>"),
            (b"AUTH CRAM-MD5", "AUTH CRAM-MD5"),
            (b"USER bob", "USER bob"),
            (b"USER b\xc3\xb6b\x1b", "USER b\u{f6}b\\u{1b}"),
            (b"TOP 2 10", "TOP 2 10"),
            (b"LIST", "LIST"),
        ] {
            assert_eq!(parse(line).unwrap().trace(), want);
        }
    }

    #[test]
    fn refuses_bad_lines_precisely() {
        use ParseError::*;
        let cases: &[(&[u8], ParseError)] = &[
            (b"", Empty),
            (b"   ", Empty),
            (b" STAT", UnknownCommand),
            (b"UTF8 x", TooManyArguments),
            (b"LANG en fr", TooManyArguments),
            (b"LANG -en", BadLanguage),
            (b"LANG e\xc3\xa9", BadLanguage),
            (b"LANG en_US", BadLanguage),
            (b"XYZZY", UnknownCommand),
            (b"STA", UnknownCommand),
            (b"STATS", UnknownCommand),
            (b"\xff\xfe", UnknownCommand),
            (b"LIST\0", Nul),
            (b"PASS a\0b", Nul),
            (b"LIST 0", NumberOutOfRange),
            (b"LIST 4294967296", NumberOutOfRange),
            (b"LIST 4294967297", NumberOutOfRange),
            (b"LIST 99999999999999999999999", NumberOutOfRange),
            (b"LIST 1 2", TooManyArguments),
            (b"LIST x", InvalidNumber),
            (b"LIST -1", InvalidNumber),
            (b"LIST +1", InvalidNumber),
            (b"LIST 1x", InvalidNumber),
            (b"RETR", MissingArgument),
            (b"DELE", MissingArgument),
            (b"TOP 1", MissingArgument),
            (b"TOP 1 x", InvalidLineCount),
            (b"TOP 1 -1", InvalidLineCount),
            (b"TOP 1 4294967296", InvalidLineCount),
            (b"TOP 1 2 3", TooManyArguments),
            (b"STAT now", TooManyArguments),
            (b"QUIT please", TooManyArguments),
            (b"USER", MissingArgument),
            (b"USER a b", TooManyArguments),
            (b"USER \xff", BadUtf8),
            (b"STLS now", TooManyArguments),
            (b"AUTH PLAIN a b", TooManyArguments),
            (b"APOP bob", MissingArgument),
            (b"APOP bob d x", TooManyArguments),
        ];
        for (line, want) in cases {
            assert_eq!(
                parse(line),
                Err(*want),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn error_texts_are_single_safe_lines() {
        use ParseError::*;
        for e in [
            Empty,
            Nul,
            UnknownCommand,
            MissingArgument,
            TooManyArguments,
            InvalidNumber,
            NumberOutOfRange,
            InvalidLineCount,
            BadUtf8,
        ] {
            let m = e.message();
            assert!(
                !m.is_empty() && m.bytes().all(|b| (0x20..0x7f).contains(&b)),
                "{m}"
            );
        }
    }
}
