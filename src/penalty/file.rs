//! The failure penalty table in a file, for processes that serve one connection each (inetd):
//! fixed-size records behind a magic line, read whole and rewritten whole under an exclusive
//! flock(2), so a process sees every failure the others recorded.
//!
//! Each record holds an address (IPv4 as IPv4-mapped IPv6), the failure count, the time of the
//! last failure, the fingerprint of the last wrong password and up to
//! [`PENALTY_USERS_PER_ADDRESS`] user fingerprints with their counts. Anything that does not
//! parse ends the table there: a damaged file costs remembered failures, never a login.

use super::{Entry, Fingerprint, Table};
use crate::limits::PENALTY_USERS_PER_ADDRESS;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::AsRawFd;

const MAGIC: &[u8; 16] = b"pop3d-penalty 1\n";

/// Address, failures, last, secret flag and secret, user count, users.
const RECORD: usize = 16 + 4 + 8 + 1 + 8 + 1 + PENALTY_USERS_PER_ADDRESS * (8 + 4);

/// The size of a file of `entries` records.
pub(super) fn size_of(entries: usize) -> usize {
    MAGIC.len() + entries * RECORD
}

/// An exclusive flock(2) on the file, released on drop.
pub(super) struct Lock<'a>(&'a File);

impl<'a> Lock<'a> {
    /// Waits for the lock. Should flock fail (it does not on a local file), the table is used
    /// unlocked: a lost update costs one remembered failure.
    pub(super) fn exclusive(file: &'a File) -> Lock<'a> {
        // SAFETY: flock on a descriptor the File keeps open.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            log::warn!(
                "cannot lock the failure penalty file: {}",
                io::Error::last_os_error()
            );
        }
        Lock(file)
    }
}

impl Drop for Lock<'_> {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// The table in the file; empty if the file is empty, not a table, or cannot be read.
pub(super) fn load(mut file: &File) -> Table {
    let mut bytes = Vec::new();
    if let Err(e) = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
    {
        log::warn!("cannot read the failure penalty file: {e}");
        return Table::new();
    }
    let mut table = Table::new();
    let Some(records) = bytes.strip_prefix(MAGIC) else {
        return table;
    };
    for record in records.chunks_exact(RECORD) {
        match parse(record) {
            Some((ip, entry)) => table.insert(ip, entry),
            None => break,
        };
    }
    table
}

/// Replaces the file's contents with `table`.
pub(super) fn save(mut file: &File, table: &Table) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(size_of(table.len()));
    bytes.extend_from_slice(MAGIC);
    for (ip, entry) in table {
        write(&mut bytes, *ip, entry);
    }
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&bytes)?;
    file.set_len(bytes.len() as u64)
}

fn write(out: &mut Vec<u8>, ip: IpAddr, e: &Entry) {
    let start = out.len();
    let v6 = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    out.extend_from_slice(&v6.octets());
    out.extend_from_slice(&e.failures.to_be_bytes());
    out.extend_from_slice(&e.last.to_be_bytes());
    out.push(u8::from(e.last_secret.is_some()));
    out.extend_from_slice(&e.last_secret.unwrap_or_default());
    let users = &e.users[..e.users.len().min(PENALTY_USERS_PER_ADDRESS)];
    out.push(users.len() as u8);
    for (user, n) in users {
        out.extend_from_slice(user);
        out.extend_from_slice(&n.to_be_bytes());
    }
    out.resize(start + RECORD, 0);
}

fn parse(r: &[u8]) -> Option<(IpAddr, Entry)> {
    let mut at = 0;
    let mut take = |n: usize| {
        let part = &r[at..at + n];
        at += n;
        part
    };
    let octets: [u8; 16] = take(16).try_into().ok()?;
    let ip = Ipv6Addr::from(octets).to_canonical();
    let failures = u32::from_be_bytes(take(4).try_into().ok()?);
    let last = u64::from_be_bytes(take(8).try_into().ok()?);
    let has_secret = take(1)[0];
    let secret: Fingerprint = take(8).try_into().ok()?;
    let count = usize::from(take(1)[0]);
    if has_secret > 1 || count > PENALTY_USERS_PER_ADDRESS {
        return None;
    }
    let mut users = Vec::with_capacity(count);
    for _ in 0..count {
        let user: Fingerprint = take(8).try_into().ok()?;
        users.push((user, u32::from_be_bytes(take(4).try_into().ok()?)));
    }
    let entry = Entry {
        failures,
        last,
        last_secret: (has_secret == 1).then_some(secret),
        users,
    };
    Some((ip, entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let mut table = Table::new();
        let entry = |n: u32| Entry {
            failures: n,
            last: 1_700_000_000_000 + u64::from(n),
            last_secret: (n % 2 == 0).then_some([n as u8; 8]),
            users: (0..n as usize % (PENALTY_USERS_PER_ADDRESS + 1))
                .map(|u| ([u as u8; 8], n))
                .collect(),
        };
        table.insert("192.0.2.7".parse().unwrap(), entry(3));
        table.insert("2001:db8:1:2::".parse().unwrap(), entry(8));
        let mut bytes = Vec::new();
        for (ip, e) in &table {
            write(&mut bytes, *ip, e);
            assert_eq!(bytes.len() % RECORD, 0);
        }
        let back: Table = bytes
            .chunks_exact(RECORD)
            .map(|r| parse(r).unwrap())
            .collect();
        assert_eq!(back, table);
    }
}
