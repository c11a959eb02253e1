//! The daemon as an operator runs it: stopping it with a signal, what it logs, `--check`.

mod support;

use std::fs;
use std::io::Read;
use std::net::TcpStream;
use std::process::{Command, ExitStatus, Output};
use std::time::{Duration, Instant};
use support::maildir::{self, run_bounded, Corpus, PASSWORD, USER};
use support::pop::Pop;
use support::BinServer;

fn start(corpus: &Corpus) -> BinServer {
    let args = corpus.server_args();
    BinServer::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Sends `signal` to the server process.
fn signal(server: &BinServer, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(server.child.id()).unwrap();
    // SAFETY: kill(2) on the pid of a child this test started and has not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill");
}

/// Waits at most `limit` for the server to exit.
fn exit_within(server: &mut BinServer, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "pop3d still running {limit:?} after the signal; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_stops_the_server_and_its_sessions_without_deleting() {
    let corpus = Corpus::new("sigterm");
    let mut server = start(&corpus);
    let mut c = Pop::login(server.addr, USER, PASSWORD);
    c.stream()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("DELE 2").starts_with("+OK"));
    signal(&server, libc::SIGTERM);
    let status = exit_within(&mut server, Duration::from_secs(5));
    assert!(status.success(), "{status}; log:\n{}", server.log());
    // The client sees its connection end: at most a final -ERR line, then EOF (or a reset),
    // never a read timeout.
    let mut rest = Vec::new();
    match c.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "connection still open after the server exited: {e}"
        ),
    }
    assert!(
        rest.is_empty() || (rest.starts_with(b"-ERR") && rest.ends_with(b"\r\n")),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    assert_eq!(corpus.on_disk(), corpus.paths(), "a deletion was committed");
    server.log_with("stopped", Duration::from_secs(5));
}

#[test]
fn sigint_stops_an_idle_server() {
    let corpus = Corpus::new("sigint");
    let mut server = start(&corpus);
    signal(&server, libc::SIGINT);
    let status = exit_within(&mut server, Duration::from_secs(5));
    assert!(status.success(), "{status}");
}

#[test]
fn the_log_names_user_peer_and_counts_but_never_the_password() {
    let corpus = Corpus::new("log");
    let server = start(&corpus);

    let (mut bad, _) = Pop::connect(server.addr);
    let bad_peer = bad.stream().local_addr().unwrap();
    assert!(bad.cmd(&format!("USER {USER}")).starts_with("+OK"));
    assert!(bad.cmd("PASS wr0ng-Guess 77").starts_with("-ERR [AUTH]"));
    assert!(bad.cmd("QUIT").starts_with("+OK"));

    let mut c = Pop::login(server.addr, USER, PASSWORD);
    let peer = c.stream().local_addr().unwrap();
    let size = |c: &mut Pop<TcpStream>, n: u32| -> u64 {
        let reply = c.cmd(&format!("LIST {n}"));
        reply.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let retrieved = size(&mut c, 1) + size(&mut c, 2);
    let deleted = size(&mut c, 3);
    for n in [1, 2] {
        assert!(c.cmd(&format!("RETR {n}")).starts_with("+OK"));
        c.body();
    }
    assert!(c.cmd("TOP 4 0").starts_with("+OK"));
    c.body();
    assert!(c.cmd("DELE 3").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"));

    let log = server.log_with(
        &format!("logout: user={USER} peer={peer}"),
        Duration::from_secs(5),
    );
    let line = |words: &[&str]| {
        log.lines()
            .find(|l| words.iter().all(|w| l.contains(w)))
            .unwrap_or_else(|| panic!("no log line with {words:?}:\n{log}"))
    };
    line(&["connect:", &format!("peer={bad_peer}")]);
    line(&[
        "auth failed:",
        &format!("user={USER}"),
        &format!("peer={bad_peer}"),
    ]);
    line(&["connect:", &format!("peer={peer}")]);
    line(&["login:", &format!("user={USER}"), &format!("peer={peer}")]);
    // TOP is not a retrieval.
    line(&[
        "logout:",
        &format!("peer={peer}"),
        &format!("retrieved=2/{retrieved}"),
        &format!("deleted=1/{deleted}"),
    ]);
    for secret in [PASSWORD, "s3cret", "wr0ng"] {
        assert!(!log.contains(secret), "{secret:?} in the log:\n{log}");
    }
}

fn pop3d(args: &[&str]) -> Output {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_pop3d")).args(args),
        Duration::from_secs(10),
    )
}

#[test]
fn check_accepts_a_good_configuration_without_touching_mail() {
    let corpus = Corpus::new("check-ok");
    let passwd = corpus.dir.path().join("passwd.check");
    let bob = maildir::sha512_crypt("bob pw");
    fs::write(
        &passwd,
        format!(
            "# accounts\n\n{USER}:{{PLAIN}}{PASSWORD}::::{}::\nbob:{bob}\n",
            corpus.home.display()
        ),
    )
    .unwrap();
    let maildirs = corpus.dir.path().join("nowhere/%u");
    let out = pop3d(&[
        "--check",
        "--passwd",
        passwd.to_str().unwrap(),
        "--maildir",
        maildirs.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 accounts"), "{stdout}");
    assert!(
        !corpus.dir.path().join("nowhere").exists(),
        "--check made a Maildir"
    );
}

#[test]
fn check_fails_and_names_the_malformed_line() {
    let corpus = Corpus::new("check-bad");
    let passwd = corpus.dir.path().join("passwd.bad");
    let cases = [
        // (contents, line that is wrong)
        ("alice:{PLAIN}pw\n# ok so far\nthis line has no colon\n", 3),
        ("alice:{PLAIN}pw\nbob:{NO-SUCH-SCHEME}xyz\n", 2),
        ("alice:{PLAIN}pw\n\nalice:{PLAIN}other\n", 3),
    ];
    for (contents, bad_line) in cases {
        fs::write(&passwd, contents).unwrap();
        let out = pop3d(&[
            "--check",
            "--passwd",
            passwd.to_str().unwrap(),
            "--maildir",
            "%h/Maildir",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{contents:?} passed --check");
        assert!(
            stderr.contains(&format!("line {bad_line}")),
            "{contents:?}: stderr does not name line {bad_line}: {stderr}"
        );
    }
}

#[test]
fn pid_file_is_written_locked_against_a_second_daemon_and_removed_at_exit() {
    let corpus = Corpus::new("p3t-pidfile");
    let pid_file = corpus.dir.path().join("pop3d.pid");
    // A stale file, left by a pop3d that died: taken over.
    fs::write(&pid_file, "999999\n").unwrap();
    let mut args = corpus.server_args();
    args.extend(["--pid-file".into(), support::path_str(&pid_file)]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = BinServer::start(&args);
    let written = fs::read_to_string(&pid_file).unwrap();
    assert_eq!(written, format!("{}\n", server.child.id()));

    // A second daemon with the same pid file refuses to start, and says who holds it.
    let mut second = vec!["--listen", "127.0.0.1:0", "--allow-root"];
    second.extend(&args);
    let out = pop3d(&second);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "locked by a running pop3d (pid {})",
            server.child.id()
        )),
        "{stderr}"
    );
    assert_eq!(fs::read_to_string(&pid_file).unwrap(), written);

    signal(&server, libc::SIGTERM);
    assert!(exit_within(&mut server, Duration::from_secs(5)).success());
    assert!(!pid_file.exists(), "the pid file outlived the daemon");
}
