//! pop3d under systemd, driven by Debian's `systemd-socket-activate` (what a `.socket` unit
//! does, without a running systemd): listening sockets passed without `-a` are served (and
//! the default port is not bound), a socket named `pop3s` speaks TLS first, a connection
//! socket (`-a`, `Accept=yes`) is refused by a standalone pop3d and served by `pop3d -i`, and
//! a notify socket made by the test hears `READY=1` and, on SIGTERM, `STOPPING=1`. The shipped
//! unit files are checked with `systemd-analyze verify`.
//!
//! Each test runs in a network namespace of its own (root only), so fixed ports collide with
//! nothing, and a pop3d that wrongly bound 0.0.0.0:110 would do so there alone.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::maildir::{run_bounded, Corpus, PASSWORD, USER};
use support::pop::Pop;
use support::{note, path_str, TestCert};

/// Runs `test` on a thread of its own in a new network namespace with loopback up; false
/// (and a note) when not root.
fn in_own_network(test: impl FnOnce() + Send + 'static) -> bool {
    // SAFETY: geteuid takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        note("skipped: needs root (a network namespace of its own)");
        return false;
    }
    let thread = std::thread::spawn(move || {
        // SAFETY: unshare moves this thread (only) into a new network namespace.
        assert_eq!(
            unsafe { libc::unshare(libc::CLONE_NEWNET) },
            0,
            "unshare -n"
        );
        loopback_up();
        test();
    });
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
    true
}

/// `ip link set lo up`, by ioctl.
fn loopback_up() {
    // SAFETY: a socket for the ioctls, an ifreq zeroed then named "lo", and plain calls.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        assert!(fd >= 0);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        assert_eq!(libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr), 0);
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        assert_eq!(libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr), 0);
        libc::close(fd);
    }
}

/// `systemd-socket-activate ARGS pop3d POP3D_ARGS`, its stderr collected; killed on drop.
struct Activated {
    child: Child,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Activated {
    fn start(activate: &[&str], pop3d: &[String]) -> Self {
        let mut child = Command::new("systemd-socket-activate")
            .args(activate)
            .arg(env!("CARGO_BIN_EXE_pop3d"))
            .args(pop3d)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("systemd-socket-activate (Debian package systemd)");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Activated { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (at most 10 s) for `text` in the log.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(text) {
                return log;
            }
            assert!(Instant::now() < deadline, "{text:?} not logged:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (at most 10 s) for the process to exit, and returns its exit code.
    fn exit_code(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "still running:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on a child this test started and has not reaped.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }
}

impl Drop for Activated {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects, retrying for up to 10 s while systemd-socket-activate sets up its socket.
fn connect(addr: &str) -> TcpStream {
    let addr: SocketAddr = addr.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => {
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                return s;
            }
            Err(e) => assert!(Instant::now() < deadline, "connect {addr}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pop3d_args(corpus: &Corpus, extra: &[String]) -> Vec<String> {
    let mut args = corpus.server_args();
    args.push("--allow-root".into());
    args.extend_from_slice(extra);
    args
}

#[test]
fn a_passed_listening_socket_is_served_and_the_default_port_left_alone() {
    in_own_network(|| {
        let corpus = Corpus::new("p3t-sd-listen");
        let server = Activated::start(
            &["-l", "127.0.0.1:1110", "--fdname=pop3"],
            &pop3d_args(&corpus, &[]),
        );
        // systemd-socket-activate starts pop3d at the first connection, which waits in the
        // backlog of the socket it passes.
        let mut c = Pop::over(connect("127.0.0.1:1110"));
        assert!(c.log_in(USER, PASSWORD).starts_with("+OK"));
        let (_, listing) = c.multi("LIST");
        assert_eq!(listing.len(), corpus.messages.len());
        c.quit();
        let log = server.wait_for("systemd socket \"pop3\": listening on 127.0.0.1:1110");
        assert!(
            !log.contains(":110\n"),
            "bound the default port too:\n{log}"
        );
        // Nothing holds the default port in this namespace: pop3d did not bind it.
        TcpListener::bind("0.0.0.0:110").expect("0.0.0.0:110 is free");
    });
}

#[test]
fn a_socket_named_pop3s_speaks_tls_first_and_needs_a_certificate() {
    in_own_network(|| {
        let corpus = Corpus::new("p3t-sd-pop3s");
        let cert = TestCert::generate(&corpus.scratch("tls"));
        let server = Activated::start(
            &["-l", "127.0.0.1:1995", "--fdname=pop3s"],
            &pop3d_args(&corpus, &cert.args()),
        );
        let mut c = Pop::over(support::pop::tls_handshake(connect("127.0.0.1:1995")));
        assert!(c.log_in(USER, PASSWORD).starts_with("+OK"));
        c.quit();
        server.wait_for("listening for TLS on 127.0.0.1:1995");

        // The same socket name without a certificate: refused at start, and said why.
        let mut bare = Activated::start(
            &["-l", "127.0.0.1:1996", "--fdname=pop3s"],
            &pop3d_args(&corpus, &[]),
        );
        let mut s = connect("127.0.0.1:1996");
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        assert_eq!(bare.exit_code(), Some(1), "{}", bare.log());
        let log = bare.wait_for("needs a certificate");
        assert!(log.contains("systemd socket \"pop3s\""), "{log}");
    });
}

#[test]
fn a_connection_socket_is_refused_standalone_and_served_by_inetd_mode() {
    in_own_network(|| {
        let corpus = Corpus::new("p3t-sd-accept");
        // -a: each connection is passed as it is (Accept=yes), which needs --inetd.
        let mut wrong =
            Activated::start(&["-a", "-l", "127.0.0.1:1111"], &pop3d_args(&corpus, &[]));
        let mut s = connect("127.0.0.1:1111");
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
        let log = wrong.wait_for("Accept=yes");
        assert!(
            log.contains("pop3d: socket 3") && log.contains("needs pop3d --inetd"),
            "{log}"
        );
        wrong.signal(libc::SIGTERM);
        let _ = wrong.exit_code();

        // A datagram socket is no use either.
        let mut udp = Activated::start(&["-d", "-l", "127.0.0.1:1112"], &pop3d_args(&corpus, &[]));
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // Sent until systemd-socket-activate, once listening, starts pop3d on it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while udp.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            let _ = sender.send_to(b"x", "127.0.0.1:1112");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(udp.exit_code(), Some(1), "{}", udp.log());
        udp.wait_for("not a stream socket");

        // The Accept=yes pair: socket on standard input, pop3d -i.
        let mut args = pop3d_args(&corpus, &["--inetd".into()]);
        args.retain(|a| a != "--allow-root");
        args.push("--allow-root".into());
        let _inetd = Activated::start(&["-a", "--inetd", "-l", "127.0.0.1:1113"], &args);
        let mut c = Pop::over(connect("127.0.0.1:1113"));
        assert!(c.log_in(USER, PASSWORD).starts_with("+OK"));
        c.quit();
    });
}

#[test]
fn the_notify_socket_hears_ready_then_stopping() {
    in_own_network(|| {
        let corpus = Corpus::new("p3t-sd-notify");
        let path = corpus.dir.path().join("notify");
        let notify = UnixDatagram::bind(&path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let pid_file = corpus.dir.path().join("pid");
        let env = format!("NOTIFY_SOCKET={}", path_str(&path));
        let mut server = Activated::start(
            &["-l", "127.0.0.1:1114", "-E", &env],
            &pop3d_args(&corpus, &["--pid-file".into(), path_str(&pid_file)]),
        );
        let _first = connect("127.0.0.1:1114");
        let mut buf = [0u8; 512];
        let n = notify.recv(&mut buf).expect("READY=1 within 10 s");
        assert_eq!(&buf[..n], b"READY=1");
        // Without -a, systemd-socket-activate execs pop3d in its own place.
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        assert_eq!(pid.trim(), server.child.id().to_string());
        server.signal(libc::SIGHUP);
        let n = notify.recv(&mut buf).unwrap();
        let reloading = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(
            reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
            "{reloading}"
        );
        let n = notify.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        server.signal(libc::SIGTERM);
        let n = notify.recv(&mut buf).expect("STOPPING=1 within 10 s");
        assert_eq!(&buf[..n], b"STOPPING=1");
        assert_eq!(server.exit_code(), Some(0), "{}", server.log());
        assert!(!pid_file.exists(), "the pid file was left behind");
    });
}

#[test]
fn the_shipped_unit_files_pass_systemd_analyze_verify() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/systemd");
    let mut units: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| path_str(&e.unwrap().path()))
        .filter(|p| p.ends_with(".service") || p.ends_with(".socket"))
        .collect();
    units.sort();
    assert!(units.len() >= 6, "{units:?}");
    // verify checks that ExecStart's program exists: point it at this build.
    let work = support::temp_dir::TempDir::new("p3t-sd-units");
    for unit in &units {
        let text = std::fs::read_to_string(unit).unwrap();
        // systemd expands %d, %n, %h, %u itself: pop3d's own must be written %%.
        let exec = text.replace("\\\n", " ");
        for line in exec.lines().filter(|l| l.starts_with("ExecStart=")) {
            let singles = line.replace("%%", "");
            assert!(!singles.contains('%'), "{unit}: a lone % in {line}");
        }
        let name = std::path::Path::new(unit).file_name().unwrap();
        let text = text.replace("/usr/local/sbin/pop3d", env!("CARGO_BIN_EXE_pop3d"));
        std::fs::write(work.path().join(name), text).unwrap();
    }
    let files: Vec<String> = units
        .iter()
        .map(|u| {
            path_str(
                &work
                    .path()
                    .join(std::path::Path::new(u).file_name().unwrap()),
            )
        })
        .collect();
    let out = run_bounded(
        Command::new("systemd-analyze")
            .args(["verify", "--man=no", "--recursive-errors=no"])
            .args(&files),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    note(&format!(
        "systemd-analyze verify: {} unit files clean",
        files.len()
    ));
}
