//! PLAIN (RFC 4616), and the password check LOGIN shares with it.

use super::{Context, Outcome};
use crate::auth::AuthError;

/// Checks a PLAIN message: `[authzid] NUL authcid NUL password`.
pub(super) fn check(message: &[u8], ctx: &Context<'_>) -> Outcome {
    // An empty message (`AUTH PLAIN =`, RFC 5034 §4) offers no credentials at all: a failed
    // login like any other (delay and reply), not a protocol error; Dovecot answers the same.
    if message.is_empty() {
        return Outcome::Failed(AuthError::rejected("empty PLAIN message"));
    }
    let mut parts = message.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Outcome::Malformed("PLAIN needs authzid NUL authcid NUL password");
    };
    let user = match ctx.user(authcid) {
        Ok(user) => user,
        Err(outcome) => return outcome,
    };
    // Acting as another user (an authzid other than oneself) is an administrator's power that
    // pop3d does not grant.
    if !authzid.is_empty() && ctx.user(authzid).ok().as_deref() != Some(user.as_str()) {
        return Outcome::Failed(AuthError::rejected(format!(
            "{user} asked to act as another user"
        )));
    }
    login(ctx, &user, password)
}

/// Checks `password` for `user` with the authenticator.
pub(super) fn login(ctx: &Context<'_>, user: &str, password: &[u8]) -> Outcome {
    match ctx.auth.authenticate(user, password) {
        Ok(account) => Outcome::LoggedIn(account),
        Err(e) => {
            ctx.tried.set(Some((ctx.fingerprint)(user, password)));
            Outcome::Failed(e)
        }
    }
}
