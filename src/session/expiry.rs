//! EXPIRE (RFC 2449 §6.7), enforced: messages retrieved long enough ago are removed at login,
//! before the session numbers the messages; those retrieved in a session are recorded (or,
//! with a period of 0 days, removed) in its UPDATE state.
//!
//! Both are safe points: the mailbox is locked, and no message number has been shown yet or
//! will be shown again. A session that does not end with `QUIT` records nothing, as it
//! deletes nothing: only a retrieval the client confirmed by ending the session properly
//! starts a message's period.

use super::transaction::Transaction;
use crate::store::Mailbox;
use crate::Expire;

/// Removes what the account's EXPIRE period says has been kept long enough, from the store and
/// from the snapshot `mailbox` is about to show. Failures are logged: the session goes on with
/// whatever the mailbox still holds.
pub(super) fn at_login(mailbox: &mut dyn Mailbox, expire: Option<Expire>, user: &str) {
    let Some(age) = expire.and_then(Expire::period) else {
        return;
    };
    match mailbox.expire(age) {
        Ok(Some(0)) => {}
        Ok(Some(removed)) => log::info!("expired: user={user} messages={removed}"),
        Ok(None) if !age.is_zero() => log::info!(
            "expire not enforced: user={user} (the store keeps no record of retrievals; only \
             EXPIRE 0 is)"
        ),
        Ok(None) => {}
        Err(e) => log::error!("expire failed: user={user} ({})", e.detail()),
    }
}

/// The messages UPDATE removes: those marked with DELE and, with EXPIRE 0, those retrieved.
pub(super) fn doomed(t: &Transaction) -> Vec<usize> {
    let retrieved_too = t.expire == Some(Expire::Days(0));
    (0..t.deleted.len())
        .filter(|&i| t.deleted[i] || (retrieved_too && t.retrieved[i]))
        .collect()
}

/// Records the retrievals of a session that ended with `QUIT`, when the account's period is
/// some days: its messages retrieved and not deleted. A failure is logged; those messages are
/// then kept longer, never removed sooner.
pub(super) fn record(t: &mut Transaction) {
    if !matches!(t.expire, Some(Expire::Days(days)) if days > 0) {
        return;
    }
    let kept: Vec<usize> = (0..t.retrieved.len())
        .filter(|&i| t.retrieved[i] && !t.deleted[i])
        .collect();
    if kept.is_empty() {
        return;
    }
    if let Err(e) = t.mailbox.retrieved(&kept) {
        log::warn!(
            "retrievals not recorded: user={} ({})",
            t.account.name,
            e.detail()
        );
    }
}
