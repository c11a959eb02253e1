//! Reading a passwd-file line by line, and the fields of one account line.

use crate::account::Account;
use std::io::{self, BufRead};

/// The fields of one account line, borrowed from it.
pub(super) struct Fields<'a> {
    pub(super) user: &'a str,
    /// `None` when the line has no `:` at all.
    pub(super) password: Option<&'a str>,
    uid: &'a str,
    gid: &'a str,
    home: &'a str,
    /// Dovecot's extra fields, after the shell: `key=value` pairs separated by spaces, whose
    /// values may hold `:` (`userdb_quota_rule=*:storage=1G`).
    extra: &'a str,
}

impl<'a> Fields<'a> {
    pub(super) fn split(line: &'a str) -> Fields<'a> {
        // Eight at most: the extra fields keep their colons.
        let mut fields = line.splitn(8, ':');
        let user = fields.next().unwrap_or("");
        let password = fields.next();
        let uid = fields.next().unwrap_or("");
        let gid = fields.next().unwrap_or("");
        let _gecos = fields.next();
        let home = fields.next().unwrap_or("");
        let _shell = fields.next();
        let extra = fields.next().unwrap_or("");
        Fields {
            user,
            password,
            uid,
            gid,
            home,
            extra,
        }
    }

    /// The account for `user` (its canonical name, whatever case the file used).
    pub(super) fn account(&self, user: &str, at: &str) -> Account {
        let mut account = Account::new(user);
        if !self.home.is_empty() {
            account = account.with_home(self.home);
        }
        account.uid = parse_id(self.uid, "uid", at);
        account.gid = parse_id(self.gid, "gid", at);
        account.quota = super::extra::quota(self.extra, at);
        account.login_delay = super::extra::login_delay(self.extra, at);
        account.expire = super::extra::expire(self.extra, at);
        account
    }
}

/// A uid or gid field. Anything but a number is ignored rather than refused: the login itself is
/// fine, and the mail store decides whether it needs the ids.
fn parse_id(field: &str, what: &str, at: &str) -> Option<u32> {
    if field.is_empty() {
        return None;
    }
    match field.parse() {
        Ok(id) => Some(id),
        Err(_) => {
            log::debug!("{at}: {what} {field:?} is not a number; ignored");
            None
        }
    }
}

/// Reads the next line into `buf`, without its `\n` or `\r\n`. `Ok(false)` at end of file.
pub(super) fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<bool> {
    buf.clear();
    if reader.read_until(b'\n', buf)? == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    Ok(true)
}

/// Blank lines and comments.
pub(super) fn is_skipped(line: &[u8]) -> bool {
    line.first() == Some(&b'#') || line.iter().all(u8::is_ascii_whitespace)
}

/// The first line (number and bytes) whose user field is one of `keys`, ignoring case. Streams
/// the whole file, holding one line and the match, and reads on past the match doing the same
/// work for every line, so that the time taken does not depend on where (or whether) it is.
pub(super) fn find(
    mut reader: impl BufRead,
    keys: &[&str],
) -> io::Result<Option<(usize, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut line_no = 0;
    let mut found = None;
    while read_line(&mut reader, &mut buf)? {
        line_no += 1;
        if is_skipped(&buf) {
            continue;
        }
        let user = buf.split(|&b| b == b':').next().unwrap_or(&[]);
        let matches = keys.iter().any(|key| same_name(user, key));
        if std::hint::black_box(matches) && found.is_none() {
            found = Some((line_no, buf.clone()));
        }
    }
    Ok(found)
}

/// True if the file's user field names `wanted`, which is already lower case.
fn same_name(field: &[u8], wanted: &str) -> bool {
    match std::str::from_utf8(field) {
        Ok(name) if name.is_ascii() => name.eq_ignore_ascii_case(wanted),
        // The same lowering user_name::normalize applies to the login.
        Ok(name) => name.to_lowercase() == wanted,
        Err(_) => false,
    }
}
