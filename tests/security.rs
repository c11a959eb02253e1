//! Security checks that need no new server feature: hostile user names cannot reach outside the
//! Maildir root, replies never echo what the client sent, and a failed login takes the same time
//! whether or not the user exists.

mod support;

use pop3d::store::memory::MemoryStore;
use std::collections::BTreeSet;
use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::pop::Pop;
use support::temp_dir::TempDir;
use support::{note, BinServer, LibServer, Users};

/// Every path under `dir`, relative to it.
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).expect("read_dir") {
            let path = e.expect("entry").path();
            if path.is_dir() && !path.is_symlink() {
                todo.push(path.clone());
            }
            out.insert(path.strip_prefix(dir).expect("under dir").to_path_buf());
        }
    }
    out
}

/// The reply texts for refused user names.
const BAD_CHARACTER: &str =
    "-ERR [AUTH] Invalid user name: user name contains a character that is not allowed";
const BAD_DOT: &str =
    "-ERR [AUTH] Invalid user name: user name may not start with '.' or contain '..'";
const BAD_DOMAIN: &str = "-ERR [AUTH] Invalid user name: user name must be local or local@domain";
const TOO_LONG: &str = "-ERR [AUTH] Invalid user name: user name is too long";

#[test]
fn hostile_user_names_stay_inside_the_maildir_root() {
    let dir = TempDir::new("names");
    // A marker no other file on the machine has, so an escape anywhere can be searched for.
    let mark = format!("escaped{}", std::process::id());
    let root = dir.path().join("deep/er/mail");
    fs::create_dir_all(&root).expect("mkdir root");
    let passwd = dir.path().join("passwd");
    fs::write(
        &passwd,
        format!("bob@example.org:{{PLAIN}}pw\n{mark}@example.org:{{PLAIN}}pw\n"),
    )
    .expect("passwd");
    let template = format!("{}/%d/%n", root.display());
    let server = BinServer::start(&[
        "--passwd",
        passwd.to_str().expect("utf-8"),
        "--maildir",
        &template,
        "--default-domain",
        "example.org",
        "--fail-delay",
        "0",
    ]);
    let before = tree(dir.path());

    // 244 octets + "@example.org" is 256: over the limit once the default domain is added,
    // while "USER " + name + CRLF still fits in a 255-octet command line.
    let long = format!("{mark}{}", "x".repeat(244 - mark.len()));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (format!("../../../{mark}").into_bytes(), BAD_CHARACTER),
        (
            format!("../../../../../../../../tmp/{mark}").into_bytes(),
            BAD_CHARACTER,
        ),
        (format!("{mark}/../../x").into_bytes(), BAD_CHARACTER),
        (format!("x@../../{mark}").into_bytes(), BAD_CHARACTER),
        (format!("..%2f..%2f{mark}").into_bytes(), BAD_CHARACTER),
        (format!("%2e%2e%2f{mark}").into_bytes(), BAD_CHARACTER),
        (format!("{mark}%00").into_bytes(), BAD_CHARACTER),
        (format!("..\\..\\{mark}").into_bytes(), BAD_CHARACTER),
        (format!("{mark}:x").into_bytes(), BAD_CHARACTER),
        (format!("{mark}\x01").into_bytes(), BAD_CHARACTER),
        (format!("{mark}\u{85}").into_bytes(), BAD_CHARACTER),
        (b"..".to_vec(), BAD_DOT),
        (format!("..@{mark}").into_bytes(), BAD_DOT),
        (format!("{mark}@..").into_bytes(), BAD_DOT),
        (format!("{mark}..x").into_bytes(), BAD_DOT),
        (format!(".{mark}").into_bytes(), BAD_DOT),
        (format!("{mark}@.example.org").into_bytes(), BAD_DOT),
        (format!("{mark}@example.org@..").into_bytes(), BAD_DOMAIN),
        (format!("@{mark}").into_bytes(), BAD_DOMAIN),
        (format!("{mark}@").into_bytes(), BAD_DOMAIN),
        (long.clone().into_bytes(), TOO_LONG),
        (
            format!("{long}xxxxxxxxxxxxx").into_bytes(),
            "-ERR Line too long",
        ),
        (
            format!("{mark}\0/../x").into_bytes(),
            "-ERR NUL byte in command",
        ),
        (b"\0".to_vec(), "-ERR NUL byte in command"),
        (
            format!("{mark}\x00").into_bytes(),
            "-ERR NUL byte in command",
        ),
        (
            b"bob@\xc0\xae\xc0\xae".to_vec(),
            "-ERR User name is not valid UTF-8",
        ),
    ];
    // A few names per connection, well under the bad-command limit.
    for chunk in cases.chunks(4) {
        let (mut c, greeting) = Pop::connect(server.addr);
        assert!(greeting.starts_with("+OK"));
        for (name, want) in chunk {
            let mut line = b"USER ".to_vec();
            line.extend_from_slice(name);
            line.extend_from_slice(b"\r\n");
            c.send(&line);
            assert_eq!(c.line(), *want, "USER {:?}", String::from_utf8_lossy(name));
            // The refused name is forgotten: PASS has no user to go with.
            assert_eq!(c.cmd("PASS pw"), "-ERR Send USER first");
        }
        assert_eq!(c.cmd("QUIT"), "+OK Bye");
    }
    assert_eq!(
        tree(dir.path()),
        before,
        "a refused name changed the file system"
    );

    // Names that pass the check but name no account: refused at PASS, nothing created.
    let (mut c, _) = Pop::connect(server.addr);
    for name in [
        format!("{mark}\u{2215}x"),        // DIVISION SLASH, not '/'
        format!("\u{2025}\u{ff0f}{mark}"), // TWO DOT LEADER, FULLWIDTH SOLIDUS
        format!("{mark}@other.org"),
    ] {
        assert_eq!(c.cmd(&format!("USER {name}")), "+OK Send your password");
        assert_eq!(c.cmd("PASS pw"), "-ERR [AUTH] Authentication failed");
    }
    drop(c);
    assert_eq!(
        tree(dir.path()),
        before,
        "an unknown user changed the file system"
    );

    // The real users land where the template says, and only there.
    for user in ["BOB", &mark.to_uppercase()] {
        let mut c = Pop::login(server.addr, user, "pw");
        assert_eq!(c.cmd("QUIT"), "+OK Bye");
    }
    let created: BTreeSet<PathBuf> = tree(dir.path()).difference(&before).cloned().collect();
    let mail = Path::new("deep/er/mail/example.org");
    let mut want = BTreeSet::from([mail.to_path_buf()]);
    for user in ["bob", &mark] {
        want.insert(mail.join(user));
        for f in ["new", "cur", "tmp", "pop3d.lock"] {
            want.insert(mail.join(user).join(f));
        }
    }
    assert_eq!(created, want);
    // And the marker is nowhere outside the test's directory.
    for outside in [
        dir.path().parent().expect("parent").to_path_buf(),
        PathBuf::from("/"),
        PathBuf::from("/tmp"),
    ] {
        for e in fs::read_dir(&outside).expect("read_dir") {
            let name = e.expect("entry").file_name();
            assert!(
                !name.to_string_lossy().contains(&mark),
                "{} appeared in {}",
                name.to_string_lossy(),
                outside.display()
            );
        }
    }
    drop(server);
}

/// True for the commands whose +OK answer has a body (RFC 1939, 2449, 5034): CAPA, a bare
/// AUTH, LIST or UIDL, RETR and TOP. Only a +OK is followed by one, so a line the server
/// refuses costs nothing here.
fn has_multi_line_answer(line: &[u8]) -> bool {
    let words: Vec<&[u8]> = line
        .split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .collect();
    let Some(keyword) = words.first() else {
        return false;
    };
    let keyword = keyword.to_ascii_uppercase();
    match keyword.as_slice() {
        b"CAPA" | b"RETR" | b"TOP" => true,
        b"AUTH" | b"LIST" | b"UIDL" => words.len() == 1,
        _ => false,
    }
}

/// True for QUIT (trailing spaces are allowed, as after any command).
fn is_quit(line: &[u8]) -> bool {
    let end = line.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    line[..end].eq_ignore_ascii_case(b"QUIT")
}

/// Reads the reply to a line the client sent: the status line, and the body when the command
/// was one with a multi-line answer and the status is +OK. Returns every line.
fn reply_to(c: &mut Pop<TcpStream>, line: &[u8]) -> Vec<String> {
    let status = c.line();
    assert!(
        status.starts_with("+OK") || status.starts_with("-ERR"),
        "not a status line: {status:?}"
    );
    let multi = has_multi_line_answer(line);
    let mut lines = vec![status.clone()];
    if multi && status.starts_with("+OK") {
        let body = String::from_utf8(c.body()).expect("utf-8 body");
        lines.extend(body.lines().map(str::to_owned));
    }
    lines
}

#[test]
fn replies_never_echo_what_the_client_sent() {
    let store = MemoryStore::new();
    store.deliver("bob", b"Subject: hello\n\nbody\n");
    let server = LibServer::start(store, Users::of(&[("bob", "pw")]), 4);
    // Bytes that could start a forged reply line or hide one in a terminal.
    let payloads: &[&[u8]] = &[
        b"+OK forged",
        b"-ERR forged",
        b"\r+OK forged",
        b"\r\n+OK forged",
        b"\r\r\n-ERR forged",
        b"\x0b+OK forged",
        b"\x0c+OK forged",
        b"\x1b[2K\r+OK forged",
        b"\xc2\x85+OK forged",
        b"\xe2\x80\xa8+OK forged",
        b"\xff\xfe+OK forged",
        b".\r\n+OK forged",
        b"1\r+OK forged",
        b"1 \r+OK forged",
    ];
    let prefixes: &[&[u8]] = &[
        b"", b"USER ", b"PASS ", b"LIST ", b"RETR ", b"DELE ", b"TOP 1 ", b"UIDL ", b"STAT ",
        b"NOOP ", b"QUIT ", b"CAPA ", b"XTND ", b"AUTH ", b"STLS ",
    ];
    let mut checked = 0;
    for logged_in in [false, true] {
        for prefix in prefixes {
            for payload in payloads {
                let mut c = match logged_in {
                    true => Pop::login(server.addr, "bob", "pw"),
                    false => Pop::connect(server.addr).0,
                };
                let bytes = [*prefix, *payload, b"\r\n"].concat();
                c.send(&bytes);
                // One reply per line sent (a payload may contain a line end of its own).
                let mut got = Vec::new();
                let mut quit = false;
                for line in bytes.split_inclusive(|&b| b == b'\n') {
                    let line = line.strip_suffix(b"\n").unwrap_or(line);
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    got.extend(reply_to(&mut c, line));
                    // "QUIT \r\n+OK forged": the session ends at the QUIT.
                    if is_quit(line) {
                        quit = true;
                        break;
                    }
                }
                let shown = String::from_utf8_lossy(&bytes);
                for reply in &got {
                    assert!(
                        !reply.contains("forged"),
                        "{shown:?} (logged in: {logged_in}) was echoed: {reply:?}"
                    );
                    assert!(
                        reply.chars().all(|ch| !ch.is_control()),
                        "{shown:?}: control character in {reply:?}"
                    );
                }
                if !quit {
                    assert_eq!(c.cmd("QUIT").split(' ').next(), Some("+OK"));
                }
                // Wait for the end of the session, so the mailbox is free for the next one.
                assert!(c.closed());
                checked += 1;
            }
        }
    }
    note(&format!(
        "echo check: {checked} hostile lines, none echoed in a reply"
    ));
}

/// A `{SHA512-CRYPT}` hash of "secret" with the default 5,000 rounds (`openssl passwd -6`), the
/// cost of the dummy hash an unknown user is checked against.
const HASH_DEFAULT: &str = "$6$pop3dTiming$oiUGICWsNNSm/LfdLjTWNiVGi.SDyXz0EUnZn44V6z5Nz.jTJL9kiTOYsRl.TJTzkgNmgpm0RI6mbAInO3tcd1";
/// The same password with 1,000,000 rounds: a check costs more than the failure delay.
/// (`openssl passwd -6 -salt 'rounds=1000000$pop3dTiming' secret`)
const HASH_COSTLY: &str = "$6$rounds=1000000$pop3dTiming$sVNbcyGvHXofRseIcoiXtoK4H/SS/AGD39ajlz3u4qZhU0UOZl7PsNp.7skSsvapr8oNAh/pjADE9NOLKRkOG1";

/// Failure delay of the timing tests.
const FAIL_DELAY: &str = "0.2";
/// Samples per kind of failed login.
const SAMPLES: usize = 10;
/// Largest difference allowed between the medians: generous for a loaded 2-core machine,
/// and far below the 200 ms failure delay that hides the hash.
const MEDIAN_BOUND: Duration = Duration::from_millis(50);

/// Time from sending PASS to its reply, for `user` with a wrong password, on a fresh
/// connection.
fn failed_login_time(addr: std::net::SocketAddr, user: &str) -> Duration {
    let (mut c, _) = Pop::connect(addr);
    assert_eq!(c.cmd(&format!("USER {user}")), "+OK Send your password");
    let t = Instant::now();
    let r = c.cmd("PASS wrong");
    let took = t.elapsed();
    assert_eq!(r, "-ERR [AUTH] Authentication failed");
    assert_eq!(c.cmd("QUIT"), "+OK Bye");
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2
}

/// Medians of failed logins for an unknown user and for a wrong password, samples interleaved
/// so that a change in machine load hits both alike.
fn login_timing(hash: &str) -> (Duration, Duration, Duration) {
    let dir = TempDir::new("timing");
    let passwd = dir.path().join("passwd");
    fs::write(
        &passwd,
        format!("bob:{{SHA512-CRYPT}}{hash}::::{}::\n", dir.path().display()),
    )
    .expect("passwd");
    // The failure penalty would soon dominate these timings from 127.0.0.1; it is not what
    // they measure.
    let server = BinServer::start(&[
        "--passwd",
        passwd.to_str().expect("utf-8"),
        "--fail-delay",
        FAIL_DELAY,
        "--exempt-loopback",
    ]);
    // Warm up: the first login loads libcrypt and reads the file cold.
    failed_login_time(server.addr, "bob");
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        unknown.push(failed_login_time(server.addr, "nobody"));
        wrong.push(failed_login_time(server.addr, "bob"));
    }
    let t = Instant::now();
    let mut c = Pop::login(server.addr, "bob", "secret");
    let ok = t.elapsed();
    assert_eq!(c.cmd("QUIT"), "+OK Bye");
    let (unknown, wrong) = (median(unknown), median(wrong));
    // A penalty (2 to 15 s) in these would hide what they measure.
    let most = Duration::from_secs(5);
    assert!(unknown < most && wrong < most, "{unknown:?} {wrong:?}");
    (unknown, wrong, ok)
}

#[test]
fn unknown_user_and_wrong_password_take_the_same_time() {
    let (unknown, wrong, ok) = login_timing(HASH_DEFAULT);
    let diff = unknown.abs_diff(wrong);
    note(&format!(
        "login timing ({{SHA512-CRYPT}} 5000 rounds, --fail-delay {FAIL_DELAY}, {SAMPLES} each): \
         median unknown user {unknown:?}, wrong password {wrong:?}, difference {diff:?} \
         (bound {MEDIAN_BOUND:?}); a successful login took {ok:?}"
    ));
    let delay = Duration::from_millis(200);
    assert!(
        unknown >= delay && wrong >= delay,
        "failure delay not honoured"
    );
    assert!(diff < MEDIAN_BOUND, "medians differ by {diff:?}");
}

#[test]
fn timing_hides_users_whose_hash_costs_more_than_the_failure_delay() {
    // Failures are padded to the slowest check seen lately; the warm-up login in
    // login_timing is the first sight of the costly hash.
    let (unknown, wrong, ok) = login_timing(HASH_COSTLY);
    let diff = unknown.abs_diff(wrong);
    note(&format!(
        "login timing ({{SHA512-CRYPT}} 1,000,000 rounds, --fail-delay {FAIL_DELAY}): median \
         unknown user {unknown:?}, wrong password {wrong:?}, difference {diff:?}; a successful \
         login took {ok:?}"
    ));
    assert!(diff < MEDIAN_BOUND, "medians differ by {diff:?}");
}
