//! A real Postfix hands mail to `pop3d --deliver`, as the manual's DELIVERY section sets it
//! up: through `mailbox_command` for a Unix account and through a `pipe` transport for virtual
//! accounts. A normal recipient's mail is read back over POP3 by Python's poplib byte for byte;
//! an unknown recipient and a full mailbox get Postfix's own bounce with the right status; with
//! `--quota-temporary` a full mailbox leaves the mail in Postfix's queue; with `--mbox` the
//! mail is appended to a spool and served with its `From ` line quoted. Needs root.

mod support;

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::postfix::{LocalRecipients, PipeTransport, Postfix, PostfixConfig, SENDER};
use support::system_user::{is_root, SystemUser};
use support::temp_dir::TempDir;
use support::{note, path_str, BinServer};

const IDLE: Duration = Duration::from_secs(30);

/// The lines of a message that breaks naive mail code: 8-bit bytes, a `From ` line, dots at
/// line starts, a lone dot. It has a Date and a Message-ID, so that Postfix adds only its
/// Received line at the top.
fn tricky_lines(to: &str, subject: &str) -> Vec<Vec<u8>> {
    let head = format!(
        "From: Sender <{SENDER}>\nTo: <{to}>\nSubject: {subject}\n\
         Date: Sun, 06 Dec 2026 10:00:00 +0000\nMessage-ID: <{subject}@sink.test>\n\
         MIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1\n"
    );
    let mut lines: Vec<Vec<u8>> = head.lines().map(|l| l.as_bytes().to_vec()).collect();
    let body: [&[u8]; 6] = [
        b"",
        b"Caf\xe9 \xff\x80 end",
        b"From the start of a line",
        b".leading dot",
        b".",
        b"last line",
    ];
    lines.extend(body.iter().map(|l| l.to_vec()));
    lines
}

/// As sent over SMTP: CRLF line ends, none after the last line.
fn tricky(to: &str, subject: &str) -> Vec<u8> {
    tricky_lines(to, subject).join(&b"\r\n"[..])
}

/// As Postfix hands it to a command: LF line ends, a final one.
fn tricky_lf(to: &str, subject: &str) -> Vec<u8> {
    let mut text = tricky_lines(to, subject).join(&b"\n"[..]);
    text.push(b'\n');
    text
}

/// The agent and its passwd-file, where the accounts Postfix runs it as can read them.
struct Agent {
    /// Holds the binary and the passwd-file; removed on drop.
    _dir: TempDir,
    binary: PathBuf,
    passwd: PathBuf,
}

impl Agent {
    /// `lines`: the passwd-file.
    fn new(lines: &str) -> Agent {
        let dir = TempDir::new("deliver-postfix");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        // A copy: the build directory may be closed to other accounts.
        let binary = dir.path().join("pop3d");
        fs::copy(env!("CARGO_BIN_EXE_pop3d"), &binary).unwrap();
        let passwd = dir.path().join("passwd");
        fs::write(&passwd, lines).unwrap();
        fs::set_permissions(&passwd, fs::Permissions::from_mode(0o644)).unwrap();
        Agent {
            _dir: dir,
            binary,
            passwd,
        }
    }

    /// The agent for `user` alone at pop3d.test, with `extra` passwd-file fields.
    fn for_user(user: &SystemUser, extra: &str) -> Agent {
        Agent::new(&format!(
            "{}@pop3d.test:{{PLAIN}}secret:{}:{}::{}::{extra}\n",
            user.name,
            user.uid,
            user.gid,
            user.home.display()
        ))
    }

    /// A Postfix that runs the agent as its `mailbox_command`, with `store` (`--maildir ...`
    /// or `--mbox ...`).
    fn postfix_running(&self, store: &str) -> Postfix {
        let command = format!(
            "{} --deliver \"$USER\" --default-domain pop3d.test --passwd {} {store}",
            self.binary.display(),
            self.passwd.display()
        );
        Postfix::start(PostfixConfig {
            mailbox_command: Some(command),
            ..PostfixConfig::default()
        })
        .unwrap()
    }

    /// The POP3 server over the same accounts.
    fn server(&self, maildir: &str) -> BinServer {
        let passwd = path_str(&self.passwd);
        BinServer::start(&[
            "--passwd",
            &passwd,
            "--maildir",
            maildir,
            "--fail-delay",
            "0.05",
        ])
    }
}

/// Logs in and prints each message's hex.
const POPLIB: &str = r#"
import poplib, sys
p = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=20)
p.user(sys.argv[2]); p.pass_("secret")
for n in range(1, p.stat()[0] + 1):
    print((b"\n".join(p.retr(n)[1]) + b"\n").hex())
p.quit()
"#;

fn pop3(server: &BinServer, user: &str) -> Vec<Vec<u8>> {
    let out = support::maildir::run_bounded(
        Command::new("python3").args(["-c", POPLIB, &server.port().to_string(), user]),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "poplib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|hex| {
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect()
}

/// The message files of the Maildir at `root`.
fn files(root: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(dir) = fs::read_dir(root.join(sub)) {
            all.extend(dir.map(|e| e.unwrap().path()));
        }
    }
    all
}

/// The bounces in Postfix's sink, as text.
fn bounces(postfix: &Postfix) -> Vec<String> {
    postfix
        .sink_messages()
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

#[test]
fn mailbox_command_delivers_and_bounces_with_postfix_own_status() {
    let (Some(user), Some(stranger)) = (
        SystemUser::create("dlv", "unused"),
        SystemUser::create("dlx", "unused"),
    ) else {
        note("skipped: needs root");
        return;
    };
    // One account at pop3d.test, holding two messages at most; the stranger has a Unix
    // account (Postfix takes the mail) but none for pop3d.
    let agent = Agent::for_user(&user, "userdb_quota_rule=*:messages=2");
    let postfix = agent.postfix_running("--maildir %h/Maildir");
    let to = postfix.address(&user.name);
    let message = tricky(&to, "mailbox-command");
    let handed = tricky_lf(&to, "mailbox-command");
    for _ in 0..3 {
        let sent = postfix.send(SENDER, &[&to], &message);
        assert_eq!(sent.accepted.len(), 1, "{sent:?}");
        postfix.wait_idle(IDLE);
    }
    let unknown = postfix.address(&stranger.name);
    postfix.send(SENDER, &[&unknown], &message);
    postfix.wait_idle(IDLE);

    let tried = postfix.deliveries(&to);
    let outcomes: Vec<(&str, &str)> = tried
        .iter()
        .map(|d| (d.status.as_str(), d.dsn.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [("sent", "2.0.0"), ("sent", "2.0.0"), ("bounced", "5.2.2")],
        "{tried:?}"
    );
    assert!(tried[2].detail.contains("quota exceeded"), "{:?}", tried[2]);
    let stranger_tried = postfix.deliveries(&unknown);
    assert_eq!(
        (
            stranger_tried[0].status.as_str(),
            stranger_tried[0].dsn.as_str()
        ),
        ("bounced", "5.1.1"),
        "{stranger_tried:?}"
    );
    let bounces = bounces(&postfix);
    assert_eq!(bounces.len(), 2, "{bounces:#?}");
    for status in ["5.2.2", "5.1.1"] {
        let with = bounces
            .iter()
            .filter(|b| b.contains(&format!("Status: {status}")));
        assert_eq!(with.count(), 1, "{status}: {bounces:#?}");
    }

    // What POP3 gives is what Postfix handed over, less its From_ line, byte for byte.
    let maildir = user.home.join("Maildir");
    let stored = files(&maildir);
    assert_eq!(stored.len(), 2);
    let server = agent.server("%h/Maildir");
    let got = pop3(&server, &to);
    assert_eq!(got.len(), 2);
    for (message_got, file) in got.iter().zip({
        let mut sorted = stored.clone();
        sorted.sort();
        sorted
    }) {
        assert_eq!(*message_got, fs::read(&file).unwrap());
        let head = format!("Return-Path: <{SENDER}>\n");
        assert!(message_got.starts_with(head.as_bytes()));
        assert!(
            message_got.ends_with(&handed),
            "{}",
            support::maildir::first_difference(message_got, &handed)
        );
    }
    let meta = fs::metadata(&stored[0]).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), user.uid);
}

#[test]
fn pipe_transport_for_virtual_accounts_defers_a_full_mailbox_with_quota_temporary() {
    if !is_root() {
        note("skipped: needs root");
        return;
    }
    let vmail = TempDir::new("deliver-vmail");
    fs::set_permissions(vmail.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let domain = vmail.path().join("virt.test");
    fs::create_dir(&domain).unwrap();
    chown(&domain, Some(65534), Some(65534)).unwrap();
    let agent = Agent::new(
        "bob@virt.test:{PLAIN}secret:65534:65534\n\
         full@virt.test:{PLAIN}secret:65534:65534::::userdb_quota_rule=*:storage=1\n",
    );
    let template = format!("{}/%d/%n", vmail.path().display());
    let postfix = Postfix::start(PostfixConfig {
        local_recipients: LocalRecipients::Passwd,
        virtual_pipe: Some(PipeTransport {
            domains: vec!["virt.test".into()],
            user: "nobody".into(),
            flags: "DRhu".into(),
            argv: vec![
                path_str(&agent.binary),
                "--deliver".into(),
                "${recipient}".into(),
                "--passwd".into(),
                path_str(&agent.passwd),
                "--maildir".into(),
                template.clone(),
                "--quota-temporary".into(),
            ],
        }),
        ..PostfixConfig::default()
    })
    .unwrap();
    let message = tricky("bob@virt.test", "pipe");
    let handed = tricky_lf("bob@virt.test", "pipe");
    // storage=1 is one kilobyte: the message fits, twice it does not.
    let big = [
        tricky("full@virt.test", "big"),
        b"\r\n".to_vec(),
        vec![b'x'; 300],
    ]
    .concat();
    for (to, body) in [
        ("Bob@Virt.test", &message),
        ("full@virt.test", &big),
        ("full@virt.test", &big),
        ("carol@virt.test", &message),
    ] {
        let sent = postfix.send(SENDER, &[to], body);
        assert_eq!(sent.accepted.len(), 1, "{sent:?}");
        postfix.wait_idle(IDLE);
    }
    let outcome = |to: &str| {
        let d = postfix.deliveries(to);
        note(&format!("{to}: {d:?}"));
        d.iter()
            .map(|d| (d.status.clone(), d.dsn.clone()))
            .collect::<Vec<_>>()
    };
    let pair = |s: &str, d: &str| (s.to_owned(), d.to_owned());
    assert_eq!(outcome("bob@virt.test"), [pair("sent", "2.0.0")]);
    assert_eq!(
        outcome("full@virt.test"),
        [pair("sent", "2.0.0"), pair("deferred", "4.2.2")]
    );
    assert_eq!(outcome("carol@virt.test"), [pair("bounced", "5.1.1")]);
    assert_eq!(postfix.deferred().len(), 1, "the full mailbox's mail waits");
    let bounced = bounces(&postfix);
    assert_eq!(bounced.len(), 1, "{bounced:#?}");
    assert!(bounced[0].contains("Status: 5.1.1"), "{}", bounced[0]);

    let server = agent.server(&template);
    let got = pop3(&server, "bob@virt.test");
    assert_eq!(got.len(), 1);
    // Postfix's pipe flags R and D, then its Received line, then the message as sent.
    let head = format!("Return-Path: <{SENDER}>\nDelivered-To: Bob@Virt.test\nReceived: ");
    assert!(
        got[0].starts_with(head.as_bytes()),
        "{}",
        String::from_utf8_lossy(&got[0])
    );
    assert!(
        got[0].ends_with(&handed),
        "{}",
        support::maildir::first_difference(&got[0], &handed)
    );
    let stored = files(&domain.join("bob"));
    assert_eq!(
        fs::read(&stored[0]).unwrap(),
        got[0],
        "byte for byte as stored"
    );
}

#[test]
fn mailbox_command_delivers_into_an_mbox_with_from_lines_quoted() {
    let Some(user) = SystemUser::create("dlm", "unused") else {
        note("skipped: needs root");
        return;
    };
    let agent = Agent::for_user(&user, "");
    // Postfix runs the command as the recipient, who may create files in their home.
    let postfix = agent.postfix_running("--mbox %h/mbox");
    let to = postfix.address(&user.name);
    let message = tricky(&to, "mbox-command");
    for _ in 0..2 {
        let sent = postfix.send(SENDER, &[&to], &message);
        assert_eq!(sent.accepted.len(), 1, "{sent:?}");
        postfix.wait_idle(IDLE);
    }
    let tried = postfix.deliveries(&to);
    assert!(
        tried.iter().all(|d| d.status == "sent") && tried.len() == 2,
        "{tried:?}"
    );
    let spool = user.home.join("mbox");
    let meta = fs::metadata(&spool).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), user.uid);

    let passwd = path_str(&agent.passwd);
    let server = BinServer::start(&[
        "--passwd",
        &passwd,
        "--mbox",
        "%h/mbox",
        "--fail-delay",
        "0.05",
    ]);
    let got = pop3(&server, &to);
    assert_eq!(got.len(), 2);
    // Served as stored: the body's `From ` line quoted by the agent.
    let handed: Vec<u8> = tricky_lf(&to, "mbox-command")
        .split(|&b| b == b'\n')
        .map(|l| match l.starts_with(b"From the start") {
            true => [&b">"[..], l].concat(),
            false => l.to_vec(),
        })
        .collect::<Vec<_>>()
        .join(&b"\n"[..]);
    for message_got in &got {
        let head = format!("Return-Path: <{SENDER}>\n");
        assert!(message_got.starts_with(head.as_bytes()));
        assert!(
            message_got.ends_with(&handed),
            "{}",
            support::maildir::first_difference(message_got, &handed)
        );
    }
}
