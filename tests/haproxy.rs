//! A real HAProxy (Debian's package) in front of two pop3d processes serving the same Maildir
//! root, with PROXY protocol v2: the nodes log the real client address, and the
//! one-session-per-mailbox rule holds across them.
//!
//! The test fails, rather than passes quietly, when `haproxy` is not installed: CI installs it
//! (.ci/run).

mod support;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use support::maildir::{Corpus, PASSWORD, USER};
use support::pop::Pop;
use support::temp_dir::TempDir;
use support::BinServer;

/// The haproxy program, from PATH or the sbin directories a non-root PATH may lack.
fn haproxy_program() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("haproxy"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "haproxy is not installed, and this test needs a real one: \
                 apt-get install haproxy (.ci/run installs it)"
            )
        })
}

/// The first line of `haproxy -v`.
fn haproxy_version(program: &PathBuf) -> String {
    let out = Command::new(program)
        .arg("-v")
        .output()
        .expect("haproxy -v");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A running HAProxy, killed (by its pid) on drop.
struct HaProxy {
    child: Child,
    /// Where clients connect.
    front: SocketAddr,
    /// What haproxy printed.
    output: Arc<Mutex<String>>,
    _dir: TempDir,
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// True if something listens on 127.0.0.1:`port` (read from /proc/net/tcp, so that checking
/// makes no connection, which HAProxy would pass on to a node).
fn listening(port: u16) -> bool {
    let local = format!("0100007F:{port:04X}");
    fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 3 && fields[1] == local && fields[3] == "0A"
        })
}

/// Collects everything `r` yields into `sink`.
fn collect(r: impl Read + Send + 'static, sink: Arc<Mutex<String>>) {
    thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
}

impl HaProxy {
    /// Starts `haproxy -db` with a TCP frontend on a free loopback port and a roundrobin
    /// backend of `nodes`, each sent a PROXY v2 header; tries another port if the one picked was
    /// taken meanwhile.
    fn start(program: &PathBuf, nodes: &[SocketAddr]) -> HaProxy {
        let mut failures = String::new();
        for _ in 0..5 {
            let dir = TempDir::new("haproxy");
            let port = free_port();
            let mut cfg = format!(
                "global\n\
                 \x20   maxconn 256\n\
                 defaults\n\
                 \x20   mode tcp\n\
                 \x20   timeout connect 5s\n\
                 \x20   timeout client 60s\n\
                 \x20   timeout server 60s\n\
                 frontend pop3\n\
                 \x20   bind 127.0.0.1:{port}\n\
                 \x20   default_backend pop3d\n\
                 backend pop3d\n\
                 \x20   balance roundrobin\n"
            );
            for (i, node) in nodes.iter().enumerate() {
                cfg.push_str(&format!("    server node{i} {node} send-proxy-v2\n"));
            }
            let path = dir.path().join("haproxy.cfg");
            fs::write(&path, cfg).unwrap();
            let mut child = Command::new(program)
                .arg("-f")
                .arg(&path)
                .arg("-db")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start haproxy");
            let output = Arc::new(Mutex::new(String::new()));
            collect(child.stdout.take().unwrap(), output.clone());
            collect(child.stderr.take().unwrap(), output.clone());
            let haproxy = HaProxy {
                child,
                front: SocketAddr::from(([127, 0, 0, 1], port)),
                output,
                _dir: dir,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut haproxy = haproxy;
            loop {
                if listening(port) {
                    return haproxy;
                }
                if let Some(status) = haproxy.child.try_wait().unwrap() {
                    thread::sleep(Duration::from_millis(100));
                    failures.push_str(&format!(
                        "port {port}: {status}\n{}\n",
                        haproxy.output.lock().unwrap()
                    ));
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "haproxy not listening on {port} after 10 s:\n{}",
                    haproxy.output.lock().unwrap()
                );
                thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("haproxy did not start:\n{failures}");
    }
}

/// A pop3d node for `corpus` whose one listener takes PROXY headers from loopback.
fn node(corpus: &Corpus) -> BinServer {
    let mut args = corpus.server_args();
    args.extend(
        [
            "--proxy-listener",
            "127.0.0.1:0",
            "--proxy-trusted",
            "127.0.0.1",
        ]
        .map(String::from),
    );
    BinServer::start_announcing(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "listening for PROXY on ",
    )
}

/// The `via=` address a node logged for the client at `client`, waiting up to 5 s for one of
/// the nodes to log it; returns which node and that address.
fn served_by(nodes: &[BinServer], client: SocketAddr) -> (usize, SocketAddr) {
    let prefix = format!("connect: peer={client} via=");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found: Vec<(usize, SocketAddr)> = nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let log = n.log();
                let at = log.find(&prefix)? + prefix.len();
                let via = log[at..].lines().next()?.trim().parse().ok()?;
                Some((i, via))
            })
            .collect();
        match found[..] {
            [one] => return one,
            [] => {}
            _ => panic!("{client} logged by several nodes: {found:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "no node logged {prefix:?}:\n{}\n---\n{}",
            nodes[0].log(),
            nodes[1].log()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn haproxy_with_proxy_v2_in_front_of_two_nodes() {
    let program = haproxy_program();
    println!("HAProxy: {}", haproxy_version(&program));
    let corpus = Corpus::new("haproxy");
    let nodes = [node(&corpus), node(&corpus)];
    let haproxy = HaProxy::start(&program, &[nodes[0].addr, nodes[1].addr]);
    let front = haproxy.front;

    // Session 1 logs in and stays; session 2, sent to the other node, finds the mailbox locked.
    let mut first = Pop::login(front, USER, PASSWORD);
    let first_addr = first.stream().local_addr().unwrap();
    let (mut second, greeting) = Pop::connect(front);
    assert!(greeting.starts_with("+OK"), "{greeting}");
    let second_addr = second.stream().local_addr().unwrap();
    assert!(second.cmd(&format!("USER {USER}")).starts_with("+OK"));
    let reply = second.cmd(&format!("PASS {PASSWORD}"));
    assert!(reply.starts_with("-ERR [IN-USE]"), "{reply}");

    // Each went to its own node, which logged the client's own address (its port included),
    // not HAProxy's: HAProxy's connection shows only as via=.
    let (node_1, via_1) = served_by(&nodes, first_addr);
    let (node_2, via_2) = served_by(&nodes, second_addr);
    assert_ne!(node_1, node_2, "roundrobin sent both sessions to one node");
    for (via, client) in [(via_1, first_addr), (via_2, second_addr)] {
        assert_eq!(via.ip(), client.ip());
        assert_ne!(via.port(), client.port(), "via= is the client, not HAProxy");
        assert_ne!(via.port(), front.port());
    }
    for node in &nodes {
        let log = node.log();
        assert_eq!(log.matches("connect: peer=").count(), 1, "{log}");
    }
    nodes[node_1].log_with(
        &format!("login: user={USER} peer={first_addr} "),
        Duration::from_secs(5),
    );
    nodes[node_2].log_with(
        &format!("user={USER} peer={second_addr} "),
        Duration::from_secs(5),
    );
    assert_eq!(second.cmd("QUIT"), "+OK Bye");
    assert!(second.closed());

    // Once session 1 has quit, the mailbox is free again through HAProxy, whichever node.
    assert_eq!(first.cmd("QUIT"), "+OK Bye");
    assert!(first.closed());
    let mut third = Pop::login(front, USER, PASSWORD);
    let (status, uidls) = third.multi("UIDL");
    assert!(status.starts_with("+OK"), "{status}");
    assert_eq!(uidls.len(), corpus.messages.len());
    let by_uidl = corpus.by_uidl();
    for line in &uidls {
        let (n, uidl) = line.split_once(' ').unwrap();
        let mail = by_uidl[uidl];
        assert!(third.cmd(&format!("RETR {n}")).starts_with("+OK"));
        let got = third.body();
        assert!(
            got == mail.wire(),
            "{}: {}",
            mail.path,
            support::maildir::first_difference(&got, &mail.wire())
        );
    }
    assert_eq!(third.cmd("QUIT"), "+OK Bye");
    let (node_3, _) = served_by(&nodes, third.stream().local_addr().unwrap());
    println!(
        "sessions went to nodes {node_1}, {node_2}, {node_3}; haproxy said: {:?}",
        haproxy.output.lock().unwrap()
    );
}
