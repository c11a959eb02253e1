//! Where mail lives: exactly one store per run.

use pop3d::store::maildir::MaildirStore;
use pop3d::store::mbox::MboxStore;
use pop3d::MailStore;
use std::sync::Arc;

/// The store the command line names.
pub enum Spec {
    /// `--maildir TEMPLATE` (the default, `%h/Maildir`).
    Maildir(String),
    /// `--mbox TEMPLATE`: one mbox spool file per account, e.g. `/var/mail/%u`.
    Mbox(String),
}

impl Spec {
    /// The store from the options: `--maildir` or `--mbox`, not both.
    pub fn from_matches(m: &getopts::Matches) -> Result<Spec, String> {
        match (m.opt_str("maildir"), m.opt_str("mbox")) {
            (Some(_), Some(_)) => Err("give --maildir or --mbox, not both".into()),
            (None, Some(template)) => Ok(Spec::Mbox(template)),
            (maildir, None) => Ok(Spec::Maildir(
                maildir.unwrap_or_else(|| "%h/Maildir".into()),
            )),
        }
    }

    /// Opens the store for serving.
    pub fn open(&self) -> Result<Arc<dyn MailStore>, String> {
        match self {
            Spec::Maildir(template) => Ok(Arc::new(
                MaildirStore::new(template).map_err(|e| format!("--maildir: {e}"))?,
            )),
            Spec::Mbox(template) => Ok(Arc::new(
                MboxStore::new(template).map_err(|e| format!("--mbox: {e}"))?,
            )),
        }
    }
}
