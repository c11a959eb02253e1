//! Becoming an account for good: the groups, gid and uid of the account, in the order that
//! leaves no step with more privilege than it needs, checked afterwards.

use crate::privileges;
use pop3d::user_name::{normalize_with, Case};
use pop3d::Account;
use std::ffi::CString;

/// Who a mailbox process may become.
#[derive(Clone, Debug)]
pub struct Rules {
    /// `--first-uid`: lower uids (system accounts) are never served; uid 0 never is.
    pub first_uid: u32,
    /// The group kept as the saved gid (`--mail-group`), for a store that makes dot-locks in
    /// a spool directory of that group; `None` keeps no extra group.
    pub mail_gid: Option<libc::gid_t>,
    /// `--chroot`: the front reads account homes and Maildir paths inside it, so a mailbox
    /// process must see the same tree.
    pub chroot: Option<std::path::PathBuf>,
}

/// The uid and gid an account would run as, or why it may not.
pub fn ids(account: &Account, rules: &Rules) -> Result<(libc::uid_t, libc::gid_t), String> {
    // The front checked the name; a name it could never have let through (one that could
    // climb out of a path template) is refused here too.
    if normalize_with(&account.name, None, Case::Keep).as_deref() != Ok(account.name.as_str()) {
        return Err(format!("unacceptable account name {:?}", account.name));
    }
    let uid = account.uid.ok_or("the account has no uid")?;
    let gid = account.gid.ok_or(
        "the account has a uid but no gid: give both (the passwd file's third and fourth fields)",
    )?;
    if uid == 0 {
        return Err("uid 0 (root) is never served".into());
    }
    if uid < rules.first_uid {
        return Err(format!(
            "uid {uid} is below --first-uid {} (a system account); refused",
            rules.first_uid
        ));
    }
    if gid == 0 {
        return Err("gid 0 (root's group) is never served".into());
    }
    Ok((uid, gid))
}

/// Becomes `account` for good: its groups, the chroot if any, then its gid (keeping the mail group, if any, as the
/// saved gid), then its uid; no core dumps; and checks that root cannot be regained.
///
/// The supplementary groups are the system's for that name (initgroups) when the name is a
/// system account with that very uid, as a login would give; otherwise, for a virtual account
/// of a passwd file, the gid alone, so that a virtual name that happens to match a system
/// account never borrows its groups.
pub fn become_account(account: &Account, rules: &Rules) -> Result<(), String> {
    let (uid, gid) = ids(account, rules)?;
    let saved_gid = rules.mail_gid.unwrap_or(gid);
    let os = |what: &str| format!("{what}: {}", std::io::Error::last_os_error());
    match system_account_named(&account.name, uid) {
        Some(name) => {
            // SAFETY: a NUL-terminated name that outlives the call, which only reads it.
            if unsafe { libc::initgroups(name.as_ptr(), gid) } != 0 {
                return Err(os("initgroups"));
            }
        }
        None => {
            // SAFETY: one gid, read by the call.
            if unsafe { libc::setgroups(1, &gid) } != 0 {
                return Err(os("setgroups"));
            }
        }
    }
    // After the groups (the group database is outside), before giving up root (needed here).
    if let Some(dir) = &rules.chroot {
        privileges::enter_chroot(dir)?;
    }
    // SAFETY: these calls take and return plain integers and touch no memory of ours.
    unsafe {
        if libc::setresgid(gid, gid, saved_gid) != 0 {
            return Err(os("setresgid"));
        }
        if libc::setresuid(uid, uid, uid) != 0 {
            return Err(os("setresuid"));
        }
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    check(uid, gid, saved_gid)
}

/// Fails unless the process is exactly uid/gid/saved_gid, belongs to no root group, and cannot
/// become root again.
fn check(uid: libc::uid_t, gid: libc::gid_t, saved_gid: libc::gid_t) -> Result<(), String> {
    let (mut r, mut e, mut s) = (0, 0, 0);
    let (mut rg, mut eg, mut sg) = (0, 0, 0);
    let mut groups = [0 as libc::gid_t; 256];
    // SAFETY: out-parameters and a buffer of the length given.
    let (ok_u, ok_g, n) = unsafe {
        (
            libc::getresuid(&mut r, &mut e, &mut s) == 0,
            libc::getresgid(&mut rg, &mut eg, &mut sg) == 0,
            libc::getgroups(groups.len() as libc::c_int, groups.as_mut_ptr()),
        )
    };
    let ids_right = ok_u && ok_g && (r, e, s) == (uid, uid, uid) && (rg, eg) == (gid, gid);
    let groups = &groups[..n.max(0) as usize];
    // SAFETY: as above; each call fails for an unprivileged process, which is the point.
    let regains = unsafe { libc::setuid(0) == 0 || libc::seteuid(0) == 0 || libc::setgid(0) == 0 };
    if !ids_right || sg != saved_gid || n < 0 || groups.contains(&0) || regains {
        return Err(format!(
            "could not become uid {uid} gid {gid} for good (now uid {r}/{e}/{s}, gid \
             {rg}/{eg}/{sg}, groups {groups:?})"
        ));
    }
    Ok(())
}

/// `name` as a C string if the system's user database has it, by that very name, with uid
/// `uid`.
fn system_account_named(name: &str, uid: libc::uid_t) -> Option<CString> {
    match privileges::system_account(name) {
        Some((found, found_uid, _)) if found_uid == uid && found.as_bytes() == name.as_bytes() => {
            Some(found)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(uid: Option<u32>, gid: Option<u32>) -> Account {
        let mut a = Account::new("bob");
        a.uid = uid;
        a.gid = gid;
        a
    }

    #[test]
    fn root_system_accounts_and_half_given_ids_are_refused() {
        let rules = Rules {
            first_uid: 1000,
            mail_gid: None,
            chroot: None,
        };
        assert_eq!(ids(&account(Some(1000), Some(5)), &rules), Ok((1000, 5)));
        for (uid, gid) in [
            (Some(0), Some(0)),
            (Some(0), Some(1000)),
            (Some(999), Some(1000)),
            (Some(1000), Some(0)),
            (Some(1000), None),
            (None, Some(1000)),
            (None, None),
        ] {
            assert!(ids(&account(uid, gid), &rules).is_err(), "{uid:?} {gid:?}");
        }
        let low = Rules {
            first_uid: 1,
            mail_gid: None,
            chroot: None,
        };
        assert_eq!(ids(&account(Some(1), Some(1)), &low), Ok((1, 1)));
        assert!(ids(&account(Some(0), Some(1)), &low).is_err());
        for name in ["../etc", "a/b", "", "Bob bob", ".x", "a@b@c"] {
            let mut a = account(Some(1000), Some(1000));
            a.name = name.into();
            assert!(ids(&a, &rules).is_err(), "{name:?}");
        }
        let mut a = account(Some(1000), Some(1000));
        a.name = "Bob@Example.org".into();
        assert!(ids(&a, &rules).is_ok(), "case is the source's business");
    }
}
