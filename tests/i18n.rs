//! RFC 6856 with a real client: Python poplib's utf8(), CAPA's UTF8 and LANG, and an account
//! whose name and password are not ASCII, served a message with UTF-8 headers byte for byte.

mod support;

use std::process::Command;
use std::time::Duration;
use support::maildir::run_bounded;
use support::temp_dir::TempDir;
use support::BinServer;

const MESSAGE: &[u8] = "From: Jürgen <jürgen@exämple.org>\r\nSubject: Grüße aus Köln\r\n\r\n\
    Schöne Grüße!\r\n"
    .as_bytes();

const SCRIPT: &str = r#"
import poplib, sys
host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
p = poplib.POP3(host, port, timeout=20)
caps = p.capa()
print("CAPA UTF8", caps.get("UTF8"))
print("CAPA LANG", "LANG" in caps)
print("LANG", p._longcmd("LANG")[1])
try:
    p._shortcmd("LANG de")
except poplib.error_proto as e:
    print("LANG de refused", e)
print("LANG *", p._shortcmd("LANG *"))
print("UTF8", p.utf8())
print("USER", p.user(user))
print("PASS", p.pass_(password))
resp, lines, octets = p.retr(1)
sys.stdout.buffer.write(b"MESSAGE " + b"\r\n".join(lines) + b"\r\n")
sys.stdout.flush()
print()
print("QUIT", p.quit())
"#;

#[test]
fn poplib_enables_utf8_and_logs_in_with_a_name_and_password_that_are_not_ascii() {
    let dir = TempDir::new("i18n");
    let home = dir.path().join("jürgen");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(home.join("Maildir").join(sub)).unwrap();
    }
    std::fs::write(home.join("Maildir/new/1.m"), MESSAGE).unwrap();
    let passwd = dir.path().join("passwd");
    std::fs::write(
        &passwd,
        format!(
            "jürgen@exämple.org:{{PLAIN}}pässwörd::::{}::\n",
            home.display()
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let server = BinServer::start(&[
        "--passwd",
        passwd.to_str().unwrap(),
        "--maildir",
        "%h/Maildir",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    // A capital first letter: names are folded to lower case, non-ASCII letters too.
    let out = run_bounded(
        Command::new("python3").args([
            "-c",
            SCRIPT,
            "127.0.0.1",
            &server.port().to_string(),
            "Jürgen@exämple.org",
            "pässwörd",
        ]),
        Duration::from_secs(30),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    assert!(stdout.contains("CAPA UTF8 ['USER']"), "{stdout}");
    assert!(stdout.contains("CAPA LANG True"), "{stdout}");
    assert!(stdout.contains("LANG [b'en English']"), "{stdout}");
    assert!(
        stdout.contains("LANG de refused b'-ERR Unsupported language'"),
        "{stdout}"
    );
    assert!(
        stdout.contains("LANG * b'+OK Language is now en'"),
        "{stdout}"
    );
    assert!(stdout.contains("UTF8 b'+OK UTF8 enabled'"), "{stdout}");
    assert!(
        stdout.contains("PASS b'+OK Logged in, 1 message"),
        "{stdout}"
    );
    let start = out
        .stdout
        .windows(8)
        .position(|w| w == b"MESSAGE ")
        .expect("the message");
    assert_eq!(&out.stdout[start + 8..start + 8 + MESSAGE.len()], MESSAGE);
    assert!(server.log().contains("login: user=jürgen@exämple.org "));
}
