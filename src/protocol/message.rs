//! Streaming a stored message onto the wire: CRLF line ends, dot-stuffing, TOP's line limit.
//!
//! The encoder is fed chunks of any size and keeps only a few flags between them, so memory is
//! fixed whatever the message size and the output does not depend on where chunks split.

/// Converts a stored message into the body of a RETR or TOP reply.
///
/// - a bare LF becomes CRLF (a CRLF stays as it is, a bare CR passes through);
/// - a line that starts with `.` gets another `.` in front (RFC 1939 §3);
/// - with a line limit (TOP), only the header, the blank line and that many body lines are sent;
/// - [`finish`](Self::finish) ends an unterminated last line with CRLF, then writes `.` CRLF.
#[derive(Debug, Clone)]
pub struct MessageEncoder {
    /// Body lines still to send, or `None` for the whole message.
    body_lines_left: Option<u64>,
    in_header: bool,
    at_line_start: bool,
    /// Octets of the current line so far, LF excluded (saturating: only 0, 1 and "more" matter).
    line_len: u8,
    last_was_cr: bool,
    /// Output ended: TOP's limit was reached.
    done: bool,
    workarounds: Workarounds,
}

/// Changes to what is sent, for old clients that break on valid mail. Each is off by default;
/// the names are the ones Dovecot's `pop3_workarounds` uses, which admins may know already.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Workarounds {
    /// `outlook-no-nuls`: Outlook and Outlook Express hang on a NUL octet in a message, so each
    /// is sent as 0x80 (the size does not change).
    pub outlook_no_nuls: bool,
    /// `oe-ns-eoh`: Outlook Express and Netscape Mail break on a message whose header is not
    /// ended by a blank line (a message with no body), so one is added. Such a message is then
    /// two octets longer than LIST said.
    pub oe_ns_eoh: bool,
}

impl Workarounds {
    /// Every workaround by name, for configuration: (name, what it does).
    pub const NAMES: &'static [(&'static str, &'static str)] = &[
        ("outlook-no-nuls", "send NUL octets in messages as 0x80"),
        (
            "oe-ns-eoh",
            "add the blank line after a header that has none",
        ),
    ];

    /// Turns on the workaround `name` (one of [`NAMES`](Self::NAMES)); false if there is no
    /// such workaround.
    pub fn enable(&mut self, name: &str) -> bool {
        match name {
            "outlook-no-nuls" => self.outlook_no_nuls = true,
            "oe-ns-eoh" => self.oe_ns_eoh = true,
            _ => return false,
        }
        true
    }
}

impl MessageEncoder {
    /// An encoder for the whole message (RETR).
    pub fn new() -> Self {
        Self::with_limit(None)
    }

    /// An encoder for the header and at most `lines` body lines (TOP).
    pub fn top(lines: u64) -> Self {
        Self::with_limit(Some(lines))
    }

    fn with_limit(body_lines_left: Option<u64>) -> Self {
        MessageEncoder {
            body_lines_left,
            in_header: true,
            at_line_start: true,
            line_len: 0,
            last_was_cr: false,
            done: false,
            workarounds: Workarounds::default(),
        }
    }

    /// The same encoder, with `workarounds` for old clients.
    pub fn with_workarounds(mut self, workarounds: Workarounds) -> Self {
        self.workarounds = workarounds;
        self
    }

    /// True once TOP's limit is reached: the rest of the message need not be read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Encodes `input`, appending to `out`.
    ///
    /// Works a line at a time: each run of octets up to a LF is copied in one piece, so the cost
    /// per octet is a search and a copy, not a branch and a push.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        self.encode(input, out);
        if self.workarounds.outlook_no_nuls {
            for b in &mut out[start..] {
                if *b == 0 {
                    *b = 0x80;
                }
            }
        }
    }

    fn encode(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        // Room for the common case: a CR per line of ~64 octets, and the odd stuffed dot.
        out.reserve(input.len() + input.len() / 32 + 2);
        while let Some(&first) = input.first() {
            if self.at_line_start && first == b'.' {
                out.push(b'.');
            }
            let Some(lf) = find_lf(input) else {
                // The line goes on in the next chunk.
                self.add_to_line(input);
                out.extend_from_slice(input);
                return;
            };
            let line = &input[..lf];
            self.add_to_line(line);
            out.extend_from_slice(line);
            out.extend_from_slice(if self.last_was_cr { b"\n" } else { b"\r\n" });
            self.end_line();
            if self.done {
                return;
            }
            input = &input[lf + 1..];
        }
    }

    /// Notes octets of the current line (no LF among them).
    fn add_to_line(&mut self, part: &[u8]) {
        if let Some(&last) = part.last() {
            self.at_line_start = false;
            self.line_len = self
                .line_len
                .saturating_add(part.len().min(u8::MAX as usize) as u8);
            self.last_was_cr = last == b'\r';
        }
    }

    fn end_line(&mut self) {
        let blank = self.line_len == 0 || (self.line_len == 1 && self.last_was_cr);
        if self.in_header {
            if blank {
                self.in_header = false;
                self.done = self.body_lines_left == Some(0);
            }
        } else if let Some(left) = self.body_lines_left.as_mut() {
            *left = left.saturating_sub(1);
            self.done = *left == 0;
        }
        self.at_line_start = true;
        self.line_len = 0;
        self.last_was_cr = false;
    }

    /// Ends the reply: CRLF if the last line was not terminated, then the `.` CRLF terminator.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        if self.in_header && self.workarounds.oe_ns_eoh {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        self.done = true;
        self.at_line_start = true;
    }
}

/// The position of the first LF in `bytes`: message lines are tens of octets long, so this is
/// where the encoder spends its time, and memchr's wide compares are the quickest way.
fn find_lf(bytes: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', bytes)
}

impl Default for MessageEncoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts the size of a message as LIST and STAT report it: the octets RETR sends before the
/// terminator, without the dot-stuffing (line ends as CRLF, a final CRLF added when missing).
#[derive(Debug, Clone, Default)]
pub struct WireSize {
    size: u64,
    last: Option<u8>,
}

impl WireSize {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts `input`, the next chunk of the stored message.
    pub fn feed(&mut self, input: &[u8]) {
        let Some(&last) = input.last() else {
            return;
        };
        // Every LF not preceded by a CR gains one; count LFs and CRLFs separately, which the
        // compiler turns into wide compares rather than a branch per octet.
        let lfs = input.iter().filter(|&&b| b == b'\n').count();
        let crlfs = input.windows(2).filter(|w| w == b"\r\n").count()
            + usize::from(self.last == Some(b'\r') && input[0] == b'\n');
        self.size += (input.len() + lfs - crlfs) as u64;
        self.last = Some(last);
    }

    /// The size of everything fed so far.
    pub fn total(&self) -> u64 {
        match self.last {
            Some(b'\n') | None => self.size,
            Some(_) => self.size + 2,
        }
    }
}

/// The size of a whole message as RETR sends it and LIST must report it (RFC 1939 §11):
/// every line end counted as CRLF, a final CRLF added when the message lacks one, before
/// dot-stuffing. A [`MailStore`](crate::MailStore) that counts sizes itself uses this.
pub fn wire_size(message: &[u8]) -> u64 {
    let mut w = WireSize::new();
    w.feed(message);
    w.total()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_with(msg: &[u8], workarounds: Workarounds) -> Vec<u8> {
        let mut enc = MessageEncoder::new().with_workarounds(workarounds);
        let mut out = Vec::new();
        for chunk in msg.chunks(3) {
            enc.feed(chunk, &mut out);
        }
        enc.finish(&mut out);
        out
    }

    #[test]
    fn workarounds_change_only_what_they_name() {
        let mut nuls = Workarounds::default();
        assert!(nuls.enable("outlook-no-nuls"));
        let mut eoh = Workarounds::default();
        assert!(eoh.enable("oe-ns-eoh"));
        assert!(!Workarounds::default().enable("no-such-thing"));

        let with_nul = b"Subject: a\0b\n\nbody\0\n";
        assert_eq!(
            encode_with(with_nul, Workarounds::default()),
            b"Subject: a\0b\r\n\r\nbody\0\r\n.\r\n"
        );
        assert_eq!(
            encode_with(with_nul, nuls),
            b"Subject: a\x80b\r\n\r\nbody\x80\r\n.\r\n"
        );

        let headers_only = b"Subject: a\nX: b";
        assert_eq!(
            encode_with(headers_only, Workarounds::default()),
            b"Subject: a\r\nX: b\r\n.\r\n"
        );
        assert_eq!(
            encode_with(headers_only, eoh),
            b"Subject: a\r\nX: b\r\n\r\n.\r\n"
        );
        // A message that has its blank line gets no other.
        assert_eq!(
            encode_with(b"Subject: a\n\n", eoh),
            b"Subject: a\r\n\r\n.\r\n"
        );
    }

    /// The obvious, whole-message version of the encoder, to check the streaming one against.
    fn reference(msg: &[u8], top: Option<u64>) -> Vec<u8> {
        let mut lines: Vec<&[u8]> = msg.split_inclusive(|&b| b == b'\n').collect();
        if let Some(n) = top {
            let header_end = lines
                .iter()
                .position(|l| *l == b"\n" || *l == b"\r\n")
                .map_or(lines.len(), |i| i + 1);
            lines.truncate(header_end.saturating_add(n as usize).min(lines.len()));
        }
        let mut out = Vec::new();
        for line in lines {
            // A CR is part of the line end only before an LF: a last line "x\r" keeps its CR.
            let body = match line.strip_suffix(b"\n") {
                Some(body) => body.strip_suffix(b"\r").unwrap_or(body),
                None => line,
            };
            if body.first() == Some(&b'.') {
                out.push(b'.');
            }
            out.extend_from_slice(body);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        out
    }

    fn encode_in_chunks(msg: &[u8], top: Option<u64>, split: &[usize]) -> Vec<u8> {
        let mut enc = MessageEncoder::with_limit(top);
        let mut out = Vec::new();
        let mut start = 0;
        for &cut in split.iter().chain(std::iter::once(&msg.len())) {
            enc.feed(&msg[start..cut], &mut out);
            start = cut;
        }
        enc.finish(&mut out);
        out
    }

    const SAMPLES: &[&[u8]] = &[
        b"",
        b"\n",
        b"a",
        b".",
        b"..\n",
        b"Subject: x\n\nbody\n",
        b"Subject: x\r\n\r\n.hidden\r\n..two\r\nlast",
        b"From: a\nTo: b\n\n.\n.\n\nline\r\nmixed\nend",
        b"no header blank line\nat all\n",
        b"H: 1\n\nl1\nl2\nl3\nl4\n",
        b"bare\rcr\n\r\r\n.x\r\r\n",
        b"\x00nul\xff\xfe8bit\n\n\x00\n",
        b"H: 1\r\n\r\n",
        // A bare CR at the very end is content, not half a line end; split from its LF, a CR
        // is still the line end.
        b"x\r",
        b"\r",
        b"x\r\n",
        b"x\r\r\n",
        b"H: 1\r\n\r\n.x\r",
        // Header only, and a blank line only.
        b"H: 1\nH: 2\n",
        b"\r\n",
        // The rest of the literal table in tests/wire.rs.
        b"a\nb\r\nc",
        b"a\rb\n",
        b".\n\n",
        b"x\n.\n",
        b"..\r\n.",
        b"H: 1\r\n\r\nl1\nl2",
        b"H: 1\n\r\n\nl1\n",
    ];

    #[test]
    fn matches_reference_at_every_split_point() {
        for msg in SAMPLES {
            for top in [None, Some(0), Some(1), Some(2), Some(100)] {
                let want = reference(msg, top);
                for cut in 0..=msg.len() {
                    assert_eq!(
                        encode_in_chunks(msg, top, &[cut]),
                        want,
                        "msg {msg:?} top {top:?} cut {cut}"
                    );
                }
                let every_byte: Vec<usize> = (1..msg.len()).collect();
                assert_eq!(encode_in_chunks(msg, top, &every_byte), want);
            }
        }
    }

    #[test]
    fn literal_cases() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b".\r\n"),
            (b"a", b"a\r\n.\r\n"),
            (b".\n", b"..\r\n.\r\n"),
            (b"x\n.\n", b"x\r\n..\r\n.\r\n"),
            (b"a\r\nb\nc", b"a\r\nb\r\nc\r\n.\r\n"),
            (b"a\rb\n", b"a\rb\r\n.\r\n"),
            (b"x\r", b"x\r\r\n.\r\n"),
            (b"x\r\r\n", b"x\r\r\n.\r\n"),
        ];
        for (input, want) in cases {
            assert_eq!(encode_in_chunks(input, None, &[]), *want, "{input:?}");
        }
        assert_eq!(
            encode_in_chunks(b"H: 1\n\nbody\n", Some(0), &[]),
            b"H: 1\r\n\r\n.\r\n"
        );
    }

    #[test]
    fn wire_size_is_what_retr_sends_without_stuffing() {
        for msg in SAMPLES {
            let sent = reference(msg, None);
            let body = &sent[..sent.len() - 3];
            let stuffed = body
                .split(|&b| b == b'\n')
                .filter(|l| l.starts_with(b".."))
                .count();
            let want = (body.len() - stuffed) as u64;
            assert_eq!(wire_size(msg), want, "{msg:?}");
            for cut in 0..=msg.len() {
                let mut w = WireSize::new();
                w.feed(&msg[..cut]);
                w.feed(&msg[cut..]);
                assert_eq!(w.total(), want, "{msg:?} cut {cut}");
            }
        }
    }

    #[test]
    fn find_lf_at_every_position_and_alignment() {
        for len in 0..40 {
            let plain = vec![b'x'; len];
            assert_eq!(find_lf(&plain), None, "len {len}");
            for lf in 0..len {
                let mut bytes = plain.clone();
                bytes[lf] = b'\n';
                // A second LF later must not be the one found.
                if lf + 3 < len {
                    bytes[lf + 3] = b'\n';
                }
                // Octets near LF in value must not be taken for it.
                for (i, b) in bytes.iter_mut().enumerate() {
                    if *b == b'x' && i % 3 == 0 {
                        *b = [0x0b, 0x09, 0x8a, 0x00][i % 4];
                    }
                }
                assert_eq!(find_lf(&bytes), Some(lf), "len {len} lf {lf}");
            }
        }
    }

    #[test]
    fn long_lines_match_reference_at_many_split_points() {
        let mut msg = Vec::new();
        for i in 0..200usize {
            if i % 7 == 0 {
                msg.push(b'.');
            }
            msg.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, i % 90));
            msg.extend_from_slice(if i % 5 == 0 { b"\r\n" } else { b"\n" });
        }
        msg.extend_from_slice(b"no line end");
        for top in [None, Some(3)] {
            let want = reference(&msg, top);
            for step in [1, 7, 8, 9, 63, 64, 1000] {
                let cuts: Vec<usize> = (step..msg.len()).step_by(step).collect();
                assert_eq!(encode_in_chunks(&msg, top, &cuts), want, "step {step}");
            }
        }
    }

    #[test]
    fn top_stops_reading() {
        let mut enc = MessageEncoder::top(1);
        let mut out = Vec::new();
        enc.feed(b"H: 1\n\nl1\n", &mut out);
        assert!(enc.is_done());
        enc.feed(b"l2\n", &mut out);
        enc.finish(&mut out);
        assert_eq!(out, b"H: 1\r\n\r\nl1\r\n.\r\n");
    }
}
