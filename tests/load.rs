//! Load against the pop3d binary: a burst of 2,000 connections on a pool of 32, and a slowloris
//! group of 200 connections. Every read and connect here is bounded in time, and each figure
//! (outcomes, peak RSS and threads, how long the legitimate session waited) is printed.

mod support;

use std::fs;
use std::io::{self, BufRead};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::pop::{tcp_within, Pop};
use support::temp_dir::TempDir;
use support::{note, BinServer};

/// Connections in the burst.
const BURST: usize = 2_000;
/// Client threads of the burst; each opens its share of connections at once, then reads them.
const BURST_THREADS: usize = 100;
/// The pool the burst runs against.
const BURST_POOL: &str = "32";
/// The largest resident memory the server may reach during the burst.
const RSS_LIMIT_KIB: u64 = 64 * 1024;
/// Slowloris connections, and the pool that admits them all with room to spare.
const SLOWLORIS: usize = 200;
const SLOWLORIS_POOL: &str = "250";
/// Bound on every connect and read.
const IO_LIMIT: Duration = Duration::from_secs(10);

const GREETING: &str = "+OK POP3 server ready";
const BUSY: &str = "-ERR [SYS/TEMP] Server busy, try again later";

/// The two tests each load the machine; they run one after the other.
static SERIAL: Mutex<()> = Mutex::new(());

/// Raises this process's soft limit on open files to at least `need` (children inherit it).
fn raise_fd_limit(need: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid out-parameter.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    if lim.rlim_cur < need {
        lim.rlim_cur = need.min(lim.rlim_max);
        // SAFETY: a valid, initialised rlimit.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
    lim.rlim_cur
}

/// A Maildir for bob with a few messages, a passwd file, and the server arguments for them.
fn setup(dir: &Path) -> (String, String) {
    let maildir = dir.join("mail/bob");
    for sub in ["new", "cur", "tmp"] {
        fs::create_dir_all(maildir.join(sub)).expect("mkdir");
    }
    for i in 1..=3 {
        let body = format!("Subject: {i}\n\n{}", "load test line\n".repeat(50));
        fs::write(maildir.join(format!("new/100{i}.load")), body).expect("write");
    }
    let passwd = dir.join("passwd");
    fs::write(&passwd, "bob:{PLAIN}pw\n").expect("passwd");
    (
        passwd.display().to_string(),
        format!("{}/mail/%n", dir.display()),
    )
}

fn start(dir: &Path, pool: &str) -> BinServer {
    let (passwd, template) = setup(dir);
    BinServer::start(&[
        "--passwd",
        &passwd,
        "--maildir",
        &template,
        "--max-sessions",
        pool,
        "--fail-delay",
        "0",
        // Every client here is 127.0.0.1: the per-address limit is not what is tested.
        "--exempt-loopback",
    ])
}

/// A connection with every connect and read bounded by [`IO_LIMIT`]. Under load, what went
/// wrong is counted, not panicked on: the client's `try_` methods give failures as values.
fn open(addr: SocketAddr) -> io::Result<Pop<TcpStream>> {
    tcp_within(addr, IO_LIMIT).map(Pop::over)
}

/// A failure of a load test's session, as a value.
fn failure(what: String) -> io::Error {
    io::Error::other(what)
}

/// A whole session as a real client runs it. Connects until it is not told the server is busy
/// (or `patience` runs out) and returns how many attempts that took.
fn legitimate_session(addr: SocketAddr, patience: Duration) -> io::Result<usize> {
    let started = Instant::now();
    let mut attempts = 0;
    let mut c = loop {
        attempts += 1;
        let mut c = open(addr)?;
        match c.try_line()?.as_str() {
            GREETING => break c,
            BUSY if started.elapsed() < patience => {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return Err(failure(format!("after {attempts} attempts: {other}"))),
        }
    };
    let expect = |reply: String, want: &str| match reply.starts_with(want) {
        true => Ok(()),
        false => Err(failure(format!("wanted {want}, got {reply}"))),
    };
    expect(c.try_cmd("USER bob")?, "+OK")?;
    expect(c.try_cmd("PASS pw")?, "+OK Logged in, 3 messages")?;
    expect(c.try_cmd("STAT")?, "+OK 3 ")?;
    expect(c.try_cmd("RETR 2")?, "+OK")?;
    let lines = c.try_body()?.iter().filter(|&&b| b == b'\n').count();
    if lines != 52 {
        return Err(failure(format!("RETR 2 sent {lines} lines, not 52")));
    }
    expect(c.try_cmd("QUIT")?, "+OK Bye")?;
    Ok(attempts)
}

/// VmRSS and Threads of process `pid`, in KiB and threads.
fn rss_and_threads(pid: u32) -> Option<(u64, u64)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("Threads:")?))
}

#[derive(Default)]
struct Outcomes {
    greeted: AtomicUsize,
    busy: AtomicUsize,
    /// Greeted, then cut before login to make room for a newer connection.
    evicted: AtomicUsize,
    other: Mutex<Vec<String>>,
}

/// One burst thread: opens `n` connections at once, then reads each one's first line; greeted
/// ones say QUIT.
fn burst_thread(addr: SocketAddr, n: usize, out: &Outcomes) {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        match open(addr) {
            Ok(c) => conns.push(c),
            Err(e) => out.other.lock().unwrap().push(format!("connect: {e}")),
        }
    }
    for mut c in conns {
        let result = c.try_line().and_then(|first| match first.as_str() {
            GREETING => match c.try_cmd("QUIT")?.as_str() {
                "+OK Bye" => Ok(&out.greeted),
                // Cut before its QUIT was read: the busy line, then the end (a reset, when the
                // QUIT reached a socket already closed).
                BUSY => match c.try_line() {
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
                        ) =>
                    {
                        Ok(&out.evicted)
                    }
                    other => Err(failure(format!("after the eviction: {other:?}"))),
                },
                other => Err(failure(format!("QUIT: {other}"))),
            },
            BUSY => match c.try_line() {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(&out.busy),
                other => Err(failure(format!("after the busy reply: {other:?}"))),
            },
            other => Err(failure(format!("first line: {other}"))),
        });
        match result {
            Ok(counter) => counter.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                out.other.lock().unwrap().push(e.to_string());
                0
            }
        };
    }
}

#[test]
fn burst_of_2000_connections_on_a_pool_of_32() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fds = raise_fd_limit(BURST as u64 + 512);
    // At most every burst connection is open at once in this process.
    assert!(
        fds >= BURST as u64 + 100,
        "open-file limit {fds} is too low for the burst (ulimit -n)"
    );
    let dir = TempDir::new("burst");
    let server = start(dir.path(), BURST_POOL);
    let addr = server.addr;
    let pid = server.child.id();
    // One session first, so that every worker is up when the idle figures are taken.
    legitimate_session(addr, Duration::from_secs(5)).expect("session before the burst");
    let (rss_idle, threads_idle) = rss_and_threads(pid).expect("server status");

    let outcomes = Outcomes::default();
    let done = AtomicBool::new(false);
    let started = Instant::now();
    let (peak, legit) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut peak = (0, 0);
            while !done.load(Ordering::Relaxed) {
                if let Some((rss, threads)) = rss_and_threads(pid) {
                    peak = (peak.0.max(rss), peak.1.max(threads));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        });
        let clients: Vec<_> = (0..BURST_THREADS)
            .map(|_| s.spawn(|| burst_thread(addr, BURST / BURST_THREADS, &outcomes)))
            .collect();
        // A real user logs in while the burst is on.
        let legit = s.spawn(|| {
            while outcomes.greeted.load(Ordering::Relaxed)
                + outcomes.busy.load(Ordering::Relaxed)
                + outcomes.evicted.load(Ordering::Relaxed)
                < BURST / 10
                && started.elapsed() < IO_LIMIT
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            let t = Instant::now();
            let result = legitimate_session(addr, Duration::from_secs(30));
            let during = outcomes.greeted.load(Ordering::Relaxed)
                + outcomes.busy.load(Ordering::Relaxed)
                + outcomes.evicted.load(Ordering::Relaxed)
                < BURST;
            (result, t.elapsed(), during)
        });
        for c in clients {
            c.join().expect("burst thread");
        }
        done.store(true, Ordering::Relaxed);
        (
            sampler.join().expect("sampler"),
            legit.join().expect("legit"),
        )
    });
    let took = started.elapsed();
    let greeted = outcomes.greeted.load(Ordering::Relaxed);
    let busy = outcomes.busy.load(Ordering::Relaxed);
    let evicted = outcomes.evicted.load(Ordering::Relaxed);
    let other = outcomes.other.into_inner().unwrap();
    let (legit_result, legit_time, legit_during) = legit;
    note(&format!(
        "burst: {BURST} connections on a pool of {BURST_POOL} in {took:?}: {greeted} greeted, \
         {evicted} greeted then evicted, {busy} busy, {} other; server RSS {rss_idle} KiB idle, peak {} KiB during the burst; \
         threads {threads_idle} idle, peak {}; legitimate session {legit_result:?} in \
         {legit_time:?} (ended during the burst: {legit_during})",
        other.len(),
        peak.0,
        peak.1
    ));
    assert!(
        other.is_empty(),
        "{} connections got neither a greeting nor the busy reply, e.g. {:?}",
        other.len(),
        &other[..other.len().min(5)]
    );
    assert_eq!(greeted + evicted + busy, BURST);
    assert!(
        greeted > 0 && evicted + busy > 0,
        "the pool was never full or never free"
    );
    legit_result.expect("a legitimate session during the burst");
    assert!(
        peak.0 > 0 && peak.0 < RSS_LIMIT_KIB,
        "peak RSS {} KiB",
        peak.0
    );
    // Threads: the session threads (a newcomer may briefly run beside the session it
    // displaced), the acceptor, the signal thread and main; never one per client.
    assert!(peak.1 <= 2 * 32 + 8, "peak threads {}", peak.1);

    // Afterwards the server serves as if nothing happened. (A worker whose client has just read
    // "+OK Bye" may not be back in the pool yet, so one busy reply is possible.)
    let attempts = legitimate_session(addr, Duration::from_secs(5)).expect("session after");
    assert!(attempts <= 2, "{attempts} attempts after the burst");
    drop(server);
}

#[test]
fn slowloris_group_does_not_stop_a_legitimate_session() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    raise_fd_limit(SLOWLORIS as u64 + 256);
    let dir = TempDir::new("slowloris");
    let server = start(dir.path(), SLOWLORIS_POOL);
    let addr = server.addr;

    // 200 connections, each admitted, then each sending one byte a second and never a line end.
    let mut slow: Vec<Pop<TcpStream>> = Vec::with_capacity(SLOWLORIS);
    for i in 0..SLOWLORIS {
        let mut c = open(addr).expect("slowloris connect");
        let first = c.line();
        assert_eq!(first, GREETING, "slowloris connection {i}");
        slow.push(c);
    }
    let started = Instant::now();
    let mut legit = None;
    for second in 0..4 {
        for c in &mut slow {
            c.send(b"X");
        }
        if second == 1 {
            let t = Instant::now();
            legit = Some((
                legitimate_session(addr, Duration::from_secs(5)),
                t.elapsed(),
            ));
        }
        // The next byte one second after the last round began.
        let next = Duration::from_secs(second + 1);
        std::thread::sleep(next.saturating_sub(started.elapsed()));
    }
    let (result, took) = legit.expect("ran");
    note(&format!(
        "slowloris: {SLOWLORIS} connections at one byte a second on a pool of {SLOWLORIS_POOL}; \
         a legitimate session took {took:?} ({result:?} attempts)"
    ));
    assert_eq!(result.expect("legitimate session"), 1, "never told busy");
    assert!(
        took < Duration::from_secs(5),
        "legitimate session took {took:?}"
    );
    // The slowloris connections are still open and still waiting for their line: nothing was
    // answered, since no line ended.
    for c in &mut slow {
        c.stream()
            .set_read_timeout(Some(Duration::from_millis(1)))
            .expect("timeout");
        let mut buf = String::new();
        assert!(
            c.read_line(&mut buf).is_err() && buf.is_empty(),
            "slowloris got {buf:?}"
        );
    }
    drop(slow);
    assert_eq!(
        legitimate_session(addr, Duration::from_secs(5)).expect("after"),
        1
    );
    drop(server);
}

#[test]
fn slow_clients_that_reconnect_when_cut_do_not_starve_the_pool() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    raise_fd_limit(2048);
    let dir = TempDir::new("starve");
    let (passwd, template) = setup(dir.path());
    // Loopback gets no exemption here: the attack comes from 100 loopback addresses.
    let server = BinServer::start(&[
        "--passwd",
        &passwd,
        "--maildir",
        &template,
        "--max-sessions",
        "32",
        "--insecure-loopback",
        "--fail-delay",
        "0",
    ]);
    let pid = server.child.id();
    let rss_before = rss_and_threads(pid).expect("server status").0;
    // 500 connections from 100 addresses, each sending two bytes and then nothing, each
    // reconnecting the moment it is cut; a real session once a second, for 8 s.
    let out = Command::new(support::example("starve"))
        .args(["-c", "500", "-n", "100", "-t", "8", "-u", "bob", "-p", "pw"])
        .arg(server.addr.to_string())
        .output()
        .expect("run the starve example");
    let text = String::from_utf8_lossy(&out.stdout);
    let rss_after = rss_and_threads(pid).expect("server status").0;
    note(&format!(
        "pool of 32 under 500 slow clients from 100 addresses: {}; server RSS {rss_before} KiB \
         before, {rss_after} KiB after",
        text.lines().last().unwrap_or("no result")
    ));
    assert!(
        out.status.success(),
        "a real session failed or took over 1 s:\n{text}"
    );
    assert!(text.contains("RESULT probes="), "{text}");
    assert!(
        rss_after < rss_before + 16 * 1024,
        "memory grew from {rss_before} to {rss_after} KiB"
    );
}
