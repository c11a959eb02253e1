//! Where mail lives: exactly one store per run.

use pop3d::store::maildir::MaildirStore;
use pop3d::MailStore;
use std::sync::Arc;

/// The store the command line names.
pub enum Spec {
    /// `--maildir TEMPLATE` (the default, `%h/Maildir`).
    Maildir(String),
}

impl Spec {
    /// The store from the options.
    pub fn from_matches(m: &getopts::Matches) -> Result<Spec, String> {
        Ok(Spec::Maildir(
            m.opt_str("maildir").unwrap_or_else(|| "%h/Maildir".into()),
        ))
    }

    /// Opens the store for serving.
    pub fn open(&self) -> Result<Arc<dyn MailStore>, String> {
        match self {
            Spec::Maildir(template) => Ok(Arc::new(
                MaildirStore::new(template).map_err(|e| format!("--maildir: {e}"))?,
            )),
        }
    }
}
