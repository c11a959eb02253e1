//! A real Postfix delivers into a spool by its own local delivery while pop3d (`--mbox`)
//! serves it: during open sessions and during UPDATE. Every message delivered is found once,
//! whole: either retrieved (and deleted) by a session, or left in the spool at the end. Needs
//! root (Postfix and a system account); skips otherwise.

mod support;

use pop3d::store::mbox::MboxStore;
use pop3d::{Account, MailStore};
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::maildir::write_passwd;
use support::note;
use support::pop::Pop;
use support::postfix::{Postfix, PostfixConfig, SENDER};
use support::system_user::SystemUser;
use support::temp_dir::TempDir;
use support::BinServer;

/// The messages sent, and how many rounds of sessions run while they arrive.
const MESSAGES: usize = 60;

/// The body of message `i`: its id, and a payload whose last line proves it is whole.
fn body(i: usize) -> String {
    let mut b = format!("id {i}\n");
    for l in 0..(i % 40) {
        b.push_str(&format!("line {l} of message {i}\n"));
    }
    b.push_str(&format!(
        "From the body of {i}, escaped by Postfix\nend of {i}\n"
    ));
    b
}

/// The id of a served message, checked whole: its body is exactly what was sent, with
/// Postfix's `>From ` escape.
fn id_of(served: &[u8]) -> usize {
    let text = String::from_utf8_lossy(served).replace("\r\n", "\n");
    let at = text.find("\n\nid ").expect("a body with an id") + 2;
    let id: usize = text[at + 3..].split('\n').next().unwrap().parse().unwrap();
    let want = body(id).replace("\nFrom the body", "\n>From the body");
    assert_eq!(&text[at..], want, "message {id} not whole");
    id
}

/// One session: retrieves and deletes every message, then QUIT (UPDATE).
fn session(port: u16, user: &SystemUser, seen: &mut BTreeMap<usize, usize>) {
    let addr = ([127, 0, 0, 1], port).into();
    let mut pop = Pop::login(addr, &user.name, &user.password);
    let (status, list) = pop.multi("LIST");
    assert!(status.starts_with("+OK"), "{status}");
    for line in &list {
        let n = line.split(' ').next().unwrap();
        assert!(pop.cmd(&format!("RETR {n}")).starts_with("+OK"));
        *seen.entry(id_of(&pop.body())).or_default() += 1;
        assert!(pop.cmd(&format!("DELE {n}")).starts_with("+OK"));
    }
    let bye = pop.cmd("QUIT");
    assert!(bye.starts_with("+OK"), "UPDATE: {bye}");
}

#[test]
fn postfix_delivers_during_sessions_and_updates_and_nothing_is_lost_or_doubled() {
    let Some(user) = SystemUser::create("mbx", "mbox pw") else {
        return note("skipped: needs root");
    };
    let postfix = Arc::new(Postfix::start(PostfixConfig::default()).unwrap());
    let dir = TempDir::new("mbox-postfix");
    let passwd = dir.path().join("passwd");
    write_passwd(&passwd, &[(&user.name, &user.password, dir.path())]);
    let template = format!("{}/%u", postfix.spool().display());
    let server = BinServer::start(&[
        "--passwd",
        passwd.to_str().unwrap(),
        "--mbox",
        &template,
        "--fail-delay",
        "0.05",
    ]);

    let done = Arc::new(AtomicBool::new(false));
    let sender = {
        let (postfix, done, to) = (postfix.clone(), done.clone(), postfix.address(&user.name));
        std::thread::spawn(move || {
            for i in 0..MESSAGES {
                let m = format!("From: <{SENDER}>\nTo: <{to}>\nSubject: m{i}\n\n{}", body(i));
                let sent = postfix.send(SENDER, &[&to], m.as_bytes());
                assert_eq!(sent.accepted.len(), 1, "{sent:?}");
                std::thread::sleep(Duration::from_millis(15));
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut seen = BTreeMap::new();
    let mut rounds = 0;
    // Sessions while Postfix takes the mail and for a while after, as its local delivery
    // catches up.
    let mut after: Option<std::time::Instant> = None;
    while after.is_none_or(|t| t.elapsed() < Duration::from_secs(4)) {
        session(server.port(), &user, &mut seen);
        rounds += 1;
        if after.is_none() && done.load(Ordering::SeqCst) {
            after = Some(std::time::Instant::now());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    sender.join().unwrap();
    postfix.wait_idle(Duration::from_secs(60));
    assert!(postfix.deferred().is_empty(), "{}", postfix.log());

    // What is left in the spool, read with the library.
    let spool = postfix.spool().join(&user.name);
    let mut left = MboxStore::new(spool.to_str().unwrap())
        .unwrap()
        .open(&Account::new(user.name.clone()))
        .unwrap();
    let retrieved = seen.len();
    for i in 0..left.messages().len() {
        let mut m = Vec::new();
        left.read(i).unwrap().read_to_end(&mut m).unwrap();
        *seen.entry(id_of(&m)).or_default() += 1;
    }
    note(&format!(
        "{rounds} sessions during delivery retrieved and deleted {retrieved} messages; {} left \
         in the spool",
        left.messages().len()
    ));
    let twice: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "seen more than once: {twice:?}");
    let missing: Vec<usize> = (0..MESSAGES).filter(|i| !seen.contains_key(i)).collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert!(
        retrieved > MESSAGES / 2,
        "sessions did not overlap the deliveries"
    );
}
