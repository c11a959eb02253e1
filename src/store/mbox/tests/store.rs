use super::{mbox_of, message, open, read_all, read_one, store_at};
use crate::account::Account;
use crate::store::mbox::parse::{parse, served};
use crate::store::{MailStore, StoreErrorKind};
use crate::test_dir::TestDir;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::{Duration, Instant};

fn kind(r: Result<Box<dyn crate::store::Mailbox>, crate::store::StoreError>) -> StoreErrorKind {
    r.map(drop).unwrap_err().kind()
}

#[test]
fn a_missing_spool_is_an_empty_mailbox() {
    let t = TestDir::new("mbox-missing");
    let mut m = open(&t.path().join("nobody"));
    assert!(m.messages().is_empty());
    m.delete(&[]).unwrap();
    assert!(!t.path().join("nobody").exists(), "nothing created");
}

#[test]
fn messages_are_served_and_one_session_holds_the_spool() {
    let t = TestDir::new("mbox-serve");
    let path = t.path().join("spool");
    let msgs: Vec<Vec<u8>> = (0..5).map(message).collect();
    let mbox = mbox_of(&msgs);
    fs::write(&path, &mbox).unwrap();
    let mut m = open(&path);
    assert!(read_all(&mut *m) == msgs, "served as appended");
    for (info, msg) in m.messages().iter().zip(&msgs) {
        assert_eq!(info.size, crate::wire_size(msg));
    }
    let store = store_at(&path);
    assert_eq!(kind(store.open(&Account::new("x"))), StoreErrorKind::InUse);
    // Another process too: flock(1) on the spool fails at once.
    let held = Command::new("flock")
        .args(["--nonblock", "--exclusive"])
        .arg(&path)
        .arg("true")
        .status()
        .unwrap();
    assert!(!held.success(), "flock(1) got the spool during a session");
    drop(m);
    store.open(&Account::new("x")).unwrap();
}

#[test]
fn symlinks_other_files_and_other_owners_are_refused() {
    let t = TestDir::new("mbox-refuse");
    let real = t.path().join("real");
    fs::write(&real, mbox_of(&[message(1)])).unwrap();
    std::os::unix::fs::symlink(&real, t.path().join("link")).unwrap();
    fs::create_dir(t.path().join("dir")).unwrap();
    let account = Account::new("x");
    assert_eq!(
        kind(store_at(&t.path().join("link")).open(&account)),
        StoreErrorKind::Permanent
    );
    assert_eq!(
        kind(store_at(&t.path().join("dir")).open(&account)),
        StoreErrorKind::Permanent
    );
    let owner = fs::metadata(&real).unwrap().uid();
    let other = Account::new("x").with_ids(owner + 1, 0);
    assert_eq!(
        kind(store_at(&real).open(&other)),
        StoreErrorKind::Permanent
    );
    store_at(&real)
        .open(&Account::new("x").with_ids(owner, 0))
        .unwrap();
}

#[test]
fn update_keeps_what_was_appended_during_the_session() {
    let t = TestDir::new("mbox-append");
    let path = t.path().join("spool");
    let msgs: Vec<Vec<u8>> = (0..10).map(message).collect();
    fs::write(&path, mbox_of(&msgs)).unwrap();
    let mut m = open(&path);
    let uidls: Vec<String> = m.messages().iter().map(|i| i.uidl.clone()).collect();
    // An MTA appends two messages meanwhile.
    let extra = mbox_of(&[message(100), message(101)]);
    fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&extra)
        .unwrap();
    m.delete(&[1, 4, 9, 4]).unwrap();
    drop(m);
    let mut again = open(&path);
    let got = read_all(&mut *again);
    let want: Vec<Vec<u8>> = [0, 2, 3, 5, 6, 7, 8]
        .iter()
        .map(|&i| msgs[i].clone())
        .chain([message(100), message(101)])
        .collect();
    assert!(got == want, "kept and appended messages, once each");
    let kept: Vec<&String> = again.messages().iter().take(7).map(|i| &i.uidl).collect();
    let want_uidls: Vec<&String> = [0, 2, 3, 5, 6, 7, 8].iter().map(|&i| &uidls[i]).collect();
    assert_eq!(kept, want_uidls, "UIDLs survive the deletion of others");
    assert!(!t.path().join(".spool.pop3d-journal").exists());
    assert!(!t.path().join("spool.lock").exists());
}

#[test]
fn a_spool_rewritten_by_another_program_is_neither_served_nor_updated() {
    let t = TestDir::new("mbox-rewritten");
    let path = t.path().join("spool");
    let msgs: Vec<Vec<u8>> = (0..4).map(message).collect();
    fs::write(&path, mbox_of(&msgs)).unwrap();
    let mut m = open(&path);
    // A mail reader removes message 0, in place.
    let rewritten = mbox_of(&msgs[1..]);
    fs::write(&path, &rewritten).unwrap();
    for i in 0..4 {
        assert_eq!(
            m.read(i).map(drop).unwrap_err().kind(),
            StoreErrorKind::Temporary
        );
    }
    assert_eq!(
        m.delete(&[2]).unwrap_err().kind(),
        StoreErrorKind::Temporary
    );
    assert_eq!(fs::read(&path).unwrap(), rewritten, "left as it was");
}

#[test]
fn a_header_changed_in_place_is_not_served_a_status_header_changed_is() {
    let t = TestDir::new("mbox-header-changed");
    let path = t.path().join("spool");
    let mut first = b"Status: O\n".to_vec();
    first.extend_from_slice(&message(0));
    let mbox = mbox_of(&[first, message(1)]);
    fs::write(&path, &mbox).unwrap();
    let mut m = open(&path);
    let served_before = read_one(m.as_mut(), 0);
    // A mail reader marks message 1 read, in place, as mutt does: still the same message.
    let read = String::from_utf8(mbox.clone())
        .unwrap()
        .replacen("Status: O", "Status: R", 1);
    fs::write(&path, &read).unwrap();
    assert_eq!(read_one(m.as_mut(), 0), served_before);
    // Another program changes message 2's subject without moving anything: not served.
    let changed = read.replacen("Subject: message 1", "Subject: massage 1", 1);
    assert_eq!(changed.len(), mbox.len());
    fs::write(&path, &changed).unwrap();
    assert_eq!(
        m.read(1).map(drop).unwrap_err().kind(),
        StoreErrorKind::Temporary
    );
    assert_eq!(read_one(m.as_mut(), 0), served_before);
}

#[test]
fn a_served_header_line_moved_past_a_hidden_one_is_not_served() {
    // Both rewrites keep every length, the served lines and their order: only where the
    // hidden lines are changes, which decides what is cut out.
    let t = TestDir::new("mbox-hidden-moved");
    let path = t.path().join("spool");
    let cases = [
        ("Status: RO\nSubject: x\n", "Subject: x\nStatus: RO\n"),
        (
            "Status: O\nSubject: x\nX-Keywords:     \n",
            "Status: RO\nSubject: x\nX-Keywords:    \n",
        ),
    ];
    for (before, after) in cases {
        let first = format!("{before}\nbody one\n").into_bytes();
        let mbox = mbox_of(&[first, message(1)]);
        fs::write(&path, &mbox).unwrap();
        let mut m = open(&path);
        assert_eq!(read_one(m.as_mut(), 0), b"Subject: x\n\nbody one\n");
        let moved = String::from_utf8(mbox).unwrap().replacen(before, after, 1);
        fs::write(&path, &moved).unwrap();
        assert_eq!(
            m.read(0).map(drop).unwrap_err().kind(),
            StoreErrorKind::Temporary,
            "{after:?}"
        );
        drop(m);
        assert_eq!(
            read_one(open(&path).as_mut(), 0),
            b"Subject: x\n\nbody one\n"
        );
    }
}

#[test]
fn the_mta_locks_are_waited_for_and_stale_dot_locks_broken() {
    let t = TestDir::new("mbox-locks");
    let path = t.path().join("spool");
    fs::write(&path, mbox_of(&[message(1)])).unwrap();
    let store = store_at(&path).lock_wait(Duration::from_millis(300));
    let lock = t.path().join("spool.lock");
    // A live process's dot-lock (ours) is waited for, then the login is refused for now.
    fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
    let began = Instant::now();
    assert_eq!(
        kind(store.open(&Account::new("x"))),
        StoreErrorKind::Temporary
    );
    assert!(began.elapsed() >= Duration::from_millis(300));
    // A fresh lock without a PID (Postfix writes none) is honoured too.
    fs::write(&lock, b"").unwrap();
    assert_eq!(
        kind(store.open(&Account::new("x"))),
        StoreErrorKind::Temporary
    );
    // A dead process's lock is stale and broken.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    fs::write(&lock, format!("{dead}\n")).unwrap();
    drop(store.open(&Account::new("x")).unwrap());
    assert!(!lock.exists());
    // So is one without a PID after 5 minutes.
    fs::write(&lock, b"").unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(301);
    fs::File::options()
        .write(true)
        .open(&lock)
        .unwrap()
        .set_modified(old)
        .unwrap();
    drop(store.open(&Account::new("x")).unwrap());
    assert!(!lock.exists());
    // An fcntl lock of another process (as Postfix takes it) is waited for as well.
    let mut holder = Command::new("python3")
        .args(["-c", "import fcntl,sys,time; f=open(sys.argv[1],'r+'); fcntl.lockf(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(30)"])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    assert_eq!(
        kind(store.open(&Account::new("x"))),
        StoreErrorKind::Temporary
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    drop(store.open(&Account::new("x")).unwrap());
}

#[test]
fn served_octets_are_what_the_parser_says() {
    let t = TestDir::new("mbox-hidden");
    let path = t.path().join("spool");
    let mbox = b"From a@b Thu Nov 29 22:33:52 2001\nStatus: RO\nSubject: s\nX-UID: 3\n\nbody\n\n\
From a@b Thu Nov 29 22:33:53 2001\nSubject: t\n\nno final line end"
        .to_vec();
    fs::write(&path, &mbox).unwrap();
    let mut m = open(&path);
    let p = parse(&mbox);
    let got = read_all(&mut *m);
    assert_eq!(got, [served(&mbox, &p, 0), served(&mbox, &p, 1)]);
    assert_eq!(got[0], b"Subject: s\n\nbody\n");
}

#[test]
fn a_spool_replaced_by_a_new_file_is_not_updated() {
    let t = TestDir::new("mbox-replaced");
    let path = t.path().join("spool");
    let mbox = mbox_of(&(0..3).map(message).collect::<Vec<_>>());
    fs::write(&path, &mbox).unwrap();
    let mut m = open(&path);
    // A mail reader saves the mbox as a new file and renames it over.
    fs::write(t.path().join("new"), &mbox).unwrap();
    fs::rename(t.path().join("new"), &path).unwrap();
    assert_eq!(
        m.delete(&[0]).unwrap_err().kind(),
        StoreErrorKind::Temporary
    );
    assert_eq!(fs::read(&path).unwrap(), mbox);
}
