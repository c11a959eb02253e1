//! Hardening, as the man page's OPTIONS, LIMITS and SECURITY sections promise it: the failure
//! penalty, the per-address limit, the login timeout, the line deadline (slowloris), giving up
//! root, and the PROXY protocol.
//!
//! Every test runs the real binary and talks to it over loopback. Loopback clients are trusted
//! by default (no penalty, no per-address limit), so the tests of those pass
//! `--insecure-loopback`. "Another address" is 127.0.0.2: Linux routes all of 127.0.0.0/8 to
//! the loopback interface, so a client socket bound to it reaches a server on 127.0.0.1.
//!
//! The penalty and slowloris tests print what they measured; run them with `--nocapture` to
//! see the figures.

mod support;

use std::fs;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use support::maildir::{run_bounded, write_passwd, Corpus, PASSWORD, USER};
use support::pop::Pop;
use support::temp_dir::TempDir;
use support::BinServer;
use support::TestCert;

/// The loopback address every test server listens on, and the usual client address.
const HOME: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A second client address on the same machine.
const OTHER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// The reply to a client address over `--max-per-ip`.
const TOO_MANY: &str = "-ERR [SYS/TEMP] Too many connections from your address";

/// The reply to a failed login.
const AUTH_FAILED: &str = "-ERR [AUTH] Authentication failed";

/// The options that point pop3d at `corpus`, then `extra` (which sets `--fail-delay` if the
/// test cares: it may be given only once).
fn args(corpus: &Corpus, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--passwd".to_owned(),
        corpus.passwd.display().to_string(),
        "--maildir".to_owned(),
        "%h/Maildir".to_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn start(corpus: &Corpus, extra: &[&str]) -> BinServer {
    let args = args(corpus, extra);
    BinServer::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A TCP connection to `to` from the local address `from` (the port chosen by the kernel), with
/// a 30 s read timeout. std cannot bind a client socket before connecting, so this goes
/// through libc.
fn stream_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let SocketAddr::V4(to) = to else {
        panic!("IPv4 only: {to}")
    };
    let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip.octets()),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: socket(2) has no pointer arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", io::Error::last_os_error());
    // SAFETY: fd is a new socket that nothing else owns; the stream closes it.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let local = sockaddr(from, 0);
    let remote = sockaddr(*to.ip(), to.port());
    // SAFETY: a valid descriptor, and sockaddr_in structures of the length given.
    let rc = unsafe { libc::bind(stream.as_raw_fd(), std::ptr::from_ref(&local).cast(), len) };
    assert_eq!(rc, 0, "bind {from}: {}", io::Error::last_os_error());
    // SAFETY: as above.
    let rc = unsafe { libc::connect(stream.as_raw_fd(), std::ptr::from_ref(&remote).cast(), len) };
    assert_eq!(
        rc,
        0,
        "connect {to} from {from}: {}",
        io::Error::last_os_error()
    );
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

/// Connects from `from` and returns the client and the first line the server sent.
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> (Pop<TcpStream>, String) {
    let mut c = Pop::over(stream_from(from, to));
    let first = c.line();
    (c, first)
}

/// The client's own address, as the server logs it (`peer=...`).
fn local(c: &Pop<TcpStream>) -> SocketAddr {
    c.stream().local_addr().unwrap()
}

/// True if the server closed the connection without sending anything (more): end of input or
/// a reset within 5 s, not a read timeout.
fn closed_silently(c: &mut Pop<TcpStream>) -> bool {
    c.stream()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    match c.read_to_end(&mut rest) {
        Ok(_) => rest.is_empty(),
        Err(e) => e.kind() == ErrorKind::ConnectionReset && rest.is_empty(),
    }
}

/// One login attempt on a new connection from `from`.
struct Attempt {
    /// The reply to PASS.
    reply: String,
    /// How long PASS took to be answered: the penalty is waited before the password is checked.
    took: Duration,
    /// The client's address, to find its log lines.
    peer: SocketAddr,
}

fn attempt(server: &BinServer, from: Ipv4Addr, password: &str) -> Attempt {
    let (mut c, greeting) = connect_from(from, server.addr);
    assert!(greeting.starts_with("+OK"), "{greeting}");
    assert!(c.cmd(&format!("USER {USER}")).starts_with("+OK"));
    let started = Instant::now();
    let reply = c.cmd(&format!("PASS {password}"));
    let took = started.elapsed();
    // Quit and wait for the end of the session, so that it no longer counts for its address.
    assert_eq!(c.cmd("QUIT"), "+OK Bye");
    assert!(c.closed());
    Attempt {
        reply,
        took,
        peer: local(&c),
    }
}

/// The penalty the server logged for the connection from `peer`, in milliseconds (None: no
/// penalty). Waits for the attempt's outcome to be logged first, so "none" is reliable.
fn logged_penalty(server: &BinServer, peer: SocketAddr) -> Option<u64> {
    let outcome = format!("peer={peer} ");
    let deadline = Instant::now() + Duration::from_secs(5);
    let log = loop {
        let log = server.log();
        if log
            .lines()
            .any(|l| l.contains(&outcome) && (l.contains("auth failed:") || l.contains("login:")))
        {
            break log;
        }
        assert!(
            Instant::now() < deadline,
            "no login outcome logged for {peer}:\n{log}"
        );
        thread::sleep(Duration::from_millis(20));
    };
    let prefix = format!("penalty: peer={peer} waits ");
    log.lines().find_map(|l| {
        let rest = &l[l.find(&prefix)? + prefix.len()..];
        rest.strip_suffix(" ms")?.parse().ok()
    })
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

// ---------------------------------------------------------------------------------------------
// The failure penalty

#[test]
fn penalty_escalates_ignores_the_same_wrong_password_and_clears_on_login() {
    let corpus = Corpus::new("penalty");
    // No failure delay, so what is measured is the penalty alone.
    let server = start(&corpus, &["--insecure-loopback", "--fail-delay", "0"]);
    let s = Duration::from_secs;
    // (password, expected reply, expected penalty in ms, least time, most time)
    let steps: [(&str, &str, Option<u64>, Duration, Duration); 6] = [
        ("wrong-1", AUTH_FAILED, None, s(0), s(1)),
        ("wrong-2", AUTH_FAILED, Some(2000), s(2), s(5)),
        ("wrong-2", AUTH_FAILED, Some(4000), s(4), s(9)),
        // The same wrong password again: still 4 s. Doubled it would be 8 s.
        ("wrong-2", AUTH_FAILED, Some(4000), s(4), s(7)),
        (PASSWORD, "+OK", Some(4000), s(4), s(9)),
        // The login cleared the penalty.
        ("wrong-3", AUTH_FAILED, None, s(0), s(1)),
    ];
    let mut timings = Vec::new();
    for (i, (password, reply, penalty, least, most)) in steps.into_iter().enumerate() {
        let a = attempt(&server, HOME, password);
        timings.push(format!("{}: {}", i + 1, secs(a.took)));
        let what = format!("attempt {} ({password:?}), took {:?}", i + 1, a.took);
        assert!(a.reply.starts_with(reply), "{what}: {}", a.reply);
        assert_eq!(
            logged_penalty(&server, a.peer),
            penalty,
            "{what}: penalty logged\n{}",
            server.log()
        );
        assert!(a.took >= least, "{what}: sooner than {least:?}");
        assert!(a.took < most, "{what}: {most:?} or longer");
    }
    println!(
        "penalty timings (wrong-1, wrong-2, wrong-2, wrong-2, right, wrong-3): {}",
        timings.join(", ")
    );
}

#[test]
fn a_penalised_address_does_not_starve_other_addresses() {
    let corpus = Corpus::new("starve");
    let server = start(
        &corpus,
        &[
            "--insecure-loopback",
            "--fail-delay",
            "0",
            "--max-sessions",
            "5",
            "--max-per-ip",
            "3",
        ],
    );
    // Two different wrong passwords: 127.0.0.1 now waits 4 s before each login is checked.
    assert_eq!(attempt(&server, HOME, "wrong-1").reply, AUTH_FAILED);
    assert_eq!(attempt(&server, HOME, "wrong-2").reply, AUTH_FAILED);
    // 127.0.0.1 fills its three sessions, all waiting out the penalty.
    let waiting: Vec<_> = (0..3)
        .map(|i| {
            let addr = server.addr;
            thread::spawn(move || {
                let (mut c, greeting) = connect_from(HOME, addr);
                assert!(greeting.starts_with("+OK"), "{greeting}");
                assert!(c.cmd(&format!("USER {USER}")).starts_with("+OK"));
                let started = Instant::now();
                let reply = c.cmd(&format!("PASS guess-{i}"));
                (reply, started.elapsed())
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.log().matches("waits 4000 ms").count() < 3 {
        assert!(
            Instant::now() < deadline,
            "the three sessions are not waiting:\n{}",
            server.log()
        );
        thread::sleep(Duration::from_millis(20));
    }
    // Meanwhile another address logs in at once, and 127.0.0.1 cannot take more of the pool.
    let started = Instant::now();
    let mut other = {
        let (mut c, greeting) = connect_from(OTHER, server.addr);
        assert!(greeting.starts_with("+OK"), "{greeting}");
        assert!(c.cmd(&format!("USER {USER}")).starts_with("+OK"));
        let reply = c.cmd(&format!("PASS {PASSWORD}"));
        assert!(reply.starts_with("+OK"), "{reply}");
        c
    };
    let other_took = started.elapsed();
    assert!(
        other_took < Duration::from_secs(2),
        "127.0.0.2 waited {other_took:?} while 127.0.0.1 was penalised"
    );
    assert!(other.cmd("STAT").starts_with("+OK"));
    let (mut fourth, reply) = connect_from(HOME, server.addr);
    assert_eq!(reply, TOO_MANY);
    assert!(fourth.closed());
    assert!(
        waiting.iter().all(|t| !t.is_finished()),
        "127.0.0.2 was not served while 127.0.0.1 waited"
    );
    assert_eq!(other.cmd("QUIT"), "+OK Bye");
    let waited: Vec<Duration> = waiting
        .into_iter()
        .map(|t| {
            let (reply, took) = t.join().unwrap();
            assert_eq!(reply, AUTH_FAILED);
            assert!(took >= Duration::from_secs(4), "{took:?}");
            took
        })
        .collect();
    println!(
        "penalised 127.0.0.1 sessions waited {waited:?}; 127.0.0.2 logged in meanwhile in {}",
        secs(other_took)
    );
}

// ---------------------------------------------------------------------------------------------
// Sessions per client address

#[test]
fn max_per_ip_turns_away_the_extra_session_of_one_address() {
    let corpus = Corpus::new("per-ip");
    let server = start(&corpus, &["--insecure-loopback", "--max-per-ip", "2"]);
    let (mut a, ga) = connect_from(HOME, server.addr);
    let (_b, gb) = connect_from(HOME, server.addr);
    assert!(
        ga.starts_with("+OK") && gb.starts_with("+OK"),
        "{ga} / {gb}"
    );
    let (mut c, gc) = connect_from(HOME, server.addr);
    assert_eq!(gc, TOO_MANY);
    assert!(c.closed(), "the refused connection stays open");
    server.log_with(
        &format!("too many sessions: peer={}", local(&c)),
        Duration::from_secs(5),
    );
    // Another address is still served, and logs in.
    let (mut d, gd) = connect_from(OTHER, server.addr);
    assert!(gd.starts_with("+OK"), "{gd}");
    d.cmd(&format!("USER {USER}"));
    assert!(d.cmd(&format!("PASS {PASSWORD}")).starts_with("+OK"));
    // When one of the first two leaves, 127.0.0.1 is served again.
    assert_eq!(a.cmd("QUIT"), "+OK Bye");
    assert!(a.closed());
    let (mut e, ge) = connect_from(HOME, server.addr);
    assert!(ge.starts_with("+OK"), "{ge}");
    assert_eq!(e.cmd("QUIT"), "+OK Bye");
    assert_eq!(d.cmd("QUIT"), "+OK Bye");
}

#[test]
fn loopback_is_subject_to_max_per_ip_unless_exempted() {
    // By default loopback is one more address: behind a TLS terminator on this host, every
    // client would otherwise be exempt.
    let corpus = Corpus::new("per-ip-loopback");
    let server = start(&corpus, &["--max-per-ip", "2"]);
    let _held: Vec<Pop<TcpStream>> = (0..2)
        .map(|_| {
            let (c, greeting) = connect_from(HOME, server.addr);
            assert!(greeting.starts_with("+OK"), "{greeting}");
            c
        })
        .collect();
    let (_, third) = connect_from(HOME, server.addr);
    assert_eq!(
        third,
        "-ERR [SYS/TEMP] Too many connections from your address"
    );
}

#[test]
fn exempt_loopback_is_exempt_from_max_per_ip() {
    let corpus = Corpus::new("per-ip-trusted");
    let server = start(&corpus, &["--max-per-ip", "2", "--exempt-loopback"]);
    let mut clients: Vec<Pop<TcpStream>> = (0..3)
        .map(|_| {
            let (c, greeting) = connect_from(HOME, server.addr);
            assert!(greeting.starts_with("+OK"), "{greeting}");
            c
        })
        .collect();
    let mut last = clients.pop().unwrap();
    last.cmd(&format!("USER {USER}"));
    assert!(last.cmd(&format!("PASS {PASSWORD}")).starts_with("+OK"));
    assert_eq!(last.cmd("QUIT"), "+OK Bye");
    assert!(
        !server.log().contains("too many sessions"),
        "{}",
        server.log()
    );
}

// ---------------------------------------------------------------------------------------------
// The login timeout

const LOGIN_TIMED_OUT: &str = "-ERR [SYS/TEMP] Login timed out, closing";

#[test]
fn login_timeout_closes_a_silent_client() {
    let corpus = Corpus::new("login-silent");
    let server = start(&corpus, &["--login-timeout", "2"]);
    let (mut c, greeting) = connect_from(HOME, server.addr);
    let started = Instant::now();
    assert!(greeting.starts_with("+OK"), "{greeting}");
    let reply = c.line();
    let took = started.elapsed();
    assert_eq!(reply, LOGIN_TIMED_OUT, "after {took:?}");
    assert!(c.closed());
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "closed after {took:?}, want about 2 s"
    );
}

#[test]
fn login_timeout_counts_from_connect_not_from_the_last_command() {
    let corpus = Corpus::new("login-capa");
    let server = start(&corpus, &["--login-timeout", "2"]);
    let (mut c, greeting) = connect_from(HOME, server.addr);
    let started = Instant::now();
    assert!(greeting.starts_with("+OK"), "{greeting}");
    let mut capas = 0;
    let reply = loop {
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "still open after {capas} CAPAs"
        );
        c.send(b"CAPA\r\n");
        let status = c.line();
        if !status.starts_with("+OK") {
            break status;
        }
        c.body();
        capas += 1;
        thread::sleep(Duration::from_secs(1));
    };
    let took = started.elapsed();
    assert_eq!(reply, LOGIN_TIMED_OUT, "after {took:?} and {capas} CAPAs");
    assert!(c.closed());
    assert!(capas >= 2, "only {capas} CAPAs answered");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "closed after {took:?}, want about 2 s"
    );
}

#[test]
fn login_timeout_does_not_apply_after_login() {
    let corpus = Corpus::new("login-idle");
    let server = start(&corpus, &["--login-timeout", "2", "--fail-delay", "0"]);
    let mut c = Pop::login(server.addr, USER, PASSWORD);
    thread::sleep(Duration::from_secs(3));
    assert_eq!(c.cmd("NOOP"), "+OK");
    assert!(c.cmd("STAT").starts_with("+OK"));
    assert_eq!(c.cmd("QUIT"), "+OK Bye");
}

// ---------------------------------------------------------------------------------------------
// Slowloris

/// A slowloris client: after the greeting it sends `USER ` and then `x`, one byte every
/// `every`, never a line end, until the server hangs up (or `limit` passes: a failure).
/// Returns how long the server let it trickle, from its first byte, and what the server sent
/// after the greeting.
fn slowloris(addr: SocketAddr, every: Duration, limit: Duration) -> (Duration, String) {
    let stream = stream_from(HOME, addr);
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut greeting = String::new();
    reader.read_line(&mut greeting).unwrap();
    assert!(greeting.starts_with("+OK"), "{greeting:?}");
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let writer = {
        let stop = stop.clone();
        let mut stream = stream;
        thread::spawn(move || {
            for &byte in b"USER ".iter().chain(std::iter::repeat(&b'x')) {
                if stop.load(Ordering::SeqCst) || stream.write_all(&[byte]).is_err() {
                    return;
                }
                let next = Instant::now() + every;
                while Instant::now() < next && !stop.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(20));
                }
            }
        })
    };
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    let closed = loop {
        match reader.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    let lasted = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let got = String::from_utf8_lossy(&got).into_owned();
    assert!(
        closed,
        "a slowloris client was still connected after {lasted:?} (got {got:?})"
    );
    (lasted, got)
}

/// Starts `n` slowloris clients and waits until the server has logged all their connections.
fn slowloris_group(
    server: &BinServer,
    n: usize,
    every: Duration,
    limit: Duration,
) -> Vec<thread::JoinHandle<(Duration, String)>> {
    let before = server.log().matches("connect: peer=").count();
    let group = (0..n)
        .map(|_| {
            let addr = server.addr;
            thread::spawn(move || slowloris(addr, every, limit))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.log().matches("connect: peer=").count() < before + n {
        assert!(Instant::now() < deadline, "{}", server.log());
        thread::sleep(Duration::from_millis(20));
    }
    group
}

/// Logs in, checks STAT, quits; retries for 5 s while the server is still busy (a worker
/// returns to the pool a moment after its client sees the connection close).
fn legitimate_session(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (mut c, greeting) = connect_from(HOME, addr);
        if greeting.starts_with("+OK") {
            assert!(c.cmd(&format!("USER {USER}")).starts_with("+OK"));
            let reply = c.cmd(&format!("PASS {PASSWORD}"));
            assert!(reply.starts_with("+OK"), "{reply}");
            assert!(c.cmd("STAT").starts_with("+OK"));
            assert_eq!(c.cmd("QUIT"), "+OK Bye");
            return;
        }
        assert!(Instant::now() < deadline, "not served: {greeting}");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn line_deadline_cuts_a_slowloris_group() {
    let corpus = Corpus::new("slowloris");
    // The login timeout is out of the way: what cuts the clients is the 30 s line deadline.
    let server = start(
        &corpus,
        &[
            "--max-sessions",
            "4",
            "--max-per-ip",
            "0",
            "--login-timeout",
            "300",
            "--fail-delay",
            "0",
        ],
    );
    let group = slowloris_group(&server, 4, Duration::from_secs(2), Duration::from_secs(45));
    // They hold the whole pool, but not against a newcomer: the one that waited longest for a
    // line is cut to make room.
    legitimate_session(server.addr);
    let mut lasted = Vec::new();
    let mut evicted = 0;
    for t in group {
        let (took, got) = t.join().unwrap();
        println!("slowloris client (a byte every 2 s) cut after {took:.2?}: {got:?}");
        if got.contains("Server busy") {
            evicted += 1;
            assert!(took < Duration::from_secs(20), "evicted after {took:?}");
            continue;
        }
        assert!(
            took >= Duration::from_secs(28) && took < Duration::from_secs(35),
            "cut after {took:?}, want the 30 s line deadline"
        );
        assert!(
            got.is_empty() || (got.starts_with("-ERR") && got.ends_with("\r\n")),
            "{got:?}"
        );
        lasted.push(took);
    }
    assert_eq!(evicted, 1, "one slowloris made room for the newcomer");
    println!("slowloris durations (line deadline 30 s): {lasted:.2?}");
}

#[test]
fn login_timeout_cuts_a_slowloris_group_before_login() {
    let corpus = Corpus::new("slowloris-login");
    let server = start(
        &corpus,
        &[
            "--max-sessions",
            "5",
            "--max-per-ip",
            "0",
            "--login-timeout",
            "3",
            "--fail-delay",
            "0",
        ],
    );
    let group = slowloris_group(&server, 4, Duration::from_secs(2), Duration::from_secs(45));
    // The fifth worker serves a real client while the group trickles.
    legitimate_session(server.addr);
    assert!(
        group.iter().all(|t| !t.is_finished()),
        "the legitimate session was served only after the slow ones were cut"
    );
    let mut lasted = Vec::new();
    for t in group {
        let (took, got) = t.join().unwrap();
        assert!(
            took >= Duration::from_millis(2500) && took < Duration::from_secs(6),
            "cut after {took:?}, want the 3 s login timeout"
        );
        assert_eq!(got, format!("{LOGIN_TIMED_OUT}\r\n"));
        lasted.push(took);
    }
    println!("slowloris durations (login timeout 3 s): {lasted:.2?}");
}

// ---------------------------------------------------------------------------------------------
// Privileges

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The account the privilege tests become.
struct Nobody {
    uid: u32,
    gid: u32,
    /// Its groups, primary and supplementary, as initgroups(3) sets them.
    groups: Vec<u32>,
}

/// The ids of the account `nobody`, if it exists.
fn nobody() -> Option<Nobody> {
    let id = |flag: &str| -> Option<Vec<u32>> {
        let out = Command::new("id").args([flag, "nobody"]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8(out.stdout).ok()?;
        text.split_whitespace().map(|n| n.parse().ok()).collect()
    };
    let mut groups = id("-G")?;
    groups.sort_unstable();
    groups.dedup();
    Some(Nobody {
        uid: *id("-u")?.first()?,
        gid: *id("-g")?.first()?,
        groups,
    })
}

/// Root, and the account `nobody`, or the reason the test cannot run.
fn root_and_nobody() -> Result<Nobody, &'static str> {
    if !is_root() {
        return Err("not running as root");
    }
    nobody().ok_or("no account named nobody")
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

/// A `Uid:` or `Gid:` line of a /proc status file: real, effective, saved and filesystem ids.
fn ids(status: &str, field: &str) -> Vec<u32> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in\n{status}"));
    line.split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}

/// Checks every thread of process `pid` runs as `who`: real, effective, saved and filesystem
/// uid and gid, and the supplementary groups.
fn assert_runs_as(pid: u32, who: &Nobody) {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    let mut threads = 0;
    for task in tasks {
        let status = fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        assert_eq!(ids(&status, "Uid:"), [who.uid; 4], "{status}");
        assert_eq!(ids(&status, "Gid:"), [who.gid; 4], "{status}");
        let mut groups = ids(&status, "Groups:");
        groups.sort_unstable();
        assert_eq!(groups, who.groups, "supplementary groups");
        threads += 1;
    }
    assert!(threads > 1, "only {threads} thread");
}

/// Logs in, checks every message of `corpus` byte for byte, deletes the first, and quits:
/// reading and writing the Maildir both work.
fn read_and_delete_one(addr: SocketAddr, corpus: &Corpus) {
    let mut c = Pop::login(addr, USER, PASSWORD);
    let (status, uidls) = c.multi("UIDL");
    assert!(status.starts_with("+OK"), "{status}");
    let by_uidl = corpus.by_uidl();
    for line in &uidls {
        let (n, uidl) = line.split_once(' ').unwrap();
        assert!(c.cmd(&format!("RETR {n}")).starts_with("+OK"));
        assert!(c.body() == by_uidl[uidl].wire(), "message {n} differs");
    }
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"), "UPDATE failed");
    let (_, first) = uidls[0].split_once(' ').unwrap();
    let gone = &by_uidl[first].path;
    assert!(
        !corpus.maildir.join(gone).exists(),
        "{gone} was not removed"
    );
}

#[test]
fn user_nobody_gives_up_every_root_id_and_still_serves() {
    let nobody = match root_and_nobody() {
        Ok(nobody) => nobody,
        Err(why) => return println!("skipped: {why}"),
    };
    let corpus = Corpus::new("privileges");
    chown_tree(corpus.dir.path(), nobody.uid, nobody.gid);
    let server = start(&corpus, &["--user", "nobody", "--fail-delay", "0"]);
    server.log_with("running as nobody", Duration::from_secs(5));
    read_and_delete_one(server.addr, &corpus);
    // Every thread, the session threads included, runs as nobody.
    assert_runs_as(server.child.id(), &nobody);
}

#[test]
fn chroot_with_user_reads_paths_inside_the_chroot() {
    let nobody = match root_and_nobody() {
        Ok(nobody) => nobody,
        Err(why) => return println!("skipped: {why}"),
    };
    let corpus = Corpus::new("chroot");
    // Inside the chroot (the corpus directory), alice's home is /home/alice.
    let home = corpus.home.strip_prefix(corpus.dir.path()).unwrap();
    let inside = Path::new("/").join(home);
    write_passwd(
        &corpus.dir.path().join("chroot-passwd"),
        &[(USER, PASSWORD, &inside)],
    );
    chown_tree(corpus.dir.path(), nobody.uid, nobody.gid);
    let root = corpus.dir.path().display().to_string();
    let args = [
        "--passwd",
        "/chroot-passwd",
        "--user",
        "nobody",
        "--chroot",
        &root,
        "--fail-delay",
        "0",
    ];
    let server = BinServer::start(&args);
    server.log_with("running as nobody", Duration::from_secs(5));
    let cwd = fs::read_link(format!("/proc/{}/root", server.child.id())).unwrap();
    assert_eq!(cwd, corpus.dir.path(), "not chrooted");
    read_and_delete_one(server.addr, &corpus);
    // Session threads start as connections come: check them once one has served.
    assert_runs_as(server.child.id(), &nobody);
}

/// Runs pop3d with exactly `args` (no --allow-root) and returns its exit code and stderr; it
/// must exit within 10 s.
fn pop3d_exits(args: &[&str]) -> (Option<i32>, String) {
    let out = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_pop3d")).args(args),
        Duration::from_secs(10),
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn root_is_refused_without_user_or_allow_root() {
    if !is_root() {
        return println!("skipped: not running as root");
    }
    let corpus = Corpus::new("root-refused");
    let passwd = corpus.passwd.display().to_string();
    let (code, stderr) = pop3d_exits(&["--listen", "127.0.0.1:0", "--passwd", &passwd]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("refusing to serve as root"), "{stderr}");
}

#[test]
fn user_root_is_refused() {
    let corpus = Corpus::new("user-root");
    let passwd = corpus.passwd.display().to_string();
    for root in ["root", "0"] {
        let (code, stderr) = pop3d_exits(&[
            "--listen",
            "127.0.0.1:0",
            "--passwd",
            &passwd,
            "--user",
            root,
        ]);
        assert_eq!(code, Some(1), "--user {root}: {stderr}");
        assert!(stderr.contains("is root"), "--user {root}: {stderr}");
    }
}

#[test]
fn group_and_chroot_need_user() {
    for option in [["--group", "nogroup"], ["--chroot", "/tmp"]] {
        let (code, stderr) = pop3d_exits(&["--listen", "127.0.0.1:0", option[0], option[1]]);
        assert_eq!(code, Some(2), "{option:?}: {stderr}");
        assert!(
            stderr.contains("--group and --chroot go with --user"),
            "{option:?}: {stderr}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The PROXY protocol

/// A server whose one listener expects PROXY headers from `trusted`.
fn start_proxied(corpus: &Corpus, trusted: &str, extra: &[&str]) -> BinServer {
    let mut args = args(
        corpus,
        &[
            "--proxy-listener",
            "127.0.0.1:0",
            "--proxy-trusted",
            trusted,
            "--fail-delay",
            "0",
        ],
    );
    args.extend(extra.iter().map(|s| s.to_string()));
    BinServer::start_announcing(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "listening for PROXY on ",
    )
}

/// A PROXY v1 header for a TCP4 client at `source`.
fn v1(source: SocketAddrV4) -> Vec<u8> {
    format!(
        "PROXY TCP4 {} 127.0.0.1 {} 110\r\n",
        source.ip(),
        source.port()
    )
    .into_bytes()
}

/// A PROXY v2 header (binary; PROXY command, TCP over IPv4) for a client at `source`.
fn v2(source: SocketAddrV4) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x21); // version 2, command PROXY
    h.push(0x11); // AF_INET, STREAM
    h.extend_from_slice(&12u16.to_be_bytes());
    h.extend_from_slice(&source.ip().octets());
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&source.port().to_be_bytes());
    h.extend_from_slice(&110u16.to_be_bytes());
    h
}

/// Connects, sends `header`, and returns the client (whose own address the server logs as
/// `via=`) without reading anything.
fn proxied(server: &BinServer, header: &[u8]) -> Pop<TcpStream> {
    let mut c = Pop::over(stream_from(HOME, server.addr));
    c.send(header);
    c
}

fn real_client_is_logged(header: fn(SocketAddrV4) -> Vec<u8>, tag: &str) {
    let corpus = Corpus::new(tag);
    let server = start_proxied(&corpus, "127.0.0.1", &[]);
    let real: SocketAddrV4 = "203.0.113.7:40000".parse().unwrap();
    let mut c = proxied(&server, &header(real));
    let greeting = c.line();
    assert!(greeting.starts_with("+OK"), "{greeting}");
    assert!(c.cmd(&format!("USER {USER}")).starts_with("+OK"));
    assert!(c.cmd(&format!("PASS {PASSWORD}")).starts_with("+OK"));
    assert_eq!(c.cmd("QUIT"), "+OK Bye");
    let via = local(&c);
    server.log_with(
        &format!("connect: peer={real} via={via}\n"),
        Duration::from_secs(5),
    );
    server.log_with(
        &format!("login: user={USER} peer={real} "),
        Duration::from_secs(5),
    );
}

#[test]
fn proxy_v1_header_names_the_real_client() {
    real_client_is_logged(v1, "proxy-v1");
}

#[test]
fn proxy_v2_header_names_the_real_client() {
    real_client_is_logged(v2, "proxy-v2");
}

#[test]
fn proxy_header_from_an_untrusted_peer_is_refused() {
    let corpus = Corpus::new("proxy-untrusted");
    let server = start_proxied(&corpus, "10.0.0.0/8", &[]);
    for header in [v1, v2] {
        let mut c = proxied(&server, &header("203.0.113.7:40000".parse().unwrap()));
        assert!(closed_silently(&mut c), "an untrusted peer got an answer");
        let log = server.log_with(
            &format!("refused: peer={} ", local(&c)),
            Duration::from_secs(5),
        );
        assert!(log.contains("not in --proxy-trusted"), "{log}");
        assert!(!log.contains("203.0.113.7"), "{log}");
    }
}

#[test]
fn malformed_proxy_headers_are_refused_and_the_server_goes_on() {
    let corpus = Corpus::new("proxy-malformed");
    let server = start_proxied(&corpus, "127.0.0.1", &[]);
    let mut bad_v2 = v2("203.0.113.7:40000".parse().unwrap());
    bad_v2[12] = 0x31; // version 3
    let bad: [&[u8]; 5] = [
        b"PROXY TCP4 203.0.113.7 127.0.0.1 40000\r\n",
        b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 110\n",
        b"PROXY TCP6 203.0.113.7 127.0.0.1 40000 110\r\n",
        b"USER alice\r\n",
        &bad_v2,
    ];
    for header in bad {
        let mut c = proxied(&server, header);
        assert!(
            closed_silently(&mut c),
            "{:?} was answered",
            String::from_utf8_lossy(header)
        );
        server.log_with(
            &format!("refused: peer={} ", local(&c)),
            Duration::from_secs(5),
        );
    }
    // A good header still works.
    let mut c = proxied(&server, &v1("203.0.113.9:4000".parse().unwrap()));
    assert!(c.line().starts_with("+OK"));
    assert!(c.cmd(&format!("USER {USER}")).starts_with("+OK"));
    assert!(c.cmd(&format!("PASS {PASSWORD}")).starts_with("+OK"));
    assert_eq!(c.cmd("QUIT"), "+OK Bye");
}

#[test]
fn max_per_ip_counts_the_real_address_behind_a_proxy() {
    let corpus = Corpus::new("proxy-per-ip");
    // No --insecure-loopback: the proxy is on trusted loopback, but the clients it speaks for
    // are not, so the limit applies to them.
    let server = start_proxied(&corpus, "127.0.0.1", &["--max-per-ip", "1"]);
    let first: SocketAddrV4 = "203.0.113.7:40000".parse().unwrap();
    let second: SocketAddrV4 = "203.0.113.8:40000".parse().unwrap();
    let mut a = proxied(&server, &v1(first));
    assert!(a.line().starts_with("+OK"));
    let mut b = proxied(&server, &v2(second));
    assert!(
        b.line().starts_with("+OK"),
        "another real address is refused"
    );
    // The same real address again, on another port and through another header version.
    let mut c = proxied(&server, &v2("203.0.113.7:40001".parse().unwrap()));
    assert_eq!(c.line(), TOO_MANY);
    assert!(c.closed());
    server.log_with(
        "too many sessions: peer=203.0.113.7:40001",
        Duration::from_secs(5),
    );
    assert_eq!(a.cmd("QUIT"), "+OK Bye");
    assert_eq!(b.cmd("QUIT"), "+OK Bye");
}

/// Sends `bytes` one at a time, every 250 ms, until the server closes the connection, and
/// returns how long that took (at most `limit`).
fn drip_until_closed(mut stream: TcpStream, bytes: &[u8], limit: Duration) -> Duration {
    stream
        .set_read_timeout(Some(Duration::from_millis(250)))
        .expect("read timeout");
    let started = Instant::now();
    for &b in bytes.iter().cycle() {
        assert!(started.elapsed() < limit, "still open after {limit:?}");
        if stream.write_all(&[b]).is_err() {
            return started.elapsed();
        }
        let mut buf = [0u8; 512];
        match stream.read(&mut buf) {
            Ok(0) => return started.elapsed(),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {}
            Err(_) => return started.elapsed(),
            // An alert or an error line: the server is ending it; wait for the close.
            Ok(_) => {}
        }
    }
    unreachable!("cycle() never ends")
}

#[test]
fn a_tls_handshake_or_proxy_header_trickled_in_ends_at_the_login_timeout() {
    // Each byte would restart a socket timeout; the login deadline covers the whole handshake
    // and the whole header, which no line deadline does.
    let corpus = Corpus::new("drip");
    let dir = corpus.scratch("cert");
    let cert = support::TestCert::generate(&dir);
    let mut args: Vec<String> = ["--login-timeout", "2", "--listen-tls", "127.0.0.1:0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(cert.args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = start(&corpus, &args);
    // A TLS record header for a ClientHello, then its body a byte at a time.
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    hello.extend(std::iter::repeat_n(0x42, 500));
    let stream = TcpStream::connect(server.tls_addr()).expect("connect to the TLS port");
    let took = drip_until_closed(stream, &hello, Duration::from_secs(15));
    support::note(&format!(
        "a ClientHello a byte every 250 ms: closed after {took:?}"
    ));
    assert!(
        took < Duration::from_secs(4),
        "handshake held {took:?} (login timeout 2 s)"
    );

    let proxied = start_proxied(&corpus, "127.0.0.1", &["--login-timeout", "2"]);
    let stream = TcpStream::connect(proxied.addr).expect("connect to the PROXY listener");
    let took = drip_until_closed(stream, b"PROXY TCP4 192.0.2.1 ", Duration::from_secs(15));
    support::note(&format!(
        "a PROXY header a byte every 250 ms: closed after {took:?}"
    ));
    assert!(
        took < Duration::from_secs(4),
        "header held {took:?} (login timeout 2 s)"
    );
    // Both servers still serve.
    Pop::login(server.addr, USER, PASSWORD);
}

#[test]
fn a_client_that_barely_reads_its_replies_is_cut_at_the_login_timeout() {
    // Pipelined commands fill the socket with replies; a client that reads a byte now and then
    // keeps each write making progress, so only a deadline on the writes ends it.
    let corpus = Corpus::new("slow-reader");
    let server = start(&corpus, &["--login-timeout", "2"]);
    let stream = TcpStream::connect(server.addr).expect("connect");
    // A small receive buffer, so the server's writes block instead of filling megabytes of
    // kernel buffers.
    let size: libc::c_int = 1024;
    // SAFETY: a valid socket and a pointer to an int of the given length.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    let local = stream.local_addr().expect("local address");
    let mut writer = stream.try_clone().expect("clone");
    let flood = thread::spawn(move || {
        let lines = b"CAPA\r\n".repeat(2000);
        for _ in 0..200 {
            if writer.write_all(&lines).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut reader = &stream;
    reader
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let ended = format!("peer={local} end=");
    let took = loop {
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "session still open"
        );
        let _ = reader.read(&mut [0u8; 1]);
        if server.log().contains(&ended) {
            break started.elapsed();
        }
        thread::sleep(Duration::from_millis(100));
    };
    support::note(&format!(
        "a client reading a byte every 100 ms: session ended after {took:?}"
    ));
    assert!(
        took < Duration::from_secs(5),
        "held {took:?} (login timeout 2 s)"
    );
    drop(stream);
    let _ = flood.join();
    Pop::login(server.addr, USER, PASSWORD);
}

#[test]
fn a_proxy_header_that_names_no_client_does_not_make_it_a_local_one() {
    // A LOCAL header (a proxy's health check) from a trusted proxy on this host: the client is
    // unknown, so the plaintext rule applies and STLS is required first.
    let corpus = Corpus::new("proxy-local");
    let certs = TempDir::new("proxy-local-cert");
    let cert = TestCert::generate(certs.path());
    let cert_args = cert.args();
    let extra: Vec<&str> = cert_args.iter().map(String::as_str).collect();
    let server = start_proxied(&corpus, "127.0.0.1", &extra);
    let mut local = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0, 0]); // version 2, LOCAL, no address
    let mut c = proxied(&server, &local);
    assert!(c.line().starts_with("+OK"));
    assert_eq!(
        c.cmd(&format!("USER {USER}")),
        "-ERR [AUTH] Plaintext authentication disallowed on non-secure connection"
    );
}
