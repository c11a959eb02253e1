//! `pop3d --check`: the whole file read through, its first problem named by line.

use super::line::{is_skipped, read_line, Fields};
use super::PasswdFile;
use crate::account::Account;
use crate::auth::password;
use crate::user_name;
use std::collections::hash_map::{Entry as MapEntry, HashMap};
use std::fs::File;
use std::io::BufReader;

impl PasswdFile {
    /// Reads the whole file and reports its first problem as `line N: what`, for
    /// `pop3d --check`: a line without `:`, an empty or unusable user name, a user given twice,
    /// or a password field [`password::scheme_ok`] refuses. Returns the number of accounts.
    ///
    /// The messages do not repeat the path: the caller, which was given it, names the file.
    ///
    /// With `%d` in the path there is no one file to read; the template was checked by
    /// [`new`](Self::new), and this returns `Ok(0)`.
    pub fn check(&self) -> Result<usize, String> {
        if self.per_domain {
            return Ok(0);
        }
        // Without %d nothing depends on the account: any name expands to the one path.
        let path = self
            .template
            .expand(&Account::new("check"))
            .map_err(|e| e.to_string())?;
        let file = File::open(&path).map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(file);
        let mut buf = Vec::new();
        let mut first_line_of: HashMap<String, usize> = HashMap::new();
        let mut line_no = 0;
        while read_line(&mut reader, &mut buf).map_err(|e| e.to_string())? {
            line_no += 1;
            if is_skipped(&buf) {
                continue;
            }
            let at = |what: String| format!("line {line_no}: {what}");
            let line = std::str::from_utf8(&buf).map_err(|_| at("not valid UTF-8".into()))?;
            let fields = Fields::split(line);
            let Some(stored) = fields.password else {
                return Err(at("no ':' after the user name".into()));
            };
            if fields.user.is_empty() {
                return Err(at("empty user name".into()));
            }
            let name = user_name::normalize(fields.user, None)
                .map_err(|e| at(format!("user {:?}: {e}", fields.user)))?;
            password::scheme_ok(stored).map_err(|e| at(format!("user {}: {e}", fields.user)))?;
            match first_line_of.entry(name) {
                MapEntry::Occupied(first) => {
                    return Err(at(format!(
                        "user {} is already on line {}, and only the first line counts",
                        fields.user,
                        first.get()
                    )))
                }
                MapEntry::Vacant(slot) => {
                    slot.insert(line_no);
                }
            }
        }
        Ok(first_line_of.len())
    }
}
