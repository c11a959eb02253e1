//! Shared test helpers: real servers on loopback port 0, the POP3 client ([`pop`]), a temporary
//! directory ([`temp_dir`]), the corpus and real clients ([`maildir`]), and a real Postfix
//! ([`postfix`]) fed over SMTP ([`smtp`]).
#![allow(dead_code)]

pub mod maildir;
pub mod mbox;
pub mod pop;
pub mod poplib;
pub mod postfix;
pub mod smtp;
pub mod system_user;
pub mod temp_dir;
pub mod wire;

use pop3d::store::memory::MemoryStore;
use pop3d::{Account, AuthError, Authenticator, Server, Service, ShutdownHandle};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
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
        Self::with_config(store, users, max_sessions, |service| {
            service
                .auth_failure_delay(Duration::from_millis(50))
                .idle_timeout(Duration::from_secs(20))
        })
    }

    /// A server whose service `configure` sets up.
    pub fn with_config(
        store: MemoryStore,
        users: Arc<Users>,
        max_sessions: usize,
        configure: impl FnOnce(Service) -> Service,
    ) -> Self {
        let service = configure(Service::new(users, Arc::new(store)));
        Self::serving(service, max_sessions)
    }

    /// A server for any service: another store, another authenticator.
    pub fn serving(service: Service, max_sessions: usize) -> Self {
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
    /// Its --state-dir, unless the test gave one: tests leave nothing in /var/lib/pop3d.
    _state: Option<temp_dir::TempDir>,
}

impl BinServer {
    /// Starts `pop3d --listen 127.0.0.1:0 ARGS...` and waits for its "listening on" log line.
    pub fn start(args: &[&str]) -> Self {
        Self::start_announcing(args, "listening on ")
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

// ---- TLS: certificates and the implicit-TLS listener (used by tests/tls.rs and tests/sasl.rs) ----

/// A self-signed certificate for CN=localhost and its PKCS#8 key, made by the `openssl` command
/// in a test's own directory: no key is ever committed.
pub struct TestCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCert {
    /// Generates `cert.pem` and `key.pem` (RSA 2048, valid two days) in `dir`.
    pub fn generate(dir: &std::path::Path) -> Self {
        Self::generate_with(dir, &["rsa:2048"])
    }

    /// The same with another key: `newkey` is what `openssl req -newkey` takes, with its
    /// options (`["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]`).
    pub fn generate_with(dir: &std::path::Path, newkey: &[&str]) -> Self {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        let mut args = vec!["req", "-x509", "-newkey"];
        args.extend_from_slice(newkey);
        let (key_arg, cert_arg) = (path_str(&key), path_str(&cert));
        args.extend_from_slice(&[
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &key_arg,
            "-out",
            &cert_arg,
        ]);
        openssl(&args);
        let pem = std::fs::read_to_string(&key).unwrap();
        assert!(
            pem.starts_with("-----BEGIN PRIVATE KEY-----"),
            "not PKCS#8: {pem:.40}"
        );
        TestCert { cert, key }
    }

    /// `--tls-cert CERT --tls-key KEY`.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            path_str(&self.cert),
            "--tls-key".into(),
            path_str(&self.key),
        ]
    }
}

/// A path as an argument.
pub fn path_str(path: &std::path::Path) -> String {
    path.to_str().expect("UTF-8 test path").to_owned()
}

/// Runs `openssl ARGS` (at most 60 s) and returns its stdout; fails the test if it fails.
pub fn openssl(args: &[&str]) -> Vec<u8> {
    let out = run_with_input(
        Command::new("openssl").args(args),
        b"",
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `cmd` with `input` on its stdin and its output captured, for at most `limit`; kills it
/// and fails the test on overrun.
pub fn run_with_input(cmd: &mut Command, input: &[u8], limit: Duration) -> std::process::Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // A writer thread, so a child that does not read cannot block the test.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = maildir::wait_bounded(child, limit, &what);
    let _ = writer.join();
    out
}

/// The passwd-file field `pop3d --hash-password=SCHEME` prints for `password`.
pub fn hash_password(scheme: &str, password: &str) -> String {
    let out = run_with_input(
        Command::new(env!("CARGO_BIN_EXE_pop3d")).arg(format!("--hash-password={scheme}")),
        format!("{password}\n").as_bytes(),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "--hash-password={scheme}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(field.starts_with(&format!("{{{scheme}}}")), "{field}");
    field
}

/// Runs `curl ARGS` (at most 30 s a run). A login refused with `[IN-USE]` (the mailbox still
/// held by the session curl's previous run just ended) is tried again for up to 10 s; any other
/// failure is returned as it is.
pub fn curl_when_free(args: &[String]) -> std::process::Output {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let run = maildir::run_bounded(Command::new("curl").args(args), Duration::from_secs(30));
        let busy = String::from_utf8_lossy(&run.stderr).contains("< -ERR [IN-USE]");
        if run.status.success() || !busy || Instant::now() > deadline {
            return run;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl BinServer {
    /// The address of the implicit-TLS listener (started with `--listen-tls 127.0.0.1:0`), from
    /// its "listening for TLS on ADDR" log line; waits at most 10 s for it.
    pub fn tls_addr(&self) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if let Some(rest) = log.split("listening for TLS on ").nth(1) {
                let addr = rest.lines().next().unwrap_or("").trim();
                return addr.parse().expect("TLS address in log");
            }
            assert!(
                Instant::now() < deadline,
                "no TLS listener in the log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (at most 10 s) until the log contains `text`, and returns the log.
    pub fn wait_for_log(&self, text: &str) -> String {
        self.log_with(text, Duration::from_secs(10))
    }
}

/// Prints `line` on the test's stderr even when cargo test captures output, so that figures
/// (trials, timings, memory) and skipped checks show in every run's log.
pub fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

impl BinServer {
    /// Like [`start`](Self::start), but waits for the log line that contains `marker` and takes
    /// the address that follows it: `"listening for PROXY on "` for a server whose only
    /// listener is a PROXY one (`--proxy-listener 127.0.0.1:0`).
    pub fn start_announcing(args: &[&str], marker: &str) -> Self {
        Self::start_with_env(args, marker, &[])
    }

    /// As [`start_announcing`](Self::start_announcing), with `env` added to the environment.
    pub fn start_with_env(args: &[&str], marker: &str, env: &[(&str, &str)]) -> Self {
        let state = (!args.contains(&"--state-dir")).then(|| temp_dir::TempDir::new("state"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_pop3d"))
            .envs(env.iter().copied())
            .args(["--listen", "127.0.0.1:0", "--allow-root"])
            .args(args)
            .args(
                state
                    .iter()
                    .flat_map(|s| ["--state-dir".into(), path_str(s.path())]),
            )
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
        BinServer {
            addr,
            child,
            log,
            _state: state,
        }
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

/// An example program (examples/NAME.rs), built (or found up to date) next to the test
/// binaries: `cargo test` builds examples, but a run of one test file alone
/// (`cargo test --test load`) does not, and must not use a stale one.
pub fn example(name: &str) -> std::path::PathBuf {
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test>-<hash> → target/<profile>/examples/<name>
    let profile = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target dir");
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["build", "--quiet", "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile.file_name() == Some(std::ffi::OsStr::new("release")) {
        cargo.arg("--release");
    }
    let status = cargo.status().expect("run cargo build --example");
    assert!(status.success(), "cargo build --example {name} failed");
    let path = profile.join("examples").join(name);
    assert!(path.is_file(), "{} is missing", path.display());
    path
}
