//! Quoting a message for an mbox as Postfix and most MTAs do (*mboxo*): a line that starts with
//! `From ` gets a `>` in front, so that no body line can start a message. Pure, and fed in
//! pieces: a line's start may be split between two pieces.

/// The state kept between pieces: whether the next octet starts a line, and the start of a line
/// that may still become `From `.
#[derive(Debug)]
pub(super) struct Quoter {
    line_start: bool,
    /// Octets at a line's start that are a proper prefix of `From `, not yet written.
    pending: Vec<u8>,
    /// The last octet given out, to know whether the message ended its last line.
    last: Option<u8>,
}

const FROM: &[u8] = b"From ";

impl Default for Quoter {
    fn default() -> Self {
        Quoter {
            line_start: true,
            pending: Vec::with_capacity(FROM.len()),
            last: None,
        }
    }
}

impl Quoter {
    /// Appends `input`, quoted, to `out`.
    pub(super) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            if self.line_start {
                self.pending.push(b);
                if FROM.starts_with(&self.pending) {
                    if self.pending.len() == FROM.len() {
                        out.push(b'>');
                        self.flush(out);
                    }
                    continue;
                }
                self.flush(out);
                continue;
            }
            self.put(b, out);
        }
    }

    /// Gives out what is pending, and returns true if the message, as given out, ends a line.
    pub(super) fn finish(&mut self, out: &mut Vec<u8>) -> bool {
        self.flush(out);
        matches!(self.last, None | Some(b'\n'))
    }

    fn flush(&mut self, out: &mut Vec<u8>) {
        self.line_start = false;
        let pending = std::mem::take(&mut self.pending);
        for &b in &pending {
            self.put(b, out);
        }
        self.pending = pending;
        self.pending.clear();
    }

    fn put(&mut self, b: u8, out: &mut Vec<u8>) {
        out.push(b);
        self.last = Some(b);
        self.line_start = b == b'\n';
    }
}

#[cfg(test)]
mod tests {
    use super::Quoter;

    fn quote_in_pieces(input: &[u8], piece: usize) -> Vec<u8> {
        let mut q = Quoter::default();
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            q.feed(chunk, &mut out);
        }
        q.finish(&mut out);
        out
    }

    #[test]
    fn quotes_from_lines_whatever_the_pieces() {
        let input = b"From x\nFrom\nFro\n>From y\nA From z\nFrom \r\nFrom";
        let want = b">From x\nFrom\nFro\n>From y\nA From z\n>From \r\nFrom";
        for piece in 1..=input.len() {
            assert_eq!(quote_in_pieces(input, piece), want, "pieces of {piece}");
        }
    }

    #[test]
    fn knows_whether_the_last_line_ended() {
        let mut q = Quoter::default();
        let mut out = Vec::new();
        q.feed(b"a\nFr", &mut out);
        assert!(!q.finish(&mut out));
        assert_eq!(out, b"a\nFr");
        let mut q = Quoter::default();
        q.feed(b"a\n", &mut out);
        assert!(q.finish(&mut out));
    }
}
