//! A POP3 load generator: C concurrent clients (one thread each, blocking std::net) run sessions
//! against a server for K sessions or T seconds, and report sessions per second, session latency,
//! transfer rate and errors. Any error makes the exit status 1.
//!
//! ```text
//! cargo run --release --example loadgen -- -w small -c 32 -t 10 \
//!     -u 'bsmall%02d' -U 1-32 -p benchpass 127.0.0.1:1110
//! ```
//!
//! Workloads:
//! - `small`: login, STAT, LIST, UIDL, QUIT (a mail client checking for mail).
//! - `retr`: login, LIST, RETR of every message, QUIT. Each message's octets, once
//!   dot-stuffing is undone, must match its LIST size. Messages are read in blocks, not line
//!   by line (only a LF followed by a dot is looked at), so that the clients take as little as
//!   they can of the CPUs they share with the server measured.
//! - `keep`: a fetchmail-style "keep" poll: login, STAT, UIDL, RETR of each message whose UIDL
//!   this run has not seen yet for that user, QUIT. The first poll of a user fetches everything,
//!   later ones nothing new, as in the steady state of a client leaving mail on the server.
//! - `idle`: logs C sessions in, prints `READY sessions=N failed=F` once every client has logged
//!   in or failed, holds the sessions for T seconds without a word, then sends QUIT on each.
//!   Latency is that of the login.
//!
//! Servers that lock a mailbox per session (pop3d does) need one mailbox per client: with a
//! user pattern such as `bsmall%02d` and `--users 1-32`, client i logs in as user number
//! 1 + (i mod 32), so no two clients share a mailbox while C ≤ 32.
//!
//! Besides a human summary, one line starting with `RESULT` holds every figure as `key=value`,
//! for scripts.

use openssl::ssl::{
    SslConnector, SslMethod, SslSession, SslSessionCacheMode, SslStream, SslVerifyMode,
};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// TLS handshakes that resumed a session rather than doing a full one.
static RESUMED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The TLS session of this client thread's last connection, offered by the next with
    /// `--resume` (a client that polls keeps its session in the same way).
    static LAST_SESSION: RefCell<Option<SslSession>> = const { RefCell::new(None) };
}

/// The TLS side of the clients.
struct Tls {
    connector: SslConnector,
    insecure: bool,
    /// Offer the last session of the thread (tickets or session IDs).
    resume: bool,
}

/// Errors whose text is printed in full; the rest are only counted.
const SHOWN_ERRORS: usize = 5;

/// Read buffer of each client: large enough that a RETR of a big message is read in few calls.
const READ_BUFFER: usize = 64 * 1024;

/// Pause after a failed session, so that a server that refuses everything is not hammered in a
/// tight loop (and the error count stays meaningful).
const ERROR_PAUSE: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    Small,
    Retr,
    Keep,
    Idle,
}

impl Workload {
    fn parse(name: &str) -> Result<Workload, String> {
        match name {
            "small" => Ok(Workload::Small),
            "retr" => Ok(Workload::Retr),
            "keep" => Ok(Workload::Keep),
            "idle" => Ok(Workload::Idle),
            _ => Err(format!(
                "unknown workload {name:?} (small, retr, keep or idle)"
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Workload::Small => "small",
            Workload::Retr => "retr",
            Workload::Keep => "keep",
            Workload::Idle => "idle",
        }
    }
}

/// When the run ends.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Sessions(u64),
    Time(Duration),
}

/// Login names: one name, or a pattern with a `%d` (or `%02d`, `%3d`...) and a number range.
#[derive(Debug, Clone)]
struct Users {
    /// Text before the number, the number's width and zero padding, text after.
    prefix: String,
    width: usize,
    zero: bool,
    suffix: String,
    first: u32,
    count: u32,
}

impl Users {
    fn parse(pattern: &str, range: Option<&str>) -> Result<Users, String> {
        let Some(at) = pattern.find('%') else {
            if range.is_some() {
                return Err(format!("--users needs a %d in the user name {pattern:?}"));
            }
            return Ok(Users {
                prefix: pattern.to_owned(),
                width: 0,
                zero: false,
                suffix: String::new(),
                first: 0,
                count: 0,
            });
        };
        let spec = &pattern[at + 1..];
        let digits = spec.find('d').ok_or_else(|| {
            format!("user pattern {pattern:?}: expected %d, %Nd or %0Nd after '%'")
        })?;
        let flags = &spec[..digits];
        if !flags.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("user pattern {pattern:?}: bad width {flags:?}"));
        }
        let suffix = &spec[digits + 1..];
        if suffix.contains('%') {
            return Err(format!("user pattern {pattern:?}: only one %d is allowed"));
        }
        let range = range.ok_or("a user pattern with %d needs --users FIRST-LAST")?;
        let (first, last) = range
            .split_once('-')
            .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
            .filter(|(a, b)| a <= b)
            .ok_or_else(|| format!("--users {range:?}: expected FIRST-LAST, e.g. 1-32"))?;
        Ok(Users {
            prefix: pattern[..at].to_owned(),
            width: flags.parse().unwrap_or(0),
            zero: flags.starts_with('0'),
            suffix: suffix.to_owned(),
            first,
            count: last - first + 1,
        })
    }

    /// How many distinct names there are (1 for a plain name).
    fn distinct(&self) -> u32 {
        self.count.max(1)
    }

    /// The name client `i` logs in as.
    fn name(&self, i: usize) -> String {
        if self.count == 0 {
            return self.prefix.clone();
        }
        let n = self.first + (i as u64 % u64::from(self.count)) as u32;
        let number = match self.zero {
            true => format!("{n:0w$}", w = self.width),
            false => format!("{n:w$}", w = self.width),
        };
        format!("{}{number}{}", self.prefix, self.suffix)
    }
}

struct Config {
    addrs: Vec<SocketAddr>,
    workload: Workload,
    concurrency: usize,
    stop: Stop,
    users: Users,
    password: String,
    tls: Option<Tls>,
    sni: String,
    io_timeout: Duration,
}

fn options() -> getopts::Options {
    let mut o = getopts::Options::new();
    o.optopt(
        "w",
        "workload",
        "small, retr, keep or idle (default small)",
        "NAME",
    );
    o.optopt(
        "c",
        "concurrency",
        "clients at once (default 1; idle: sessions to hold)",
        "C",
    );
    o.optopt("n", "sessions", "stop after K sessions in all", "K");
    o.optopt(
        "t",
        "time",
        "stop starting sessions after T seconds (default 10; idle: hold time)",
        "T",
    );
    o.optopt(
        "u",
        "user",
        "login name, or a pattern such as bsmall%02d (default bench)",
        "USER",
    );
    o.optopt(
        "U",
        "users",
        "numbers for the %d of --user: client i gets FIRST + i mod count",
        "FIRST-LAST",
    );
    o.optopt("p", "password", "password (default benchpass)", "PASS");
    o.optflag("", "tls", "implicit TLS (POP3S) on connect");
    o.optflag(
        "",
        "resume",
        "with --tls: each client resumes its last TLS session (a ticket or a session ID)",
    );
    o.optflag(
        "",
        "insecure",
        "with --tls: accept any certificate (self-signed test servers)",
    );
    o.optopt(
        "",
        "sni",
        "with --tls: the server name to expect (default localhost)",
        "NAME",
    );
    o.optopt(
        "",
        "io-timeout",
        "fail a session that waits longer than this for the server (default 60)",
        "SECS",
    );
    o.optflag("h", "help", "print this help");
    o
}

fn usage() -> String {
    options().usage("Usage: loadgen [OPTIONS] HOST:PORT\n\nA POP3 load generator.")
}

fn number<T: std::str::FromStr>(m: &getopts::Matches, name: &str) -> Result<Option<T>, String> {
    match m.opt_str(name) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| format!("--{name}: {s:?} is not a valid number")),
    }
}

fn config(args: &[String]) -> Result<Option<Config>, String> {
    let m = options().parse(args).map_err(|e| e.to_string())?;
    if m.opt_present("help") {
        print!("{}", usage());
        return Ok(None);
    }
    let [target] = &m.free[..] else {
        return Err("expected exactly one HOST:PORT".into());
    };
    let addrs: Vec<SocketAddr> = target
        .to_socket_addrs()
        .map_err(|e| format!("{target}: {e}"))?
        .collect();
    let workload = Workload::parse(&m.opt_str("workload").unwrap_or_else(|| "small".into()))?;
    let concurrency: usize = number(&m, "concurrency")?.unwrap_or(1);
    if concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    let secs: Option<f64> = number(&m, "time")?;
    let sessions: Option<u64> = number(&m, "sessions")?;
    let stop = match (sessions, secs) {
        (Some(_), Some(_)) => return Err("give --sessions or --time, not both".into()),
        (Some(0), _) => return Err("--sessions must be at least 1".into()),
        (Some(k), None) => Stop::Sessions(k),
        (None, Some(t)) => Stop::Time(
            Duration::try_from_secs_f64(t).map_err(|_| format!("--time {t}: out of range"))?,
        ),
        (None, None) => Stop::Time(Duration::from_secs(10)),
    };
    if workload == Workload::Idle && matches!(stop, Stop::Sessions(_)) {
        return Err("idle holds --concurrency sessions for --time seconds; no --sessions".into());
    }
    let users = Users::parse(
        &m.opt_str("user").unwrap_or_else(|| "bench".into()),
        m.opt_str("users").as_deref(),
    )?;
    if (users.distinct() as usize) < concurrency {
        eprintln!(
            "loadgen: warning: {} user name(s) for {concurrency} clients: servers that lock a \
             mailbox per session will refuse some logins",
            users.distinct()
        );
    }
    let tls = match m.opt_present("tls") {
        false => None,
        true => {
            let insecure = m.opt_present("insecure");
            let mut builder = SslConnector::builder(SslMethod::tls_client())
                .map_err(|e| format!("TLS setup: {e}"))?;
            if insecure {
                builder.set_verify(SslVerifyMode::NONE);
            }
            // A TLS 1.3 ticket arrives after the handshake, as a new session: OpenSSL hands it
            // to this callback, on the thread that reads it.
            builder.set_session_cache_mode(SslSessionCacheMode::CLIENT);
            builder.set_new_session_callback(|_, session| {
                LAST_SESSION.with(|last| *last.borrow_mut() = Some(session));
            });
            Some(Tls {
                connector: builder.build(),
                insecure,
                resume: m.opt_present("resume"),
            })
        }
    };
    let io_timeout: f64 = number(&m, "io-timeout")?.unwrap_or(60.0);
    Ok(Some(Config {
        addrs,
        workload,
        concurrency,
        stop,
        users,
        password: m.opt_str("password").unwrap_or_else(|| "benchpass".into()),
        tls,
        sni: m.opt_str("sni").unwrap_or_else(|| "localhost".into()),
        io_timeout: Duration::try_from_secs_f64(io_timeout)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or("--io-timeout must be a positive number of seconds")?,
    }))
}

/// A failed session: where it failed, and why.
struct Failure {
    stage: &'static str,
    detail: String,
}

type Outcome<T> = Result<T, Failure>;

fn fail(stage: &'static str, detail: impl Into<String>) -> Failure {
    Failure {
        stage,
        detail: detail.into(),
    }
}

fn io_fail(stage: &'static str) -> impl FnOnce(io::Error) -> Failure {
    move |e| fail(stage, e.to_string())
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<SslStream<TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A blocking POP3 client that sends one command at a time.
/// Where [`Client::message`] is in the lines it reads.
#[derive(Clone, Copy)]
enum At {
    InLine,
    LineStart,
    Dot,
    DotCr,
}

struct Client {
    conn: BufReader<Stream>,
    line: Vec<u8>,
    command: Vec<u8>,
}

impl Client {
    fn connect(cfg: &Config) -> Outcome<Client> {
        let mut last = None;
        let mut tcp = None;
        for addr in &cfg.addrs {
            match TcpStream::connect_timeout(addr, cfg.io_timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = tcp.ok_or_else(|| {
            fail(
                "connect",
                last.map_or("no address".into(), |e| e.to_string()),
            )
        })?;
        tcp.set_nodelay(true).map_err(io_fail("connect"))?;
        tcp.set_read_timeout(Some(cfg.io_timeout))
            .and_then(|()| tcp.set_write_timeout(Some(cfg.io_timeout)))
            .map_err(io_fail("connect"))?;
        let stream = match &cfg.tls {
            None => Stream::Plain(tcp),
            Some(tls) => Stream::Tls(Box::new(tls.connect(&cfg.sni, tcp)?)),
        };
        let mut client = Client {
            conn: BufReader::with_capacity(READ_BUFFER, stream),
            line: Vec::with_capacity(512),
            command: Vec::with_capacity(512),
        };
        client.status("greeting")?;
        Ok(client)
    }

    /// Reads the next line into `self.line`; the end of the connection fails `stage` with
    /// `closed`.
    fn next_line(&mut self, stage: &'static str, closed: &str) -> Outcome<()> {
        self.line.clear();
        let n = self
            .conn
            .read_until(b'\n', &mut self.line)
            .map_err(io_fail(stage))?;
        if n == 0 {
            return Err(fail(stage, closed));
        }
        Ok(())
    }

    /// Reads a status line; `-ERR` or anything else than `+OK` is a failure of `stage`.
    fn status(&mut self, stage: &'static str) -> Outcome<&[u8]> {
        self.next_line(stage, "connection closed by the server")?;
        if !self.line.starts_with(b"+OK") {
            let text = String::from_utf8_lossy(&self.line);
            return Err(fail(stage, text.trim_end().to_owned()));
        }
        Ok(&self.line)
    }

    /// Sends one command line and reads its status line.
    fn command(&mut self, stage: &'static str, args: std::fmt::Arguments) -> Outcome<&[u8]> {
        self.command.clear();
        self.command.write_fmt(args).expect("write to a Vec");
        self.command.extend_from_slice(b"\r\n");
        self.conn
            .get_mut()
            .write_all(&self.command)
            .map_err(io_fail(stage))?;
        self.status(stage)
    }

    /// Reads a multi-line body, calling `each` with every line (CRLF included, dot-stuffing
    /// undone). Returns the octets of the body after unstuffing.
    fn body(&mut self, stage: &'static str, mut each: impl FnMut(&[u8])) -> Outcome<u64> {
        let mut octets = 0;
        loop {
            self.next_line(stage, "connection closed inside a multi-line reply")?;
            let line = match self.line.strip_prefix(b".") {
                Some(b"\r\n") => return Ok(octets),
                Some(rest) => rest,
                None => &self.line[..],
            };
            octets += line.len() as u64;
            each(line);
        }
    }

    /// Reads a message body to its terminating line and returns its octets after dot-unstuffing,
    /// as [`body`](Self::body) counts them, without splitting it into lines: only a LF followed
    /// by a dot is looked at, so the client spends little of the machine the server shares.
    fn message(&mut self, stage: &'static str) -> Outcome<u64> {
        let dot_after_lf = memchr::memmem::Finder::new(b"\n.");
        let mut octets = 0u64;
        // Where the last octet left the reading: in a line, at a line start, after a line's
        // first dot, or after a line's first dot and a CR.
        let mut at = At::LineStart;
        loop {
            let buf = self.conn.fill_buf().map_err(io_fail(stage))?;
            if buf.is_empty() {
                return Err(fail(stage, "connection closed inside a message"));
            }
            let mut i = 0;
            while i < buf.len() {
                match (at, buf[i]) {
                    (At::InLine, _) => match dot_after_lf.find(&buf[i..]) {
                        Some(lf) => {
                            octets += lf as u64 + 1;
                            i += lf + 1;
                            at = At::LineStart;
                        }
                        None => {
                            octets += (buf.len() - i) as u64;
                            if buf[buf.len() - 1] == b'\n' {
                                at = At::LineStart;
                            }
                            i = buf.len();
                        }
                    },
                    // The dot is not counted: it is the terminator's, or a stuffed one.
                    (At::LineStart, b'.') => (at, i) = (At::Dot, i + 1),
                    (At::Dot, b'\r') => (at, i) = (At::DotCr, i + 1),
                    (At::DotCr, b'\n') => {
                        self.conn.consume(i + 1);
                        return Ok(octets);
                    }
                    (At::DotCr, _) => (at, octets) = (At::InLine, octets + 1),
                    (At::LineStart | At::Dot, _) => at = At::InLine,
                }
            }
            let n = buf.len();
            self.conn.consume(n);
        }
    }

    fn login(&mut self, user: &str, password: &str) -> Outcome<()> {
        self.command("user", format_args!("USER {user}"))?;
        self.command("pass", format_args!("PASS {password}"))?;
        Ok(())
    }

    fn quit(&mut self) -> Outcome<()> {
        self.command("quit", format_args!("QUIT"))?;
        // close_notify, as a well-behaved client ends: OpenSSL marks the session of a
        // connection dropped without it as not resumable.
        if let Stream::Tls(s) = self.conn.get_mut() {
            let _ = s.shutdown();
        }
        Ok(())
    }
}

impl Tls {
    fn connect(&self, sni: &str, tcp: TcpStream) -> Outcome<SslStream<TcpStream>> {
        let tls_fail = |e: &dyn std::fmt::Display| fail("tls", e.to_string());
        let mut config = self.connector.configure().map_err(|e| tls_fail(&e))?;
        if self.insecure {
            config.set_verify_hostname(false);
        }
        let mut ssl = config.into_ssl(sni).map_err(|e| tls_fail(&e))?;
        if self.resume {
            LAST_SESSION.with(|last| match &*last.borrow() {
                // SAFETY: the session came from a connection of this same connector.
                Some(session) => unsafe { ssl.set_session(session) }.map_err(|e| tls_fail(&e)),
                None => Ok(()),
            })?;
        }
        let stream = ssl.connect(tcp).map_err(|e| tls_fail(&e))?;
        if stream.ssl().session_reused() {
            RESUMED.fetch_add(1, Ordering::Relaxed);
        }
        Ok(stream)
    }
}

/// What one session did.
#[derive(Default)]
struct Done {
    messages: u64,
    octets: u64,
    /// From sending PASS to the end of the UIDL listing (small workload).
    pass_to_list: Option<Duration>,
}

/// The first number of a `+OK n ...` reply.
fn first_number(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?;
    text.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// Parses a `n rest` listing line into (n, rest without CRLF).
fn listing_line(line: &[u8]) -> Option<(u64, &str)> {
    let text = std::str::from_utf8(line)
        .ok()?
        .trim_end_matches(['\r', '\n']);
    let (n, rest) = text.split_once(' ')?;
    Some((n.parse().ok()?, rest))
}

fn small(cfg: &Config, user: &str) -> Outcome<Done> {
    let mut c = Client::connect(cfg)?;
    c.command("user", format_args!("USER {user}"))?;
    let pass = Instant::now();
    c.command("pass", format_args!("PASS {}", cfg.password))?;
    c.command("stat", format_args!("STAT"))?;
    let mut listed = 0u64;
    c.command("list", format_args!("LIST"))?;
    c.body("list", |_| listed += 1)?;
    let mut uidls = 0u64;
    c.command("uidl", format_args!("UIDL"))?;
    c.body("uidl", |_| uidls += 1)?;
    let pass_to_list = pass.elapsed();
    if listed != uidls {
        return Err(fail(
            "uidl",
            format!("LIST gave {listed} lines, UIDL {uidls}"),
        ));
    }
    c.quit()?;
    Ok(Done {
        pass_to_list: Some(pass_to_list),
        ..Done::default()
    })
}

fn retr(cfg: &Config, user: &str) -> Outcome<Done> {
    let mut c = Client::connect(cfg)?;
    c.login(user, &cfg.password)?;
    let mut sizes = Vec::new();
    let mut bad = None;
    c.command("list", format_args!("LIST"))?;
    c.body("list", |line| match listing_line(line) {
        Some((n, size)) => sizes.push((n, size.parse::<u64>().unwrap_or(u64::MAX))),
        None => bad = Some(String::from_utf8_lossy(line).into_owned()),
    })?;
    if let Some(line) = bad {
        return Err(fail("list", format!("bad listing line {line:?}")));
    }
    let mut done = Done::default();
    for (n, size) in sizes {
        c.command("retr", format_args!("RETR {n}"))?;
        let got = c.message("retr")?;
        if got != size {
            return Err(fail(
                "retr",
                format!("message {n}: {got} octets received, LIST said {size}"),
            ));
        }
        done.messages += 1;
        done.octets += got;
    }
    c.quit()?;
    Ok(done)
}

/// The UIDLs each user's earlier `keep` polls have fetched.
type Seen = Mutex<HashMap<String, HashSet<String>>>;

fn keep(cfg: &Config, user: &str, seen: &Seen) -> Outcome<Done> {
    let mut c = Client::connect(cfg)?;
    c.login(user, &cfg.password)?;
    let count = first_number(c.command("stat", format_args!("STAT"))?)
        .ok_or_else(|| fail("stat", "no message count"))?;
    let mut listing = Vec::with_capacity(count as usize);
    c.command("uidl", format_args!("UIDL"))?;
    c.body("uidl", |line| {
        if let Some((n, uidl)) = listing_line(line) {
            listing.push((n, uidl.to_owned()));
        }
    })?;
    if listing.len() as u64 != count {
        return Err(fail(
            "uidl",
            format!("STAT said {count} messages, UIDL listed {}", listing.len()),
        ));
    }
    let known: HashSet<String> = seen
        .lock()
        .map(|s| s.get(user).cloned().unwrap_or_default())
        .unwrap_or_default();
    let mut done = Done::default();
    let mut fetched = Vec::new();
    for (n, uidl) in listing {
        if known.contains(&uidl) {
            continue;
        }
        c.command("retr", format_args!("RETR {n}"))?;
        done.octets += c.message("retr")?;
        done.messages += 1;
        fetched.push(uidl);
    }
    c.quit()?;
    if let Ok(mut s) = seen.lock() {
        s.entry(user.to_owned()).or_default().extend(fetched);
    }
    Ok(done)
}

/// What one client thread measured.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    pass_to_list: Vec<Duration>,
    messages: u64,
    octets: u64,
    errors: u64,
    shown: Vec<String>,
}

impl Tally {
    fn record(&mut self, started: Instant, outcome: Outcome<Done>) {
        match outcome {
            Ok(done) => {
                self.latencies.push(started.elapsed());
                self.pass_to_list.extend(done.pass_to_list);
                self.messages += done.messages;
                self.octets += done.octets;
            }
            Err(f) => {
                self.errors += 1;
                if self.shown.len() < SHOWN_ERRORS {
                    self.shown.push(format!("{}: {}", f.stage, f.detail));
                }
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.pass_to_list.extend(other.pass_to_list);
        self.messages += other.messages;
        self.octets += other.octets;
        self.errors += other.errors;
        for s in other.shown {
            if self.shown.len() < SHOWN_ERRORS {
                self.shown.push(s);
            }
        }
    }
}

/// Runs sessions on one client thread until the run's end.
fn client_loop(
    cfg: &Config,
    index: usize,
    started: Instant,
    remaining: &AtomicU64,
    seen: &Seen,
) -> Tally {
    let user = cfg.users.name(index);
    let mut tally = Tally::default();
    loop {
        match cfg.stop {
            Stop::Time(t) if started.elapsed() >= t => break,
            Stop::Sessions(_) => {
                let took = remaining
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |k| k.checked_sub(1));
                if took.is_err() {
                    break;
                }
            }
            Stop::Time(_) => {}
        }
        let t0 = Instant::now();
        let outcome = match cfg.workload {
            Workload::Small => small(cfg, &user),
            Workload::Retr => retr(cfg, &user),
            Workload::Keep => keep(cfg, &user, seen),
            Workload::Idle => unreachable!("idle has its own loop"),
        };
        let failed = outcome.is_err();
        tally.record(t0, outcome);
        if failed {
            thread::sleep(ERROR_PAUSE);
        }
    }
    tally
}

/// Shared state of an idle run.
struct IdleState {
    /// Clients that have logged in or failed, and those that logged in.
    settled: AtomicUsize,
    logged_in: AtomicUsize,
    /// Set once the hold is over; the clients sleep on the condition until then (polling it
    /// from 10,000 threads would itself load the machine the server runs on).
    release: Mutex<bool>,
    released: Condvar,
}

impl IdleState {
    fn release(&self) {
        *self.release.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.released.notify_all();
    }

    fn wait_for_release(&self) {
        let mut released = self.release.lock().unwrap_or_else(|e| e.into_inner());
        while !*released {
            released = self
                .released
                .wait(released)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// One idle client: logs in, reports, waits for the release, quits.
fn idle_client(cfg: &Config, index: usize, state: &IdleState) -> Tally {
    let mut tally = Tally::default();
    let t0 = Instant::now();
    let user = cfg.users.name(index);
    let client =
        Client::connect(cfg).and_then(|mut c| c.login(user.as_str(), &cfg.password).map(|()| c));
    let login_time = t0.elapsed();
    if client.is_ok() {
        state.logged_in.fetch_add(1, Ordering::SeqCst);
    }
    state.settled.fetch_add(1, Ordering::SeqCst);
    let mut client = match client {
        Ok(c) => c,
        Err(f) => {
            tally.record(t0, Err(f));
            return tally;
        }
    };
    state.wait_for_release();
    match client.quit() {
        Ok(()) => {
            tally.latencies.push(login_time);
        }
        Err(f) => tally.record(t0, Err(f)),
    }
    tally
}

/// Nearest-rank percentile of sorted durations, in milliseconds.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

fn run(cfg: Config) -> Tally {
    let cfg = Arc::new(cfg);
    let started = Instant::now();
    let remaining = Arc::new(AtomicU64::new(match cfg.stop {
        Stop::Sessions(k) => k,
        Stop::Time(_) => 0,
    }));
    let seen: Arc<Seen> = Arc::default();
    let idle = Arc::new(IdleState {
        settled: AtomicUsize::new(0),
        logged_in: AtomicUsize::new(0),
        release: Mutex::new(false),
        released: Condvar::new(),
    });
    let mut handles = Vec::with_capacity(cfg.concurrency);
    for i in 0..cfg.concurrency {
        let (c, k, s, state) = (cfg.clone(), remaining.clone(), seen.clone(), idle.clone());
        let spawned = thread::Builder::new()
            .name(format!("client-{i}"))
            .stack_size(256 * 1024)
            .spawn(move || match c.workload {
                Workload::Idle => idle_client(&c, i, &state),
                _ => client_loop(&c, i, started, &k, &s),
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                eprintln!("loadgen: cannot start client thread {i}: {e}");
                idle.release();
                break;
            }
        }
    }
    if cfg.workload == Workload::Idle {
        while idle.settled.load(Ordering::SeqCst) < handles.len() {
            thread::sleep(Duration::from_millis(10));
        }
        let hold = match cfg.stop {
            Stop::Time(t) => t,
            Stop::Sessions(_) => Duration::ZERO,
        };
        let ok = idle.logged_in.load(Ordering::SeqCst);
        println!("READY sessions={ok} failed={}", handles.len() - ok);
        let _ = io::stdout().flush();
        thread::sleep(hold);
        idle.release();
    }
    let mut total = Tally::default();
    for h in handles {
        match h.join() {
            Ok(t) => total.merge(t),
            Err(_) => {
                total.errors += 1;
                total.shown.push("a client thread panicked".into());
            }
        }
    }
    total
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match config(&args) {
        Ok(Some(cfg)) => cfg,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}\n\n{}", usage());
            return ExitCode::from(2);
        }
    };
    let (workload, c, tls) = (cfg.workload, cfg.concurrency, cfg.tls.is_some());
    let started = Instant::now();
    let mut tally = run(cfg);
    let secs = started.elapsed().as_secs_f64();
    tally.latencies.sort_unstable();
    tally.pass_to_list.sort_unstable();
    let sessions = tally.latencies.len();
    let sps = sessions as f64 / secs;
    let mbps = tally.octets as f64 / 1e6 / secs;
    let (p50, p99) = (
        percentile_ms(&tally.latencies, 50.0),
        percentile_ms(&tally.latencies, 99.0),
    );
    let max = tally
        .latencies
        .last()
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    println!(
        "{}: {c} clients{}, {sessions} sessions in {secs:.2} s ({sps:.1}/s), {} errors",
        workload.name(),
        if tls { " over TLS" } else { "" },
        tally.errors
    );
    let resumed = RESUMED.load(Ordering::Relaxed);
    if tls {
        println!("TLS sessions resumed: {resumed} of {sessions}");
    }
    println!("session latency: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms");
    if tally.messages > 0 {
        println!(
            "retrieved {} messages, {:.1} MB ({mbps:.1} MB/s)",
            tally.messages,
            tally.octets as f64 / 1e6
        );
    }
    let list_p50 = percentile_ms(&tally.pass_to_list, 50.0);
    if !tally.pass_to_list.is_empty() {
        println!(
            "PASS to end of UIDL: p50 {list_p50:.2} ms, p99 {:.2} ms",
            percentile_ms(&tally.pass_to_list, 99.0)
        );
    }
    for e in &tally.shown {
        eprintln!("loadgen: error: {e}");
    }
    println!(
        "RESULT workload={} c={c} tls={} sessions={sessions} secs={secs:.3} sps={sps:.1} \
         p50_ms={p50:.3} p99_ms={p99:.3} max_ms={max:.3} messages={} mb={:.3} mbps={mbps:.1} \
         list_p50_ms={list_p50:.3} resumed={resumed} errors={}",
        workload.name(),
        u8::from(tls),
        tally.messages,
        tally.octets as f64 / 1e6,
        tally.errors
    );
    if tally.errors > 0 || sessions == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
