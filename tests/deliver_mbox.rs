//! `pop3d --deliver USER --mbox TEMPLATE`, run as an MTA runs it: the message appended to the
//! spool after a `From ` line, read back over POP3 by Python's poplib byte for byte (a body
//! line starting `From ` served as `>From `), and an unknown user refused with status 67.
//!
//! As root (as CI runs) the spool directory is `root:mail` 2775 like Debian's `/var/mail` and
//! the account is `nobody`'s: the agent becomes `nobody`, keeping `mail` as its saved group to
//! create the spool and its dot-lock.

mod support;

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;
use support::temp_dir::TempDir;
use support::{path_str, run_with_input, BinServer};

const AGENT_LIMIT: Duration = Duration::from_secs(30);

fn root() -> bool {
    // SAFETY: geteuid takes nothing and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The gid of the `mail` group, if the host has one.
fn mail_gid() -> Option<u32> {
    let name = CString::new("mail").unwrap();
    // SAFETY: getgrnam returns null or a pointer to a static entry, read at once.
    let gr = unsafe { libc::getgrnam(name.as_ptr()) };
    // SAFETY: not null, so it points to a group entry.
    (!gr.is_null()).then(|| unsafe { (*gr).gr_gid })
}

struct Site {
    dir: TempDir,
    passwd: PathBuf,
    spools: PathBuf,
    uid: u32,
}

impl Site {
    fn new(tag: &str) -> Site {
        let dir = TempDir::new(tag);
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        // SAFETY: these take nothing and cannot fail.
        let (uid, gid) = unsafe {
            match root() {
                true => (65534, 65534),
                false => (libc::getuid(), libc::getgid()),
            }
        };
        let spools = dir.path().join("mail");
        fs::create_dir(&spools).unwrap();
        if root() {
            chown(&spools, Some(0), mail_gid()).unwrap();
            fs::set_permissions(&spools, fs::Permissions::from_mode(0o2775)).unwrap();
        }
        let passwd = dir.path().join("passwd");
        let home = dir.path().display();
        fs::write(
            &passwd,
            format!("bob@example.org:{{PLAIN}}secret:{uid}:{gid}::{home}::\n"),
        )
        .unwrap();
        Site {
            dir,
            passwd,
            spools,
            uid,
        }
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--passwd".into(),
            path_str(&self.passwd),
            "--mbox".into(),
            format!("{}/%u", self.spools.display()),
            "--state-dir".into(),
            path_str(self.dir.path()),
        ]
    }

    fn deliver(&self, user: &str, message: &[u8]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pop3d"));
        cmd.arg("--deliver").arg(user).args(self.args());
        run_with_input(&mut cmd, message, AGENT_LIMIT)
    }
}

const POPLIB: &str = r#"
import poplib, sys
p = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=20)
p.user("bob@example.org")
p.pass_("secret")
for n, l in enumerate(p.uidl()[1], 1):
    print(l.split()[1].decode(), (b"\n".join(p.retr(n)[1]) + b"\n").hex())
p.quit()
"#;

#[test]
fn delivered_messages_are_read_back_over_pop3_byte_exact() {
    let site = Site::new("p3t-deliver-mbox");
    let first: &[u8] = b"Subject: one\n\n.a dot\nFrom the start of a line\n>From quoted\nend\n";
    let second: &[u8] = b"Subject: two\n\nno final line end";
    let envelope = b"From alice@example.net Sun Dec  6 11:00:00 2026\n";
    for m in [first, second] {
        let out = site.deliver("Bob@Example.ORG", &[&envelope[..], m].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
    }
    let spool = site.spools.join("bob@example.org");
    let meta = fs::metadata(&spool).unwrap();
    assert_eq!(meta.uid(), site.uid, "the spool is the account's");
    assert_eq!(meta.mode() & 0o777, 0o600);
    let text = fs::read(&spool).unwrap();
    assert!(text.starts_with(b"From MAILER-DAEMON  "));
    assert!(!site.spools.join("bob@example.org.lock").exists());

    let args = [site.args(), vec!["--fail-delay".into(), "0.05".into()]].concat();
    let server = BinServer::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let out = support::maildir::run_bounded(
        Command::new("python3").args(["-c", POPLIB, &server.port().to_string()]),
        Duration::from_secs(60),
    );
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    let got: Vec<Vec<u8>> = listed
        .lines()
        .map(|l| {
            let hex = l.split_once(' ').unwrap().1;
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect();
    assert_eq!(
        got,
        [
            b"Subject: one\n\n.a dot\n>From the start of a line\n>From quoted\nend\n".to_vec(),
            b"Subject: two\n\nno final line end\n".to_vec()
        ]
    );
}

#[test]
fn an_unknown_user_is_refused_with_67_and_nothing_is_written() {
    let site = Site::new("p3t-deliver-mbox-nouser");
    let out = site.deliver("nobody-here@example.org", b"Subject: x\n\nx\n");
    assert_eq!(
        out.status.code(),
        Some(67),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("5.1.1 "));
    assert_eq!(fs::read_dir(&site.spools).unwrap().count(), 0);
}
