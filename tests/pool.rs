//! The bounded pool: a full pool makes room by cutting the client that has waited longest
//! before login, answers [SYS/TEMP] at once only when every session is logged in, and a
//! session's place is free again before its last reply.

mod support;

use pop3d::store::memory::MemoryStore;
use std::time::{Duration, Instant};
use support::pop::Pop;
use support::{LibServer, Users};

const BUSY: &str = "-ERR [SYS/TEMP] Server busy, try again later";

#[test]
fn a_pool_full_of_logged_in_sessions_answers_busy_at_once_then_recovers() {
    let store = MemoryStore::new();
    store.deliver("bob", b"Subject: x\n\nbody\n");
    let users = Users::of(&[("bob", "pw"), ("amy", "pw")]);
    let server = LibServer::start(store, users, 2);
    let mut a = Pop::login(server.addr, "bob", "pw");
    let mut b = Pop::login(server.addr, "amy", "pw");
    let started = Instant::now();
    let (mut c, gc) = Pop::connect(server.addr);
    assert_eq!(gc, BUSY);
    assert!(c.closed());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "busy reply must not wait"
    );
    assert!(
        b.cmd("STAT").starts_with("+OK"),
        "logged-in sessions are never cut"
    );
    assert_eq!(a.cmd("QUIT"), "+OK Bye");
    assert!(a.closed());
    // The place is given up before "+OK Bye" goes out: the next client gets in at once.
    let mut d = Pop::login(server.addr, "bob", "pw");
    assert!(d.cmd("STAT").starts_with("+OK"));
}

#[test]
fn a_full_pool_cuts_the_client_that_waited_longest_before_login() {
    let store = MemoryStore::new();
    store.deliver("bob", b"Subject: x\n\nbody\n");
    let users = Users::of(&[("bob", "pw"), ("amy", "pw")]);
    let server = LibServer::start(store, users, 3);
    let mut amy = Pop::login(server.addr, "amy", "pw");
    // Two clients that connect and say nothing fill the pool.
    let (mut silent_old, g1) = Pop::connect(server.addr);
    std::thread::sleep(Duration::from_millis(50));
    let (mut silent_new, g2) = Pop::connect(server.addr);
    assert!(g1.starts_with("+OK") && g2.starts_with("+OK"));
    // One that has spoken waits less than one that has not.
    assert!(silent_old.multi("CAPA").0.starts_with("+OK"));
    std::thread::sleep(Duration::from_millis(50));
    // A newcomer gets in, and the client that has waited longest for its own line is told.
    let (mut newcomer, g3) = Pop::connect(server.addr);
    assert!(g3.starts_with("+OK"), "{g3}");
    assert_eq!(silent_new.line(), BUSY);
    assert!(silent_new.closed());
    newcomer.cmd("USER bob");
    assert!(newcomer.cmd("PASS pw").starts_with("+OK"));
    assert!(
        silent_old.cmd("NOOP").starts_with("-ERR"),
        "still there, not logged in"
    );
    assert!(
        amy.cmd("STAT").starts_with("+OK"),
        "a logged-in session is never cut"
    );
}

#[test]
fn a_client_that_reconnects_on_bye_is_never_told_busy() {
    let store = MemoryStore::new();
    store.deliver("bob", b"Subject: x\n\nbody\n");
    let server = LibServer::start(store, Users::of(&[("bob", "pw")]), 1);
    let mut busy = 0;
    for _ in 0..200 {
        let (mut c, greeting) = Pop::connect(server.addr);
        if greeting == BUSY {
            busy += 1;
            continue;
        }
        assert_eq!(c.cmd("QUIT"), "+OK Bye");
    }
    assert_eq!(busy, 0, "{busy} of 200 sequential sessions were told busy");
}

#[test]
fn shutdown_ends_idle_sessions_without_update() {
    let store = MemoryStore::new();
    store.deliver("bob", b"Subject: x\n\nbody\n");
    let server = LibServer::start(store.clone(), Users::of(&[("bob", "pw")]), 4);
    let mut c = Pop::login(server.addr, "bob", "pw");
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    server.stop();
    assert_eq!(c.line(), "-ERR [SYS/TEMP] Server shutting down");
    assert!(c.closed());
    assert_eq!(store.count("bob"), 1, "shutdown must not run UPDATE");
}

/// An account database with a bug: it panics for one user.
struct Buggy;

impl pop3d::Authenticator for Buggy {
    fn authenticate(&self, user: &str, _: &[u8]) -> Result<pop3d::Account, pop3d::AuthError> {
        match user {
            "boom" => panic!("a bug in the host's authenticator"),
            _ => Ok(pop3d::Account::new(user)),
        }
    }
}

#[test]
fn a_session_that_panics_gives_its_place_back() {
    let service = pop3d::Service::new(
        std::sync::Arc::new(Buggy),
        std::sync::Arc::new(MemoryStore::new()),
    )
    .auth_failure_delay(Duration::ZERO);
    let server = LibServer::serving(service, 1);
    for _ in 0..3 {
        let (mut c, greeting) = Pop::connect(server.addr);
        assert!(greeting.starts_with("+OK"), "{greeting}");
        c.cmd("USER boom");
        c.send(b"PASS x\r\n");
        assert!(c.closed(), "the panicked session's connection is closed");
    }
    let mut c = Pop::login(server.addr, "alice", "any");
    assert!(c.cmd("STAT").starts_with("+OK"));
}
