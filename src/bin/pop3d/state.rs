//! `--state-dir`: what pop3d keeps between processes and restarts.

use pop3d::auth::server_secret::{self, SECRET_FILE};
use pop3d::Service;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

/// The file of the failure penalty shared by `--inetd` processes, in the state directory.
pub const PENALTY_FILE: &str = "penalty";

/// The server secret from `dir` (created at the first start), and under inetd the failure
/// penalty file there, both opened while still privileged. Without them pop3d still serves,
/// with a secret of its own and a penalty of its own, and says so.
pub fn open(mut service: Service, dir: &std::path::Path, inetd: bool) -> Service {
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir);
    let secret = dir.join(SECRET_FILE);
    match server_secret::load_or_create(&secret) {
        Ok(key) => service = service.server_secret(key),
        Err(e) => log::warn!(
            "cannot use the server secret {}: {e}; an unknown user's SCRAM salt will change              with each process",
            secret.display()
        ),
    }
    if inetd {
        let path = dir.join(PENALTY_FILE);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path);
        match file {
            Ok(file) => service = service.shared_penalty(file),
            Err(e) => log::warn!(
                "cannot open {}: {e}; the failure penalty will not carry from one connection                  to the next",
                path.display()
            ),
        }
    }
    service
}
