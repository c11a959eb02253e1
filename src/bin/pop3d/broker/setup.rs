//! Starting the broker for the daemon's settings.

use super::{Client, OpenSource, Powers, Rules};
use crate::settings::Settings;
use crate::{mailstore, privileges};
use pop3d::{Authenticator, MailStore};
use std::sync::Arc;

/// The group Debian's mail spool belongs to, whose members may make dot-locks there.
const MAIL_GROUP: &str = "mail";

/// Forks the broker (call as root, before any thread starts) and returns the front's store and
/// account source, which use it where they need another uid or root, and the broker itself
/// (which reads the TLS files again on SIGHUP).
pub fn start_for(
    s: &Settings,
    store: Arc<dyn MailStore>,
    auth: Arc<dyn Authenticator>,
) -> Result<(super::Serving, Arc<Client>), String> {
    let rules = Rules {
        first_uid: s.first_uid,
        mail_gid: mail_gid(s)?,
        chroot: s.chroot.clone(),
    };
    let needs_root = s.accounts.source.needs_root();
    let client: Arc<Client> = super::start(s.inetd, || {
        let open_source: OpenSource = Box::new(|| {
            s.accounts
                .source
                .open(s.session.apop, s.inetd, &s.state_dir)
        });
        Ok(Powers {
            store: s.store.open()?,
            auth: needs_root.then_some(open_source),
            rules,
            tls_files: s.tls.clone(),
        })
    })?;
    Ok((super::wrap(store, auth, needs_root, client.clone()), client))
}

/// The saved gid of a mailbox process: `--mail-group`, or the `mail` group for a store that
/// makes dot-locks in a spool (not Maildir, which never needs it).
fn mail_gid(s: &Settings) -> Result<Option<libc::gid_t>, String> {
    match &s.mail_group {
        Some(group) => privileges::group_id(group, "--mail-group").map(Some),
        None if matches!(s.store, mailstore::Spec::Maildir(..)) => Ok(None),
        None => Ok(privileges::group_id(MAIL_GROUP, "").ok()),
    }
}
