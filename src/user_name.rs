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
    /// An invisible formatting character (Unicode general category Cf: bidi overrides and
    /// isolates, zero-width spaces and joiners, the byte order mark, ...), which would make
    /// the name show as another one in a log line or a terminal.
    Invisible(char),
}

impl fmt::Display for UserNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            UserNameError::Empty => "user name is empty",
            UserNameError::TooLong => "user name is too long",
            UserNameError::BadCharacter => "user name contains a character that is not allowed",
            UserNameError::BadDot => "user name may not start with '.' or contain '..'",
            UserNameError::BadDomain => "user name must be local or local@domain",
            // The code point, never the character: a reply does not echo the client's bytes.
            UserNameError::Invisible(c) => {
                return write!(
                    f,
                    "user name contains U+{:04X}, an invisible formatting character",
                    u32::from(*c)
                )
            }
        };
        f.write_str(text)
    }
}

impl std::error::Error for UserNameError {}

/// Whether login names are folded to lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Case {
    /// `Bob@Example.org` and `bob@example.org` are one account: virtual accounts, whose
    /// names are mail addresses (the default).
    #[default]
    Fold,
    /// `Bob` and `bob` are two accounts, as Unix account names are.
    Keep,
}

/// Checks a login name and returns its canonical form: lower case, with `default_domain`
/// appended to a bare name when one is configured. The same as [`normalize_with`] and
/// [`Case::Fold`].
pub fn normalize(raw: &str, default_domain: Option<&str>) -> Result<String, UserNameError> {
    normalize_with(raw, default_domain, Case::Fold)
}

/// Checks a login name and returns its canonical form, folded to lower case or not as `case`
/// says, with `default_domain` appended to a bare name when one is configured.
pub fn normalize_with(
    raw: &str,
    default_domain: Option<&str>,
    case: Case,
) -> Result<String, UserNameError> {
    if raw.is_empty() {
        return Err(UserNameError::Empty);
    }
    let fold = |text: &str| match case {
        Case::Fold => text.to_lowercase(),
        Case::Keep => text.to_owned(),
    };
    let mut name = fold(raw);
    if !name.contains('@') {
        if let Some(domain) = default_domain {
            name.push('@');
            name.push_str(&fold(domain));
        }
    }
    if name.len() > MAX_USER_NAME {
        return Err(UserNameError::TooLong);
    }
    if let Some(c) = name.chars().find(|&c| is_format(c)) {
        return Err(UserNameError::Invisible(c));
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

/// The characters of Unicode's general category Cf (format), as of Unicode 15.1. std has no
/// query for a general category, so they are listed here; the category grows rarely, and a
/// newer one would at worst let a new character through until the list catches up. (Line and
/// paragraph separators, U+2028 and U+2029, are whitespace, refused with the other spaces.)
const FORMAT_CHARACTERS: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),   // soft hyphen
    ('\u{0600}', '\u{0605}'),   // Arabic number signs
    ('\u{061C}', '\u{061C}'),   // Arabic letter mark
    ('\u{06DD}', '\u{06DD}'),   // Arabic end of ayah
    ('\u{070F}', '\u{070F}'),   // Syriac abbreviation mark
    ('\u{0890}', '\u{0891}'),   // Arabic pound and piastre marks above
    ('\u{08E2}', '\u{08E2}'),   // Arabic disputed end of ayah
    ('\u{180E}', '\u{180E}'),   // Mongolian vowel separator
    ('\u{200B}', '\u{200F}'),   // zero-width space, joiners, LRM, RLM
    ('\u{202A}', '\u{202E}'),   // bidi embeddings and overrides
    ('\u{2060}', '\u{2064}'),   // word joiner, invisible operators
    ('\u{2066}', '\u{206F}'),   // bidi isolates, deprecated format controls
    ('\u{FEFF}', '\u{FEFF}'),   // zero-width no-break space (byte order mark)
    ('\u{FFF9}', '\u{FFFB}'),   // interlinear annotation
    ('\u{110BD}', '\u{110BD}'), // Kaithi number sign
    ('\u{110CD}', '\u{110CD}'), // Kaithi number sign above
    ('\u{13430}', '\u{1343F}'), // Egyptian hieroglyph format controls
    ('\u{1BCA0}', '\u{1BCA3}'), // shorthand format controls
    ('\u{1D173}', '\u{1D17A}'), // musical symbol format controls
    ('\u{E0001}', '\u{E0001}'), // language tag
    ('\u{E0020}', '\u{E007F}'), // tag characters
];

/// True for a character of general category Cf (see [`FORMAT_CHARACTERS`]).
fn is_format(c: char) -> bool {
    FORMAT_CHARACTERS
        .iter()
        .any(|&(first, last)| (first..=last).contains(&c))
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
    fn keeps_case_when_asked() {
        assert_eq!(normalize_with("Bob", None, Case::Keep).unwrap(), "Bob");
        assert_eq!(
            normalize_with("Bob", Some("Ex.org"), Case::Keep).unwrap(),
            "Bob@Ex.org"
        );
        assert_eq!(
            normalize_with("..Bob", None, Case::Keep),
            Err(UserNameError::BadDot)
        );
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

    #[test]
    fn refuses_invisible_formatting_characters_and_names_them() {
        for c in [
            '\u{00AD}',
            '\u{061C}',
            '\u{200B}',
            '\u{200D}',
            '\u{200F}',
            '\u{202A}',
            '\u{202E}',
            '\u{2060}',
            '\u{2066}',
            '\u{2069}',
            '\u{FEFF}',
            '\u{E0041}',
        ] {
            for raw in [
                format!("ali{c}ce"),
                format!("{c}alice"),
                format!("alice@ex{c}.org"),
            ] {
                assert_eq!(
                    normalize(&raw, None),
                    Err(UserNameError::Invisible(c)),
                    "{raw:?}"
                );
            }
        }
        let e = normalize("alice\u{202E}moc.evil", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "user name contains U+202E, an invisible formatting character"
        );
        // Separators are refused as whitespace; visible non-ASCII letters are still fine.
        for raw in ["a\u{2028}b", "a\u{2029}b", "a\u{0085}b"] {
            assert_eq!(normalize(raw, None), Err(UserNameError::BadCharacter));
        }
        assert_eq!(normalize("jürgen", None).unwrap(), "jürgen");
        // The list is sorted and its ranges are well formed.
        for pair in FORMAT_CHARACTERS.windows(2) {
            assert!(pair[0].1 < pair[1].0, "{pair:?}");
        }
        assert!(FORMAT_CHARACTERS.iter().all(|(a, b)| a <= b));
    }
}
