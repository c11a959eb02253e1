//! What a client can learn from how and when a failed login is answered, and how far one
//! address can guess: the SCRAM server-first message of an unknown user, the time of the first
//! SCRAM step, the failure padding of a fresh `--inetd` process, what a successful login
//! clears, and the failure penalty shared by `--inetd` processes.
//!
//! The timing tests compare medians of interleaved samples, so that a change in the load of a
//! shared machine hits every kind alike; each prints its figures (see them with `--nocapture`).

mod support;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use pop3d::auth::ScramKeys;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};
use support::maildir::{Corpus, PASSWORD, USER};
use support::note;
use support::pop::Pop;
use support::temp_dir::TempDir;
use support::BinServer;

const AUTH_FAILED: &str = "-ERR [AUTH] Authentication failed";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    (v[(v.len() - 1) / 2] + v[v.len() / 2]) / 2
}

fn path(p: &Path) -> String {
    p.to_str().expect("UTF-8 test path").to_owned()
}

/// `pop3d --inetd ARGS` on pipes, as one byte stream; killed on drop.
struct Piped {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

impl Piped {
    /// Starts it and reads the greeting.
    fn start(args: &[String]) -> Pop<Piped> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pop3d"))
            .args(["--inetd", "--allow-root"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pop3d --inetd");
        let mut c = Pop::over(Piped {
            stdin: child.stdin.take().unwrap(),
            stdout: child.stdout.take().unwrap(),
            child,
        });
        assert!(c.line().starts_with("+OK"), "no greeting");
        c
    }
}

impl Read for Piped {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stdout.read(buf)
    }
}

impl Write for Piped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stdin.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stdin.flush()
    }
}

impl Drop for Piped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `pop3d --inetd ARGS` serving an accepted TCP connection, as inetd starts it; returns the
/// client's end. The process exits when the session ends.
fn inetd_over_socket(args: &[String]) -> (Pop<TcpStream>, Child) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let fd = OwnedFd::from(accepted);
    let child = Command::new(env!("CARGO_BIN_EXE_pop3d"))
        .args(["--inetd", "--allow-root"])
        .args(args)
        .stdin(Stdio::from(fd.try_clone().unwrap()))
        .stdout(Stdio::from(fd))
        .stderr(Stdio::null())
        .spawn()
        .expect("start pop3d --inetd");
    (Pop::over(client), child)
}

/// Sends the SCRAM-SHA-256 client-first message for `user` (after `AUTH SCRAM-SHA-256` was
/// answered with an empty challenge) and returns the server-first message and how long it took.
fn scram_first<S: Read + Write>(c: &mut Pop<S>, user: &str) -> (String, Duration) {
    assert_eq!(c.cmd("AUTH SCRAM-SHA-256"), "+ ");
    let first = B64.encode(format!("n,,n={user},r=clientnonce"));
    let t = Instant::now();
    let reply = c.cmd(&first);
    let took = t.elapsed();
    let challenge = reply.strip_prefix("+ ").expect("a server-first challenge");
    let server_first = String::from_utf8(B64.decode(challenge).unwrap()).unwrap();
    (server_first, took)
}

/// The `s=` and `i=` of a server-first message.
fn salt_and_count(server_first: &str) -> (String, String) {
    let attr = |name: &str| {
        server_first
            .split(',')
            .find_map(|a| a.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {server_first}"))
            .to_owned()
    };
    (attr("s="), attr("i="))
}

/// Asks a fresh session (greeted) for `user`'s SCRAM salt and iteration count, then cancels.
fn scram_params<S: Read + Write>(mut c: Pop<S>, user: &str) -> (String, String) {
    let (server_first, _) = scram_first(&mut c, user);
    assert_eq!(c.cmd("*"), "-ERR Authentication cancelled");
    salt_and_count(&server_first)
}

// ---------------------------------------------------------------------------------------------
// Item 1: an unknown user's server-first message

#[test]
fn scram_server_first_of_an_unknown_user_is_stable_and_uses_the_files_count() {
    let dir = TempDir::new("scram-fake");
    let passwd = dir.path().join("passwd");
    let state = dir.path().join("state");
    // Every account has keys of 10,000 iterations (not the 4096 of --hash-password).
    let mut text = String::new();
    for (i, user) in ["ann", "ben", "cat"].iter().enumerate() {
        let keys = ScramKeys::derive(b"pw", format!("salt-{i}").as_bytes(), 10_000);
        writeln!(text, "{user}:{{SCRAM-SHA-256}}{}", keys.to_stored()).unwrap();
    }
    fs::write(&passwd, text).unwrap();
    let args: Vec<String> = [
        "--passwd",
        &path(&passwd),
        "--state-dir",
        &path(&state),
        "--fail-delay",
        "0",
    ]
    .map(String::from)
    .to_vec();
    // Two inetd processes, one per connection.
    let known = scram_params(Piped::start(&args), "ben");
    let first = scram_params(Piped::start(&args), "nobody");
    let second = scram_params(Piped::start(&args), "nobody");
    // A standalone server, and the same after a restart.
    let standalone: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = BinServer::start(&standalone);
    let third = scram_params(Pop::connect(server.addr).0, "nobody");
    drop(server);
    let server = BinServer::start(&standalone);
    let fourth = scram_params(Pop::connect(server.addr).0, "nobody");
    note(&format!(
        "SCRAM server-first: ben {known:?}; nobody, inetd {first:?} then {second:?}, \
         standalone {third:?}, after a restart {fourth:?}"
    ));
    assert_eq!(known.1, "10000");
    assert_eq!(first.1, known.1, "an unknown user shows another count");
    assert_eq!(
        first, second,
        "an unknown user's salt changes between processes"
    );
    assert_eq!(first, third);
    assert_eq!(third, fourth, "an unknown user's salt changes at a restart");
    let secret = state.join("secret");
    let mode = fs::metadata(&secret)
        .expect("the secret file")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
}

// ---------------------------------------------------------------------------------------------
// Item 2: the first SCRAM step takes as long whatever line the user is on, or none

#[test]
fn first_scram_step_takes_the_same_time_for_any_line_and_unknown_users() {
    const LINES: usize = 50_000;
    const SAMPLES: usize = 9;
    let dir = TempDir::new("scram-time");
    let passwd = dir.path().join("passwd");
    let mut text = String::with_capacity(LINES * 40);
    for i in 0..LINES {
        writeln!(text, "user{i}:{{PLAIN}}password{i}::::/nonexistent::").unwrap();
    }
    fs::write(&passwd, text).unwrap();
    let state = dir.path().join("state");
    let server = BinServer::start(&[
        "--passwd",
        &path(&passwd),
        "--state-dir",
        &path(&state),
        "--fail-delay",
        "0.1",
    ]);
    let users = ["user0", &format!("user{}", LINES - 1), "nobody"];
    let one = |user: &str| {
        let (mut c, _) = Pop::connect(server.addr);
        let (_, took) = scram_first(&mut c, user);
        assert_eq!(c.cmd("*"), "-ERR Authentication cancelled");
        took
    };
    // Warm up: the file read cold, the mechanisms scanned.
    for user in users {
        one(user);
    }
    let mut samples = vec![Vec::new(); users.len()];
    for _ in 0..SAMPLES {
        for (i, user) in users.iter().enumerate() {
            samples[i].push(one(user));
        }
    }
    let medians: Vec<Duration> = samples.into_iter().map(median).collect();
    let (least, most) = (
        *medians.iter().min().unwrap(),
        *medians.iter().max().unwrap(),
    );
    // The step is padded to the failure delay (100 ms): 5% of that is far more than the
    // scheduling noise of a median, and far less than scanning 50,000 lines unpadded.
    let bound = Duration::from_millis(5);
    note(&format!(
        "first SCRAM step, {LINES}-line passwd file, medians of {SAMPLES}: line 1 {:?}, line \
         {LINES} {:?}, unknown {:?}; spread {:?} (bound {bound:?})",
        medians[0],
        medians[1],
        medians[2],
        most - least
    ));
    assert!(most - least < bound, "medians spread {:?}", most - least);
}

// ---------------------------------------------------------------------------------------------
// Item 3: failure padding in a fresh process

/// `secret` with 1,000,000 sha-crypt rounds: a check costs more than the failure delay.
/// (`openssl passwd -6 -salt 'rounds=1000000$pop3dTiming' secret`)
const HASH_COSTLY: &str = "$6$rounds=1000000$pop3dTiming$sVNbcyGvHXofRseIcoiXtoK4H/SS/AGD39ajlz3u4qZhU0UOZl7PsNp.7skSsvapr8oNAh/pjADE9NOLKRkOG1";

#[test]
fn inetd_pads_the_first_failure_to_the_costliest_hash() {
    const SAMPLES: usize = 5;
    let dir = TempDir::new("inetd-pad");
    let passwd = dir.path().join("passwd");
    fs::write(
        &passwd,
        format!(
            "bob:{{SHA512-CRYPT}}{HASH_COSTLY}::::{}::\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let args: Vec<String> = [
        "--passwd",
        &path(&passwd),
        "--state-dir",
        &path(&dir.path().join("state")),
        "--fail-delay",
        "0.05",
    ]
    .map(String::from)
    .to_vec();
    // One fresh process per attempt, as inetd runs it.
    let attempt = |user: &str| {
        let mut c = Piped::start(&args);
        assert_eq!(c.cmd(&format!("USER {user}")), "+OK Send your password");
        let t = Instant::now();
        let reply = c.cmd("PASS wrong");
        let took = t.elapsed();
        assert_eq!(reply, AUTH_FAILED);
        took
    };
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        wrong.push(attempt("bob"));
        unknown.push(attempt("nobody"));
    }
    let (wrong, unknown) = (median(wrong), median(unknown));
    let diff = wrong.abs_diff(unknown);
    // A check of this hash takes a third of a second or more, six times the failure delay;
    // unpadded, the difference is about that, padded it is noise.
    let bound = Duration::from_millis(80);
    note(&format!(
        "--inetd, one process per attempt, medians of {SAMPLES}: wrong password for a \
         1,000,000-round hash {wrong:?}, unknown user {unknown:?}, difference {diff:?} \
         (bound {bound:?})"
    ));
    assert!(diff < bound, "medians differ by {diff:?}");
}

// ---------------------------------------------------------------------------------------------
// Item 4: a successful login clears only its own user's failures

/// One USER/PASS attempt on a new connection to `server`: the reply and how long PASS took.
fn attempt(server: &BinServer, user: &str, password: &str) -> (String, Duration) {
    let (mut c, greeting) = Pop::connect(server.addr);
    assert!(greeting.starts_with("+OK"), "{greeting}");
    assert!(c.cmd(&format!("USER {user}")).starts_with("+OK"));
    let t = Instant::now();
    let reply = c.cmd(&format!("PASS {password}"));
    let took = t.elapsed();
    assert_eq!(c.cmd("QUIT"), "+OK Bye");
    assert!(c.closed());
    (reply, took)
}

#[test]
fn a_login_to_another_account_does_not_clear_the_penalty() {
    let corpus = Corpus::new("own-account");
    let mallory = corpus.scratch("mallory");
    fs::create_dir_all(mallory.join("Maildir/new")).unwrap();
    let mut text = fs::read_to_string(&corpus.passwd).unwrap();
    writeln!(text, "mallory:{{PLAIN}}mine::::{}::", mallory.display()).unwrap();
    fs::write(&corpus.passwd, text).unwrap();
    let state = corpus.scratch("state");
    let server = BinServer::start(&[
        "--passwd",
        &path(&corpus.passwd),
        "--maildir",
        "%h/Maildir",
        "--state-dir",
        &path(&state),
        "--insecure-loopback",
        "--fail-delay",
        "0",
    ]);
    let (reply, first) = attempt(&server, USER, "guess-1");
    assert_eq!(reply, AUTH_FAILED);
    // The attacker logs into their own account: it waits out the penalty, and succeeds.
    let (reply, own) = attempt(&server, "mallory", "mine");
    assert!(reply.starts_with("+OK"), "{reply}");
    // The next guess at the victim's password still waits.
    let (reply, second) = attempt(&server, USER, "guess-2");
    assert_eq!(reply, AUTH_FAILED);
    note(&format!(
        "penalty: guess 1 {first:?}, own account {own:?}, guess 2 {second:?}"
    ));
    assert!(first < Duration::from_secs(1), "{first:?}");
    assert!(own >= Duration::from_secs(2), "{own:?}");
    assert!(
        second >= Duration::from_secs(2),
        "the login to mallory cleared the penalty of the guesses at {USER}: {second:?}"
    );
    // The victim's own login proves the victim's password: it clears what it proves.
    let (reply, _) = attempt(&server, USER, PASSWORD);
    assert!(reply.starts_with("+OK"), "{reply}");
    let (_, after) = attempt(&server, USER, "guess-3");
    assert!(after < Duration::from_secs(1), "{after:?}");
}

// ---------------------------------------------------------------------------------------------
// Item 5: the penalty carries from one --inetd process to the next

#[test]
fn inetd_processes_share_the_penalty() {
    let corpus = Corpus::new("inetd-penalty");
    let state = corpus.scratch("state");
    let mut args = vec![
        "--passwd".to_owned(),
        path(&corpus.passwd),
        "--maildir".into(),
        "%h/Maildir".into(),
        "--state-dir".into(),
        path(&state),
        "--insecure-loopback".into(),
        "--fail-delay".into(),
        "0".into(),
    ];
    args.shrink_to_fit();
    let mut took = Vec::new();
    for guess in ["guess-1", "guess-2", "guess-3"] {
        let (mut c, mut child) = inetd_over_socket(&args);
        assert!(c.line().starts_with("+OK"));
        assert_eq!(c.cmd(&format!("USER {USER}")), "+OK Send your password");
        let t = Instant::now();
        assert_eq!(c.cmd(&format!("PASS {guess}")), AUTH_FAILED);
        took.push(t.elapsed());
        assert_eq!(c.cmd("QUIT"), "+OK Bye");
        assert!(c.closed());
        child.wait().unwrap();
    }
    note(&format!(
        "--inetd penalty, one process per connection: {took:?}"
    ));
    assert!(took[0] < Duration::from_secs(1), "{took:?}");
    assert!(
        took[1] >= Duration::from_secs(2) && took[1] < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(
        took[2] >= Duration::from_secs(4) && took[2] < Duration::from_secs(8),
        "{took:?}"
    );
}
