//! What a host program hears: an Observer registered on the Service gets an event for each
//! login, failed login, RETR, TOP, refusal and session end, over real sockets.

mod support;

use pop3d::store::memory::MemoryStore;
use pop3d::{Event, Observer, Service};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::pop::Pop;
use support::{LibServer, Users};

/// Keeps every event as one line of text.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Observer for Recorder {
    fn event(&self, event: &Event<'_>) {
        let line = match *event {
            Event::LoggedIn {
                user,
                mechanism,
                tls,
                messages,
                ..
            } => format!("login {user} {mechanism} tls={tls} messages={messages}"),
            Event::LoginFailed {
                user, mechanism, ..
            } => format!("failed {} {mechanism}", user.unwrap_or("-")),
            Event::Retrieved { user, octets } => format!("retr {user} {octets}"),
            Event::TopSent { user, lines } => format!("top {user} {lines}"),
            Event::Refused { reason, .. } => format!("refused {reason:?}"),
            Event::Ended {
                user, end, stats, ..
            } => format!(
                "end {} {end:?} retrieved={} deleted={}",
                user.unwrap_or("-"),
                stats.retrieved,
                stats.deleted
            ),
            _ => "other".into(),
        };
        self.0.lock().unwrap().push(line);
    }
}

impl Recorder {
    /// The events so far, once `count` have come (sessions end on their own threads).
    fn wait_for(&self, count: usize) -> Vec<String> {
        for _ in 0..500 {
            let events = self.0.lock().unwrap().clone();
            if events.len() >= count {
                return events;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.0.lock().unwrap().clone()
    }
}

#[test]
fn the_observer_hears_logins_retrievals_refusals_and_ends() {
    let store = MemoryStore::new();
    store.deliver("bob", b"Subject: one\r\n\r\nbody\r\n");
    store.deliver("bob", b"Subject: two\r\n\r\nbody\r\n");
    let recorder = Arc::new(Recorder::default());
    let service = Service::new(Users::of(&[("bob", "pw")]), Arc::new(store))
        .auth_failure_delay(Duration::ZERO)
        .observer(recorder.clone());
    let server = LibServer::serving(service, 1);

    let (mut c, _) = Pop::connect(server.addr);
    c.cmd("USER bob");
    assert!(c.cmd("PASS wrong").starts_with("-ERR [AUTH]"));
    c.cmd("USER bob");
    assert!(c.cmd("PASS pw").starts_with("+OK"));
    // The only place is taken by a logged-in session: the next client is refused.
    let (_, busy) = Pop::connect(server.addr);
    assert_eq!(busy, "-ERR [SYS/TEMP] Server busy, try again later");
    assert!(c.cmd("RETR 1").starts_with("+OK"));
    c.body();
    assert!(c.cmd("TOP 2 0").starts_with("+OK"));
    c.body();
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert_eq!(c.cmd("QUIT"), "+OK Bye, 1 message deleted");

    let events = recorder.wait_for(6);
    assert_eq!(
        events,
        [
            "failed bob USER",
            "login bob USER tls=false messages=2",
            "refused Busy",
            "retr bob 22",
            "top bob 0",
            "end bob Quit retrieved=1 deleted=1",
        ]
    );
}
