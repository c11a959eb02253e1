//! What a Maildir file name tells: the message's basename, the size a delivery agent noted in
//! it, and the UIDL made from it.

use crate::auth::secret::hex;
use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// Longest UIDL (RFC 1939 §7).
const MAX_UIDL: usize = 70;

/// Hex digits of SHA-256 kept for a digest UIDL: 128 bits, plenty against collisions.
const DIGEST_UIDL_LEN: usize = 32;

/// The file name up to the first `:`.
pub(super) fn basename(name: &OsStr) -> &OsStr {
    let bytes = name.as_bytes();
    let end = bytes.iter().position(|&b| b == b':').unwrap_or(bytes.len());
    OsStr::from_bytes(&bytes[..end])
}

/// The wire size a delivery agent recorded in the name as `,W=<digits>`, if any.
///
/// (`,S=` is the size on disk, with LF line ends: not what LIST reports.)
pub(super) fn size_hint(basename: &OsStr) -> Option<u64> {
    basename
        .as_bytes()
        .split(|&b| b == b',')
        .skip(1)
        .find_map(|field| {
            let digits = field.strip_prefix(b"W=")?;
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(digits).ok()?.parse().ok()
        })
}

/// The UIDL of a message: its basename when that is a valid UIDL, else a digest of it. Either
/// way it depends on the basename alone, so it survives moves and flag changes.
pub(super) fn uidl(basename: &OsStr) -> String {
    let bytes = basename.as_bytes();
    if (1..=MAX_UIDL).contains(&bytes.len()) && bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
        // All printable ASCII, so valid UTF-8: copied as it is.
        if let Ok(text) = std::str::from_utf8(bytes) {
            return text.to_owned();
        }
    }
    hex(&Sha256::digest(bytes)[..DIGEST_UIDL_LEN / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_hint_parsing() {
        let hint = |s: &str| size_hint(OsStr::new(s));
        assert_eq!(hint("1.M1.host,S=10,W=12"), Some(12));
        assert_eq!(hint("1.M1.host,W=12,S=10"), Some(12));
        assert_eq!(hint("1.M1.host,S=10"), None);
        assert_eq!(hint("W=12.M1.host"), None);
        assert_eq!(hint("1.M1.host,W="), None);
        assert_eq!(hint("1.M1.host,W=1x"), None);
        assert_eq!(hint("1.M1.host,W=99999999999999999999999"), None);
    }
}
