//! RFC 1939 / 2449 / 3206 behaviour over a real socket, in literal lines.

mod support;

use pop3d::store::memory::MemoryStore;
use std::time::Duration;
use support::pop::Pop;
use support::{LibServer, Users};

fn server_with(messages: &[&[u8]]) -> (LibServer, MemoryStore) {
    let store = MemoryStore::new();
    for m in messages {
        store.deliver("bob", m);
    }
    let server = LibServer::start(
        store.clone(),
        Users::of(&[("bob", "pw"), ("amy", "a b ")]),
        4,
    );
    (server, store)
}

const M1: &[u8] = b"Subject: one\n\nfirst\n";
const M2: &[u8] = b"Subject: two\r\n\r\n.dot\r\nline 2\r\nline 3\r\n";
const M3: &[u8] = b"Subject: three\n\nno final newline";

#[test]
fn greeting_capa_and_quit_before_login() {
    let (server, _) = server_with(&[]);
    let (mut c, greeting) = Pop::connect(server.addr);
    assert!(greeting.starts_with("+OK"), "{greeting}");
    let (status, caps) = c.multi("CAPA");
    assert!(status.starts_with("+OK"));
    for cap in [
        "TOP",
        "USER",
        "UIDL",
        "RESP-CODES",
        "AUTH-RESP-CODE",
        "PIPELINING",
    ] {
        assert!(caps.iter().any(|l| l == cap), "CAPA lacks {cap}: {caps:?}");
    }
    assert!(!caps.iter().any(|l| l.starts_with("IMPLEMENTATION")));
    assert_eq!(c.cmd("QUIT"), "+OK Bye");
    assert!(c.closed());
    server.stop();
}

#[test]
fn implementation_is_advertised_only_when_configured() {
    let server = LibServer::with_config(MemoryStore::new(), Users::of(&[]), 2, |service| {
        service.implementation("pop3d-test\r\n+OK forged")
    });
    let (mut c, _) = Pop::connect(server.addr);
    let (_, caps) = c.multi("CAPA");
    assert!(
        caps.contains(&"IMPLEMENTATION pop3d-test+OK forged".to_string()),
        "{caps:?}"
    );
}

#[test]
fn login_stat_list_uidl_retr_top() {
    let (server, _) = server_with(&[M1, M2, M3]);
    let (mut c, _) = Pop::connect(server.addr);
    assert!(c.cmd("user BOB").starts_with("+OK"));
    assert!(c.cmd("pass pw").starts_with("+OK"));
    let sizes = [M1.len() + 3, M2.len(), M3.len() + 2 + 2];
    let total: usize = sizes.iter().sum();
    assert_eq!(c.cmd("STAT"), format!("+OK 3 {total}"));
    let (_, list) = c.multi("LIST");
    assert_eq!(
        list,
        vec![
            format!("1 {}", sizes[0]),
            format!("2 {}", sizes[1]),
            format!("3 {}", sizes[2]),
        ]
    );
    assert_eq!(c.cmd("LIST 2"), format!("+OK 2 {}", sizes[1]));
    let (_, uidl) = c.multi("UIDL");
    assert_eq!(uidl.len(), 3);
    let (n, id) = uidl[1].split_once(' ').unwrap();
    assert_eq!(n, "2");
    assert!(id.bytes().all(|b| (0x21..=0x7e).contains(&b)) && id.len() <= 70);
    assert_eq!(c.cmd("UIDL 2"), format!("+OK {}", uidl[1]));

    assert_eq!(c.cmd("RETR 1"), format!("+OK {} octets", sizes[0]));
    assert_eq!(c.body(), b"Subject: one\r\n\r\nfirst\r\n");
    assert!(c.cmd("RETR 2").starts_with("+OK"));
    assert_eq!(c.body(), M2);
    assert!(c.cmd("RETR 3").starts_with("+OK"));
    assert_eq!(c.body(), b"Subject: three\r\n\r\nno final newline\r\n");

    assert!(c.cmd("TOP 2 0").starts_with("+OK"));
    assert_eq!(c.body(), b"Subject: two\r\n\r\n");
    assert!(c.cmd("TOP 2 2").starts_with("+OK"));
    assert_eq!(c.body(), b"Subject: two\r\n\r\n.dot\r\nline 2\r\n");
    assert!(c.cmd("TOP 2 99").starts_with("+OK"));
    assert_eq!(c.body(), M2);
    assert_eq!(c.cmd("QUIT"), "+OK Bye");
}

#[test]
fn message_numbers_are_checked_precisely() {
    let (server, _) = server_with(&[M1, M2]);
    let mut c = Pop::login(server.addr, "bob", "pw");
    let cases = [
        ("LIST 0", "-ERR Message number out of range"),
        ("LIST 4294967297", "-ERR Message number out of range"),
        ("LIST 4294967295", "-ERR No message 4294967295"),
        ("LIST 1 2", "-ERR Too many arguments"),
        ("LIST x", "-ERR Invalid message number"),
        ("LIST 3", "-ERR No message 3"),
        ("RETR", "-ERR Missing argument"),
        ("TOP 1", "-ERR Missing argument"),
        ("TOP 1 x", "-ERR Invalid line count"),
        ("DELE -1", "-ERR Invalid message number"),
        ("UIDL 9", "-ERR No message 9"),
    ];
    for (cmd, want) in cases {
        assert_eq!(c.cmd(cmd), want, "{cmd}");
    }
    assert_eq!(c.cmd("STAT"), format!("+OK 2 {}", M1.len() + 3 + M2.len()));
}

#[test]
fn dele_keeps_numbers_rset_restores_and_quit_commits() {
    let (server, store) = server_with(&[M1, M2, M3]);
    let mut c = Pop::login(server.addr, "bob", "pw");
    assert_eq!(c.cmd("DELE 2"), "+OK Message 2 deleted");
    assert_eq!(c.cmd("DELE 2"), "-ERR Message 2 is deleted");
    assert_eq!(c.cmd("RETR 2"), "-ERR Message 2 is deleted");
    assert_eq!(c.cmd("LIST 2"), "-ERR Message 2 is deleted");
    let (_, list) = c.multi("LIST");
    assert_eq!(
        list.iter()
            .map(|l| l.split(' ').next().unwrap())
            .collect::<Vec<_>>(),
        ["1", "3"]
    );
    assert!(c.cmd("RSET").starts_with("+OK 3 messages"));
    assert!(c.cmd("RETR 2").starts_with("+OK"));
    c.body();
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("DELE 3").starts_with("+OK"));
    assert_eq!(c.cmd("STAT"), format!("+OK 1 {}", M2.len()));
    assert_eq!(store.count("bob"), 3, "nothing is deleted before QUIT");
    assert_eq!(c.cmd("QUIT"), "+OK Bye, 2 messages deleted");
    assert!(c.closed());
    assert_eq!(store.messages("bob"), vec![M2.to_vec()]);
}

#[test]
fn dropped_connection_deletes_nothing() {
    let (server, store) = server_with(&[M1, M2]);
    let mut c = Pop::login(server.addr, "bob", "pw");
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("DELE 2").starts_with("+OK"));
    drop(c);
    // The mailbox lock is released when the session notices the drop; then log in again.
    let mut c = Pop::login_when_free(server.addr, "bob", "pw", Duration::from_secs(5));
    assert_eq!(c.cmd("STAT"), format!("+OK 2 {}", M1.len() + 3 + M2.len()));
    assert_eq!(store.count("bob"), 2);
}

#[test]
fn second_login_gets_in_use() {
    let (server, _) = server_with(&[M1]);
    let _first = Pop::login(server.addr, "bob", "pw");
    let (mut c, _) = Pop::connect(server.addr);
    c.cmd("USER bob");
    assert_eq!(
        c.cmd("PASS pw"),
        "-ERR [IN-USE] Mailbox is in use by another session"
    );
    // Still in AUTHORIZATION: another account can log in on the same connection.
    c.cmd("USER amy");
    assert!(c.cmd("PASS a b ").starts_with("+OK"));
}

#[test]
fn authorization_state_errors() {
    let (server, _) = server_with(&[M1]);
    let (mut c, _) = Pop::connect(server.addr);
    assert_eq!(c.cmd("STAT"), "-ERR Not allowed before login");
    assert_eq!(c.cmd("PASS pw"), "-ERR Send USER first");
    c.cmd("USER bob");
    assert_eq!(c.cmd("PASS wrong"), "-ERR [AUTH] Authentication failed");
    // A failed PASS forgets the user: RFC 1939 wants USER again.
    assert_eq!(c.cmd("PASS pw"), "-ERR Send USER first");
    c.cmd("USER nobody");
    assert_eq!(c.cmd("PASS pw"), "-ERR [AUTH] Authentication failed");
    assert!(c
        .cmd("USER ../x")
        .starts_with("-ERR [AUTH] Invalid user name"));
    assert!(c
        .cmd("USER a/b")
        .starts_with("-ERR [AUTH] Invalid user name"));
    c.cmd("USER amy");
    assert!(
        c.cmd("PASS a b ").starts_with("+OK"),
        "PASS keeps its spaces"
    );
    assert_eq!(c.cmd("USER bob"), "-ERR Already logged in");
    assert_eq!(c.cmd("NOOP"), "+OK");
}

#[test]
fn pipelined_commands_get_replies_in_order() {
    let (server, _) = server_with(&[M1, M2]);
    let (mut c, _) = Pop::connect(server.addr);
    c.send(b"USER bob\r\nPASS pw\r\nSTAT\r\nLIST\r\nRETR 1\r\nNOOP\r\nXYZ\r\nQUIT\r\n");
    assert!(c.line().starts_with("+OK"));
    assert!(c.line().starts_with("+OK Logged in"));
    assert!(c.line().starts_with("+OK 2 "));
    assert!(c.line().starts_with("+OK"));
    assert_eq!(c.body().split(|&b| b == b'\n').count(), 3);
    assert!(c.line().starts_with("+OK"));
    assert_eq!(c.body(), b"Subject: one\r\n\r\nfirst\r\n");
    assert_eq!(c.line(), "+OK");
    assert_eq!(c.line(), "-ERR Unknown command");
    assert_eq!(c.line(), "+OK Bye");
    assert!(c.closed());
}

#[test]
fn third_failed_login_closes_the_connection() {
    let (server, _) = server_with(&[M1]);
    let (mut c, _) = Pop::connect(server.addr);
    for _ in 0..2 {
        c.cmd("USER bob");
        assert_eq!(c.cmd("PASS nope"), "-ERR [AUTH] Authentication failed");
    }
    c.cmd("USER bob");
    assert_eq!(c.cmd("PASS nope"), "-ERR [AUTH] Authentication failed");
    assert!(c.closed());
    // Another connection may still log in.
    let mut c = Pop::login(server.addr, "bob", "pw");
    assert!(c.cmd("STAT").starts_with("+OK"));
}
