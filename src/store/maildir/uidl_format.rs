//! Which UIDL a Maildir message gets: pop3d's own (the base name), or the one another server
//! showed for it, so that "leave mail on server" clients moved to pop3d download nothing again.

use std::fmt;
use std::str::FromStr;

/// How UIDLs are made for a Maildir ([`MaildirStore::with_uidl_format`]).
///
/// A client that leaves mail on the server remembers the UIDL of each message it has; after a
/// move from another POP3 server it downloads again every message whose UIDL changed. Each
/// preset gives the UIDLs the named server showed, for the messages that server knew; a
/// message delivered after the switch (not in the other server's files) gets the
/// [`Maildir`](UidlFormat::Maildir) UIDL, which is stable from then on.
///
/// [`MaildirStore::with_uidl_format`]: super::MaildirStore::with_uidl_format
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UidlFormat {
    /// The message's base name (its file name up to the first `:`) when it is 1 to 70
    /// characters from 0x21 to 0x7E, else the 32 hex digits of the first 128 bits of its
    /// SHA-256. This is qmail-pop3d's UIDL, and Courier's before its `courierpop3dsizelist`
    /// (for names made as the Maildir specification says).
    #[default]
    Maildir,
    /// What Dovecot 2.3 shows with its default `pop3_uidl_format = %08Xu%08Xv`: the message's
    /// IMAP UID then the mailbox's UIDVALIDITY, each as at least 8 hex digits, in lower case
    /// as Dovecot writes them despite the capital `X` (`0000002a5f3b1c00`), both read from `dovecot-uidlist` in the Maildir's root. A POP3
    /// UIDL Dovecot stored for the message (the `P` field of its line, as `pop3_save_uidl` or a
    /// migration writes it) is used instead when there is one. Versions 1 and 3 of the file
    /// are read (Dovecot 1.0 to 2.3 and Courier's `courierimapuiddb` layout).
    Dovecot,
    /// What Courier's pop3d shows: `UID<n>-<uidvalidity>` (`UID<n>` when the validity is 0),
    /// read from `courierpop3dsizelist` in the Maildir's root (list versions 2 and 3), where
    /// Courier numbers each message it has listed. An entry numbered 0 gets the base name
    /// with every character outside 0x21 to 0x7E, and `'`, `"` and `+`, written `+XX` (hex),
    /// as Courier does.
    Courier,
    /// The message's `X-UIDL` header, where it has one that is a valid UIDL (the first such
    /// field of the header, 1 to 70 characters from 0x21 to 0x7E): what qpopper and other
    /// mbox servers added to each message and showed, kept when such mail was converted to
    /// Maildir. Costly: every login opens every message and reads its header (at most 64 KB
    /// of it), where the other presets read one small file.
    XUidl,
}

impl UidlFormat {
    /// Every preset, in the order the manual lists them.
    pub const ALL: [UidlFormat; 4] = [
        UidlFormat::Maildir,
        UidlFormat::Dovecot,
        UidlFormat::Courier,
        UidlFormat::XUidl,
    ];

    /// The preset's name, as `--uidl-format` takes it.
    pub fn name(self) -> &'static str {
        match self {
            UidlFormat::Maildir => "maildir",
            UidlFormat::Dovecot => "dovecot",
            UidlFormat::Courier => "courier",
            UidlFormat::XUidl => "x-uidl",
        }
    }
}

impl fmt::Display for UidlFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a preset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownUidlFormat(pub String);

impl fmt::Display for UnknownUidlFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown UIDL format {:?} (known: maildir, dovecot, courier, x-uidl)",
            self.0
        )
    }
}

impl std::error::Error for UnknownUidlFormat {}

impl FromStr for UidlFormat {
    type Err = UnknownUidlFormat;

    fn from_str(s: &str) -> Result<UidlFormat, UnknownUidlFormat> {
        UidlFormat::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownUidlFormat(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in UidlFormat::ALL {
            assert_eq!(f.name().parse::<UidlFormat>(), Ok(f));
        }
        let names: Vec<&str> = UidlFormat::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(names, ["maildir", "dovecot", "courier", "x-uidl"]);
        assert_eq!("X-UIDL".parse::<UidlFormat>(), Ok(UidlFormat::XUidl));
        assert_eq!("Dovecot".parse::<UidlFormat>(), Ok(UidlFormat::Dovecot));
        assert!("qmail".parse::<UidlFormat>().is_err());
    }
}
