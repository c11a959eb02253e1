//! Sessions per client address: one address may hold only so many at once.

use super::{lock, Shared};
use crate::net_range::client_key;
use std::net::IpAddr;

/// One of a client address's session slots; given back when dropped.
pub(super) struct IpSlot<'a> {
    shared: &'a Shared,
    ip: IpAddr,
}

impl<'a> IpSlot<'a> {
    /// A slot for `ip`, if it holds fewer than `max`.
    pub(super) fn take(shared: &'a Shared, ip: IpAddr, max: usize) -> Option<Self> {
        let ip = client_key(ip);
        let mut counts = lock(&shared.per_ip);
        let count = counts.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(IpSlot { shared, ip })
    }
}

impl Drop for IpSlot<'_> {
    fn drop(&mut self) {
        let mut counts = lock(&self.shared.per_ip);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}
