//! The Maildir store through its public face: open, list, read, delete, against real files.

use super::*;
use crate::protocol::message::wire_size as wire_size_of;
use crate::store::lock::tests::OtherProcess;
use crate::test_dir::TestDir;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;

/// A home directory for one test, removed when dropped. Its Maildir is `<home>/Maildir`.
struct Home(TestDir);

impl Home {
    fn new() -> Home {
        Home(TestDir::new("maildir"))
    }

    fn maildir(&self) -> PathBuf {
        self.0.path().join("Maildir")
    }

    /// Creates the Maildir with its three subdirectories.
    fn with_maildir() -> Home {
        let home = Home::new();
        for sub in ["new", "cur", "tmp"] {
            fs::create_dir_all(home.maildir().join(sub)).expect("create maildir");
        }
        home
    }

    /// Writes a message file `<Maildir>/<sub>/<name>`.
    fn deliver(&self, sub: &str, name: impl AsRef<OsStr>, content: &[u8]) -> PathBuf {
        let path = self.maildir().join(sub).join(name.as_ref());
        fs::write(&path, content).expect("deliver");
        path
    }

    fn open(&self) -> Result<Box<dyn Mailbox>, StoreError> {
        let store = MaildirStore::new("%h/Maildir").expect("template");
        store.open(&Account::new("bob").with_home(self.0.path()))
    }

    /// Opens, waiting a moment if a lock just released is still held: other tests fork
    /// children, which share our open lock file until their exec (see lock.rs tests).
    fn open_ok(&self) -> Box<dyn Mailbox> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            match self.open() {
                Err(e) if e.kind() == StoreErrorKind::InUse => {
                    assert!(std::time::Instant::now() < deadline, "lock not released");
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                r => return r.expect("open maildir"),
            }
        }
    }
}

fn uidls(mailbox: &dyn Mailbox) -> Vec<String> {
    mailbox.messages().iter().map(|m| m.uidl.clone()).collect()
}

fn read_all(mailbox: &mut dyn Mailbox, index: usize) -> Vec<u8> {
    let mut out = Vec::new();
    mailbox
        .read(index)
        .expect("read")
        .read_to_end(&mut out)
        .expect("read to end");
    out
}

fn open_kind(home: &Home) -> Option<StoreErrorKind> {
    home.open().err().map(|e| e.kind())
}

#[test]
fn w_hint_is_used_without_reading_when_believable() {
    let home = Home::with_maildir();
    // Counting would say 7 and 3: the hints are used, being within reach of the file sizes.
    home.deliver("new", "1000.M1P1.host,S=5,W=9", b"hello");
    home.deliver("cur", "1001.M1P1.host,W=2:2,S", b"x");
    // Hints that cannot be true (more than twice the file, or an S= that is not the file's
    // size) are not believed: the message is counted.
    home.deliver("new", "1002.M1P1.host,S=5,W=999", b"hello");
    home.deliver("new", "1003.M1P1.host,S=4,W=7", b"hello");
    home.deliver("new", "1004.M1P1.host,W=4", b"hello");
    let mb = home.open_ok();
    let sizes: Vec<u64> = mb.messages().iter().map(|m| m.size).collect();
    assert_eq!(sizes, [9, 2, 7, 7, 7]);
}

#[test]
fn size_without_hint_is_the_wire_size() {
    let home = Home::with_maildir();
    // More than one chunk, with a line end right at the chunk boundary.
    let mut big = vec![b'x'; limits::MESSAGE_CHUNK - 1];
    big.push(b'\n');
    big.extend_from_slice(b"\nmore\nlines\n".repeat(3000).as_slice());
    let cases: [(&str, &[u8], u64); 5] = [
        ("1000.lf,S=8", b"a\nbc\n\nd\n", 12),
        ("1001.crlf", b"a\r\nbc\r\n\r\nd\r\n", 12),
        ("1002.unterminated", b"a\nbc", 7),
        ("1003.empty", b"", 0),
        ("1004.big", &big, wire_size_of(&big)),
    ];
    for (name, content, _) in &cases {
        home.deliver("new", name, content);
    }
    let mb = home.open_ok();
    let sizes: Vec<u64> = mb.messages().iter().map(|m| m.size).collect();
    let want: Vec<u64> = cases.iter().map(|c| c.2).collect();
    assert_eq!(sizes, want);
    for (name, content, size) in &cases {
        assert_eq!(wire_size_of(content), *size, "{name}");
    }
    assert!(
        want[4] > big.len() as u64,
        "the big case must have LFs to count"
    );
}

#[test]
fn counted_sizes_are_cached_and_the_cache_follows_the_directory() {
    let home = Home::with_maildir();
    home.deliver("new", "1000.a,S=2", b"a\n");
    home.deliver("new", "2000.b,W=5", b"bb\n");
    home.deliver("cur", "3000.c:2,S", b"c\nc\n");
    let cache = home.maildir().join(size_cache::FILE);
    let sizes = |mb: &dyn Mailbox| mb.messages().iter().map(|m| m.size).collect::<Vec<_>>();
    assert_eq!(sizes(&*home.open_ok()), [3, 5, 6]);
    // Only the names without ,W= are kept, in scan order.
    assert_eq!(
        fs::read(&cache).expect("cache written"),
        b"pop3d sizes 1\n3 1000.a,S=2\n6 3000.c\n"
    );
    // The next login takes the sizes from the cache, not from the files.
    fs::write(&cache, b"pop3d sizes 1\n4 1000.a,S=2\n7 3000.c\n").expect("edit");
    assert_eq!(sizes(&*home.open_ok()), [4, 5, 7]);
    assert_eq!(
        fs::read(&cache).expect("cache"),
        b"pop3d sizes 1\n4 1000.a,S=2\n7 3000.c\n",
        "a cache that matched is not rewritten"
    );
    // A removed message leaves the cache, a new one is counted and joins it.
    fs::remove_file(home.maildir().join("cur/3000.c:2,S")).expect("rm");
    home.deliver("new", "4000.d", b"dddd");
    assert_eq!(sizes(&*home.open_ok()), [4, 5, 6]);
    assert_eq!(
        fs::read(&cache).expect("cache"),
        b"pop3d sizes 1\n4 1000.a,S=2\n6 4000.d\n"
    );
    // A size the file cannot have is not believed: counted, and the cache corrected.
    fs::write(&cache, b"pop3d sizes 1\n30 1000.a,S=2\n6 4000.d\n").expect("edit");
    assert_eq!(sizes(&*home.open_ok()), [3, 5, 6]);
    assert_eq!(
        fs::read(&cache).expect("cache"),
        b"pop3d sizes 1\n3 1000.a,S=2\n6 4000.d\n"
    );
    // A damaged cache is ignored and replaced.
    fs::write(&cache, b"garbage").expect("damage");
    assert_eq!(sizes(&*home.open_ok()), [3, 5, 6]);
    assert_eq!(
        fs::read(&cache).expect("cache"),
        b"pop3d sizes 1\n3 1000.a,S=2\n6 4000.d\n"
    );
}

#[test]
fn uidl_is_the_basename_when_it_is_a_valid_uidl() {
    let home = Home::with_maildir();
    let name70 = format!("1000.{}", "a".repeat(65));
    home.deliver("cur", "1000.M1P1.host,S=5:2,S", b"x\n");
    home.deliver("new", &name70, b"x\n");
    let mb = home.open_ok();
    assert_eq!(uidls(&*mb), ["1000.M1P1.host,S=5", name70.as_str()]);
}

#[test]
fn uidl_is_a_digest_for_long_or_odd_names() {
    let home = Home::with_maildir();
    let name71 = format!("1000.{}", "a".repeat(66));
    home.deliver("new", &name71, b"x\n");
    home.deliver("new", "a b", b"x\n");
    home.deliver("new", OsStr::from_bytes(b"b\xff:2,S"), b"x\n");
    home.deliver("new", "b\x7f", b"x\n");
    let mb = home.open_ok();
    let got = uidls(&*mb);
    // Sorted by basename: "1000.aaa…", "a b", "b\x7f", "b\xff".
    assert_eq!(got.len(), 4);
    // SHA-256("a b") = c8687a08aa5d6ed2044328fa6a697ab8e96dc342…
    assert_eq!(got[1], "c8687a08aa5d6ed2044328fa6a697ab8");
    for u in &got {
        assert_eq!(u.len(), 32, "{u}");
        assert!(u.bytes().all(|b| b.is_ascii_hexdigit()), "{u}");
    }
    assert_ne!(got[0], name71);
    let distinct: std::collections::HashSet<_> = got.iter().collect();
    assert_eq!(distinct.len(), 4);
}

#[test]
fn uidl_is_stable_across_sessions_and_moves() {
    let home = Home::with_maildir();
    let long = format!("1000.{}", "L".repeat(80));
    home.deliver("new", &long, b"x\n");
    home.deliver("new", "1001.M2P2.host", b"y\n");
    let before = uidls(&*home.open_ok());
    assert_eq!(before, uidls(&*home.open_ok()));
    let new = home.maildir().join("new");
    let cur = home.maildir().join("cur");
    fs::rename(new.join(&long), cur.join(format!("{long}:2,S"))).expect("move");
    fs::rename(new.join("1001.M2P2.host"), cur.join("1001.M2P2.host:2,RS")).expect("move");
    assert_eq!(before, uidls(&*home.open_ok()));
    assert_eq!(before[1], "1001.M2P2.host");
}

#[test]
fn order_is_by_basename_listed_once_and_only_messages() {
    let home = Home::with_maildir();
    home.deliver("new", "3000.c", b"3\n");
    home.deliver("cur", "1000.a:2,S", b"1\n");
    home.deliver("new", "2000.b", b"2\n");
    home.deliver("cur", "2000.b:2,S", b"2\n");
    home.deliver("new", ".hidden", b"h\n");
    home.deliver("cur", ".0000.dot:2,", b"h\n");
    fs::create_dir(home.maildir().join("cur/0000.subdir")).expect("mkdir");
    std::os::unix::fs::symlink(
        home.maildir().join("new/3000.c"),
        home.maildir().join("new/0001.link"),
    )
    .expect("symlink");
    home.deliver("tmp", "0002.in-delivery", b"t\n");
    let mb = home.open_ok();
    assert!(home.maildir().join(LOCK_FILE).is_file());
    assert_eq!(uidls(&*mb), ["1000.a", "2000.b", "3000.c"]);
}

#[test]
fn missing_maildir_is_created_and_opens_empty() {
    let home = Home::new();
    let mb = home.open_ok();
    assert!(mb.messages().is_empty());
    for sub in ["", "new", "cur", "tmp"] {
        let meta = fs::metadata(home.maildir().join(sub)).expect("created");
        assert!(meta.is_dir());
        assert_eq!(meta.permissions().mode() & 0o777, 0o700, "{sub}");
    }
}

#[test]
fn unexpandable_template_is_permanent() {
    let store = MaildirStore::new("%h/Maildir").expect("template");
    let e = store.open(&Account::new("bob")).err().expect("no home");
    assert_eq!(e.kind(), StoreErrorKind::Permanent);
    assert!(MaildirStore::new("/var/mail/%q").is_err());
}

#[test]
fn second_open_in_the_process_is_in_use() {
    let home = Home::with_maildir();
    home.deliver("new", "1000.a", b"x\n");
    let first = home.open_ok();
    assert_eq!(open_kind(&home), Some(StoreErrorKind::InUse));
    drop(first);
    assert_eq!(home.open_ok().messages().len(), 1);
}

#[test]
fn lock_held_by_another_process_is_in_use_until_it_dies() {
    let home = Home::with_maildir();
    home.deliver("new", "1000.a", b"x\n");
    let other = OtherProcess::lock(&home.maildir().join(LOCK_FILE));
    assert_eq!(open_kind(&home), Some(StoreErrorKind::InUse));
    other.kill();
    assert_eq!(home.open_ok().messages().len(), 1);
}

#[test]
fn read_follows_a_message_moved_to_cur() {
    let home = Home::with_maildir();
    home.deliver("new", "1000.a", b"first\n");
    home.deliver("new", "2000.b", b"second\n");
    let mut mb = home.open_ok();
    let maildir = home.maildir();
    fs::rename(maildir.join("new/1000.a"), maildir.join("cur/1000.a:2,S")).expect("mv");
    fs::rename(maildir.join("new/2000.b"), maildir.join("cur/2000.b:2,")).expect("mv");
    fs::rename(
        maildir.join("cur/2000.b:2,"),
        maildir.join("cur/2000.b:2,RS"),
    )
    .expect("mv");
    assert_eq!(read_all(&mut *mb, 0), b"first\n");
    assert_eq!(read_all(&mut *mb, 1), b"second\n");
    // Messages are never rewritten or renamed by reading.
    assert!(maildir.join("cur/1000.a:2,S").is_file());
}

#[test]
fn read_of_a_message_removed_by_another_program_is_temporary() {
    let home = Home::with_maildir();
    let path = home.deliver("new", "1000.a", b"x\n");
    let mut mb = home.open_ok();
    fs::remove_file(path).expect("rm");
    let e = mb.read(0).err().expect("gone");
    assert_eq!(e.kind(), StoreErrorKind::Temporary);
}

#[test]
fn delete_follows_a_moved_message() {
    let home = Home::with_maildir();
    home.deliver("new", "1000.a", b"x\n");
    let mut mb = home.open_ok();
    let maildir = home.maildir();
    fs::rename(maildir.join("new/1000.a"), maildir.join("cur/1000.a:2,S")).expect("mv");
    mb.delete(&[0]).expect("delete");
    drop(mb);
    assert!(home.open_ok().messages().is_empty());
}

#[test]
fn delete_removes_every_copy_of_a_duplicate() {
    let home = Home::with_maildir();
    home.deliver("new", "1000.a", b"x\n");
    home.deliver("cur", "1000.a:2,S", b"x\n");
    let mut mb = home.open_ok();
    assert_eq!(mb.messages().len(), 1);
    mb.delete(&[0]).expect("delete");
    drop(mb);
    assert!(home.open_ok().messages().is_empty());
}

#[test]
fn delete_of_an_already_removed_message_is_ok() {
    let home = Home::with_maildir();
    let path = home.deliver("new", "1000.a", b"x\n");
    let mut mb = home.open_ok();
    fs::remove_file(path).expect("rm");
    mb.delete(&[0]).expect("already gone counts as deleted");
}

#[test]
fn delete_removes_exactly_the_given_messages() {
    let home = Home::with_maildir();
    let contents: [&[u8]; 4] = [b"zero\n", b"one\r\n", b"two", b".three\n\n"];
    let mut paths = Vec::new();
    for (i, content) in contents.iter().enumerate() {
        paths.push(home.deliver("new", format!("100{i}.m"), content));
    }
    let mut mb = home.open_ok();
    mb.delete(&[3, 1, 3]).expect("delete");
    drop(mb);
    for (i, path) in paths.iter().enumerate() {
        if i % 2 == 1 {
            assert!(!path.exists(), "{i} should be deleted");
        } else {
            assert_eq!(fs::read(path).expect("kept"), contents[i], "{i}");
        }
    }
    assert_eq!(uidls(&*home.open_ok()), ["1000.m", "1002.m"]);
}

#[test]
fn index_out_of_range_is_temporary_and_deletes_nothing() {
    let home = Home::with_maildir();
    let path = home.deliver("new", "1000.a", b"x\n");
    let mut mb = home.open_ok();
    let e = mb.read(1).err().expect("out of range");
    assert_eq!(e.kind(), StoreErrorKind::Temporary);
    let e = mb.delete(&[0, 1]).expect_err("out of range");
    assert_eq!(e.kind(), StoreErrorKind::Temporary);
    assert!(path.exists());
}

#[test]
fn delete_failure_is_reported_and_leaves_the_message() {
    let home = Home::with_maildir();
    let kept = home.deliver("new", "1000.a", b"x\n");
    home.deliver("new", "2000.b", b"y\n");
    let mut mb = home.open_ok();
    // A directory where the file was: unlink fails with EISDIR, which is not "gone".
    fs::remove_file(&kept).expect("rm");
    fs::create_dir(&kept).expect("mkdir");
    let e = mb.delete(&[0, 1]).expect_err("one delete fails");
    assert_eq!(e.kind(), StoreErrorKind::Temporary);
    assert!(e.detail().contains("1 of 2"), "{}", e.detail());
    assert!(kept.is_dir());
    assert!(!home.maildir().join("new/2000.b").exists());
}

#[test]
fn mail_delivered_after_open_waits_for_the_next_session() {
    let home = Home::with_maildir();
    home.deliver("new", "1000.a", b"a\n");
    home.deliver("cur", "2000.b:2,S", b"b\n");
    let mut mb = home.open_ok();
    let late = home.deliver("new", "3000.late", b"late\n");
    assert_eq!(uidls(&*mb), ["1000.a", "2000.b"]);
    mb.delete(&[0, 1]).expect("delete");
    drop(mb);
    assert_eq!(fs::read(&late).expect("late mail kept"), b"late\n");
    assert_eq!(uidls(&*home.open_ok()), ["3000.late"]);
}

mod deliver;
mod descriptors;
mod expiry;
mod swapped;
mod uidls;
