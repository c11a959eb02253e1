//! The extra fields pop3d reads: Dovecot's quota rules, and pop3d's own per-account
//! settings (`pop3_login_delay=SECS`, `pop3_expire=DAYS|never`).
//!
//! Dovecot passes `userdb_quota_rule=*:storage=1G` (and `quota_rule2`, `quota_rule3`, ...) from
//! a passwd-file to its quota plugin; pop3d reads the same fields, so an existing file keeps its
//! quotas. Both spellings are read: with the `userdb_` prefix (a passwd-file used as passdb
//! with prefetch) and without (used as userdb). Other extra fields are ignored.

use crate::store::delivery::Quota;

/// The quota the extra fields give, if any. A rule that cannot be read is logged and left
/// out: the account still logs in, and the store's default quota applies in its place.
pub(super) fn quota(extra: &str, at: &str) -> Option<Quota> {
    let mut quota = Quota::default();
    let mut any = false;
    for field in extra.split_ascii_whitespace() {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        let key = key.strip_prefix("userdb_").unwrap_or(key);
        let Some(suffix) = key.strip_prefix("quota_rule") else {
            continue;
        };
        if !suffix.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        match quota.apply_dovecot_rule(value) {
            Ok(applied) => any |= applied,
            Err(e) => log::warn!("{at}: {key}={value}: {e}; ignored"),
        }
    }
    any.then_some(quota)
}

/// The account's own LOGIN-DELAY, from `pop3_login_delay=SECS` (or `userdb_pop3_login_delay`).
pub(super) fn login_delay(extra: &str, at: &str) -> Option<std::time::Duration> {
    let value = field(extra, "pop3_login_delay")?;
    match value.parse() {
        Ok(secs) => Some(std::time::Duration::from_secs(secs)),
        Err(_) => {
            log::warn!("{at}: pop3_login_delay={value}: not a number of seconds; ignored");
            None
        }
    }
}

/// The account's own EXPIRE, from `pop3_expire=DAYS|never` (or `userdb_pop3_expire`).
pub(super) fn expire(extra: &str, at: &str) -> Option<crate::Expire> {
    let value = field(extra, "pop3_expire")?;
    match value.parse() {
        Ok(expire) => Some(expire),
        Err(e) => {
            log::warn!("{at}: pop3_expire={value}: {e}; ignored");
            None
        }
    }
}

/// The value of extra field `name`, with or without the `userdb_` prefix.
fn field<'a>(extra: &'a str, name: &str) -> Option<&'a str> {
    extra.split_ascii_whitespace().find_map(|f| {
        let (key, value) = f.split_once('=')?;
        (key.strip_prefix("userdb_").unwrap_or(key) == name).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_delay_from_either_spelling() {
        use std::time::Duration;
        assert_eq!(
            login_delay("pop3_login_delay=900", "t"),
            Some(Duration::from_secs(900))
        );
        assert_eq!(
            login_delay("a=b userdb_pop3_login_delay=60", "t"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(login_delay("pop3_login_delay=soon", "t"), None);
        assert_eq!(login_delay("quota_rule=*:bytes=1", "t"), None);
    }

    #[test]
    fn expire_from_either_spelling() {
        use crate::Expire;
        assert_eq!(expire("pop3_expire=30", "t"), Some(Expire::Days(30)));
        assert_eq!(
            expire("a=b userdb_pop3_expire=never", "t"),
            Some(Expire::Never)
        );
        assert_eq!(expire("pop3_expire=0", "t"), Some(Expire::Days(0)));
        assert_eq!(expire("pop3_expire=soon", "t"), None);
        assert_eq!(expire("pop3_login_delay=3", "t"), None);
    }

    #[test]
    fn rules_from_either_spelling() {
        let q = quota(
            "userdb_quota_rule=*:storage=1G userdb_quota_rule2=*:messages=10",
            "t",
        )
        .unwrap();
        assert_eq!((q.storage, q.messages), (Some(1 << 30), Some(10)));
        let q = quota("quota_rule=*:bytes=500 mail=maildir:~/Maildir", "t").unwrap();
        assert_eq!((q.storage, q.messages), (Some(500), None));
        assert_eq!(quota("", "t"), None);
        assert_eq!(
            quota("userdb_mail=maildir:/x quota_rulez=*:bytes=1", "t"),
            None
        );
        assert_eq!(quota("quota_rule=Trash:storage=+1M", "t"), None);
        assert_eq!(quota("quota_rule=*:storage=lots", "t"), None);
    }
}
