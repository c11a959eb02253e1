//! UTF8 and LANG (RFC 6856).
//!
//! pop3d is 8-bit clean whether or not a client enables UTF-8 mode: user names and passwords
//! in UTF-8 are accepted in every mode (CAPA says `UTF8 USER`), messages go out as stored,
//! and replies are ASCII English in both. So UTF8 only records the client's wish, and LANG
//! offers the one language there is.

use super::reply::Reply;
use super::Session;

/// The languages LANG lists: (tag, description). RFC 6856 §3 asks for the tag and a
/// description in that language.
const LANGUAGES: &[(&str, &str)] = &[("en", "English")];

impl Session<'_> {
    /// UTF8, before login: UTF-8 mode on.
    pub(super) fn utf8(&mut self) -> Reply {
        log::debug!("utf8: peer={}", self.peer);
        Reply::Ok("UTF8 enabled".into())
    }
}

/// LANG: the list without an argument; with one, the language that matches it, `*` (the
/// server's default) included.
pub(super) fn lang(range: Option<&str>) -> Reply {
    match range {
        None => Reply::Languages(LANGUAGES),
        Some("*") => Reply::Ok(format!("Language is now {}", LANGUAGES[0].0)),
        Some(range) => match LANGUAGES.iter().find(|(tag, _)| matches(range, tag)) {
            Some((tag, _)) => Reply::Ok(format!("Language is now {tag}")),
            None => Reply::Err("Unsupported language".into()),
        },
    }
}

/// RFC 4647 §3.3.1 basic filtering: the range equals the tag, or is a prefix of it that ends
/// at a `-`, compared without regard to case.
fn matches(range: &str, tag: &str) -> bool {
    tag.len() >= range.len()
        && tag.as_bytes()[..range.len()].eq_ignore_ascii_case(range.as_bytes())
        && (tag.len() == range.len() || tag.as_bytes()[range.len()] == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_match_as_basic_filtering_says() {
        assert!(matches("en", "en"));
        assert!(matches("EN", "en"));
        assert!(matches("en", "en-GB"));
        assert!(!matches("en-GB", "en"));
        assert!(!matches("e", "en"));
        assert!(!matches("fr", "en"));
    }
}
