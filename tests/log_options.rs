//! Where the log goes: `--log-level` over `POP3D_LOG`, `--syslog` beside standard error
//! (facility mail), and under `-i` with no syslog daemon, a file in `--state-dir` (never the
//! client's connection).
//!
//! The syslog tests run pop3d in a mount namespace of its own (root only) whose `/dev` is a
//! small tmpfs: `/dev/null`, and `/dev/log` either missing or a link to a datagram socket the
//! test reads, as a syslog daemon would. The host's `/dev` is not touched.

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::maildir::{run_bounded, Corpus, PASSWORD, USER};
use support::pop::Pop;
use support::{note, path_str, BinServer};

fn is_root() -> bool {
    // SAFETY: geteuid takes nothing and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `pop3d ARGS` in a mount namespace whose /dev has only null, and log -> `dev_log` if given.
fn in_own_dev(dev_log: Option<&Path>, args: &[String]) -> Command {
    let log = match dev_log {
        Some(path) => format!(" && ln -s '{}' /dev/log", path_str(path)),
        None => String::new(),
    };
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-m",
        "sh",
        "-c",
        &format!(
            "mount -t tmpfs -o size=64k p3t-dev /dev && mknod -m 666 /dev/null c 1 3{log} \
             && exec \"$0\" \"$@\""
        ),
        env!("CARGO_BIN_EXE_pop3d"),
    ])
    .args(args);
    cmd
}

/// The syslog messages that reach `socket` within `limit`, until one contains `text`.
fn syslog_until(socket: &UnixDatagram, text: &str, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        if let Ok(n) = socket.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            if got.last().unwrap().contains(text) {
                return got;
            }
        }
    }
    panic!("{text:?} not sent to syslog within {limit:?}; got {got:?}");
}

#[test]
fn inetd_logs_to_syslog_and_without_a_syslog_daemon_to_the_state_directory() {
    if !is_root() {
        note("skipped: needs root (a mount namespace with its own /dev)");
        return;
    }
    let corpus = Corpus::new("p3t-log-inetd");
    let missing = corpus.dir.path().join("no-such-passwd");
    let state = corpus.dir.path().join("state");
    let args: Vec<String> = [
        "-i",
        "--allow-root",
        "--passwd",
        &path_str(&missing),
        "--state-dir",
        &path_str(&state),
    ]
    .map(String::from)
    .to_vec();

    // A syslog daemon listens: the refusal goes there, facility mail, severity err (<19>).
    let sock = corpus.dir.path().join("dev-log");
    let syslog = UnixDatagram::bind(&sock).unwrap();
    let out = run_bounded(
        in_own_dev(Some(&sock), &args).stdin(Stdio::null()),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        out.stdout.is_empty(),
        "the client was sent {:?}",
        out.stdout
    );
    let got = syslog_until(&syslog, &path_str(&missing), Duration::from_secs(5));
    let line = got.last().unwrap();
    assert!(
        line.starts_with("<19>") && line.contains("pop3d["),
        "{line}"
    );

    // No syslog daemon: the same message in the state directory, nothing to the client.
    let out = run_bounded(
        in_own_dev(None, &args).stdin(Stdio::null()),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    let file = std::fs::read_to_string(state.join("pop3d.log")).expect("state-dir/pop3d.log");
    assert!(
        file.lines()
            .any(|l| l.contains("ERROR") && l.contains(&path_str(&missing))),
        "{file}"
    );
}

#[test]
fn syslog_option_logs_to_syslog_beside_stderr() {
    if !is_root() {
        note("skipped: needs root (a mount namespace with its own /dev)");
        return;
    }
    let corpus = Corpus::new("p3t-log-syslog");
    let sock = corpus.dir.path().join("dev-log");
    let syslog = UnixDatagram::bind(&sock).unwrap();
    let mut args = corpus.server_args();
    args.extend(["--syslog", "--allow-root", "--listen", "127.0.0.1:0"].map(String::from));
    let mut child = in_own_dev(Some(&sock), &args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Facility mail, severity info: <22>.
    let got = syslog_until(&syslog, "listening on 127.0.0.1:", Duration::from_secs(10));
    let line = got.last().unwrap().clone();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(line.starts_with("<22>"), "{line}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("listening on 127.0.0.1:"),
        "not on stderr too: {stderr}"
    );
}

#[test]
fn log_level_overrides_pop3d_log() {
    let corpus = Corpus::new("p3t-log-level");
    let mut args = corpus.server_args();
    args.extend(["--log-level".into(), "debug".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // POP3D_LOG=error would hide the "listening on" line that start waits for.
    let server = BinServer::start_with_env(&args, "listening on ", &[("POP3D_LOG", "error")]);
    let mut c = Pop::login(server.addr, USER, PASSWORD);
    c.quit();
    let log = server.wait_for_log("command: peer=");
    assert!(log.contains("DEBUG"), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");

    let out = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_pop3d")).args(["--log-level", "chatty", "--check"]),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--log-level: \"chatty\""), "{stderr}");
}
