//! Where each message's UIDL comes from under a [`UidlFormat`] preset: the other server's file
//! ([`migrated`](super::migrated)) or the message's own `X-UIDL` header, and never one UIDL
//! for two messages of a snapshot.

use super::migrated::{read, valid_uidl};
use super::open::MessageDirs;
use super::uidl_format::UidlFormat;
use super::MaildirMailbox;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;

impl MaildirMailbox {
    /// Gives each message the UIDL `format`'s server showed for it, where that server's file
    /// names it. A UIDL that another message of the snapshot already has is not taken (two
    /// messages must never share one): that message keeps its maildir UIDL.
    pub(super) fn migrate_uidls(&mut self, format: UidlFormat, dirs: &mut MessageDirs) {
        if format == UidlFormat::Maildir || self.files.is_empty() {
            return;
        }
        let found = match format {
            UidlFormat::XUidl => self.x_uidls(dirs),
            _ => self.listed_uidls(format),
        };
        let mut taken: HashSet<String> = found
            .iter()
            .zip(&self.messages)
            .filter(|(f, _)| f.is_none())
            .map(|(_, m)| m.uidl.clone())
            .collect();
        let (mut moved, mut clashes) = (0usize, 0usize);
        for (message, uidl) in self.messages.iter_mut().zip(found) {
            let Some(uidl) = uidl else { continue };
            if taken.insert(uidl.clone()) {
                message.uidl = uidl;
                moved += 1;
            } else {
                clashes += 1;
            }
        }
        log::debug!(
            "{}: {moved} of {} messages have their {format} UIDL",
            self.root.display(),
            self.messages.len()
        );
        if clashes > 0 {
            log::warn!(
                "{}: {clashes} {format} UIDLs already taken by another message; those keep \
                 the maildir UIDL",
                self.root.display()
            );
        }
    }

    /// The UIDL `format`'s file gives each message, where it names it.
    fn listed_uidls(&self, format: UidlFormat) -> Vec<Option<String>> {
        let index: HashMap<&[u8], usize> = self
            .files
            .iter()
            .enumerate()
            .map(|(i, stored)| (stored.basename().as_bytes(), i))
            .collect();
        let mut found: Vec<Option<String>> = vec![None; self.files.len()];
        read(self.locked.dir(), &self.root, format, |entry| {
            if let Some(&i) = index.get(entry.basename) {
                found[i].get_or_insert(entry.uidl);
            }
        });
        found
    }

    /// The `X-UIDL` header of each message that has a valid one: each message's header is
    /// read, at most [`MAX_HEADER`] octets of it.
    fn x_uidls(&mut self, dirs: &mut MessageDirs) -> Vec<Option<String>> {
        let mut header = Vec::new();
        (0..self.files.len())
            .map(|index| {
                header.clear();
                match self.open_message(dirs, index) {
                    Ok(Some(file)) => match file.take(MAX_HEADER as u64).read_to_end(&mut header) {
                        Ok(_) => x_uidl(&header),
                        Err(_) => None,
                    },
                    _ => None,
                }
            })
            .collect()
    }
}

/// The most of a message read to find its `X-UIDL` header: far more than any real header.
const MAX_HEADER: usize = 64 * 1024;

/// The value of the first `X-UIDL` field in the header of `message` (up to the first empty
/// line), if it is a valid UIDL; a folded or empty value is none.
pub(super) fn x_uidl(message: &[u8]) -> Option<String> {
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None;
        }
        let Some(name) = line.get(..7) else { continue };
        if name.eq_ignore_ascii_case(b"x-uidl:") {
            let value = std::str::from_utf8(&line[7..])
                .ok()?
                .trim_matches([' ', '\t']);
            return valid_uidl(value).then(|| value.to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_uidl_headers() {
        let x = |m: &str| x_uidl(m.as_bytes());
        assert_eq!(x("From: a\nX-UIDL: abc123\n\nbody"), Some("abc123".into()));
        assert_eq!(
            x("x-uidl:\t<9f@h>  \r\nSubject: s\r\n\r\n"),
            Some("<9f@h>".into())
        );
        assert_eq!(x("X-UIDL: first\nX-UIDL: second\n\n"), Some("first".into()));
        assert_eq!(x("Subject: s\n\nX-UIDL: in the body\n"), None);
        assert_eq!(x("X-UIDL: two words\n\n"), None);
        assert_eq!(x("X-UIDL:\n\tfolded\n\n"), None);
        assert_eq!(x(&format!("X-UIDL: {}\n\n", "a".repeat(71))), None);
        assert_eq!(x("X-UIDLS: no\n\n"), None);
        assert_eq!(x(""), None);
    }
}
