//! LOGIN-DELAY (RFC 2449 §6.8), enforced: Python poplib logs in, and a second login with the
//! right password too soon gets [LOGIN-DELAY], across a restart and across --inetd processes;
//! a wrong password still gets [AUTH]; a passwd entry's own value overrides the default.

mod support;

use std::process::Command;
use std::time::Duration;
use support::maildir::run_bounded;
use support::pop::Pop;
use support::temp_dir::TempDir;
use support::BinServer;

const SCRIPT: &str = r#"
import poplib, sys
p = poplib.POP3(sys.argv[1], int(sys.argv[2]), timeout=20)
print("CAPA", p.capa().get("LOGIN-DELAY"))
p.user(sys.argv[3])
try:
    print("PASS", p.pass_(sys.argv[4]).decode())
    print("CAPA", p.capa().get("LOGIN-DELAY"))
except poplib.error_proto as e:
    print("PASS", e.args[0].decode())
p.quit()
"#;

/// One poplib session: the LOGIN-DELAY capability before login, PASS's reply, and (if it
/// logged in) the capability after.
fn poplib(port: u16, user: &str, password: &str) -> String {
    let out = run_bounded(
        Command::new("python3").args([
            "-c",
            SCRIPT,
            "127.0.0.1",
            &port.to_string(),
            user,
            password,
        ]),
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

struct Setup {
    dir: TempDir,
}

impl Setup {
    fn new() -> Self {
        let dir = TempDir::new("login-delay");
        let mut passwd = String::new();
        for (user, extra) in [("ann", ""), ("bob", "pop3_login_delay=0")] {
            let home = dir.path().join(user);
            for sub in ["new", "cur", "tmp"] {
                std::fs::create_dir_all(home.join("Maildir").join(sub)).unwrap();
            }
            passwd += &format!("{user}:{{PLAIN}}pw::::{}::{extra}\n", home.display());
        }
        std::fs::write(dir.path().join("passwd"), passwd).unwrap();
        Setup { dir }
    }

    fn args(&self) -> Vec<String> {
        let path = |p: &str| self.dir.path().join(p).to_str().unwrap().to_owned();
        vec![
            "--passwd".into(),
            path("passwd"),
            "--maildir".into(),
            "%h/Maildir".into(),
            "--state-dir".into(),
            path("state"),
            "--login-delay".into(),
            "60".into(),
            "--fail-delay".into(),
            "0.01".into(),
            "--exempt-loopback".into(),
        ]
    }

    fn start(&self) -> BinServer {
        let args = self.args();
        BinServer::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

#[test]
fn a_second_login_too_soon_is_delayed_even_after_a_restart() {
    let setup = Setup::new();
    let server = setup.start();
    let first = poplib(server.port(), "ann", "pw");
    assert!(first.contains("CAPA ['60', 'USER']"), "{first}");
    assert!(first.contains("PASS +OK Logged in"), "{first}");
    assert!(first.contains("CAPA ['60']"), "{first}");

    let again = poplib(server.port(), "ann", "pw");
    assert!(
        again.contains("PASS -ERR [LOGIN-DELAY] Minimum time between logins is 60 seconds"),
        "{again}"
    );
    // A wrong password learns nothing about the delay.
    let wrong = poplib(server.port(), "ann", "not-pw");
    assert!(wrong.contains("PASS -ERR [AUTH]"), "{wrong}");
    // bob's own value, 0, overrides the default: no delay, none advertised after login.
    for _ in 0..2 {
        let bob = poplib(server.port(), "bob", "pw");
        assert!(
            bob.contains("PASS +OK Logged in") && bob.contains("CAPA None"),
            "{bob}"
        );
    }
    assert!(
        server.log().contains("login delayed: user=ann"),
        "{}",
        server.log()
    );

    // A restarted server remembers.
    drop(server);
    let server = setup.start();
    let after = poplib(server.port(), "ann", "pw");
    assert!(after.contains("PASS -ERR [LOGIN-DELAY]"), "{after}");
}

#[test]
fn inetd_processes_share_the_last_login() {
    let setup = Setup::new();
    let mut args = vec!["--inetd".to_owned(), "--allow-root".to_owned()];
    args.extend(setup.args());
    let session = |password: &str| -> String {
        let out = support::run_with_input(
            Command::new(env!("CARGO_BIN_EXE_pop3d")).args(&args),
            format!("USER ann\r\nPASS {password}\r\nQUIT\r\n").as_bytes(),
            Duration::from_secs(30),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = session("pw");
    assert!(first.contains("+OK Logged in"), "{first}");
    let second = session("pw");
    assert!(second.contains("-ERR [LOGIN-DELAY]"), "{second}");
    // The standalone server reads the same file.
    let server = setup.start();
    let (mut c, _) = Pop::connect(server.addr);
    assert!(c.cmd("USER ann").starts_with("+OK"));
    assert!(c.cmd("PASS pw").starts_with("-ERR [LOGIN-DELAY]"));
}
