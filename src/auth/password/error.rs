use std::fmt;

/// A stored hash that cannot be checked: an unknown scheme or a malformed hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordError(String);

impl PasswordError {
    pub(super) fn new(message: impl Into<String>) -> Self {
        PasswordError(message.into())
    }
}

impl fmt::Display for PasswordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PasswordError {}
