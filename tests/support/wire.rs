//! The tests' one reference for what a stored message looks like on the wire, written the
//! obvious, whole-message way from RFC 1939 (§3 and §11), without looking at `src/`; the
//! streaming encoder in `src/protocol/message.rs` is checked against it.
//!
//! - A message is split into lines after each LF. A line's end is its LF, with the CR before
//!   it if there is one; any other CR is content. So a last line `x\r` with no LF keeps its CR.
//! - Each line goes out with CRLF, including a last line that had no line end; an empty
//!   message is no line at all.
//! - A line that starts with `.` gets another `.` in front; `.` CRLF ends the reply.
//! - TOP n sends the header, the blank line after it (the first empty line) and n lines after
//!   that; a message without a blank line is all header.

/// The body of a RETR reply (`top` = `None`) or a TOP reply as sent: lines in CRLF, dot-stuffed,
/// then the `.` CRLF terminator.
pub fn encode(msg: &[u8], top: Option<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    for line in sent_lines(msg, top) {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// What a client holds after RETR once the dot-stuffing is undone: each line with CRLF. Its
/// length is the size LIST and STAT must report.
pub fn expected_wire(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in sent_lines(msg, None) {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The lines RETR (`top` = `None`) or TOP sends, without their line ends.
fn sent_lines(msg: &[u8], top: Option<u64>) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = msg
        .split_inclusive(|&b| b == b'\n')
        .map(|line| match line.strip_suffix(b"\n") {
            Some(content) => content.strip_suffix(b"\r").unwrap_or(content),
            None => line,
        })
        .collect();
    if let Some(n) = top {
        let header_end = lines
            .iter()
            .position(|line| line.is_empty())
            .map_or(lines.len(), |blank| blank + 1);
        let keep = u64::try_from(header_end).unwrap().saturating_add(n);
        lines.truncate(usize::try_from(keep).unwrap_or(usize::MAX).min(lines.len()));
    }
    lines
}

/// `wire` with every CRLF turned into LF: what clients that hand back lines with LF hold.
pub fn crlf_to_lf(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire.len());
    let mut rest = wire;
    while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
        out.extend_from_slice(&rest[..i]);
        out.push(b'\n');
        rest = &rest[i + 2..];
    }
    out.extend_from_slice(rest);
    out
}
