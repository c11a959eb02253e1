//! The bounded worker pool: a full pool answers [SYS/TEMP] at once, and frees up again.

mod support;

use pop3d::store::memory::MemoryStore;
use std::time::{Duration, Instant};
use support::pop::Pop;
use support::{LibServer, Users};

#[test]
fn full_pool_answers_busy_at_once_then_recovers() {
    let store = MemoryStore::new();
    store.deliver("bob", b"Subject: x\n\nbody\n");
    let server = LibServer::start(store, Users::of(&[("bob", "pw")]), 2);
    let (mut a, ga) = Pop::connect(server.addr);
    let (_b, gb) = Pop::connect(server.addr);
    assert!(ga.starts_with("+OK") && gb.starts_with("+OK"));
    let started = Instant::now();
    let (mut c, gc) = Pop::connect(server.addr);
    assert_eq!(gc, "-ERR [SYS/TEMP] Server busy, try again later");
    assert!(c.closed());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "busy reply must not wait"
    );
    assert_eq!(a.cmd("QUIT"), "+OK Bye");
    assert!(a.closed());
    // The freed worker takes the next client (allow it a moment to return to the pool).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (mut d, g) = Pop::connect(server.addr);
        if g.starts_with("+OK") {
            d.cmd("USER bob");
            assert!(d.cmd("PASS pw").starts_with("+OK"));
            break;
        }
        assert!(Instant::now() < deadline, "pool did not recover: {g}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn shutdown_ends_idle_sessions_without_update() {
    let store = MemoryStore::new();
    store.deliver("bob", b"Subject: x\n\nbody\n");
    let server = LibServer::start(store.clone(), Users::of(&[("bob", "pw")]), 4);
    let mut c = Pop::login(server.addr, "bob", "pw");
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    server.stop();
    assert!(c.closed());
    assert_eq!(store.count("bob"), 1, "shutdown must not run UPDATE");
}
