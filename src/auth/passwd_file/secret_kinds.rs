//! Which challenge-response mechanisms the whole file can serve, for CAPA.

use super::line::{is_skipped, read_line, Fields};
use super::login_cache::FileStamp;
use super::PasswdFile;
use crate::account::Account;
use crate::auth::{password, Secret, SecretKinds};
use std::fs::File;
use std::io::BufReader;

impl PasswdFile {
    /// Scans the whole file for the mechanisms every account can serve (see
    /// [`Authenticator::secret_kinds`]), remembering the answer until the file changes.
    pub(super) fn scan_secret_kinds(&self) -> SecretKinds {
        if self.per_domain {
            // No one file to scan: offer only what works for every account.
            return SecretKinds::default();
        }
        let Ok(path) = self.template.expand(&Account::new("scan")) else {
            return SecretKinds::default();
        };
        let Ok(meta) = std::fs::metadata(&path) else {
            return SecretKinds::default();
        };
        let stamp = FileStamp::of(&meta);
        let mut cache = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((cached, kinds)) = *cache {
            if cached == stamp {
                return kinds;
            }
        }
        let Ok(file) = File::open(&path) else {
            return SecretKinds::default();
        };
        let (mut accounts, mut plain, mut scram) = (0, 0, 0);
        let mut reader = BufReader::new(file);
        let mut buf = Vec::new();
        while let Ok(true) = read_line(&mut reader, &mut buf) {
            if is_skipped(&buf) {
                continue;
            }
            accounts += 1;
            let stored = std::str::from_utf8(&buf)
                .ok()
                .and_then(|l| Fields::split(l).password);
            match stored.and_then(password::secret_of) {
                Some(Secret::Plain(_)) => plain += 1,
                Some(Secret::Scram(_)) => scram += 1,
                None => {}
            }
        }
        let kinds = SecretKinds {
            plain: accounts > 0 && plain == accounts,
            scram: accounts > 0 && plain + scram == accounts,
        };
        *cache = Some((stamp, kinds));
        kinds
    }
}
