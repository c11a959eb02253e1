//! inetd mode: `pop3d --inetd` serving one session on stdin/stdout, over pipes and over a real
//! accepted socket, as inetd, xinetd and systemd socket units start it.

mod support;

use std::io::{self, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use support::maildir::{self, Corpus, PASSWORD, USER};
use support::pop::Pop;
use support::poplib::Poplib;
use support::temp_dir::TempDir;
use support::TestCert;

/// The longest any reply or process exit may take.
const LIMIT: Duration = Duration::from_secs(10);

/// `pop3d --inetd` on pipes, as one byte stream for the [`Pop`] client: what inetd hands it is
/// a socket, but a pipe pair is the same to it. A thread reads its stdout, so that every read
/// here is bounded by [`LIMIT`], as a socket's timeout bounds it.
struct Inetd {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<Vec<u8>>,
    pending: Vec<u8>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl Inetd {
    fn start(corpus: &Corpus) -> Pop<Inetd> {
        Self::start_with(corpus, &[])
    }

    /// The same with more options.
    fn start_with(corpus: &Corpus, extra: &[String]) -> Pop<Inetd> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pop3d"))
            .args(["--inetd", "--allow-root"])
            .args(corpus.server_args())
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pop3d --inetd");
        let mut out = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match out.read(&mut buf) {
                    Ok(n) if n > 0 => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            return;
                        }
                    }
                    _ => {
                        let _ = tx.send(Vec::new());
                        return;
                    }
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            buf
        });
        Pop::over(Inetd {
            stdin: child.stdin.take(),
            child,
            stdout: rx,
            pending: Vec::new(),
            stderr: Some(stderr),
        })
    }
}

impl Read for Inetd {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pending.is_empty() {
            match self.stdout.recv_timeout(LIMIT) {
                Ok(chunk) => self.pending = chunk,
                Err(RecvTimeoutError::Disconnected) => {}
                Err(RecvTimeoutError::Timeout) => {
                    let why = format!("no reply from pop3d within {LIMIT:?}");
                    return Err(io::Error::new(io::ErrorKind::TimedOut, why));
                }
            }
        }
        // An empty chunk, or none, is the end of pop3d's output.
        let n = self.pending.len().min(buf.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

impl Write for Inetd {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.stdin.as_mut() {
            Some(stdin) => stdin.write(buf),
            None => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stdin.as_mut().map_or(Ok(()), |stdin| stdin.flush())
    }
}

impl Pop<Inetd> {
    /// Closes stdin, reads stdout to its end (there must be nothing more) and waits for the
    /// exit; returns the exit status and everything written to stderr.
    fn finish(&mut self) -> (ExitStatus, Vec<u8>) {
        let inetd = self.stream_mut();
        drop(inetd.stdin.take());
        let rest = self.rest().expect("pop3d's output ends");
        assert!(
            rest.is_empty(),
            "unexpected output after the session: {rest:?}"
        );
        let inetd = self.stream_mut();
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            if let Some(status) = inetd.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "pop3d --inetd did not exit");
            std::thread::sleep(Duration::from_millis(10));
        };
        (status, inetd.stderr.take().unwrap().join().unwrap())
    }
}

impl Drop for Inetd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_session_over_pipes_retrieves_every_message_and_exits_0_silently() {
    let corpus = Corpus::new("inetd-pipes");
    let mut pop = Inetd::start(&corpus);
    assert!(pop.line().starts_with("+OK"));
    // A failed login is logged; the log must not go to stderr, which is the client's socket.
    assert!(pop.cmd(&format!("USER {USER}")).starts_with("+OK"));
    assert!(pop.cmd("PASS wrong").starts_with("-ERR [AUTH]"));
    assert!(pop.cmd(&format!("USER {USER}")).starts_with("+OK"));
    assert!(pop.cmd(&format!("PASS {PASSWORD}")).starts_with("+OK"));
    assert!(pop.cmd("LIST").starts_with("+OK"));
    let listing = String::from_utf8(pop.body()).unwrap();
    assert!(pop.cmd("UIDL").starts_with("+OK"));
    let uidls = String::from_utf8(pop.body()).unwrap();
    assert_eq!(listing.lines().count(), corpus.messages.len());
    let expected = corpus.by_uidl();
    for (size_line, uidl_line) in listing.lines().zip(uidls.lines()) {
        let (n, size) = size_line.split_once(' ').unwrap();
        let (n2, uidl) = uidl_line.split_once(' ').unwrap();
        assert_eq!(n, n2);
        let mail = expected[uidl];
        let want = mail.wire();
        assert_eq!(size, want.len().to_string(), "{}", mail.path);
        assert_eq!(pop.cmd(&format!("RETR {n}")), format!("+OK {size} octets"));
        let got = pop.body();
        assert!(
            got == want,
            "{}: {}",
            mail.path,
            maildir::first_difference(&got, &want)
        );
    }
    assert!(pop.cmd("QUIT").starts_with("+OK"));
    let (status, stderr) = pop.finish();
    assert!(status.success(), "{status}");
    assert!(
        stderr.is_empty(),
        "wrote to stderr: {}",
        String::from_utf8_lossy(&stderr)
    );
    assert_eq!(corpus.on_disk(), corpus.paths());
}

#[test]
fn end_of_input_without_quit_ends_the_session_and_deletes_nothing() {
    let corpus = Corpus::new("inetd-eof");
    let mut pop = Inetd::start(&corpus);
    pop.log_in(USER, PASSWORD);
    assert!(pop.cmd("DELE 1").starts_with("+OK"));
    let (_, stderr) = pop.finish();
    assert!(stderr.is_empty(), "{}", String::from_utf8_lossy(&stderr));
    assert_eq!(corpus.on_disk(), corpus.paths());
}

#[test]
fn an_accepted_socket_as_stdin_and_stdout_serves_python_poplib() {
    let corpus = Corpus::new("inetd-socket");
    let (_, served) = Poplib::plain(&corpus).retrieve_all_over_inetd(&corpus.server_args());
    assert!(served.status.success(), "{}", served.status);
    assert!(
        served.stderr.is_empty(),
        "wrote to stderr: {}",
        String::from_utf8_lossy(&served.stderr)
    );
}

#[test]
fn a_second_process_for_the_same_mailbox_gets_in_use() {
    let corpus = Corpus::new("inetd-lock");
    let mut first = Inetd::start(&corpus);
    first.log_in(USER, PASSWORD);
    let mut second = Inetd::start(&corpus);
    assert!(second.line().starts_with("+OK"));
    assert!(second.cmd(&format!("USER {USER}")).starts_with("+OK"));
    let reply = second.cmd(&format!("PASS {PASSWORD}"));
    assert!(reply.starts_with("-ERR [IN-USE]"), "{reply}");
    assert!(second.cmd("QUIT").starts_with("+OK"));
    let (status, stderr) = second.finish();
    assert!(status.success() && stderr.is_empty(), "{status}");

    assert!(first.cmd("STAT").starts_with("+OK"));
    assert!(first.cmd("QUIT").starts_with("+OK"));
    assert!(first.finish().0.success());
    // The lock went with the first process.
    let mut third = Inetd::start(&corpus);
    third.log_in(USER, PASSWORD);
    assert!(third.cmd("QUIT").starts_with("+OK"));
    assert!(third.finish().0.success());
}

#[test]
fn a_pipe_is_not_a_loopback_client_for_the_plaintext_rule() {
    // stunnel or socat in front hands pop3d a pipe: nothing says the client is on this host.
    let corpus = Corpus::new("inetd-pipe-plaintext");
    let certs = TempDir::new("inetd-pipe-cert");
    let cert = TestCert::generate(certs.path());
    let mut pop = Inetd::start_with(&corpus, &cert.args());
    assert!(pop.line().starts_with("+OK"));
    assert_eq!(
        pop.cmd(&format!("USER {USER}")),
        "-ERR [AUTH] Plaintext authentication disallowed on non-secure connection"
    );
}

#[test]
fn a_client_that_reads_no_replies_is_cut_at_the_login_timeout() {
    // poll(2) says a pipe has room; a blocking write of a whole reply would then wait for
    // ever on a client that reads nothing, past every limit.
    let corpus = Corpus::new("inetd-unread");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pop3d"))
        .args(["--inetd", "--allow-root", "--login-timeout", "2"])
        .args(corpus.server_args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pop3d --inetd");
    let mut input = child.stdin.take().unwrap();
    let _unread = child.stdout.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&b"CAPA\r\n".repeat(3000));
        input
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("pop3d --inetd still blocked after {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let _ = writer.join();
}

#[test]
fn nagle_is_turned_off_on_the_inherited_socket() {
    // A reply written in parts would otherwise wait for the client's delayed ACK (40 ms on
    // Linux) at every status line followed by its lines. The socket is shared with the child,
    // so its option is read here on the test's own descriptor of it.
    let corpus = Corpus::new("inetd-nodelay");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    assert!(!accepted.nodelay().unwrap(), "off by default");
    let as_stdio =
        |s: &std::net::TcpStream| Stdio::from(std::os::fd::OwnedFd::from(s.try_clone().unwrap()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_pop3d"))
        .args(["--inetd", "--allow-root"])
        .args(corpus.server_args())
        .stdin(as_stdio(&accepted))
        .stdout(as_stdio(&accepted))
        .stderr(Stdio::null())
        .spawn()
        .expect("start pop3d --inetd");
    client.set_read_timeout(Some(LIMIT)).unwrap();
    let mut pop = Pop::over(client);
    let greeting = pop.line();
    assert!(greeting.starts_with("+OK"), "{greeting}");
    assert!(
        accepted.nodelay().unwrap(),
        "TCP_NODELAY set by pop3d --inetd"
    );
    drop(accepted);
    pop.quit();
    let deadline = Instant::now() + LIMIT;
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "pop3d --inetd did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}
