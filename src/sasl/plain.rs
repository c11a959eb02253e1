//! PLAIN (RFC 4616).

use super::{Names, Outcome, Step};
use crate::auth::AuthError;

/// Reads a PLAIN message: `[authzid] NUL authcid NUL password`.
pub(super) fn check(message: &[u8], names: Names<'_>) -> Step {
    // An empty message (`AUTH PLAIN =`, RFC 5034 §4) offers no credentials at all: a failed
    // login like any other (delay and reply), not a protocol error; Dovecot answers the same.
    if message.is_empty() {
        return Step::Done(Outcome::Failed(AuthError::rejected("empty PLAIN message")));
    }
    let mut parts = message.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Step::Done(Outcome::Malformed(
            "PLAIN needs authzid NUL authcid NUL password",
        ));
    };
    let user = match names.user(authcid) {
        Ok(user) => user,
        Err(outcome) => return Step::Done(outcome),
    };
    // Acting as another user (an authzid other than oneself) is an administrator's power that
    // pop3d does not grant.
    if !authzid.is_empty() && names.user(authzid).ok().as_deref() != Some(user.as_str()) {
        return Step::Done(Outcome::Failed(AuthError::rejected(format!(
            "{user} asked to act as another user"
        ))));
    }
    Step::CheckPassword {
        user,
        password: password.to_vec(),
    }
}
