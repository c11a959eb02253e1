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
    field(basename, b"W=")
}

/// The size on disk a delivery agent recorded in the name as `,S=<digits>`, if any.
pub(super) fn disk_size_hint(basename: &OsStr) -> Option<u64> {
    field(basename, b"S=")
}

/// The number after `,<key>` in a name, if there is one.
fn field(basename: &OsStr, key: &[u8]) -> Option<u64> {
    basename
        .as_bytes()
        .split(|&b| b == b',')
        .skip(1)
        .find_map(|field| {
            let digits = field.strip_prefix(key)?;
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(digits).ok()?.parse().ok()
        })
}

/// Whether a size claimed for a message of `file_size` octets on disk can be believed: from its
/// name's `,W=` (`from_name`, where a `,S=` must then match the file too) or from the size
/// cache.
///
/// Whoever can write in the Maildir can name a file anything and write the cache, and LIST must
/// not say what the file is not. Converting line ends to CRLF at most doubles a file (every
/// octet a bare LF) and never shrinks it, so a true wire size lies between the file's size and
/// twice it. A claim outside that range is not believed, and the message is read to count its
/// size: a size believed is at worst off by the CRLF growth, never more. (A name whose own
/// `,S=` and `,W=` agree is believed without this look at the file: [`sizes_agree`].)
pub(super) fn believable(basename: &OsStr, claimed: u64, file_size: u64, from_name: bool) -> bool {
    let disk_ok = !from_name || disk_size_hint(basename).is_none_or(|s| s == file_size);
    disk_ok && within_growth(claimed, file_size)
}

/// True if a name carries both sizes and they agree: its `,W=` lies between its `,S=` (the
/// size on disk, as the delivery agent wrote it) and twice that. Such a name is believed
/// without a look at the file, as maildrop, Courier and Dovecot believe `,S=`: a repeat login
/// to a 10,000-message Maildir then costs no system call per message. A pair that disagrees,
/// or a `,W=` alone, is checked against the file ([`believable`]).
pub(super) fn sizes_agree(basename: &OsStr) -> bool {
    match (disk_size_hint(basename), size_hint(basename)) {
        (Some(disk), Some(wire)) => within_growth(wire, disk),
        _ => false,
    }
}

/// Converting line ends to CRLF at most doubles a file, and never shrinks it.
fn within_growth(wire: u64, disk: u64) -> bool {
    (disk..=disk.saturating_mul(2)).contains(&wire)
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
    fn a_name_whose_sizes_agree_is_believed_as_it_is() {
        let agree = |s: &str| sizes_agree(OsStr::new(s));
        assert!(agree("1.M1.host,S=10,W=12"));
        assert!(agree("1.M1.host,S=10,W=20"));
        assert!(!agree("1.M1.host,S=10,W=21"), "more than the CRLF growth");
        assert!(!agree("1.M1.host,S=10,W=9"), "smaller than on disk");
        assert!(!agree("1.M1.host,W=12"), "no size on disk to compare");
        assert!(!agree("1.M1.host,S=10"));
    }

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

    #[test]
    fn a_claimed_size_is_believed_only_near_the_file_size() {
        let ok = |name: &str, claimed, size, from_name| {
            believable(OsStr::new(name), claimed, size, from_name)
        };
        assert!(ok("1.h,S=6,W=7", 7, 6, true));
        assert!(ok("1.h,W=6", 6, 6, true));
        assert!(ok("1.h,W=12", 12, 6, true));
        assert!(ok("1.h,W=0", 0, 0, true));
        assert!(!ok("1.h,W=13", 13, 6, true));
        assert!(!ok("1.h,W=5", 5, 6, true));
        assert!(!ok("1.h,S=9,W=7", 7, 6, true));
        assert!(!ok("1.h,W=999999", 999_999, 6, true));
        // From the cache, the name's S= is not what is checked.
        assert!(ok("1.h,S=9", 7, 6, false));
        assert!(!ok("1.h", 888_888, 3, false));
        assert!(ok("1.h", u64::MAX, u64::MAX, false));
    }
}
