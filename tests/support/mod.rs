//! Shared test helpers: real servers on loopback port 0, and a line-level POP3 client.
#![allow(dead_code)]

pub mod maildir;

use pop3d::store::memory::MemoryStore;
use pop3d::{Account, AuthError, Authenticator, Server, Service, SessionConfig, ShutdownHandle};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Accounts with plaintext passwords, for tests.
pub struct Users(pub HashMap<String, String>);

impl Users {
    pub fn of(pairs: &[(&str, &str)]) -> Arc<Self> {
        Arc::new(Users(
            pairs
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
        ))
    }
}

impl Authenticator for Users {
    fn authenticate(&self, user: &str, password: &[u8]) -> Result<Account, AuthError> {
        match self.0.get(user) {
            Some(p) if p.as_bytes() == password => Ok(Account::new(user)),
            _ => Err(AuthError::rejected("bad login")),
        }
    }
}

/// A library server on 127.0.0.1:0, stopped on drop.
pub struct LibServer {
    pub addr: SocketAddr,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<()>>,
}

impl LibServer {
    pub fn start(store: MemoryStore, users: Arc<Users>, max_sessions: usize) -> Self {
        let mut config = SessionConfig::default();
        config.auth_failure_delay = Duration::from_millis(50);
        config.idle_timeout = Duration::from_secs(20);
        Self::with_config(store, users, max_sessions, config)
    }

    pub fn with_config(
        store: MemoryStore,
        users: Arc<Users>,
        max_sessions: usize,
        config: SessionConfig,
    ) -> Self {
        let service = Service::new(users, Arc::new(store)).with_config(config);
        let mut server = Server::new(service).max_sessions(max_sessions);
        let addr = server.listen("127.0.0.1:0").expect("bind");
        let handle = server.shutdown_handle();
        let thread = std::thread::spawn(move || server.run().expect("server run"));
        LibServer {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    /// Stops the server and waits for it, failing the test if that takes over 10 s.
    pub fn stop(mut self) {
        self.handle.shutdown();
        let t = self.thread.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !t.is_finished() {
            assert!(Instant::now() < deadline, "server did not stop");
            std::thread::sleep(Duration::from_millis(10));
        }
        t.join().unwrap();
    }
}

impl Drop for LibServer {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// The pop3d binary on 127.0.0.1, port chosen by the kernel; killed on drop.
pub struct BinServer {
    pub addr: SocketAddr,
    pub child: Child,
    log: Arc<std::sync::Mutex<String>>,
}

impl BinServer {
    /// Starts `pop3d --listen 127.0.0.1:0 ARGS...` and waits for its "listening on" log line.
    pub fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pop3d"))
            // The tests run as root in CI; the daemon refuses root unless told.
            .args(["--listen", "127.0.0.1:0", "--allow-root"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pop3d");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.trim().to_string());
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a.parse().expect("address in log"),
            Err(_) => {
                let _ = child.kill();
                panic!("pop3d did not start: {}", log.lock().unwrap());
            }
        };
        BinServer { addr, child, log }
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for BinServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A POP3 client that speaks in literal lines.
pub struct Client {
    pub reader: BufReader<TcpStream>,
}

impl Client {
    /// Connects and returns the client with the greeting.
    pub fn connect(addr: SocketAddr) -> (Self, String) {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut c = Client {
            reader: BufReader::new(stream),
        };
        let greeting = c.line();
        (c, greeting)
    }

    /// Connects, logs in and checks the reply.
    pub fn login(addr: SocketAddr, user: &str, pass: &str) -> Self {
        let (mut c, g) = Self::connect(addr);
        assert!(g.starts_with("+OK"), "{g}");
        assert!(c.cmd(&format!("USER {user}")).starts_with("+OK"));
        let r = c.cmd(&format!("PASS {pass}"));
        assert!(r.starts_with("+OK"), "login failed: {r}");
        c
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("send");
    }

    /// One reply line, without CRLF; asserts the CRLF and the 512-octet limit.
    pub fn line(&mut self) -> String {
        let mut buf = Vec::new();
        self.reader.read_until(b'\n', &mut buf).expect("read reply");
        assert!(buf.ends_with(b"\r\n"), "reply not CRLF-terminated: {buf:?}");
        buf.truncate(buf.len() - 2);
        String::from_utf8(buf).expect("reply is UTF-8")
    }

    /// Sends a command line and returns the status line.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send_raw(format!("{line}\r\n").as_bytes());
        let reply = self.line();
        assert!(reply.len() <= 510, "reply over 512 octets");
        assert!(
            reply.starts_with("+OK") || reply.starts_with("-ERR"),
            "{reply}"
        );
        reply
    }

    /// Reads a multi-line body up to the terminator, undoing dot-stuffing; lines end in CRLF.
    pub fn body(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut buf = Vec::new();
            let n = self.reader.read_until(b'\n', &mut buf).expect("read body");
            assert!(n > 0, "connection closed inside a multi-line reply");
            assert!(buf.ends_with(b"\r\n"), "body line without CRLF: {buf:?}");
            if buf == b".\r\n" {
                return out;
            }
            let line = if buf.starts_with(b".") {
                &buf[1..]
            } else {
                &buf[..]
            };
            out.extend_from_slice(line);
        }
    }

    /// Sends a command and returns (status line, body lines as text).
    pub fn multi(&mut self, line: &str) -> (String, Vec<String>) {
        let status = self.cmd(line);
        if !status.starts_with("+OK") {
            return (status, Vec::new());
        }
        let body = String::from_utf8(self.body()).expect("utf-8 listing");
        (status, body.lines().map(str::to_owned).collect())
    }

    /// True if the server has closed the connection (reads EOF within the timeout).
    pub fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).is_ok()
    }
}

/// A fresh, empty directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("pop3d-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl BinServer {
    /// Like [`start`](Self::start), but waits for the log line that contains `marker` and takes
    /// the address that follows it: `"listening for PROXY on "` for a server whose only
    /// listener is a PROXY one (`--proxy-listener 127.0.0.1:0`).
    pub fn start_announcing(args: &[&str], marker: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pop3d"))
            .args(["--listen", "127.0.0.1:0", "--allow-root"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pop3d");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        let marker = marker.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split(marker.as_str()).nth(1) {
                    let _ = tx.send(rest.trim().to_string());
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a.parse().expect("address in log"),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("pop3d did not start: {}", log.lock().unwrap());
            }
        };
        BinServer { addr, child, log }
    }

    /// Waits at most `limit` for the log to contain `text`, and returns the log; panics with
    /// the log if it does not.
    pub fn log_with(&self, text: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let log = self.log();
            if log.contains(text) {
                return log;
            }
            assert!(Instant::now() < deadline, "{text:?} not logged:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
