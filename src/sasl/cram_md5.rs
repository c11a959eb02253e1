//! CRAM-MD5 (RFC 2195): the client proves it knows the password by an HMAC-MD5 of a challenge.

use super::{Names, Outcome};
use crate::account::Account;
use crate::auth::secret::{constant_time_eq, hex, random_bytes, Secret};
use crate::auth::AuthError;
use hmac::{Hmac, Mac};
use md5::Md5;

/// A CRAM-MD5 challenge, `<random.time@host>`.
pub(super) struct Challenge(String);

impl Challenge {
    pub(super) fn new(host: &str) -> Challenge {
        let random: [u8; 8] = random_bytes();
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Challenge(format!("<{}.{time}@{host}>", hex(&random)))
    }

    pub(super) fn text(&self) -> &str {
        &self.0
    }

    /// Reads the response `user SP hex-digest`; the digest is checked once the user's secret
    /// is known.
    pub(super) fn answer(self, response: &[u8], names: Names<'_>) -> Result<Answer, Outcome> {
        let Some(space) = response.iter().rposition(|&b| b == b' ') else {
            return Err(Outcome::Malformed("CRAM-MD5 response is user SP digest"));
        };
        let (name, digest) = (&response[..space], &response[space + 1..]);
        Ok(Answer {
            challenge: self,
            user: names.user(name)?,
            digest: digest.to_ascii_lowercase(),
        })
    }
}

/// A client's response, waiting for the user's secret.
pub(super) struct Answer {
    challenge: Challenge,
    user: String,
    digest: Vec<u8>,
}

impl Answer {
    pub(super) fn user(&self) -> &str {
        &self.user
    }

    /// Checks the digest against the secret the authenticator `found`.
    pub(super) fn check(self, found: Result<(Account, Secret), AuthError>) -> Outcome {
        let user = self.user;
        let (account, password) = match found {
            Ok((account, Secret::Plain(password))) => (Some(account), password),
            Ok((_, Secret::Scram(_))) | Err(_) => (None, Vec::new()),
        };
        // Computed for unknown users too, so both take the same time.
        let expected = hex(&hmac_md5(&password, self.challenge.0.as_bytes()));
        let matches = constant_time_eq(expected.as_bytes(), &self.digest);
        match (account, matches) {
            (Some(account), true) => Outcome::LoggedIn(account),
            (Some(_), false) => Outcome::Failed(AuthError::rejected(format!(
                "wrong CRAM-MD5 digest for {user}"
            ))),
            (None, _) => Outcome::Failed(AuthError::rejected(format!(
                "no CRAM-MD5 secret for {user}"
            ))),
        }
    }
}

fn hmac_md5(key: &[u8], data: &[u8]) -> [u8; 16] {
    let mut mac = <Hmac<Md5> as Mac>::new_from_slice(key).expect("HMAC accepts any key");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2195_example() {
        // RFC 2195 §2: tim / tanstaaftanstaaf.
        let challenge = b"<1896.697170952@postoffice.reston.mci.net>";
        assert_eq!(
            hex(&hmac_md5(b"tanstaaftanstaaf", challenge)),
            "b913a602c7eda7a495b4e6e7334d3890"
        );
    }
}
