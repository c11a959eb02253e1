//! Hostile and broken input: each gets its precise -ERR and the server goes on serving.

mod support;

use pop3d::store::memory::MemoryStore;
use std::net::TcpStream;
use std::time::Duration;
use support::pop::Pop;
use support::{LibServer, Users};

fn server() -> LibServer {
    let store = MemoryStore::new();
    store.deliver("bob", b"Subject: x\n\nbody\n");
    LibServer::start(store, Users::of(&[("bob", "pw")]), 4)
}

#[test]
fn each_bad_line_gets_its_own_error() {
    let server = server();
    let mut c = Pop::login(server.addr, "bob", "pw");
    let long = format!("LIST {}", "1".repeat(300));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (long.into_bytes(), "-ERR Line too long"),
        (b"NOOP\0".to_vec(), "-ERR NUL byte in command"),
        (b"\xff\xfe\xfd".to_vec(), "-ERR Unknown command"),
        (
            b"USER \xc3\x28".to_vec(),
            "-ERR User name is not valid UTF-8",
        ),
        (b"".to_vec(), "-ERR Empty command"),
        (b"HELO there".to_vec(), "-ERR Unknown command"),
        (b"RETR 1\rX".to_vec(), "-ERR Invalid message number"),
    ];
    for (line, want) in cases {
        let mut bytes = line.clone();
        bytes.extend_from_slice(b"\r\n");
        c.send(&bytes);
        assert_eq!(c.line(), want, "{:?}", String::from_utf8_lossy(&line));
        // Each bad line is answered once; the session is still in step.
        assert_eq!(c.cmd("NOOP"), "+OK");
    }
    assert!(c.cmd("RETR 1").starts_with("+OK"));
    assert_eq!(c.body(), b"Subject: x\r\n\r\nbody\r\n");
}

#[test]
fn bad_utf8_user_name_before_login() {
    let server = server();
    let (mut c, _) = Pop::connect(server.addr);
    c.send(b"USER \xc3\x28\r\n");
    assert_eq!(c.line(), "-ERR User name is not valid UTF-8");
    for name in ["../x", "..", "a\x01b", "%2e%2e%2fx", "a@b@c", ".x"] {
        let r = c.cmd(&format!("USER {name}"));
        assert!(
            r.starts_with("-ERR [AUTH] Invalid user name"),
            "{name:?}: {r}"
        );
    }
    // Only the error text is ours: nothing the client sent is echoed.
    let r = c.cmd("USER +OK\x0bforged");
    assert!(!r.contains("forged"), "{r}");
}

#[test]
fn a_line_far_over_the_limit_is_dropped_whole() {
    let server = server();
    let (mut c, _) = Pop::connect(server.addr);
    let mut flood = vec![b'A'; 1 << 20];
    flood.extend_from_slice(b"\r\nCAPA\r\n");
    c.send(&flood);
    assert_eq!(c.line(), "-ERR Line too long");
    let (status, _) = c.multi_after_status();
    assert!(status.starts_with("+OK"));
}

#[test]
fn too_many_bad_commands_disconnects_and_server_goes_on() {
    let server = server();
    let (mut c, _) = Pop::connect(server.addr);
    for _ in 0..9 {
        assert_eq!(c.cmd("BOGUS"), "-ERR Unknown command");
    }
    assert_eq!(c.cmd("BOGUS"), "-ERR Too many bad commands, closing");
    assert!(c.closed());
    let mut c = Pop::login(server.addr, "bob", "pw");
    assert!(c.cmd("STAT").starts_with("+OK 1 "));
}

#[test]
fn good_commands_reset_the_bad_command_count() {
    let server = server();
    let (mut c, _) = Pop::connect(server.addr);
    for _ in 0..30 {
        assert_eq!(c.cmd("BOGUS"), "-ERR Unknown command");
        assert!(c.cmd("CAPA").starts_with("+OK"));
        c.body();
    }
}

#[test]
fn connection_dropped_mid_line_and_mid_reply() {
    let server = server();
    let (mut c, _) = Pop::connect(server.addr);
    c.send(b"USER bo");
    drop(c);
    let mut c = Pop::login(server.addr, "bob", "pw");
    c.send(b"RETR 1\r\n");
    drop(c);
    // Until the server notices the drop, the mailbox is rightly still in use.
    let mut c = Pop::login_when_free(server.addr, "bob", "pw", Duration::from_secs(5));
    assert!(c.cmd("STAT").starts_with("+OK 1 "), "nothing was deleted");
}

impl Pop<TcpStream> {
    /// Reads the status and body of a multi-line reply already requested.
    fn multi_after_status(&mut self) -> (String, Vec<u8>) {
        let status = self.line();
        let body = if status.starts_with("+OK") {
            self.body()
        } else {
            Vec::new()
        };
        (status, body)
    }
}

#[test]
fn an_overlong_line_inside_auth_is_an_abandoned_login() {
    // Each exchange cut by a line over the SASL limit counts as a failed login (with the
    // delay), not as a mere bad command: otherwise a client could start and cut exchanges
    // without end, each costing the server a lookup (and for SCRAM a key derivation).
    let server = server();
    let (mut c, _) = Pop::connect(server.addr);
    let long = "A".repeat(5000);
    for round in 1..=3 {
        assert_eq!(c.cmd("AUTH PLAIN"), "+ ", "round {round}");
        let reply = c.cmd(&long);
        assert_eq!(reply, "-ERR PLAIN response too long", "round {round}");
    }
    assert!(
        c.closed(),
        "the third abandoned exchange ends the connection"
    );
}
