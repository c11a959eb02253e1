//! The EXPIRE policy (RFC 2449 §6.7): how long a message stays on the server after a client
//! retrieved it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Seconds in the day EXPIRE counts in.
const DAY: u64 = 24 * 60 * 60;

/// How long retrieved messages are kept, as CAPA's EXPIRE announces it.
///
/// The period starts when a session that retrieved the message (`RETR`) ends with `QUIT`;
/// messages never retrieved are never removed. [`Days(0)`](Expire::Days) removes the messages
/// a session retrieved at the end of that session, as RFC 2449 allows; a longer period is
/// enforced only by stores that remember when each message was retrieved
/// ([`Mailbox::expire`](crate::Mailbox::expire)), such as the Maildir store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expire {
    /// Messages are kept until the client deletes them (`EXPIRE NEVER`).
    Never,
    /// Retrieved messages are removed this many days after they were retrieved.
    Days(u32),
}

impl Expire {
    /// The time a retrieved message is kept; `None` for [`Never`](Expire::Never).
    pub fn period(self) -> Option<Duration> {
        match self {
            Expire::Never => None,
            Expire::Days(days) => Some(Duration::from_secs(u64::from(days) * DAY)),
        }
    }
}

/// As CAPA says it: `NEVER` or the number of days.
impl fmt::Display for Expire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expire::Never => f.write_str("NEVER"),
            Expire::Days(days) => write!(f, "{days}"),
        }
    }
}

/// A value that is neither `never` nor a number of days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadExpire(String);

impl fmt::Display for BadExpire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is neither a number of days (0 to 4294967295) nor \"never\"",
            self.0
        )
    }
}

impl std::error::Error for BadExpire {}

/// `never` (any case) or a number of days in decimal digits.
impl FromStr for Expire {
    type Err = BadExpire;

    fn from_str(s: &str) -> Result<Expire, BadExpire> {
        if s.eq_ignore_ascii_case("never") {
            return Ok(Expire::Never);
        }
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadExpire(s.to_owned()));
        }
        s.parse()
            .map(Expire::Days)
            .map_err(|_| BadExpire(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_and_capa_form() {
        assert_eq!("never".parse(), Ok(Expire::Never));
        assert_eq!("NEVER".parse(), Ok(Expire::Never));
        assert_eq!("0".parse(), Ok(Expire::Days(0)));
        assert_eq!("30".parse(), Ok(Expire::Days(30)));
        for bad in ["", "-1", "+3", "3d", " 3", "99999999999"] {
            assert!(bad.parse::<Expire>().is_err(), "{bad:?}");
        }
        assert_eq!(Expire::Never.to_string(), "NEVER");
        assert_eq!(Expire::Days(30).to_string(), "30");
        assert_eq!(Expire::Days(1).period(), Some(Duration::from_secs(86_400)));
        assert_eq!(Expire::Never.period(), None);
    }
}
