//! Delivery into spools: what is appended, what a session then serves, and that every failure
//! leaves the spool octet for octet as it was.

use super::{mbox_of, message, open, read_all, store_at};
use crate::account::Account;
use crate::store::delivery::{Deliver, DeliveryErrorKind, Quota};
use crate::test_dir::TestDir;
use std::fs;
use std::io::{self, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn account() -> Account {
    Account::new("p3t-mbox")
}

/// Gives `data` in reads of `piece` octets, then fails if `fail` is set.
struct Pieces<'a> {
    data: &'a [u8],
    piece: usize,
    fail: bool,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.data.is_empty() {
            return match self.fail {
                true => Err(io::Error::other("the MTA went away")),
                false => Ok(0),
            };
        }
        let n = self.piece.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn appends_to_missing_empty_and_unterminated_spools() {
    let t = TestDir::new("mbox-deliver-append");
    for (name, before) in [
        ("missing", None),
        ("empty", Some(Vec::new())),
        (
            "no-blank",
            Some(
                mbox_of(&[message(1)])[..]
                    .strip_suffix(b"\n")
                    .unwrap()
                    .to_vec(),
            ),
        ),
        (
            "no-newline",
            Some(b"From a@b  Sat Dec  5 09:00:00 2026\nSubject: x\n\nbody".to_vec()),
        ),
        ("blank", Some(mbox_of(&[message(1)]))),
    ] {
        let path = t.path().join(name);
        if let Some(before) = &before {
            fs::write(&path, before).unwrap();
        }
        let store = store_at(&path);
        let body = b"Subject: new\n\nFrom here on\n>From there\nlast line without end";
        let uidl = store.deliver(&account(), &mut &body[..]).unwrap();
        let spool = fs::read(&path).unwrap();
        assert!(
            spool.ends_with(
                b"\nSubject: new\n\n>From here on\n>From there\nlast line without end\n\n"
            ),
            "{name}"
        );
        let old = before.as_deref().unwrap_or(b"");
        let from = &spool[old.len()..];
        let from = from.strip_prefix(&b"\n"[..]).unwrap_or(from);
        let from = from.strip_prefix(&b"\n"[..]).unwrap_or(from);
        assert!(from.starts_with(b"From MAILER-DAEMON  "), "{name}");
        if !old.is_empty() {
            let at = spool.len() - from.len();
            assert_eq!(&spool[at - 2..at], b"\n\n", "{name}: a blank line before");
        }
        let mut m = open(&path);
        let n = m.messages().len();
        assert_eq!(m.messages()[n - 1].uidl, uidl, "{name}");
        let all = read_all(&mut *m);
        assert_eq!(
            all[n - 1],
            b"Subject: new\n\n>From here on\n>From there\nlast line without end\n",
            "{name}"
        );
        let earlier = if before.as_deref().is_some_and(|b| !b.is_empty()) {
            1
        } else {
            0
        };
        assert_eq!(n, earlier + 1, "{name}");
        assert!(
            spool.starts_with(before.as_deref().unwrap_or(b"")),
            "{name}"
        );
    }
}

#[test]
fn quoting_holds_across_read_boundaries() {
    let t = TestDir::new("mbox-deliver-pieces");
    let body = b"Subject: q\n\nFrom a\nFrom b\nxFrom c\nFrom\n";
    for piece in 1..8 {
        let path = t.path().join(format!("spool{piece}"));
        let mut r = Pieces {
            data: body,
            piece,
            fail: false,
        };
        store_at(&path).deliver(&account(), &mut r).unwrap();
        let spool = fs::read(&path).unwrap();
        let start = spool.iter().position(|&b| b == b'\n').unwrap() + 1;
        assert_eq!(
            &spool[start..],
            b"Subject: q\n\n>From a\n>From b\nxFrom c\nFrom\n\n",
            "pieces of {piece}"
        );
    }
}

#[test]
fn a_failing_reader_quota_or_symlink_leaves_the_spool_as_it_was() {
    let t = TestDir::new("mbox-deliver-fail");
    let path = t.path().join("spool");
    let before = mbox_of(&[message(1), message(2)])[..]
        .strip_suffix(b"\n")
        .unwrap()
        .to_vec();
    fs::write(&path, &before).unwrap();
    let big = vec![b'x'; 300 * 1024];
    let mut r = Pieces {
        data: &big,
        piece: 7000,
        fail: true,
    };
    let e = store_at(&path).deliver(&account(), &mut r).unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::Temporary);
    assert_eq!(fs::read(&path).unwrap(), before);

    let room = before.len() as u64 + 100;
    let store = store_at(&path).with_quota(Quota {
        storage: Some(room),
        messages: None,
    });
    let e = store.deliver(&account(), &mut &big[..]).unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::TooBig);
    let e = store.deliver(&account(), &mut &big[..150]).unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::OverQuota);
    assert_eq!(fs::read(&path).unwrap(), before);
    store.deliver(&account(), &mut &b"x"[..]).unwrap();
    fs::write(&path, &before).unwrap();

    let two = store_at(&path).with_quota(Quota {
        storage: None,
        messages: Some(2),
    });
    let e = two
        .deliver(&account(), &mut &b"Subject: 3\n\n"[..])
        .unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::OverQuota);
    assert_eq!(fs::read(&path).unwrap(), before);

    let link = t.path().join("link");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let e = store_at(&link)
        .deliver(&account(), &mut &b"x\n"[..])
        .unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::Temporary);
    assert!(e.detail().contains("symlink"), "{}", e.detail());
    assert_eq!(fs::read(&path).unwrap(), before);
}

#[test]
fn twins_get_distinct_uidls_as_a_session_shows_them() {
    let t = TestDir::new("mbox-deliver-twins");
    let path = t.path().join("spool");
    let store = store_at(&path);
    let uidls: Vec<String> = (0..3)
        .map(|_| {
            store
                .deliver(&account(), &mut &b"Subject: same\n\nsame\n"[..])
                .unwrap()
        })
        .collect();
    let m = open(&path);
    let shown: Vec<String> = m.messages().iter().map(|i| i.uidl.clone()).collect();
    assert_eq!(shown.len(), 3);
    // Within one second the From lines are equal too: the twins rule numbers them.
    assert_eq!(uidls.len(), 3);
    for u in &uidls {
        assert!(shown.contains(u), "{u} in {shown:?}");
    }
}

#[test]
fn an_fcntl_lock_of_another_process_is_waited_for() {
    let t = TestDir::new("mbox-deliver-lock");
    let path = t.path().join("spool");
    let before = mbox_of(&[message(1)]);
    fs::write(&path, &before).unwrap();
    let mut holder = Command::new("python3")
        .args(["-c", "import fcntl,sys,time; f=open(sys.argv[1],'r+'); fcntl.lockf(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(float(sys.argv[2]))"])
        .arg(&path)
        .arg("2")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    io::BufRead::read_line(
        &mut io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    let short = store_at(&path).lock_wait(Duration::from_millis(200));
    let e = short.deliver(&account(), &mut &b"x\n"[..]).unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::Temporary);
    assert_eq!(fs::read(&path).unwrap(), before);
    let began = Instant::now();
    let long = store_at(&path).lock_wait(Duration::from_secs(10));
    long.deliver(&account(), &mut &b"x\n"[..]).unwrap();
    assert!(
        began.elapsed() >= Duration::from_millis(300),
        "waited for the holder"
    );
    holder.wait().unwrap();
    assert_eq!(open(&path).messages().len(), 2);
}

#[test]
fn a_new_spool_is_the_accounts_and_another_owners_is_refused() {
    use std::os::unix::fs::MetadataExt;
    let t = TestDir::new("mbox-deliver-owner");
    // SAFETY: these take nothing and cannot fail.
    let (me, root) = unsafe { (libc::getuid(), libc::geteuid() == 0) };
    let other = if root { 65534 } else { me.wrapping_add(1) };
    let mut account = account();
    account.uid = Some(other);
    account.gid = Some(other);
    let theirs = t.path().join("theirs");
    fs::write(&theirs, b"").unwrap();
    let e = store_at(&theirs)
        .deliver(&account, &mut &b"x\n"[..])
        .unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::Temporary);
    assert!(e.detail().contains("owned by uid"), "{}", e.detail());
    assert_eq!(fs::read(&theirs).unwrap(), b"");
    if !root {
        return;
    }
    let new = t.path().join("new");
    store_at(&new).deliver(&account, &mut &b"x\n"[..]).unwrap();
    let meta = fs::metadata(&new).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (other, 0o600));
}
