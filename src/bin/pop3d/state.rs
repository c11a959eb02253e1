//! `--state-dir`: what pop3d keeps between processes and restarts.

use pop3d::auth::server_secret::{self, SECRET_FILE};
use pop3d::Service;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

/// The file of the failure penalty shared by `--inetd` processes, in the state directory.
pub const PENALTY_FILE: &str = "penalty";

/// The file of each account's last login, for `--login-delay` and `pop3_login_delay`: shared
/// by `--inetd` processes and kept across restarts.
pub const LOGIN_TIMES_FILE: &str = "login-times";

/// The file where `--inetd` processes keep the measured cost of the costliest password check,
/// so that each does not measure it again.
pub const COST_FILE: &str = "check-cost";

/// The shared cost file in `dir`, opened while still privileged; `None` (each process then
/// measures for itself) if it cannot be.
pub fn cost_file(dir: &std::path::Path) -> Option<std::fs::File> {
    create_dir(dir);
    let path = dir.join(COST_FILE);
    match open_rw(&path) {
        Ok(file) => Some(file),
        Err(e) => {
            log::warn!(
                "cannot open {}: {e}; each process measures the cost of a password check",
                path.display()
            );
            None
        }
    }
}

/// The file where `--inetd` processes keep the cost of a system account source's costliest
/// check (see `shared_cost.rs`), opened while still privileged; `None` if it cannot be.
pub fn system_cost_file(dir: &std::path::Path) -> Option<std::fs::File> {
    create_dir(dir);
    let path = dir.join(SYSTEM_COST_FILE);
    open_rw(&path)
        .map_err(|e| log::warn!("cannot open {}: {e}; each process measures", path.display()))
        .ok()
}

/// See [`system_cost_file`].
pub const SYSTEM_COST_FILE: &str = "check-cost-system";

fn create_dir(dir: &std::path::Path) {
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir);
}

fn open_rw(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

/// The server secret from `dir`, created at the first start; `None`, with a warning, when it
/// cannot be read or made.
pub fn secret(dir: &std::path::Path) -> Option<[u8; 32]> {
    create_dir(dir);
    let secret = dir.join(SECRET_FILE);
    server_secret::load_or_create(&secret)
        .map_err(|e| {
            log::warn!(
                "cannot use the server secret {}: {e}; an unknown user's SCRAM salt and the TLS \
                 session tickets of --inetd will change with each process",
                secret.display()
            )
        })
        .ok()
}

/// The server secret from `dir` (created at the first start), and under inetd the failure
/// penalty file there, both opened while still privileged. Without them pop3d still serves,
/// with a secret of its own and a penalty of its own, and says so.
pub fn open(mut service: Service, dir: &std::path::Path, inetd: bool) -> Service {
    if let Some(key) = secret(dir) {
        service = service.server_secret(key);
    }
    // Small, and only read when an account has a login delay: opened in every mode, so that
    // a delay outlives a restart.
    let path = dir.join(LOGIN_TIMES_FILE);
    match open_rw(&path) {
        Ok(file) => service = service.shared_login_times(file),
        Err(e) => log::warn!(
            "cannot open {}: {e}; login delays are kept in memory, for this process only",
            path.display()
        ),
    }
    if inetd {
        let path = dir.join(PENALTY_FILE);
        match open_rw(&path) {
            Ok(file) => service = service.shared_penalty(file),
            Err(e) => log::warn!(
                "cannot open {}: {e}; the failure penalty will not carry from one connection \
                 to the next",
                path.display()
            ),
        }
    }
    service
}
