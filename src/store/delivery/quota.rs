//! Quotas: how much a mailbox may hold, in bytes and in messages, and the two ways of writing
//! one (pop3d's `--quota` and Dovecot's `quota_rule`).

use std::fmt;

/// The most a mailbox may hold. `None` is no limit, and so is `Some(0)`, as in Maildir++ and
/// Dovecot.
///
/// Bytes are counted as stored (Maildir's `,S=`, the size Courier, maildrop and Dovecot count
/// in `maildirsize`), not as sent over POP3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quota {
    /// Most bytes, all messages together.
    pub storage: Option<u64>,
    /// Most messages.
    pub messages: Option<u64>,
}

/// What a mailbox holds: the figures a [`Quota`] limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Bytes of all messages.
    pub bytes: u64,
    /// Number of messages.
    pub messages: u64,
}

/// A quota that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaError(String);

impl fmt::Display for QuotaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QuotaError {}

fn error(text: impl Into<String>) -> QuotaError {
    QuotaError(text.into())
}

impl Quota {
    /// No limit at all.
    pub fn is_unlimited(&self) -> bool {
        self.storage_limit().is_none() && self.message_limit().is_none()
    }

    /// The byte limit, if there is one.
    pub fn storage_limit(&self) -> Option<u64> {
        self.storage.filter(|&n| n > 0)
    }

    /// The message limit, if there is one.
    pub fn message_limit(&self) -> Option<u64> {
        self.messages.filter(|&n| n > 0)
    }

    /// Reads pop3d's syntax, Dovecot's rule without the mailbox part: comma-separated
    /// `storage=SIZE`, `bytes=SIZE` and `messages=N`, e.g. `storage=1G,messages=10000`.
    ///
    /// As in Dovecot, `storage` is in kilobytes unless a unit follows (`b`, `k`, `M`, `G`, `T`
    /// in either case, powers of 1024), `bytes` in bytes, and `0` means no limit. `none` is no
    /// quota.
    pub fn parse(text: &str) -> Result<Quota, QuotaError> {
        let mut quota = Quota::default();
        if text.trim() == "none" {
            return Ok(quota);
        }
        for part in text.split(',').map(str::trim) {
            quota.apply(part)?;
        }
        Ok(quota)
    }

    /// Reads one Dovecot `quota_rule` value (`*:storage=1G`, `*:messages=1000`, or both as
    /// `*:storage=1G:messages=1000`) into this quota. Only the rule for all mailboxes (`*`)
    /// applies; a rule for one folder (`Trash:storage=+100M`) is ignored (`Ok(false)`), since
    /// POP3 serves the inbox alone. `*:ignore` is no quota. Relative limits (`+100M`, `10%`)
    /// are refused.
    pub fn apply_dovecot_rule(&mut self, rule: &str) -> Result<bool, QuotaError> {
        let Some((mailbox, limits)) = rule.split_once(':') else {
            return Err(error(format!(
                "quota rule {rule:?} has no mailbox part (*:)"
            )));
        };
        if mailbox != "*" {
            return Ok(false);
        }
        if limits == "ignore" {
            // Dovecot's way of saying the account has no quota.
            *self = Quota::default();
            return Ok(true);
        }
        for part in limits.split(':') {
            if part == "noenforcing" || part.is_empty() {
                continue;
            }
            self.apply(part)?;
        }
        Ok(true)
    }

    /// One `key=value` setting.
    fn apply(&mut self, part: &str) -> Result<(), QuotaError> {
        let Some((key, value)) = part.split_once('=') else {
            return Err(error(format!(
                "{part:?} is not storage=SIZE, bytes=SIZE or messages=N"
            )));
        };
        let limit = |n: u64| (n > 0).then_some(n);
        match key {
            "storage" => self.storage = limit(size(value, 1024)?),
            "bytes" => self.storage = limit(size(value, 1)?),
            "messages" => self.messages = limit(size(value, 1)?),
            _ => return Err(error(format!("unknown quota setting {key:?}"))),
        }
        Ok(())
    }

    /// True if `usage` plus one message of `bytes` goes over the quota. Holding exactly the
    /// limit is allowed, as Courier and Dovecot allow it.
    pub fn exceeded_by(&self, usage: Usage, bytes: u64) -> bool {
        let over = |limit: Option<u64>, used: u64, more: u64| {
            limit.is_some_and(|l| used.saturating_add(more) > l)
        };
        over(self.storage_limit(), usage.bytes, bytes)
            || over(self.message_limit(), usage.messages, 1)
    }

    /// True if a message of `bytes` could not fit even in an empty mailbox.
    pub fn too_big(&self, bytes: u64) -> bool {
        self.storage_limit().is_some_and(|l| bytes > l)
    }
}

/// Shown in pop3d's syntax, in bytes: `bytes=1073741824,messages=10000`, or `none`.
impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.storage_limit(), self.message_limit()) {
            (None, None) => f.write_str("none"),
            (Some(b), None) => write!(f, "bytes={b}"),
            (None, Some(m)) => write!(f, "messages={m}"),
            (Some(b), Some(m)) => write!(f, "bytes={b},messages={m}"),
        }
    }
}

/// A number with an optional unit; `default_unit` applies without one.
fn size(value: &str, default_unit: u64) -> Result<u64, QuotaError> {
    let bad = || {
        error(format!(
            "{value:?} is not a size (a number, then b, k, M, G or T)"
        ))
    };
    if value.starts_with(['+', '-']) || value.ends_with('%') {
        return Err(error(format!(
            "relative quota {value:?} is not supported; give the limit itself"
        )));
    }
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &value[digits.len()..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    // Either case, as Dovecot reads them.
    let multiplier: u64 = match unit.to_ascii_uppercase().as_str() {
        "" => default_unit,
        "B" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(bad()),
    };
    let number: u64 = digits.parse().map_err(|_| bad())?;
    number
        .checked_mul(multiplier)
        .ok_or_else(|| error(format!("{value:?} is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pop3d_syntax() {
        let q = Quota::parse("storage=1G,messages=10000").unwrap();
        assert_eq!(q.storage, Some(1 << 30));
        assert_eq!(q.messages, Some(10_000));
        assert_eq!(Quota::parse("storage=100").unwrap().storage, Some(102_400));
        assert_eq!(Quota::parse("bytes=100").unwrap().storage, Some(100));
        assert_eq!(Quota::parse("storage=100b").unwrap().storage, Some(100));
        assert_eq!(Quota::parse("storage=2g").unwrap().storage, Some(2 << 30));
        assert_eq!(Quota::parse("storage=0").unwrap(), Quota::default());
        assert_eq!(Quota::parse("none").unwrap(), Quota::default());
        for bad in [
            "storage",
            "storage=1X",
            "size=1G",
            "storage=+1M",
            "storage=10%",
            "",
        ] {
            assert!(Quota::parse(bad).is_err(), "{bad}");
        }
        assert!(Quota::parse("storage=99999999999T").is_err());
        assert_eq!(q.to_string(), "bytes=1073741824,messages=10000");
        assert_eq!(Quota::parse(&q.to_string()).unwrap(), q);
    }

    #[test]
    fn dovecot_rules() {
        let mut q = Quota::default();
        assert!(q.apply_dovecot_rule("*:storage=1G").unwrap());
        assert!(q.apply_dovecot_rule("*:messages=50").unwrap());
        assert_eq!((q.storage, q.messages), (Some(1 << 30), Some(50)));
        assert!(!q.apply_dovecot_rule("Trash:storage=+100M").unwrap());
        let mut both = Quota::default();
        both.apply_dovecot_rule("*:storage=10M:messages=5").unwrap();
        assert_eq!((both.storage, both.messages), (Some(10 << 20), Some(5)));
        assert!(Quota::default().apply_dovecot_rule("storage=1G").is_err());
        assert!(both.apply_dovecot_rule("*:ignore").unwrap());
        assert_eq!(both, Quota::default());
    }

    #[test]
    fn the_limit_itself_is_allowed() {
        let q = Quota {
            storage: Some(100),
            messages: Some(2),
        };
        let used = Usage {
            bytes: 60,
            messages: 1,
        };
        assert!(!q.exceeded_by(used, 40));
        assert!(q.exceeded_by(used, 41));
        let full = Usage {
            bytes: 0,
            messages: 2,
        };
        assert!(q.exceeded_by(full, 0));
        assert!(q.too_big(101) && !q.too_big(100));
        assert!(!Quota::default().exceeded_by(used, u64::MAX));
    }
}
