//! UIDLs for the messages of an mbox, which has no names to take them from: pure.
//!
//! A message keeps the UIDL another POP3 server gave it when that server wrote it down in an
//! `X-UIDL` header (Qpopper and GNU Mailutils do), if it is valid and no earlier message of the
//! mbox claims the same one. Any other message is known by a digest of its `From ` line and of
//! its header, without the bookkeeping headers that mail readers rewrite: the same message
//! gets the same UIDL in every session, whatever was deleted around it.
//!
//! Two messages whose `From ` lines and headers are identical octet for octet (the same
//! delivery made twice in the same second) get the digest with `-2`, `-3`, ... added in file
//! order; such a twin's UIDL changes if an earlier twin is deleted, which only makes a client
//! fetch it once more.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The UIDL of each message, given its `X-UIDL` value (if valid) and its header digest.
pub(super) fn assign<'a>(
    messages: impl Iterator<Item = (Option<&'a str>, &'a [u8; 16])> + Clone,
) -> Vec<String> {
    let mut headers: HashSet<&str> = HashSet::new();
    let uses_header: Vec<bool> = messages
        .clone()
        .map(|(x_uidl, _)| x_uidl.is_some_and(|u| headers.insert(u)))
        .collect();
    let mut twins: HashMap<&[u8; 16], u32> = HashMap::new();
    let mut out = Vec::with_capacity(uses_header.len());
    for ((x_uidl, digest), header) in messages.zip(uses_header) {
        if let (Some(uidl), true) = (x_uidl, header) {
            out.push(uidl.to_owned());
            continue;
        }
        let n = twins.entry(digest).or_insert(0);
        loop {
            *n += 1;
            let mut uidl = String::with_capacity(40);
            for b in digest {
                uidl.push(char::from(HEX[usize::from(b >> 4)]));
                uidl.push(char::from(HEX[usize::from(b & 15)]));
            }
            if *n > 1 {
                let _ = write!(uidl, "-{n}");
            }
            if !headers.contains(uidl.as_str()) {
                out.push(uidl);
                break;
            }
        }
    }
    out
}
