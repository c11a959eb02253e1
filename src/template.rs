//! Path templates such as `%h/Maildir` or `/var/vmail/%d/%n`: parsed once, expanded per login.

use crate::account::Account;
use std::fmt;
use std::path::PathBuf;

/// A parsed path template. `%u` is the full user name, `%n` its local part, `%d` its domain,
/// `%h` the account's home directory and `%%` a literal `%`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    User,
    Local,
    Domain,
    Home,
}

/// A template that cannot be used: an unknown `%` escape, or one the context does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TemplateError {}

impl Template {
    /// Parses `text`, accepting only the escapes listed in `allowed` (e.g. `"und"`) besides `%%`.
    pub fn parse(text: &str, allowed: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                literal.push(c);
                continue;
            }
            let part = match chars.next() {
                Some('%') => {
                    literal.push('%');
                    continue;
                }
                Some(e) if allowed.contains(e) => match e {
                    'u' => Part::User,
                    'n' => Part::Local,
                    'd' => Part::Domain,
                    'h' => Part::Home,
                    _ => return Err(unknown(text, e)),
                },
                Some(e) => return Err(unknown(text, e)),
                None => {
                    return Err(TemplateError(format!(
                        "template {text:?} ends with a lone '%' (write %% for a percent sign)"
                    )))
                }
            };
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(part);
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts })
    }

    /// True if the template uses `%d`.
    pub fn uses_domain(&self) -> bool {
        self.parts.contains(&Part::Domain)
    }

    /// Expands the template for `account`. Fails when it needs a home or a domain the account
    /// does not have.
    pub fn expand(&self, account: &Account) -> Result<PathBuf, TemplateError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::User => out.push_str(&account.name),
                Part::Local => out.push_str(account.local_part()),
                Part::Domain => out.push_str(account.domain().ok_or_else(|| {
                    TemplateError(format!("user {} has no domain for %d", account.name))
                })?),
                Part::Home => {
                    let home = account.home.as_ref().ok_or_else(|| {
                        TemplateError(format!(
                            "user {} has no home directory for %h",
                            account.name
                        ))
                    })?;
                    out.push_str(&home.to_string_lossy());
                }
            }
        }
        Ok(PathBuf::from(out))
    }
}

fn unknown(text: &str, escape: char) -> TemplateError {
    TemplateError(format!(
        "template {text:?}: %{escape} is not a known escape here"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_every_escape() {
        let t = Template::parse("%h/x/%d/%n/%u/100%%", "undh").unwrap();
        let a = Account::new("bob@ex.org").with_home("/home/bob");
        assert_eq!(
            t.expand(&a).unwrap(),
            PathBuf::from("/home/bob/x/ex.org/bob/bob@ex.org/100%")
        );
        assert!(t.uses_domain());
    }

    #[test]
    fn refuses_what_it_cannot_expand() {
        assert!(Template::parse("%x", "undh").is_err());
        assert!(Template::parse("%h", "und").is_err());
        assert!(Template::parse("a%", "undh").is_err());
        let t = Template::parse("%h/Maildir", "undh").unwrap();
        assert!(t.expand(&Account::new("bob")).is_err());
        let t = Template::parse("/m/%d", "undh").unwrap();
        assert!(t.expand(&Account::new("bob")).is_err());
    }
}
