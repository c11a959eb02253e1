//! SCRAM-SHA-256 (RFC 5802, RFC 7677), server side, without channel binding.

use super::{Names, Outcome, Step};
use crate::account::Account;
use crate::auth::secret::{constant_time_eq, hmac_sha256, random_bytes, ScramKeys, Secret};
use crate::auth::AuthError;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};

pub(super) struct Server {
    stage: Stage,
    /// Fixed nonce for tests; random otherwise.
    nonce: Option<String>,
}

enum Stage {
    ClientFirst,
    /// The client-first message read; waiting for the user's secret.
    Lookup(Box<ClientFirst>),
    ClientFinal(Box<Pending>),
    /// Proof checked, server signature sent; waiting for the client's empty response.
    Verified(Account),
    Over,
}

/// What the client-first message said.
struct ClientFirst {
    user: String,
    gs2_header: String,
    bare: String,
    client_nonce: String,
}

struct Pending {
    user: String,
    account: Option<Account>,
    keys: ScramKeys,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl Server {
    pub(super) fn new() -> Server {
        Server {
            stage: Stage::ClientFirst,
            nonce: None,
        }
    }

    pub(super) fn step(&mut self, message: &[u8], names: Names<'_>) -> Step {
        let stage = std::mem::replace(&mut self.stage, Stage::Over);
        let result = match stage {
            Stage::ClientFirst => match client_first(message, names) {
                Ok(first) => {
                    let user = first.user.clone();
                    self.stage = Stage::Lookup(Box::new(first));
                    return Step::NeedSecret(user);
                }
                Err(outcome) => Err(outcome),
            },
            Stage::ClientFinal(pending) => self.client_final(message, *pending),
            Stage::Verified(account) if message.is_empty() => {
                return Step::Done(Outcome::LoggedIn(account))
            }
            Stage::Lookup(_) | Stage::Verified(_) | Stage::Over => {
                Err(Outcome::Malformed("unexpected SCRAM message"))
            }
        };
        match result {
            Ok(challenge) => Step::Challenge(challenge.into_bytes()),
            Err(outcome) => Step::Done(outcome),
        }
    }

    /// Continues after the client-first message with the secret the authenticator found,
    /// and answers with the server-first message.
    pub(super) fn secret(
        &mut self,
        found: Result<(Account, Secret), AuthError>,
        names: Names<'_>,
    ) -> Step {
        let Stage::Lookup(first) = std::mem::replace(&mut self.stage, Stage::Over) else {
            return Step::Done(Outcome::Malformed("unexpected SCRAM secret"));
        };
        let ClientFirst {
            user,
            gs2_header,
            bare,
            client_nonce,
        } = *first;
        // Every path derives keys once, with the same count, so the time to answer tells
        // nothing about the account; the salt of an account without stored keys is as
        // unpredictable as a stored one, the same at every connection, in every process and
        // after a restart, and its count the one most stored keys use.
        let salt = salt_for(names.secret, &user);
        let iterations = names.scram_iterations;
        let (account, keys) = match found {
            Ok((account, Secret::Plain(password))) => (
                Some(account),
                ScramKeys::derive(&password, &salt, iterations),
            ),
            found => {
                let mut fake = ScramKeys::derive(&random_bytes::<16>(), &salt, iterations);
                match found {
                    Ok((account, Secret::Scram(keys))) => (Some(account), keys),
                    // Carry on with keys nothing matches: an unknown user fails at the end,
                    // like a wrong password.
                    _ => {
                        fake.stored_key = random_bytes();
                        (None, fake)
                    }
                }
            }
        };
        let server_nonce = self
            .nonce
            .clone()
            .unwrap_or_else(|| B64.encode(random_bytes::<18>()));
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&keys.salt),
            keys.iterations
        );
        self.stage = Stage::ClientFinal(Box::new(Pending {
            user,
            account,
            keys,
            gs2_header,
            client_first_bare: bare,
            server_first: server_first.clone(),
            nonce,
        }));
        Step::Challenge(server_first.into_bytes())
    }

    fn client_final(&mut self, message: &[u8], p: Pending) -> Result<String, Outcome> {
        let text = std::str::from_utf8(message).map_err(|_| malformed())?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or_else(malformed)?;
        let mut attrs = without_proof.split(',');
        let binding = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or_else(malformed)?;
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or_else(malformed)?;
        if B64.decode(binding).ok().as_deref() != Some(p.gs2_header.as_bytes()) || nonce != p.nonce
        {
            return Err(Outcome::Malformed(
                "SCRAM channel binding or nonce does not match",
            ));
        }
        let proof: [u8; 32] = B64
            .decode(proof)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(malformed)?;
        let auth_message = format!("{},{},{without_proof}", p.client_first_bare, p.server_first);
        let signature = hmac_sha256(&p.keys.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(signature).map(|(a, b)| a ^ b).collect();
        let ok = constant_time_eq(&Sha256::digest(&client_key), &p.keys.stored_key);
        match (p.account, ok) {
            (Some(account), true) => {
                let server_signature = hmac_sha256(&p.keys.server_key, auth_message.as_bytes());
                self.stage = Stage::Verified(account);
                Ok(format!("v={}", B64.encode(server_signature)))
            }
            (_, _) => Err(Outcome::Failed(AuthError::rejected(format!(
                "SCRAM proof failed for {}",
                p.user
            )))),
        }
    }
}

/// Reads the client-first message.
fn client_first(message: &[u8], names: Names<'_>) -> Result<ClientFirst, Outcome> {
    let text = std::str::from_utf8(message).map_err(|_| malformed())?;
    // gs2-header: cbind flag, authzid, then the bare message.
    let mut parts = text.splitn(3, ',');
    let (Some(cbind), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    if cbind.starts_with("p=") {
        return Err(Outcome::Malformed("SCRAM channel binding is not supported"));
    }
    if cbind != "n" && cbind != "y" {
        return Err(malformed());
    }
    let mut attrs = bare.split(',');
    let name = attrs
        .next()
        .and_then(|a| a.strip_prefix("n="))
        .ok_or_else(malformed)?;
    let client_nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or_else(malformed)?;
    if client_nonce.is_empty() {
        return Err(malformed());
    }
    let user = names.user(unescape(name)?.as_bytes())?;
    if let Some(z) = authzid.strip_prefix("a=") {
        if names.user(unescape(z)?.as_bytes()).ok().as_deref() != Some(user.as_str()) {
            return Err(Outcome::Failed(AuthError::rejected(format!(
                "{user} asked to act as another user"
            ))));
        }
    } else if !authzid.is_empty() {
        return Err(malformed());
    }
    Ok(ClientFirst {
        user,
        gs2_header: format!("{cbind},{authzid},"),
        bare: bare.to_owned(),
        client_nonce: client_nonce.to_owned(),
    })
}

/// A per-user salt for keys derived from a plaintext secret (and for unknown users): the same
/// for a user as long as the server secret is, different for every user, and not computable
/// without the secret, so it cannot show that an account has no stored keys, or does not exist.
fn salt_for(secret: &[u8; 32], user: &str) -> Vec<u8> {
    let mut data = b"pop3d SCRAM salt\0".to_vec();
    data.extend_from_slice(user.as_bytes());
    hmac_sha256(secret, &data)[..16].to_vec()
}

/// A saslname with `=2C` and `=3D` decoded (RFC 5802 §5.1); any other `=` is an error.
fn unescape(name: &str) -> Result<String, Outcome> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(malformed()),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

fn malformed() -> Outcome {
    Outcome::Malformed("malformed SCRAM message")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Authenticator;

    /// The RFC 7677 §3 account: user "user", password "pencil", with the RFC's salt.
    struct Rfc7677;

    impl Authenticator for Rfc7677 {
        fn authenticate(&self, _: &str, _: &[u8]) -> Result<Account, AuthError> {
            Err(AuthError::rejected("not used"))
        }
        fn secret(&self, user: &str) -> Result<(Account, Secret), AuthError> {
            let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
            match user {
                "user" => Ok((
                    Account::new("user"),
                    Secret::Scram(ScramKeys::derive(b"pencil", &salt, 4096)),
                )),
                _ => Err(AuthError::rejected("unknown")),
            }
        }
    }

    const NAMES: Names<'static> = Names {
        default_domain: None,
        case: crate::user_name::Case::Fold,
        host: "test",
        secret: &[7; 32],
        scram_iterations: 4096,
    };

    /// One client message, with any secret it asks for looked up as the session would.
    fn step(s: &mut Server, message: &[u8]) -> Step {
        match s.step(message, NAMES) {
            Step::NeedSecret(user) => s.secret(Rfc7677.secret(&user), NAMES),
            other => other,
        }
    }

    fn server() -> Server {
        Server {
            stage: Stage::ClientFirst,
            nonce: Some("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into()),
        }
    }

    #[test]
    fn rfc7677_exchange() {
        let mut s = server();
        let Step::Challenge(first) = step(&mut s, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO") else {
            panic!("no server-first");
        };
        assert_eq!(
            first,
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let Step::Challenge(last) = step(
            &mut s,
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
              p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        ) else {
            panic!("no server-final");
        };
        assert_eq!(last, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        assert!(matches!(step(&mut s, b""), Step::Done(Outcome::LoggedIn(a)) if a.name == "user"));
    }

    #[test]
    fn wrong_proof_and_unknown_user_fail_alike() {
        for user in ["user", "nobody"] {
            let mut s = server();
            let first = format!("n,,n={user},r=rOprNGfwEbeRWgbNEkqO");
            assert!(matches!(step(&mut s, first.as_bytes()), Step::Challenge(_)));
            let last = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                         p=AAAAZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
            assert!(
                matches!(step(&mut s, last), Step::Done(Outcome::Failed(_))),
                "{user}"
            );
        }
    }

    #[test]
    fn malformed_messages() {
        for bad in [
            &b"p=tls-unique,,n=user,r=abc"[..],
            b"x,,n=user,r=abc",
            b"n,,r=abc",
            b"n,,n=user,r=",
            b"n,,n=us=er,r=abc",
            b"\xff",
        ] {
            let mut s = server();
            assert!(
                matches!(step(&mut s, bad), Step::Done(Outcome::Malformed(_))),
                "{bad:?}"
            );
        }
        assert_eq!(unescape("a=2Cb=3Dc").ok().as_deref(), Some("a,b=c"));
    }

    #[test]
    fn an_unknown_users_salt_and_count_come_from_the_secret_and_the_setting() {
        let first = |names: Names<'_>| {
            let mut s = server();
            match s.step(b"n,,n=nobody,r=abc", names) {
                Step::NeedSecret(user) => match s.secret(Rfc7677.secret(&user), names) {
                    Step::Challenge(c) => String::from_utf8(c).unwrap(),
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            }
        };
        let other = Names {
            secret: &[8; 32],
            scram_iterations: 10_000,
            ..NAMES
        };
        assert_eq!(first(NAMES), first(NAMES));
        assert!(first(NAMES).ends_with(",i=4096"));
        assert!(first(other).ends_with(",i=10000"));
        assert_ne!(
            first(NAMES).split(',').nth(1),
            first(other).split(',').nth(1)
        );
    }

    #[test]
    fn other_authzid_is_refused() {
        let mut s = server();
        let step = step(&mut s, b"n,a=admin,n=user,r=abc");
        assert!(matches!(step, Step::Done(Outcome::Failed(_))));
    }
}
