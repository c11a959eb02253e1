//! SIGHUP in the standalone daemon: the certificate and key are read again, new connections
//! get the new pair (as `openssl s_client` sees it), sessions already open go on, and a broken
//! new pair leaves the old one in place with an error logged.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::maildir::{Corpus, PASSWORD, USER};
use support::pop::TlsPop;
use support::{path_str, BinServer, TestCert};

/// The SHA-256 fingerprint `openssl x509` gives for the PEM certificate `pem`.
fn fingerprint(pem: &[u8]) -> String {
    let out = support::run_with_input(
        Command::new("openssl").args(["x509", "-noout", "-fingerprint", "-sha256"]),
        pem,
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The fingerprint of the certificate a new `openssl s_client` connection is shown.
fn served_fingerprint(server: &BinServer) -> String {
    let addr = server.tls_addr().to_string();
    let out = support::run_with_input(
        Command::new("openssl").args(["s_client", "-connect", &addr, "-servername", "localhost"]),
        b"QUIT\r\n",
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text
        .find("-----BEGIN CERTIFICATE-----")
        .unwrap_or_else(|| panic!("no certificate from s_client:\n{text}"));
    let end = text[start..].find("-----END CERTIFICATE-----").unwrap() + start + 25;
    fingerprint(text[start..end].as_bytes())
}

/// Installs `pair` as the files the server was started with.
fn install(pair: &TestCert, cert: &Path, key: &Path) {
    fs::copy(&pair.cert, cert).unwrap();
    fs::copy(&pair.key, key).unwrap();
}

fn hangup(server: &BinServer) {
    let pid = libc::pid_t::try_from(server.child.id()).unwrap();
    // SAFETY: kill(2) on the pid of a child this test started and has not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
}

/// Waits until the log has `text` `n` times.
fn logged_times(server: &BinServer, text: &str, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = server.log();
        if log.matches(text).count() >= n {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "{text:?} not logged {n} times:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_serves_a_renewed_certificate_and_keeps_the_old_on_a_broken_one() {
    let corpus = Corpus::new("p3t-reload");
    let a = TestCert::generate(&corpus.scratch("a"));
    let b = TestCert::generate(&corpus.scratch("b"));
    let live = corpus.scratch("live");
    let (cert, key) = (live.join("cert.pem"), live.join("key.pem"));
    install(&a, &cert, &key);
    let (fp_a, fp_b) = (
        fingerprint(&fs::read(&a.cert).unwrap()),
        fingerprint(&fs::read(&b.cert).unwrap()),
    );
    assert_ne!(fp_a, fp_b);

    let mut args = corpus.server_args();
    args.extend([
        "--listen-tls".into(),
        "127.0.0.1:0".into(),
        "--tls-cert".into(),
        path_str(&cert),
        "--tls-key".into(),
        path_str(&key),
    ]);
    let server = BinServer::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(served_fingerprint(&server), fp_a);

    // A session opened before the reload, logged in on A's certificate.
    let (mut before, greeting) = TlsPop::implicit(server.tls_addr());
    assert!(greeting.starts_with("+OK"), "{greeting}");
    assert!(before.cmd(&format!("USER {USER}")).starts_with("+OK"));
    assert!(before.cmd(&format!("PASS {PASSWORD}")).starts_with("+OK"));

    install(&b, &cert, &key);
    hangup(&server);
    logged_times(&server, "SIGHUP: new connections get the certificate", 1);
    assert_eq!(
        served_fingerprint(&server),
        fp_b,
        "a new connection after SIGHUP"
    );
    // The session opened before goes on, on its own connection.
    assert!(before.cmd("STAT").starts_with("+OK"));
    let (_, listing) = before.multi("LIST");
    assert_eq!(listing.len(), corpus.messages.len());

    // A broken pair: A's key with B's certificate. The server keeps B and says why.
    fs::copy(&a.key, &key).unwrap();
    hangup(&server);
    let log = logged_times(&server, "SIGHUP: keeping the current certificate", 1);
    let line = log
        .lines()
        .find(|l| l.contains("SIGHUP: keeping the current certificate"))
        .unwrap();
    assert!(line.contains("ERROR"), "not logged as an error: {line}");
    assert_eq!(
        served_fingerprint(&server),
        fp_b,
        "the broken pair replaced B"
    );
    // And a file that is not there at all.
    fs::remove_file(&cert).unwrap();
    hangup(&server);
    logged_times(&server, "SIGHUP: keeping the current certificate", 2);
    assert_eq!(served_fingerprint(&server), fp_b);
    assert!(before.cmd("NOOP").starts_with("+OK"));
    before.quit();
    let mut server = server;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the daemon exited:\n{}",
        server.log()
    );
}

#[test]
fn sighup_rereads_a_key_readable_by_root_alone_after_user() {
    // SAFETY: geteuid takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        support::note("skipped: needs root (--user, a key readable by root alone)");
        return;
    }
    let corpus = Corpus::new("p3t-reload-user");
    let a = TestCert::generate(&corpus.scratch("a"));
    let b = TestCert::generate(&corpus.scratch("b"));
    let live = corpus.scratch("live");
    let (cert, key) = (live.join("cert.pem"), live.join("key.pem"));
    install(&a, &cert, &key);
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let mut args = corpus.server_args();
    args.extend(
        [
            "--user",
            "nobody",
            "--listen-tls",
            "127.0.0.1:0",
            "--tls-cert",
            &path_str(&cert),
            "--tls-key",
            &path_str(&key),
        ]
        .map(String::from),
    );
    let server = BinServer::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    server.wait_for_log("running as nobody");
    assert_eq!(
        served_fingerprint(&server),
        fingerprint(&fs::read(&a.cert).unwrap())
    );
    // The renewed key is as private as the first: pop3d, now nobody, cannot read it itself.
    install(&b, &cert, &key);
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    hangup(&server);
    logged_times(&server, "SIGHUP: new connections get the certificate", 1);
    assert_eq!(
        served_fingerprint(&server),
        fingerprint(&fs::read(&b.cert).unwrap())
    );
}
