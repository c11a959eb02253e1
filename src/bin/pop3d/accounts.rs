//! Where accounts come from: exactly one source per run.

use crate::state;
use pop3d::auth::passwd_file::PasswdFile;
use pop3d::Authenticator;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The account source the command line names, and how login names are compared.
pub struct Accounts {
    pub source: Source,
    /// `--keep-case`: login names are case-sensitive even where folding is the default.
    pub keep_case: bool,
}

/// Where accounts come from.
pub enum Source {
    /// `--passwd FILE`: virtual accounts in a passwd-file (the default).
    PasswdFile {
        path: String,
        /// Seconds to remember successful logins (0: not at all).
        login_cache: u64,
    },
}

impl Accounts {
    /// The source from the options; none given means the default passwd-file.
    pub fn from_matches(m: &getopts::Matches) -> Result<Accounts, String> {
        Ok(Accounts {
            source: Source::from_matches(m)?,
            keep_case: m.opt_present("keep-case"),
        })
    }

    /// Whether login names are folded to lower case: mail addresses are compared that way,
    /// Unix account names are not.
    pub fn folds_case(&self) -> bool {
        !self.keep_case && self.source.folds_case()
    }
}

impl Source {
    fn from_matches(m: &getopts::Matches) -> Result<Source, String> {
        Ok(Source::PasswdFile {
            path: m
                .opt_str("passwd")
                .unwrap_or_else(|| "/etc/pop3d/passwd".into()),
            login_cache: match m.opt_str("login-cache") {
                Some(secs) => crate::number(&secs, "--login-cache")?,
                None => 0,
            },
        })
    }

    /// Whether checking a login needs root (the system's passwords): the broker then checks
    /// it. A passwd-file is read by the front, as `--user`.
    pub fn needs_root(&self) -> bool {
        match self {
            Source::PasswdFile { .. } => false,
        }
    }

    fn folds_case(&self) -> bool {
        match self {
            Source::PasswdFile { .. } => true,
        }
    }

    /// Checks the source as `--check` does; returns what to report on success.
    pub fn check(&self) -> Result<String, String> {
        match self {
            Source::PasswdFile { path, .. } => {
                let passwd = PasswdFile::new(path).map_err(|e| format!("--passwd: {e}"))?;
                let accounts = passwd.check().map_err(|e| format!("{path}: {e}"))?;
                Ok(format!("{accounts} accounts in {path}"))
            }
        }
    }

    /// Opens the source for serving. Under inetd, state shared between processes lives in
    /// `state_dir`.
    pub fn open(
        &self,
        apop: bool,
        inetd: bool,
        state_dir: &Path,
    ) -> Result<Arc<dyn Authenticator>, String> {
        match self {
            Source::PasswdFile { path, login_cache } => {
                let mut passwd = PasswdFile::new(path).map_err(|e| format!("--passwd: {e}"))?;
                if *login_cache > 0 {
                    passwd = passwd.with_login_cache(Duration::from_secs(*login_cache));
                }
                if apop && !passwd.secret_kinds().plain {
                    log::warn!(
                        "--apop: not every account in {path} has a {{PLAIN}} password, so APOP \
                         is not offered (it would lock the others out)"
                    );
                }
                if inetd {
                    if let Some(file) = state::cost_file(state_dir) {
                        passwd = passwd.with_shared_cost(file);
                    }
                }
                Ok(Arc::new(passwd))
            }
        }
    }
}
