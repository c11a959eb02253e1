//! The front's [`RemoteMailbox`] against the child's serving loop, over a real socket pair and
//! real pipes, with a thread in place of the child process (the identity switch and the fork
//! are what tests/privsep.rs covers, as root).

use super::channel::Channel;
use super::child::{self, Powers};
use super::frame::{Reply, Request};
use super::identity::Rules;
use super::remote_mailbox::RemoteMailbox;
use pop3d::store::memory::MemoryStore;
use pop3d::{Account, AuthError, AuthErrorKind, Authenticator, MailStore, Mailbox};
use pop3d::{MessageInfo, StoreErrorKind};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

const LIMIT: Option<Duration> = Some(Duration::from_secs(10));

/// `bob`'s mailbox in `store`, served by a thread as a child serves it.
fn remote(store: &Arc<MemoryStore>) -> (RemoteMailbox, JoinHandle<i32>) {
    let (front, theirs) = UnixStream::pair().unwrap();
    let store = store.clone();
    let child = std::thread::spawn(move || {
        let mut channel = Channel::new(theirs, None).unwrap();
        let mailbox = store.open(&Account::new("bob")).unwrap();
        child::send_list(&mut channel, mailbox.as_ref()).unwrap();
        child::hold(channel, Some(mailbox))
    });
    let mut channel = Channel::new(front, LIMIT).unwrap();
    let Ok(Reply::Opened { count }) = channel.next_reply() else {
        panic!("not opened");
    };
    (RemoteMailbox::receive(channel, count).unwrap(), child)
}

fn read_all(mailbox: &mut RemoteMailbox, index: usize) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    mailbox.read(index).unwrap().read_to_end(&mut out)?;
    Ok(out)
}

#[test]
fn messages_come_whole_a_stopped_read_leaves_no_trace_and_deletions_stick() {
    let store = Arc::new(MemoryStore::new());
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let small = b"Subject: small\n\nhello\n".to_vec();
    store.deliver("bob", &small);
    store.deliver("bob", &big);
    store.deliver("bob", b"");
    let (mut mailbox, child) = remote(&store);
    assert_eq!(mailbox.messages().len(), 3);
    assert_eq!(read_all(&mut mailbox, 0).unwrap(), small);
    // TOP: a few bytes of a message far larger than the pipe, then the next request.
    let mut head = [0u8; 10];
    mailbox.read(1).unwrap().read_exact(&mut head).unwrap();
    assert_eq!(&head[..], &big[..10]);
    assert_eq!(read_all(&mut mailbox, 1).unwrap(), big);
    assert_eq!(read_all(&mut mailbox, 2).unwrap(), b"");
    mailbox.delete(&[0, 2]).unwrap();
    // A message number the child does not have is its refusal, not a broken session.
    let e = mailbox.delete(&[3]).unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::Permanent);
    assert_eq!(read_all(&mut mailbox, 1).unwrap(), big);
    // Dropped, the mailbox is unlocked by the time drop returns.
    drop(mailbox);
    assert!(store.open(&Account::new("bob")).is_ok());
    assert_eq!(child.join().unwrap(), 0);
    assert_eq!(store.messages("bob"), vec![big]);
}

/// A front channel whose other end `script` plays, as a broken or hostile child would.
fn scripted(count: u64, script: impl FnOnce(Channel) + Send + 'static) -> RemoteMailbox {
    let (front, theirs) = UnixStream::pair().unwrap();
    std::thread::spawn(move || script(Channel::new(theirs, None).unwrap()));
    RemoteMailbox::receive(Channel::new(front, LIMIT).unwrap(), count).unwrap()
}

fn entry() -> MessageInfo {
    MessageInfo {
        size: 5,
        uidl: "u1".into(),
    }
}

/// The pipe that came with a Read request.
fn next_pipe(channel: &mut Channel) -> OwnedFd {
    match channel.next_request().unwrap() {
        Some((Request::Read { .. }, Some(pipe))) => pipe,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_child_that_dies_mid_message_or_miscounts_fails_the_read_and_the_session() {
    for honest_count in [false, true] {
        let mut mailbox = scripted(1, move |mut c| {
            c.reply(&Reply::Messages(vec![entry()])).unwrap();
            let mut pipe = std::fs::File::from(next_pipe(&mut c));
            c.reply(&Reply::Reading).unwrap();
            pipe.write_all(b"half").unwrap();
            drop(pipe);
            if honest_count {
                // Says it sent more than came: as bad as dying.
                c.reply(&Reply::Sent { octets: 5 }).unwrap();
                let _ = c.next_request();
            }
        });
        let e = read_all(&mut mailbox, 0).unwrap_err();
        assert!(e.to_string().contains("cut short"), "{e}");
        let e = mailbox.read(0).err().expect("a broken mailbox");
        assert_eq!(e.kind(), StoreErrorKind::Temporary);
        assert!(mailbox.delete(&[0]).is_err());
    }
}

#[test]
fn lists_that_do_not_add_up_are_refused() {
    let (front, theirs) = UnixStream::pair().unwrap();
    let mut c = Channel::new(theirs, None).unwrap();
    // Two entries where one was announced.
    c.reply(&Reply::Messages(vec![entry(), entry()])).unwrap();
    assert!(RemoteMailbox::receive(Channel::new(front, LIMIT).unwrap(), 1).is_err());
    let (front, _theirs) = UnixStream::pair().unwrap();
    assert!(RemoteMailbox::receive(Channel::new(front, LIMIT).unwrap(), u64::MAX).is_err());
}

struct OnlyBob;

impl Authenticator for OnlyBob {
    fn authenticate(&self, user: &str, password: &[u8]) -> Result<Account, AuthError> {
        match (user, password) {
            ("bob", b"pw") => Ok(Account::new("bob").with_ids(1000, 1000)),
            _ => Err(AuthError::rejected("no")),
        }
    }
}

#[test]
fn a_login_check_answers_with_the_account_or_the_refusal() {
    let powers = Powers {
        store: Arc::new(MemoryStore::new()),
        auth: Some(Box::new(|| Ok(Arc::new(OnlyBob) as Arc<dyn Authenticator>))),
        rules: Rules {
            first_uid: 1000,
            mail_gid: None,
            chroot: None,
        },
        tls_files: None,
    };
    for (password, want) in [(&b"pw"[..], true), (b"nope", false)] {
        let (front, theirs) = UnixStream::pair().unwrap();
        let mut front = Channel::new(front, LIMIT).unwrap();
        let mut theirs = Channel::new(theirs, None).unwrap();
        let request = Request::Authenticate {
            user: "bob".into(),
            password: password.to_vec(),
        };
        front.request(&request, None).unwrap();
        let Ok(Some((Request::Authenticate { user, password }, _))) = theirs.next_request() else {
            panic!("no request");
        };
        assert_eq!(
            child::authenticate(&mut theirs, &powers, &user, &password),
            0
        );
        match front.next_reply().unwrap() {
            Reply::Account(a) => assert!(want && a.uid == Some(1000)),
            Reply::AuthFailed { kind, .. } => {
                assert!(!want && kind == AuthErrorKind::Rejected)
            }
            other => panic!("{other:?}"),
        }
    }
}
