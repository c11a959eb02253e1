//! The text of `maildirsize`: the quota line and the lines of figures.

use crate::store::delivery::{Quota, Usage};
use std::time::SystemTime;

/// A file this large is recalculated (Courier's and Dovecot's threshold).
pub(super) const RECALCULATE_AT: usize = 5120;

/// What the file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Contents {
    pub(super) quota: Quota,
    pub(super) usage: Usage,
    /// Lines of figures after the quota line.
    pub(super) lines: usize,
    /// The sums cannot be used: the file must be recalculated.
    pub(super) damaged: bool,
    /// When the file was last written.
    pub(super) modified: SystemTime,
}

/// Reads the quota line: `NNNS` and `NNNC` in any order, comma-separated; `0` is no limit. A
/// part it does not know is passed over, as Courier and Dovecot pass it over.
fn parse_quota(line: &[u8]) -> Quota {
    let mut quota = Quota::default();
    for part in line.split(|&b| b == b',') {
        let Some((&unit, digits)) = part.split_last() else {
            continue;
        };
        let Some(n) = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse::<u64>().ok())
        else {
            continue;
        };
        let n = (n > 0).then_some(n);
        match unit {
            b'S' => quota.storage = n,
            b'C' => quota.messages = n,
            _ => {}
        }
    }
    quota
}

/// The quota line (without its LF). No limit at all is written `0S`, as Dovecot writes it, so
/// that the line is never empty.
pub(super) fn quota_line(quota: &Quota) -> String {
    let mut parts = Vec::new();
    if quota.storage_limit().is_some() || quota.message_limit().is_none() {
        parts.push(format!("{}S", quota.storage_limit().unwrap_or(0)));
    }
    if let Some(m) = quota.message_limit() {
        parts.push(format!("{m}C"));
    }
    parts.join(",")
}

/// Parses the whole file. A last line without its LF is being written: left out.
pub(super) fn parse(bytes: &[u8], modified: SystemTime) -> Option<Contents> {
    let end = bytes.iter().rposition(|&b| b == b'\n')?;
    let mut lines = bytes[..end].split(|&b| b == b'\n');
    let quota = parse_quota(lines.next()?);
    let (mut sum_bytes, mut sum_count, mut n, mut damaged) = (0i64, 0i64, 0, false);
    for line in lines {
        let text = std::str::from_utf8(line).unwrap_or("");
        let mut figures = text.split_ascii_whitespace().map(str::parse::<i64>);
        match (figures.next(), figures.next(), figures.next()) {
            (Some(Ok(b)), Some(Ok(c)), None) => {
                sum_bytes = sum_bytes.saturating_add(b);
                sum_count = sum_count.saturating_add(c);
            }
            _ => damaged = true,
        }
        n += 1;
    }
    damaged |= sum_bytes < 0 || sum_count < 0 || bytes.len() >= RECALCULATE_AT;
    Some(Contents {
        quota,
        usage: Usage {
            bytes: sum_bytes.max(0) as u64,
            messages: sum_count.max(0) as u64,
        },
        lines: n,
        damaged,
        modified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn quota_lines() {
        let q = |s: &str| parse_quota(s.as_bytes());
        let both = Quota {
            storage: Some(1000),
            messages: Some(20),
        };
        assert_eq!(q("1000S,20C"), both);
        assert_eq!(q("20C,1000S"), both);
        assert_eq!(q("20C").storage, None);
        assert_eq!(q("0S"), Quota::default());
        assert_eq!(q("1000S,7X,,20C"), both, "unknown parts passed over");
        for quota in [q("1000S,20C"), q("20C"), q("0S"), q("5S")] {
            assert_eq!(parse_quota(quota_line(&quota).as_bytes()), quota);
        }
        assert_eq!(quota_line(&Quota::default()), "0S");
    }

    #[test]
    fn figures_add_up_as_courier_and_dovecot_write_them() {
        let t = UNIX_EPOCH;
        let c = parse(b"1000S,20C\n  300   3\n12 1\n-12 -1\n5 1", t).unwrap();
        assert_eq!((c.usage.bytes, c.usage.messages, c.lines), (300, 3, 3));
        assert!(!c.damaged, "the unfinished last line is left out");
        assert!(parse(b"1000S\n5 1\n-10 -2\n", t).unwrap().damaged);
        assert!(parse(b"1000S\nfive 1\n", t).unwrap().damaged);
        let mut big = b"1000S\n".to_vec();
        while big.len() < RECALCULATE_AT {
            big.extend_from_slice(b"1 1\n");
        }
        assert!(parse(&big, t).unwrap().damaged);
        assert_eq!(parse(b"", t), None);
    }
}
