//! QUIT, and the UPDATE state it starts after login (RFC 1939 §6).

use super::reply::Reply;
use super::{messages, End, Session, State};

impl Session<'_> {
    pub(super) fn quit(&mut self) -> Reply {
        let State::Transaction(mut t) =
            std::mem::replace(&mut self.state, State::Authorization { user: None })
        else {
            return Reply::Close("Bye".into(), End::Quit);
        };
        // The mailbox (and its lock) goes when `t` does, at the end of this function: before
        // the reply is sent, so a client that reconnects at once finds it free.
        self.logged_out = Some((t.account.name.clone(), t.mechanism));
        let doomed = super::expiry::doomed(&t);
        if doomed.is_empty() {
            super::expiry::record(&mut t);
            return Reply::Close("Bye".into(), End::Quit);
        }
        // The deletions are committed before the +OK goes out.
        match t.mailbox.delete(&doomed) {
            Ok(()) => {
                super::expiry::record(&mut t);
                self.stats.deleted = doomed.len() as u64;
                self.stats.deleted_bytes = doomed.iter().fold(0u64, |sum, &i| {
                    sum.saturating_add(t.mailbox.messages()[i].size)
                });
                Reply::Close(
                    format!("Bye, {} deleted", messages(doomed.len())),
                    End::Quit,
                )
            }
            Err(e) => {
                log::error!("update failed: user={} ({})", t.account.name, e.detail());
                Reply::Close(
                    "[SYS/TEMP] Some deleted messages were not removed".into(),
                    End::Aborted,
                )
            }
        }
    }
}
