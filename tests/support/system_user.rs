//! System accounts made by a test (as root) and removed when it ends: the real `useradd`,
//! `chpasswd` and `userdel` of the machine, so that PAM, shadow, an MTA's local delivery and
//! per-session uids meet real entries in /etc/passwd and /etc/shadow.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// True when the tests run as root; tests that need it print why they skip otherwise.
pub fn is_root() -> bool {
    // SAFETY: geteuid takes no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A system account with a home directory and a password, removed (with its home and mail
/// spool) on drop.
pub struct SystemUser {
    pub name: String,
    pub password: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl SystemUser {
    /// Makes an account named `p3t`, `tag` and a number unique in this machine's run (names
    /// stay under 32 characters and in lower case), with password `password`. `None` when not
    /// root.
    pub fn create(tag: &str, password: &str) -> Option<SystemUser> {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let name = format!("p3t{tag}{}x{n}", std::process::id() % 100_000);
        Self::create_named(&name, password)
    }

    /// Makes the account `name` exactly (for names with capitals, say). `None` when not root.
    pub fn create_named(name: &str, password: &str) -> Option<SystemUser> {
        if !is_root() {
            return None;
        }
        assert!(name.len() <= 32, "account name {name:?} is too long");
        // A leftover from a killed run would make useradd fail.
        let _ = Command::new("userdel").args(["-r", name]).output();
        let home = PathBuf::from(format!("/home/{name}"));
        run(Command::new("useradd")
            .args(["--create-home", "--home-dir"])
            .arg(&home)
            .args(["--shell", "/usr/sbin/nologin", "--user-group", name]));
        let user = SystemUser {
            name: name.to_owned(),
            password: password.to_owned(),
            uid: id(&["-u", name]),
            gid: id(&["-g", name]),
            home,
        };
        let mut chpasswd = Command::new("chpasswd")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("chpasswd (package passwd)");
        use std::io::Write;
        chpasswd
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{name}:{password}\n").as_bytes())
            .unwrap();
        assert!(chpasswd.wait().unwrap().success(), "chpasswd {name}");
        Some(user)
    }
}

impl Drop for SystemUser {
    fn drop(&mut self) {
        // -r removes the home and /var/mail/NAME; -f even if a process of the user lingers.
        let _ = Command::new("userdel")
            .args(["-r", "-f", &self.name])
            .output();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn id(args: &[&str]) -> u32 {
    let out = Command::new("id").args(args).output().expect("id runs");
    assert!(out.status.success(), "id {args:?}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}
