//! Where accounts come from: exactly one source per run.

use crate::shared_cost::SharedCost;
use crate::{passwd_files, state};
use pop3d::auth::passwd_file::PasswdFile;
use pop3d::auth::system::{CheckPassword, Pam, Shadow, DEFAULT_FIRST_UID};
use pop3d::Authenticator;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The options that each name an account source; at most one may be given.
const SOURCES: [&str; 4] = ["passwd", "pam", "shadow", "checkpassword"];

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
    /// `--pam SERVICE`: system accounts through PAM.
    Pam { service: String, first_uid: u32 },
    /// `--shadow`: system accounts from the passwd and shadow databases.
    Shadow { first_uid: u32 },
    /// `--checkpassword PROGRAM`: accounts checked by a checkpassword program.
    CheckPassword { program: String, first_uid: u32 },
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
        let given: Vec<String> = SOURCES
            .iter()
            .filter(|o| m.opt_present(o))
            .map(|o| format!("--{o}"))
            .collect();
        if given.len() > 1 {
            return Err(format!(
                "one account source per run: --passwd, --pam, --shadow or --checkpassword \
                 (given: {})",
                given.join(" and ")
            ));
        }
        let system = given.first().is_some_and(|o| o != "--passwd");
        if m.opt_present("login-cache") && system {
            return Err("--login-cache is for --passwd accounts".into());
        }
        if m.opt_present("default-domain") && system {
            return Err(
                "--default-domain is for --passwd accounts: system names have no domain".into(),
            );
        }
        // The same option bounds the uid a session runs as (the broker's children).
        let first_uid = match m.opt_str("first-uid") {
            Some(n) => u32::try_from(crate::settings::number(&n, "--first-uid")?)
                .map_err(|_| format!("--first-uid: {n} is not a uid"))?,
            None => DEFAULT_FIRST_UID,
        };
        if let Some(service) = m.opt_str("pam") {
            Pam::new(&service).map_err(|e| format!("--pam: {e}"))?;
            return Ok(Source::Pam { service, first_uid });
        }
        if m.opt_present("shadow") {
            return Ok(Source::Shadow { first_uid });
        }
        if let Some(program) = m.opt_str("checkpassword") {
            if !Path::new(&program).is_absolute() {
                return Err(format!(
                    "--checkpassword {program}: give the program's absolute path"
                ));
            }
            return Ok(Source::CheckPassword { program, first_uid });
        }
        Ok(Source::PasswdFile {
            path: m
                .opt_str("passwd")
                .unwrap_or_else(|| "/etc/pop3d/passwd".into()),
            login_cache: match m.opt_str("login-cache") {
                Some(secs) => crate::settings::number(&secs, "--login-cache")?,
                None => 0,
            },
        })
    }

    fn folds_case(&self) -> bool {
        match self {
            Source::PasswdFile { .. } => true,
            // Unix account names are case-sensitive: Bob and bob are two people.
            Source::Pam { .. } | Source::Shadow { .. } | Source::CheckPassword { .. } => false,
        }
    }

    /// Whether checking a login needs root: reading the shadow file, or letting a program
    /// switch to the account.
    pub fn needs_root(&self) -> bool {
        !matches!(self, Source::PasswdFile { .. })
    }

    /// Checks the source as `--check` does; returns what to report on success.
    pub fn check(&self) -> Result<String, String> {
        match self {
            Source::PasswdFile { path, .. } => {
                let passwd = PasswdFile::new(path).map_err(|e| format!("--passwd: {e}"))?;
                let accounts = passwd.check().map_err(|e| format!("{path}: {e}"))?;
                Ok(format!(
                    "{} in {path}",
                    crate::check::accounts_count(accounts)
                ))
            }
            Source::Pam { service, .. } => Pam::new(service)?.check(),
            Source::Shadow { .. } => Shadow::new().check(),
            Source::CheckPassword { program, .. } => checkpassword(program)?.check(),
        }
    }

    /// Whether the source can serve logins, checked where and as whom they will be checked
    /// (after the privilege drop): a passwd file that is missing, unreadable or malformed
    /// refuses the start, with every problem found.
    pub fn ready(&self) -> Result<(), String> {
        let Source::PasswdFile { path, .. } = self else {
            return Ok(());
        };
        let (_, problems) = passwd_files::check(&passwd_files::files(path)?);
        match problems.is_empty() {
            true => Ok(()),
            false => Err(problems.join("; ")),
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
        if apop && !matches!(self, Source::PasswdFile { .. }) {
            log::warn!("--apop: system accounts have no {{PLAIN}} secrets, so APOP is not offered");
        }
        let system: Arc<dyn Authenticator> = match self {
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
                return Ok(Arc::new(passwd));
            }
            Source::Pam { service, first_uid } => {
                Arc::new(Pam::new(service)?.first_uid(*first_uid))
            }
            Source::Shadow { first_uid } => Arc::new(Shadow::new().first_uid(*first_uid)),
            Source::CheckPassword { program, first_uid } => {
                Arc::new(checkpassword(program)?.first_uid(*first_uid))
            }
        };
        // Under inetd each process would measure the cost of a dummy hash at its first login.
        match inetd.then(|| state::system_cost_file(state_dir)).flatten() {
            Some(file) => Ok(Arc::new(SharedCost::new(system, file))),
            None => Ok(system),
        }
    }
}

/// The checkpassword source, with this very binary as its reply program.
fn checkpassword(program: &str) -> Result<CheckPassword, String> {
    let me = std::env::current_exe()
        .map_err(|e| format!("--checkpassword: cannot find pop3d's own path: {e}"))?;
    Ok(CheckPassword::new(
        program,
        vec![me.into_os_string(), "--checkpassword-reply".into()],
    ))
}

/// `pop3d --checkpassword-reply`, when it is the first argument: what a checkpassword program
/// runs as the account after a good password; `None` for any other command line.
pub fn checkpassword_reply(args: &[String]) -> Option<ExitCode> {
    if args.first().map(String::as_str) != Some("--checkpassword-reply") {
        return None;
    }
    Some(match pop3d::auth::system::checkpassword_reply() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pop3d --checkpassword-reply: {e}");
            ExitCode::from(111) // checkpassword's "temporary failure"
        }
    })
}
