//! `pop3d --deliver USER`: one message from standard input into USER's mailbox, for an MTA
//! (Postfix's `mailbox_command` or `pipe`, Exim's `pipe`, qmail's `.qmail`).
//!
//! The account source, store and names are the server's, from the same options, so the
//! message lands where a login finds it. What the MTA learns is the exit status (sysexits, or
//! qmail's with `--qmail`) and one line on standard error that starts with the RFC 3463 status
//! (`5.2.2 Mailbox full: quota exceeded`), which Postfix puts in its bounce as `dovecot-lda -e`
//! has it do. Exit 0 only once the store said the message is on disk and synced; on any failure
//! nothing of it is in the mailbox. The details go to syslog.
//!
//! Headers are kept as they come: the MTA adds `Return-Path:` and `Delivered-To:` if told to
//! (Postfix's `pipe` flags `R` and `D`, which `mailbox_command` adds on its own). Only an mbox
//! `From ` envelope line at the very start is left out.

mod from_line;

use crate::accounts::Accounts;
use crate::mailstore::Spec;
use pop3d::store::delivery::{Deliver, DeliveryError, DeliveryErrorKind, OverQuota};
use pop3d::store::maildir::MaildirStore;
use pop3d::store::mbox::MboxStore;
use pop3d::store::Quota;
use pop3d::user_name::{normalize_with, Case};
use pop3d::Account;
use std::io;
use std::path::Path;
use std::process::ExitCode;

/// sysexits.h: no such user.
const EX_NOUSER: u8 = 67;
/// sysexits.h: temporary failure; the MTA tries again later.
const EX_TEMPFAIL: u8 = 75;
/// sysexits.h: permission denied; what `dovecot-lda -e` exits with for a full mailbox.
const EX_NOPERM: u8 = 77;
/// qmail-local: a permanent failure.
const QMAIL_HARD: u8 = 100;
/// qmail-local: a temporary failure.
const QMAIL_SOFT: u8 = 111;

/// True if the command line asks for delivery mode (read before the options are parsed: the
/// log then goes to syslog, since standard error is the MTA's bounce text).
pub fn requested(args: &[String]) -> bool {
    args.iter()
        .any(|a| a == "--deliver" || a.starts_with("--deliver="))
}

/// A command line that cannot be understood, in delivery mode: the mail waits in the queue
/// until the administrator fixes it, rather than bounce.
pub fn usage_failure(args: &[String], text: &str) -> ExitCode {
    let qmail = args.iter().any(|a| a == "--qmail");
    fail(
        DeliveryErrorKind::Temporary,
        OverQuota::Permanent,
        qmail,
        text,
    )
}

/// How the run is set up: what `--deliver` and its companions say.
struct Mode {
    over_quota: OverQuota,
    qmail: bool,
}

/// Delivers standard input to `user` as the options say, and returns the exit status.
pub fn main(m: &getopts::Matches, user: &str) -> ExitCode {
    let mode = Mode {
        over_quota: if m.opt_present("quota-temporary") {
            OverQuota::Temporary
        } else {
            OverQuota::Permanent
        },
        qmail: m.opt_present("qmail"),
    };
    let stdin = io::stdin();
    let mut message = from_line::WithoutFromLine::new(stdin.lock());
    let result = setup(m).and_then(|(accounts, store, case, domain, mbox)| {
        let name = normalize_with(user, domain.as_deref(), case).map_err(|e| {
            DeliveryError::new(DeliveryErrorKind::NoSuchUser, format!("{user:?}: {e}"))
        })?;
        let account = lookup(&*accounts, &name)?;
        become_owner(&account, mbox)?;
        store.deliver(&account, &mut message)
    });
    match result {
        Ok(uidl) => {
            log::info!("delivered to {user} as {uidl}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::warn!("not delivered to {user}: {}", e.detail());
            // The MTA may still be writing: let it finish, so that it reads our status rather
            // than a broken pipe.
            let _ = io::copy(&mut message, &mut io::sink());
            fail(e.kind(), mode.over_quota, mode.qmail, e.detail())
        }
    }
}

type Setup = (
    std::sync::Arc<dyn pop3d::Authenticator>,
    Box<dyn Deliver>,
    Case,
    Option<String>,
    bool,
);

/// The account source, the store, how names are written and whether the store is mbox, from
/// the options.
fn setup(m: &getopts::Matches) -> Result<Setup, DeliveryError> {
    let config = |text: String| DeliveryError::new(DeliveryErrorKind::Temporary, text);
    let accounts = Accounts::from_matches(m).map_err(config)?;
    let case = if accounts.folds_case() {
        Case::Fold
    } else {
        Case::Keep
    };
    let state_dir = m
        .opt_str("state-dir")
        .unwrap_or_else(|| "/var/lib/pop3d".into());
    let auth = accounts
        .source
        .open(false, false, Path::new(&state_dir))
        .map_err(config)?;
    let quota = match m.opt_str("quota") {
        Some(rule) => Some(Quota::parse(&rule).map_err(|e| config(format!("--quota: {e}")))?),
        None => None,
    };
    let mut mbox = false;
    let store: Box<dyn Deliver> = match Spec::from_matches(m).map_err(config)? {
        Spec::Maildir(template, _) => {
            let store =
                MaildirStore::new(&template).map_err(|e| config(format!("--maildir: {e}")))?;
            Box::new(match quota {
                Some(quota) => store.with_quota(quota),
                None => store,
            })
        }
        Spec::Mbox(template) => {
            let store = MboxStore::new(&template).map_err(|e| config(format!("--mbox: {e}")))?;
            mbox = true;
            Box::new(match quota {
                Some(quota) => store.with_quota(quota),
                None => store,
            })
        }
    };
    Ok((auth, store, case, m.opt_str("default-domain"), mbox))
}

/// The account of `name`, without a password: unknown is [`DeliveryErrorKind::NoSuchUser`],
/// unreadable [`DeliveryErrorKind::Temporary`], as [`deliver_to`](pop3d::store::delivery::deliver_to) has it (which the
/// agent cannot call as it is: it changes user between the lookup and the delivery).
fn lookup(accounts: &dyn pop3d::Authenticator, name: &str) -> Result<Account, DeliveryError> {
    accounts.lookup(name).map_err(|e| match e.kind() {
        pop3d::AuthErrorKind::Rejected => {
            DeliveryError::new(DeliveryErrorKind::NoSuchUser, e.detail())
        }
        _ => DeliveryError::new(DeliveryErrorKind::Temporary, e.detail()),
    })
}

/// Run as root (by an MTA told to), become the account's owner before writing, so that the
/// files are the account's; without a uid to become, refuse rather than leave root's files in
/// a user's mailbox.
///
/// For an mbox the `mail` group is kept as the saved gid, as the privilege broker does for a
/// session: Debian's `/var/mail` is `root:mail` 2775, so the dot-lock `USER.lock` (and a new
/// spool) can only be created with that group, which the store takes just around those calls.
/// Staying root instead would let a user whose spool's directory is theirs (`%h/mbox`) aim a
/// symlink at a directory where root would then create a file.
fn become_owner(account: &Account, mbox: bool) -> Result<(), DeliveryError> {
    // SAFETY: geteuid takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let refuse = |text: String| DeliveryError::new(DeliveryErrorKind::Temporary, text);
    let (Some(uid), Some(gid)) = (account.uid, account.gid) else {
        return Err(refuse(format!(
            "refusing to deliver to {} as root: the account has no uid and gid to become",
            account.name
        )));
    };
    if uid == 0 {
        return Err(refuse(format!(
            "refusing to deliver to {} as uid 0",
            account.name
        )));
    }
    let groups = [gid];
    let saved_gid = match mbox {
        true => crate::privileges::group_id("mail", "").unwrap_or(gid),
        false => gid,
    };
    // SAFETY: these calls take plain integers and a pointer to one gid that outlives the call.
    let ok = unsafe {
        libc::setgroups(1, groups.as_ptr()) == 0
            && libc::setresgid(gid, gid, saved_gid) == 0
            && libc::setuid(uid) == 0
    };
    // SAFETY: as above; setuid(0) must now fail, or root was not given up.
    if !ok || unsafe { libc::setuid(0) } == 0 {
        return Err(refuse(format!(
            "cannot become uid {uid} gid {gid} for {}: {}",
            account.name,
            io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Says why on standard error, status first, and returns the exit status the MTA expects.
fn fail(kind: DeliveryErrorKind, over_quota: OverQuota, qmail: bool, detail: &str) -> ExitCode {
    let reply = DeliveryError::new(kind, detail).smtp_reply(over_quota);
    eprintln!("{} {}", reply.status, reply.text);
    let code = match (qmail, reply.is_temporary(), kind) {
        (true, true, _) => QMAIL_SOFT,
        (true, false, _) => QMAIL_HARD,
        (false, true, _) => EX_TEMPFAIL,
        (false, false, DeliveryErrorKind::NoSuchUser) => EX_NOUSER,
        (false, false, _) => EX_NOPERM,
    };
    ExitCode::from(code)
}
