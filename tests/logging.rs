//! The log an administrator reads: each outcome under its own label and level, a debug trace
//! that never shows a secret, and the manual's fail2ban filter run by the real fail2ban-regex
//! against the lines a real server wrote.

mod support;

use base64::Engine;
use std::process::Command;
use support::pop::Pop;
use support::temp_dir::TempDir;
use support::BinServer;

const PASSWORD: &str = "s3cret-pw";

/// A passwd file with ann (one empty Maildir) in `dir`; returns its path.
fn passwd(dir: &TempDir) -> std::path::PathBuf {
    let home = dir.path().join("ann");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(home.join("Maildir").join(sub)).unwrap();
    }
    let passwd = dir.path().join("passwd");
    std::fs::write(
        &passwd,
        format!("ann:{{PLAIN}}{PASSWORD}::::{}::\n", home.display()),
    )
    .unwrap();
    passwd
}

/// The fail2ban filter in the manual, as a file fail2ban-regex reads.
fn manual_filter(dir: &TempDir) -> std::path::PathBuf {
    let man = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/man/pop3d.8")).unwrap();
    let start = man
        .find("[Definition]\n")
        .expect("a fail2ban filter in the manual");
    let end = start + man[start..].find("\n.Ed").unwrap();
    // mdoc writes a backslash as \e.
    let filter = man[start..end].replace("\\e", "\\") + "\n";
    let path = dir.path().join("pop3d.conf");
    std::fs::write(&path, filter).unwrap();
    path
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn each_outcome_has_its_label_and_level_and_fail2ban_matches_only_the_clients_failures() {
    let dir = TempDir::new("logging");
    let passwd = passwd(&dir);
    let server = BinServer::start(&[
        "--passwd",
        passwd.to_str().unwrap(),
        "--maildir",
        "%h/Maildir",
        "--fail-delay",
        "0.01",
        "--exempt-loopback",
    ]);
    // Three failures of the client's: a wrong password, an unknown user, a broken exchange.
    let (mut c, _) = Pop::connect(server.addr);
    assert!(c.cmd("USER ann").starts_with("+OK"));
    assert!(c.cmd("PASS wrong").starts_with("-ERR [AUTH]"));
    assert!(c.cmd("USER nobody").starts_with("+OK"));
    assert!(c.cmd("PASS wrong").starts_with("-ERR [AUTH]"));
    let plain = b64(b"\0ann\0also-wrong");
    assert!(c
        .cmd(&format!("AUTH PLAIN {plain}"))
        .starts_with("-ERR [AUTH]"));
    // Three failures end a session: the broken exchange gets one of its own.
    let (mut c, _) = Pop::connect(server.addr);
    assert!(c.cmd("AUTH PLAIN").starts_with("+ "));
    assert!(c.cmd(&b64(b"no nul bytes at all")).starts_with("-ERR"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    // A login, and a second session that finds the mailbox in use.
    let mut first = Pop::login(server.addr, "ann", PASSWORD);
    let (mut second, _) = Pop::connect(server.addr);
    assert!(second.cmd("USER ann").starts_with("+OK"));
    assert!(second
        .cmd(&format!("PASS {PASSWORD}"))
        .starts_with("-ERR [IN-USE]"));
    assert!(first.cmd("QUIT").starts_with("+OK"));
    // The administrator's failure: the passwd file gone.
    std::fs::remove_file(&passwd).unwrap();
    assert!(second.cmd("USER ann").starts_with("+OK"));
    assert!(second
        .cmd(&format!("PASS {PASSWORD}"))
        .starts_with("-ERR [SYS/TEMP]"));
    assert!(second.cmd("QUIT").starts_with("+OK"));

    let log = server.log_with("logout: user=ann", std::time::Duration::from_secs(5));
    let count = |label: &str, level: &str| {
        log.lines()
            .filter(|l| l.contains(&format!(" {label}")) && l.contains(level))
            .count()
    };
    assert_eq!(count("auth failed: user=ann ", "INFO"), 2, "{log}");
    assert_eq!(count("auth failed: user=nobody ", "INFO"), 1, "{log}");
    assert_eq!(count("auth malformed: ", "INFO"), 1, "{log}");
    assert_eq!(count("mailbox in use: user=ann ", "INFO"), 1, "{log}");
    assert_eq!(count("auth unavailable: user=ann ", "ERROR"), 1, "{log}");
    assert_eq!(count("login: user=ann ", "INFO"), 1, "{log}");
    assert!(log.contains("mech=PLAIN"), "{log}");
    let logout = log
        .lines()
        .find(|l| l.contains("logout: user=ann "))
        .unwrap();
    assert!(
        logout.contains(" mech=USER ") && logout.contains(" duration="),
        "{logout}"
    );
    assert!(
        !log.contains(PASSWORD) && !log.contains("also-wrong"),
        "{log}"
    );

    // The real fail2ban-regex, with the manual's filter, on these very lines: the three
    // failures of the client's match, the server's own failure does not.
    let lines = dir.path().join("pop3d.log");
    std::fs::write(&lines, &log).unwrap();
    let out = Command::new("fail2ban-regex")
        .arg(&lines)
        .arg(manual_filter(&dir))
        .output()
        .expect("fail2ban-regex (Debian package fail2ban)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let matched = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Lines: "))
        .and_then(|l| l.split(", ").find_map(|p| p.strip_suffix(" matched")))
        .unwrap_or_else(|| panic!("no count in:\n{text}"));
    assert_eq!(matched, "4", "{text}");
    assert!(text.contains("127.0.0.1"), "{text}");
}

#[test]
fn the_debug_trace_shows_commands_and_replies_but_no_secret() {
    let dir = TempDir::new("trace");
    let passwd = passwd(&dir);
    let server = BinServer::start_with_env(
        &[
            "--passwd",
            passwd.to_str().unwrap(),
            "--maildir",
            "%h/Maildir",
        ],
        "listening on ",
        &[("POP3D_LOG", "debug")],
    );
    let (mut c, _) = Pop::connect(server.addr);
    let plain = b64(format!("\0ann\0{PASSWORD}").as_bytes());
    assert!(c.cmd("AUTH PLAIN").starts_with("+ "));
    assert!(c.cmd(&plain).starts_with("+OK"));
    assert!(c.cmd("STAT").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    let mut c = Pop::login(server.addr, "ann", PASSWORD);
    assert!(c.cmd("QUIT").starts_with("+OK"));
    // The second session's PASS is the last line wanted; the first session's logout may be
    // read before the second session's lines are.
    let log = server.log_with("PASS <hidden>", std::time::Duration::from_secs(5));
    for want in [
        "command: peer=",
        "AUTH PLAIN",
        "<SASL response hidden>",
        "reply: peer=",
        "+ <SASL challenge>",
        "STAT",
        "+OK 0 0",
        "USER ann",
        "PASS <hidden>",
    ] {
        assert!(log.contains(want), "no {want:?} in:\n{log}");
    }
    assert!(!log.contains(PASSWORD) && !log.contains(&plain), "{log}");
}
