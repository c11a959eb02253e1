//! EXPIRE (RFC 2449 §6.7), enforced, with Python poplib as the client: messages retrieved in a
//! session that ended with QUIT are removed at the first login the EXPIRE period after; those
//! never retrieved stay; EXPIRE 0 removes what a session retrieved when it ends; CAPA says the
//! value (with USER before login); a passwd entry's pop3_expire overrides --expire; the
//! deletions update maildirsize. Run with the mailbox in the server itself and, as root,
//! through the broker's child running as a real system account.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::maildir::run_bounded;
use support::system_user::{is_root, SystemUser};
use support::temp_dir::TempDir;
use support::BinServer;

/// One poplib session: the EXPIRE capability before and after login, the UIDLs, then the
/// actions given (`retr:N`, `top:N`, `dele:N`), then QUIT.
const SCRIPT: &str = r#"
import poplib, sys
host, port, user, password = sys.argv[1:5]
p = poplib.POP3(host, int(port), timeout=20)
print("BEFORE", " ".join(p.capa().get("EXPIRE", ["-"])))
p.user(user)
p.pass_(password)
print("AFTER", " ".join(p.capa().get("EXPIRE", ["-"])))
print("UIDL", " ".join(l.decode().split()[1] for l in p.uidl()[1]))
for action in sys.argv[5:]:
    command, n = action.split(":")
    if command == "retr":
        p.retr(int(n))
    elif command == "top":
        p.top(int(n), 0)
    elif command == "dele":
        p.dele(int(n))
p.quit()
"#;

/// What one session saw.
#[derive(Debug)]
struct Seen {
    before: String,
    after: String,
    uidls: Vec<String>,
}

fn session(server: &BinServer, user: &str, password: &str, actions: &[&str]) -> Seen {
    let port = server.port().to_string();
    let out = run_bounded(
        Command::new("python3")
            .args(["-c", SCRIPT, "127.0.0.1", &port, user, password])
            .args(actions),
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .trim()
            .to_owned()
    };
    Seen {
        before: field("BEFORE"),
        after: field("AFTER"),
        uidls: field("UIDL").split_whitespace().map(String::from).collect(),
    }
}

/// One account's Maildir, with three messages whose names are their UIDLs, a Maildir++
/// quota file counting them, and (as root) its owner.
struct Mailbox {
    name: String,
    password: String,
    maildir: PathBuf,
    /// UIDL → size on disk.
    messages: BTreeMap<String, u64>,
    /// The passwd line's uid and gid fields.
    ids: String,
}

impl Mailbox {
    fn new(home: &Path, name: &str, password: &str, owner: Option<(u32, u32)>) -> Mailbox {
        let maildir = home.join("Maildir");
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        let mut messages = BTreeMap::new();
        for i in 1..=3 {
            let uidl = format!("17000000{i:02}.M{i}P7.p3texpire");
            let body = format!("Subject: message {i}\n\n{}\n", "x".repeat(100 * i));
            fs::write(maildir.join("new").join(&uidl), &body).unwrap();
            messages.insert(uidl, body.len() as u64);
        }
        let total: u64 = messages.values().sum();
        fs::write(
            maildir.join("maildirsize"),
            format!("1000000S,100C\n{total} 3\n"),
        )
        .unwrap();
        let ids = match owner {
            Some((uid, gid)) => {
                give(&maildir, uid, gid);
                fs::set_permissions(&maildir, fs::Permissions::from_mode(0o700)).unwrap();
                format!("{uid}:{gid}")
            }
            None => ":".into(),
        };
        Mailbox {
            name: name.into(),
            password: password.into(),
            maildir,
            messages,
            ids,
        }
    }

    fn line(&self, extra: &str) -> String {
        format!(
            "{}:{{PLAIN}}{}:{}::{}::{extra}\n",
            self.name,
            self.password,
            self.ids,
            self.maildir.parent().unwrap().display()
        )
    }

    fn uidl(&self, n: usize) -> String {
        self.messages.keys().nth(n - 1).unwrap().clone()
    }

    fn on_disk(&self) -> Vec<String> {
        let mut names: Vec<String> = ["new", "cur"]
            .iter()
            .flat_map(|sub| fs::read_dir(self.maildir.join(sub)).unwrap())
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .map(|n| n.split(':').next().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }

    /// The bytes and messages maildirsize counts: the sum of its lines after the first.
    fn quota_usage(&self) -> (i64, i64) {
        let text = fs::read_to_string(self.maildir.join("maildirsize")).unwrap();
        text.lines().skip(1).fold((0, 0), |(b, c), line| {
            let mut f = line.split_whitespace().map(|n| n.parse::<i64>().unwrap());
            (b + f.next().unwrap(), c + f.next().unwrap())
        })
    }

    fn record(&self) -> Option<String> {
        fs::read_to_string(self.maildir.join("pop3d.retrieved")).ok()
    }

    /// Sets the recorded retrieval of `uidl` `days` days back: what the passing of time does.
    fn age(&self, uidl: &str, days: u64) {
        let path = self.maildir.join("pop3d.retrieved");
        let text = fs::read_to_string(&path).unwrap();
        let then = now() - days * 86_400 - 60;
        let mut found = false;
        let aged: String = text
            .lines()
            .map(|line| match line.split_once(' ') {
                Some((_, name)) if name == uidl => {
                    found = true;
                    format!("{then} {name}\n")
                }
                _ => format!("{line}\n"),
            })
            .collect();
        assert!(found, "{uidl} not in the record:\n{text}");
        fs::write(&path, aged).unwrap();
    }
}

fn give(path: &Path, uid: u32, gid: u32) {
    chown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            give(&entry.unwrap().path(), uid, gid);
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The accounts of one run: `ann` under the default (`--expire 2`), `bob` with
/// `pop3_expire=0`, `cat` with `pop3_expire=never`.
struct Setup {
    dir: TempDir,
    ann: Mailbox,
    bob: Mailbox,
    cat: Mailbox,
    extra_args: Vec<String>,
    _tenants: Vec<SystemUser>,
}

impl Setup {
    /// With `brokered`, each account is a real system account and pop3d runs its sessions'
    /// mailboxes in children of the broker as that account, the front as `nobody` (which
    /// cannot read the mode 0700 Maildirs: whatever is removed there, a child removed).
    fn new(tag: &str, brokered: bool) -> Setup {
        let dir = TempDir::new(tag);
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let mut tenants = Vec::new();
        let mut mailbox = |name: &str| {
            let home = dir.path().join(name);
            fs::create_dir_all(&home).unwrap();
            if !brokered {
                return Mailbox::new(&home, name, "pw", None);
            }
            let user = SystemUser::create("exp", "pw").expect("root");
            let mailbox = Mailbox::new(&home, name, "pw", Some((user.uid, user.gid)));
            chown(&home, Some(user.uid), Some(user.gid)).unwrap();
            tenants.push(user);
            mailbox
        };
        let (ann, bob, cat) = (mailbox("ann"), mailbox("bob"), mailbox("cat"));
        let passwd = ann.line("") + &bob.line("pop3_expire=0") + &cat.line("pop3_expire=never");
        fs::write(dir.path().join("passwd"), passwd).unwrap();
        let extra_args = match brokered {
            true => vec!["--user".into(), "nobody".into()],
            false => Vec::new(),
        };
        Setup {
            dir,
            ann,
            bob,
            cat,
            extra_args,
            _tenants: tenants,
        }
    }

    fn start(&self, expire: Option<&str>) -> BinServer {
        let path = |p: &str| self.dir.path().join(p).to_str().unwrap().to_owned();
        let mut args = vec![
            "--passwd".to_owned(),
            path("passwd"),
            "--state-dir".into(),
            path("state"),
            "--fail-delay".into(),
            "0.05".into(),
        ];
        if let Some(days) = expire {
            args.extend(["--expire".into(), days.into()]);
        }
        args.extend(self.extra_args.iter().cloned());
        BinServer::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

fn run(setup: &Setup) {
    let server = setup.start(Some("2"));
    let (ann, bob, cat) = (&setup.ann, &setup.bob, &setup.cat);

    // ann (the default, 2 days): RETR 1 and 2, TOP 3 (not a retrieval), QUIT.
    let seen = session(&server, "ann", "pw", &["retr:1", "retr:2", "top:3"]);
    assert_eq!((seen.before.as_str(), seen.after.as_str()), ("2 USER", "2"));
    assert_eq!(seen.uidls.len(), 3);
    let record = ann.record().expect("no retrieval record written");
    assert!(record.contains(&ann.uidl(1)) && record.contains(&ann.uidl(2)));
    assert!(
        !record.contains(&ann.uidl(3)),
        "TOP counted as RETR:\n{record}"
    );

    // Not yet two days: everything is still there.
    assert_eq!(session(&server, "ann", "pw", &[]).uidls.len(), 3);
    // Message 1 retrieved three days ago, message 2 one day ago.
    ann.age(&ann.uidl(1), 3);
    ann.age(&ann.uidl(2), 1);
    let before = ann.quota_usage();
    let seen = session(&server, "ann", "pw", &[]);
    assert_eq!(seen.uidls, [ann.uidl(2), ann.uidl(3)], "{}", server.log());
    assert!(server.log().contains("expired: user=ann messages=1"));
    assert_eq!(ann.on_disk(), [ann.uidl(2), ann.uidl(3)]);
    let size = ann.messages[&ann.uidl(1)] as i64;
    assert_eq!(ann.quota_usage(), (before.0 - size, before.1 - 1));
    let record = ann.record().unwrap();
    assert!(
        !record.contains(&ann.uidl(1)),
        "expired entry kept:\n{record}"
    );
    assert!(record.contains(&ann.uidl(2)));
    // Message 2 in its turn; message 3 was never retrieved and stays, however old.
    ann.age(&ann.uidl(2), 5);
    assert_eq!(session(&server, "ann", "pw", &[]).uidls, [ann.uidl(3)]);
    assert_eq!(ann.on_disk(), [ann.uidl(3)]);

    // bob (pop3_expire=0): what a session retrieves goes when it ends with QUIT.
    let seen = session(&server, "bob", "pw", &["retr:2"]);
    assert_eq!((seen.before.as_str(), seen.after.as_str()), ("2 USER", "0"));
    assert_eq!(bob.on_disk(), [bob.uidl(1), bob.uidl(3)]);
    assert_eq!(bob.quota_usage().1, 2);
    assert!(bob.record().is_none());

    // cat (pop3_expire=never): nothing recorded, nothing removed.
    let seen = session(&server, "cat", "pw", &["retr:1", "retr:2", "retr:3"]);
    assert_eq!(seen.after, "NEVER");
    assert!(cat.record().is_none());
    assert_eq!(session(&server, "cat", "pw", &[]).uidls.len(), 3);
    drop(server);

    // Without --expire: no EXPIRE before login, nor after for an account without its own.
    let server = setup.start(None);
    let seen = session(&server, "ann", "pw", &[]);
    assert_eq!((seen.before.as_str(), seen.after.as_str()), ("-", "-"));
    assert_eq!(session(&server, "cat", "pw", &[]).after, "NEVER");
}

#[test]
fn retrieved_messages_expire_in_the_server() {
    run(&Setup::new("expire-local", false));
}

#[test]
fn retrieved_messages_expire_through_the_broker() {
    if !is_root() {
        println!("skipped: needs root (system accounts, pop3d started as root)");
        return;
    }
    run(&Setup::new("expire-broker", true));
}
