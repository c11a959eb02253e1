//! Where mail lives: exactly one store per run.

use pop3d::store::maildir::{MaildirStore, UidlFormat};
use pop3d::store::mbox::MboxStore;
use pop3d::MailStore;
use std::sync::Arc;

/// The store the command line names.
pub enum Spec {
    /// `--maildir TEMPLATE` (the default, `%h/Maildir`), with `--uidl-format`.
    Maildir(String, UidlFormat),
    /// `--mbox TEMPLATE`: one mbox spool file per account, e.g. `/var/mail/%u`.
    Mbox(String),
}

impl Spec {
    /// The store from the options: `--maildir` or `--mbox`, not both.
    pub fn from_matches(m: &getopts::Matches) -> Result<Spec, String> {
        let uidl = match m.opt_str("uidl-format") {
            Some(name) => name.parse().map_err(|e| format!("--uidl-format: {e}"))?,
            None => UidlFormat::default(),
        };
        match (m.opt_str("maildir"), m.opt_str("mbox")) {
            (Some(_), Some(_)) => Err("give --maildir or --mbox, not both".into()),
            (None, Some(template)) => Ok(Spec::Mbox(template)),
            (maildir, None) => Ok(Spec::Maildir(
                maildir.unwrap_or_else(|| "%h/Maildir".into()),
                uidl,
            )),
        }
    }

    /// The path template, and the option that gave it.
    pub fn template(&self) -> (&str, &'static str) {
        match self {
            Spec::Maildir(template, _) => (template, "--maildir"),
            Spec::Mbox(template) => (template, "--mbox"),
        }
    }

    /// Opens the store for serving.
    pub fn open(&self) -> Result<Arc<dyn MailStore>, String> {
        match self {
            Spec::Maildir(template, uidl) => Ok(Arc::new(
                MaildirStore::new(template)
                    .map_err(|e| format!("--maildir: {e}"))?
                    .with_uidl_format(*uidl),
            )),
            Spec::Mbox(template) => Ok(Arc::new(
                MboxStore::new(template).map_err(|e| format!("--mbox: {e}"))?,
            )),
        }
    }
}
