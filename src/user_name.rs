//! Login names: what is accepted, and the canonical form the authenticator and store see.
//!
//! A login name ends up in file paths (`%u`, `%n`, `%d` in the Maildir template and the passwd
//! path), so anything that could step out of the mail root is refused before any lookup.

use crate::limits::MAX_USER_NAME;
use std::fmt;

/// Why a login name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserNameError {
    /// Nothing was given.
    Empty,
    /// Longer than 255 octets.
    TooLong,
    /// A control character, space, NUL, `/`, `\`, `:` or `%`: unsafe in paths and passwd files.
    BadCharacter,
    /// `..`, or a part that starts with `.`: could name a parent or hidden directory.
    BadDot,
    /// An empty local part or domain, or more than one `@`.
    BadDomain,
}

impl fmt::Display for UserNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UserNameError::Empty => "user name is empty",
            UserNameError::TooLong => "user name is too long",
            UserNameError::BadCharacter => "user name contains a character that is not allowed",
            UserNameError::BadDot => "user name may not start with '.' or contain '..'",
            UserNameError::BadDomain => "user name must be local or local@domain",
        })
    }
}

impl std::error::Error for UserNameError {}

/// Checks a login name and returns its canonical form: lower case, with `default_domain`
/// appended to a bare name when one is configured.
pub fn normalize(raw: &str, default_domain: Option<&str>) -> Result<String, UserNameError> {
    if raw.is_empty() {
        return Err(UserNameError::Empty);
    }
    let mut name = raw.to_lowercase();
    if !name.contains('@') {
        if let Some(domain) = default_domain {
            name.push('@');
            name.push_str(&domain.to_lowercase());
        }
    }
    if name.len() > MAX_USER_NAME {
        return Err(UserNameError::TooLong);
    }
    if name
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '/' | '\\' | ':' | '%'))
    {
        return Err(UserNameError::BadCharacter);
    }
    let mut parts = name.split('@');
    let local = parts.next().unwrap_or("");
    let domain = parts.next();
    if parts.next().is_some() || local.is_empty() || domain == Some("") {
        return Err(UserNameError::BadDomain);
    }
    if name.contains("..") || local.starts_with('.') || domain.is_some_and(|d| d.starts_with('.')) {
        return Err(UserNameError::BadDot);
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_lowercases() {
        assert_eq!(normalize("Bob", None).unwrap(), "bob");
        assert_eq!(
            normalize("Bob@Example.COM", None).unwrap(),
            "bob@example.com"
        );
        assert_eq!(normalize("bob", Some("Ex.org")).unwrap(), "bob@ex.org");
        assert_eq!(normalize("bob@a.org", Some("ex.org")).unwrap(), "bob@a.org");
        assert_eq!(normalize("first.last+tag", None).unwrap(), "first.last+tag");
    }

    #[test]
    fn refuses_names_that_could_escape() {
        use UserNameError::*;
        let cases: &[(&str, UserNameError)] = &[
            ("", Empty),
            ("../x", BadCharacter),
            ("..", BadDot),
            ("a..b", BadDot),
            (".hidden", BadDot),
            ("a@.x", BadDot),
            ("a/b", BadCharacter),
            ("a\\b", BadCharacter),
            ("a%2fb", BadCharacter),
            ("a\0b", BadCharacter),
            ("a\x1bb", BadCharacter),
            ("a b", BadCharacter),
            ("a:b", BadCharacter),
            ("a@b@c", BadDomain),
            ("@b", BadDomain),
            ("a@", BadDomain),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw, None), Err(*want), "{raw:?}");
        }
        assert_eq!(normalize(&"x".repeat(300), None), Err(TooLong));
    }
}
