//! Where mail lives: exactly one store per run.

use pop3d::store::maildir::{MaildirStore, UidlFormat};
use pop3d::MailStore;
use std::sync::Arc;

/// The store the command line names.
pub enum Spec {
    /// `--maildir TEMPLATE` (the default, `%h/Maildir`), with `--uidl-format`.
    Maildir(String, UidlFormat),
}

impl Spec {
    /// The store from the options.
    pub fn from_matches(m: &getopts::Matches) -> Result<Spec, String> {
        let uidl = match m.opt_str("uidl-format") {
            Some(name) => name.parse().map_err(|e| format!("--uidl-format: {e}"))?,
            None => UidlFormat::default(),
        };
        Ok(Spec::Maildir(
            m.opt_str("maildir").unwrap_or_else(|| "%h/Maildir".into()),
            uidl,
        ))
    }

    /// The path template, and the option that gave it.
    pub fn template(&self) -> (&str, &'static str) {
        match self {
            Spec::Maildir(template, _) => (template, "--maildir"),
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
        }
    }
}
