//! Client workarounds (--workarounds), checked with a real client: Python poplib retrieves a
//! message with NUL octets and one with no blank line after its header, with each workaround
//! off and on.

mod support;

use std::process::Command;
use std::time::Duration;
use support::maildir::run_bounded;
use support::temp_dir::TempDir;
use support::BinServer;

const WITH_NUL: &[u8] = b"Subject: nul\r\n\r\na\0b\r\n";
const NO_BODY: &[u8] = b"Subject: header only\r\nX-Other: x";

const SCRIPT: &str = r#"
import poplib, sys
p = poplib.POP3(sys.argv[1], int(sys.argv[2]), timeout=20)
p.user("ann"); p.pass_("pw")
for n in (1, 2):
    resp, lines, octets = p.retr(n)
    sys.stdout.buffer.write(repr(lines).encode() + b"\n")
p.quit()
"#;

/// The lines poplib got for messages 1 and 2, as Python prints them.
fn retrieve(extra: &[&str]) -> Vec<String> {
    let dir = TempDir::new("workarounds");
    let maildir = dir.path().join("ann/Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    std::fs::write(maildir.join("cur/1.a:2,"), WITH_NUL).unwrap();
    std::fs::write(maildir.join("cur/2.b:2,"), NO_BODY).unwrap();
    let passwd = dir.path().join("passwd");
    let home = dir.path().join("ann");
    std::fs::write(
        &passwd,
        format!("ann:{{PLAIN}}pw::::{}::\n", home.display()),
    )
    .unwrap();
    let state = dir.path().join("state");
    let mut args = vec![
        "--passwd",
        passwd.to_str().unwrap(),
        "--maildir",
        "%h/Maildir",
        "--state-dir",
        state.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let server = BinServer::start(&args);
    let out = run_bounded(
        Command::new("python3").args(["-c", SCRIPT, "127.0.0.1", &server.port().to_string()]),
        Duration::from_secs(30),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_owned).collect()
}

#[test]
fn outlook_no_nuls_and_oe_ns_eoh_change_only_what_they_name() {
    let plain = retrieve(&[]);
    assert_eq!(plain[0], r"[b'Subject: nul', b'', b'a\x00b']");
    assert_eq!(plain[1], r"[b'Subject: header only', b'X-Other: x']");

    let fixed = retrieve(&["--workarounds", "outlook-no-nuls,oe-ns-eoh"]);
    assert_eq!(fixed[0], r"[b'Subject: nul', b'', b'a\x80b']");
    assert_eq!(fixed[1], r"[b'Subject: header only', b'X-Other: x', b'']");
}

#[test]
fn an_unknown_workaround_is_a_usage_error_naming_the_known_ones() {
    let out = Command::new(env!("CARGO_BIN_EXE_pop3d"))
        .args(["--workarounds", "outlook-no-nuls,bogus", "--check"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("\"bogus\" is not one of outlook-no-nuls, oe-ns-eoh"),
        "{err}"
    );
}
