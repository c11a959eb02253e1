//! Is this line an mbox `From ` separator? Pure: bytes in, a yes or no out.
//!
//! A line starting with `From ` separates messages only if the rest looks like what an MTA
//! writes there, `From SENDER DATE`, with DATE in `asctime(3)` form (`Thu Nov 29 22:33:52
//! 2001`, optionally a named zone before the year and a numeric zone after). This is Dovecot's
//! rule, and mutt's is much the same: a body line `From here on...` that an MTA failed to
//! escape then stays in its message.

const MONTHS: [&[u8; 3]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

/// True if `line` (with or without its line end) is a `From ` line with a sender and a date.
pub(super) fn is_separator(line: &[u8]) -> bool {
    match line.strip_prefix(b"From ") {
        Some(rest) => sender_and_date(rest),
        None => false,
    }
}

/// `SENDER DATE ...`: a sender without spaces, spaces, then an `asctime` date.
fn sender_and_date(rest: &[u8]) -> bool {
    let sender = rest
        .iter()
        .position(|&b| b == b' ' || b == b'\r' || b == b'\n')
        .unwrap_or(rest.len());
    if rest.get(sender) != Some(&b' ') {
        return false;
    }
    let after = &rest[sender..];
    let spaces = after.iter().take_while(|&&b| b == b' ').count();
    date(&after[spaces..])
}

/// `Www Mmm dd hh:mm:ss [ZONE ]yyyy`; the weekday is not checked (Dovecot does not either),
/// the day may be ` d` or `dd`.
fn date(d: &[u8]) -> bool {
    if d.len() < 24 {
        return false;
    }
    let digit = |i: usize| d.get(i).is_some_and(u8::is_ascii_digit);
    let month = [
        d[4].to_ascii_lowercase(),
        d[5].to_ascii_lowercase(),
        d[6].to_ascii_lowercase(),
    ];
    let known = MONTHS.iter().any(|m| **m == month) || &d[4..7] == b"???";
    if !known || d[7] != b' ' {
        return false;
    }
    let day = (d[8] == b' ' || digit(8)) && digit(9) && d[10] == b' ';
    let time = digit(11)
        && digit(12)
        && d[13] == b':'
        && digit(14)
        && digit(15)
        && d[16] == b':'
        && digit(17)
        && digit(18)
        && d[19] == b' ';
    if !(day && time) {
        return false;
    }
    let mut y = 20;
    if !(digit(y) && digit(y + 1) && digit(y + 2) && digit(y + 3)) {
        // A named zone ("EEST") before the year.
        while y < d.len() && d[y] != b' ' {
            if d[y] == b'\r' || d[y] == b'\n' {
                return false;
            }
            y += 1;
        }
        y += 1;
    }
    digit(y) && digit(y + 1) && digit(y + 2) && digit(y + 3)
}

#[cfg(test)]
mod tests {
    use super::is_separator;

    #[test]
    fn separators_need_a_sender_and_an_asctime_date() {
        for yes in [
            &b"From MAILER-DAEMON Thu Nov 29 22:33:52 2001\n"[..],
            b"From bob@example.org  Sat Dec  5 09:01:02 2026\n",
            b"From a@b Thu Nov 29 22:33:52 EEST 2001\r\n",
            b"From a@b Thu Nov 29 22:33:52 2001 +0300\n",
            b"From a@b Thu nov 29 22:33:52 2001",
        ] {
            assert!(is_separator(yes), "{}", String::from_utf8_lossy(yes));
        }
        for no in [
            &b"From here on, we go by car.\n"[..],
            b">From a@b Thu Nov 29 22:33:52 2001\n",
            b"From a@b Thu Nov 29 22:33 2001\n",
            b"From a@b Thu Xyz 29 22:33:52 2001\n",
            b"From a@b Thu Nov 29 22:33:52 EEST\n",
            b"From a@b\n",
            b"from a@b Thu Nov 29 22:33:52 2001\n",
        ] {
            assert!(!is_separator(no), "{}", String::from_utf8_lossy(no));
        }
    }
}
