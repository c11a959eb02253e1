//! Delivery into a Maildir, with and without a quota: what lands in `new/`, what a session
//! then sees, what `maildirsize` says, and what a failure leaves behind.

use super::{read_all, uidls, Home};
use crate::account::Account;
use crate::store::delivery::{Deliver, DeliveryErrorKind, Quota};
use crate::store::dir::Dir;
use crate::store::maildir::maildirsize;
use crate::store::maildir::MaildirStore;
use crate::store::MailStore;
use std::fs;
use std::io::{self, Read};
use std::time::{Duration, SystemTime};

fn store() -> MaildirStore {
    MaildirStore::new("%h/Maildir").unwrap()
}

fn bob(home: &Home) -> Account {
    Account::new("bob").with_home(home.0.path())
}

fn names(home: &Home, sub: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(home.maildir().join(sub))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The file's sum and a fresh count of the Maildir.
fn figures(
    home: &Home,
) -> (
    Option<crate::store::delivery::Usage>,
    crate::store::delivery::Usage,
) {
    maildirsize::sum_and_count(&Dir::open(&home.maildir()).unwrap())
}

fn quota(storage: u64, messages: u64) -> Quota {
    Quota {
        storage: Some(storage),
        messages: Some(messages),
    }
}

#[test]
fn a_delivered_message_is_served_byte_exact_with_its_sizes_in_the_name() {
    let home = Home::new();
    let store = store();
    let one = b"Subject: one\n\nbody\n".to_vec();
    let two = b"Subject: two\r\n\r\nline\r\n".to_vec();
    let u1 = store.deliver(&bob(&home), &mut &one[..]).unwrap();
    let u2 = store.deliver(&bob(&home), &mut &two[..]).unwrap();
    assert_ne!(u1, u2);
    let new = names(&home, "new");
    assert_eq!(new.len(), 2);
    assert!(names(&home, "tmp").is_empty(), "tmp/ is left empty");
    let name = new
        .iter()
        .find(|n| **n == u1)
        .expect("the UIDL is the file name");
    assert!(
        name.ends_with(&format!(",S={},W={}", one.len(), one.len() + 3)),
        "{name}"
    );
    assert!(u1.len() <= 70 && u1.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    let mode = fs::metadata(home.maildir().join("new").join(name)).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    let mut mb = home.open_ok();
    assert_eq!(uidls(&*mb), [u1.clone(), u2.clone()]);
    assert_eq!(mb.messages()[0].size, one.len() as u64 + 3);
    assert_eq!(read_all(&mut *mb, 0), one);
    assert_eq!(read_all(&mut *mb, 1), two);
    // Without a quota, no maildirsize appears.
    assert!(!home.maildir().join("maildirsize").exists());
}

/// A message source that fails after `ok` bytes: a sender gone mid-message, a full disk.
struct FailsAfter {
    ok: usize,
}

impl Read for FailsAfter {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ok == 0 {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "sender went away",
            ));
        }
        let n = buf.len().min(self.ok).min(1000);
        buf[..n].fill(b'x');
        self.ok -= n;
        Ok(n)
    }
}

#[test]
fn a_failure_mid_message_leaves_nothing_and_the_quota_as_it_was() {
    let home = Home::new();
    let store = store().with_quota(quota(1 << 20, 100));
    store.deliver(&bob(&home), &mut &b"first\n"[..]).unwrap();
    let before = fs::read(home.maildir().join("maildirsize")).unwrap();
    let e = store
        .deliver(&bob(&home), &mut FailsAfter { ok: 200_000 })
        .unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::Temporary);
    assert!(e.detail().contains("sender went away"), "{}", e.detail());
    assert_eq!(names(&home, "new").len(), 1, "nothing new in new/");
    assert!(
        names(&home, "tmp").is_empty(),
        "the partial file is removed from tmp/"
    );
    assert_eq!(
        fs::read(home.maildir().join("maildirsize")).unwrap(),
        before
    );
}

#[test]
fn quotas_bounce_by_bytes_and_by_count_and_maildirsize_keeps_up() {
    let home = Home::new();
    let store = store().with_quota(quota(100, 2));
    let msg = [b'a'; 40];
    store.deliver(&bob(&home), &mut &msg[..]).unwrap();
    let text = fs::read_to_string(home.maildir().join("maildirsize")).unwrap();
    assert_eq!(
        text, "100S,2C\n0 0\n40 1\n",
        "recalculated empty, then one line"
    );
    store.deliver(&bob(&home), &mut &msg[..30]).unwrap();
    // Count: a third message is one too many, however small.
    let e = store.deliver(&bob(&home), &mut &b"x"[..]).unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::OverQuota, "{}", e.detail());
    // Alone larger than the whole quota: too big, said before it is all read.
    let big = [b'b'; 101];
    let e = store.deliver(&bob(&home), &mut &big[..]).unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::TooBig);
    assert_eq!(names(&home, "new").len(), 2);
    assert!(names(&home, "tmp").is_empty());

    // The account's own quota wins over the store's; bytes now bind first.
    let roomy = bob(&home).with_quota(quota(100, 50));
    store.deliver(&roomy, &mut &msg[..30]).unwrap();
    let e = store.deliver(&roomy, &mut &msg[..1]).unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::OverQuota);
    assert_eq!(figures(&home), (Some(usage(100, 3)), usage(100, 3)));

    // POP3 deletions are recorded: the sum stays equal to a fresh count.
    let mut mb = home.open_ok();
    mb.delete(&[0, 2]).unwrap();
    drop(mb);
    assert_eq!(figures(&home), (Some(usage(30, 1)), usage(30, 1)));
    store.deliver(&roomy, &mut &msg[..]).unwrap();
}

fn usage(bytes: u64, messages: u64) -> crate::store::delivery::Usage {
    crate::store::delivery::Usage { bytes, messages }
}

/// Writes a maildirsize by hand, its mtime `age` ago.
fn write_maildirsize(home: &Home, text: &str, age: Duration) {
    let path = home.maildir().join("maildirsize");
    fs::write(&path, text).unwrap();
    let file = fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

#[test]
fn an_over_quota_sum_is_trusted_only_fresh_and_whole() {
    let home = Home::new();
    let store = store();
    store.deliver(&bob(&home), &mut &b"0123456789"[..]).unwrap();
    let fresh = Duration::from_secs(60);
    let stale = Duration::from_secs(16 * 60);

    // One line of figures, written a minute ago, says full: believed, no recount.
    write_maildirsize(&home, "100S\n95 1\n", fresh);
    let e = store
        .deliver(&bob(&home), &mut &b"0123456789"[..])
        .unwrap_err();
    assert_eq!(e.kind(), DeliveryErrorKind::OverQuota);

    // The same, 16 minutes old: counted again (10 bytes), so the message goes in.
    write_maildirsize(&home, "100S\n95 1\n", stale);
    store.deliver(&bob(&home), &mut &b"0123456789"[..]).unwrap();
    assert_eq!(figures(&home), (Some(usage(20, 2)), usage(20, 2)));

    // Fresh but more than one line: not trusted for a bounce either.
    write_maildirsize(&home, "100S\n50 1\n45 1\n", fresh);
    store.deliver(&bob(&home), &mut &b"0123456789"[..]).unwrap();
    let text = fs::read_to_string(home.maildir().join("maildirsize")).unwrap();
    assert_eq!(text, "100S\n20 2\n10 1\n", "the file's own quota kept");

    // A negative sum, or a file of 5120 bytes or more, is counted again at the next delivery.
    write_maildirsize(&home, "100S\n-500 -9\n", fresh);
    store.deliver(&bob(&home), &mut &b"0123456789"[..]).unwrap();
    assert_eq!(figures(&home), (Some(usage(40, 4)), usage(40, 4)));
    write_maildirsize(&home, &format!("100S\n{}", "0 0\n".repeat(1300)), fresh);
    store.deliver(&bob(&home), &mut &b"0123456789"[..]).unwrap();
    let text = fs::read_to_string(home.maildir().join("maildirsize")).unwrap();
    assert_eq!(text, "100S\n40 4\n10 1\n");

    // A quota configured now, different from the file's: the file is rewritten with it.
    let store = store.with_quota(quota(1000, 10));
    store.deliver(&bob(&home), &mut &b"0123456789"[..]).unwrap();
    let text = fs::read_to_string(home.maildir().join("maildirsize")).unwrap();
    assert_eq!(text, "1000S,10C\n50 5\n10 1\n");
}

#[test]
fn a_recount_skips_trash_and_deleted_messages_and_counts_folders() {
    let home = Home::with_maildir();
    home.deliver("new", "1.M1.h,S=7", b"1234567");
    home.deliver("cur", "2.M1.h:2,S", b"123");
    home.deliver("cur", "3.M1.h:2,ST", b"deleted, flagged");
    for folder in [".Sent", ".Trash"] {
        fs::create_dir_all(home.maildir().join(folder).join("cur")).unwrap();
        fs::write(
            home.maildir().join(folder).join("cur/4.M1.h,S=100:2,S"),
            b"x",
        )
        .unwrap();
    }
    store()
        .with_quota(quota(10_000, 0))
        .deliver(&bob(&home), &mut &b"12345"[..])
        .unwrap();
    // 7 + 3 + 100 (,S= believed) + 5 just delivered; not Trash, not the T-flagged one.
    assert_eq!(figures(&home), (Some(usage(115, 4)), usage(115, 4)));
}

#[test]
fn concurrent_deliveries_and_deletions_never_make_the_figures_drift() {
    let home = Home::new();
    // Small enough that recalculations happen along the way (the file passes 5120 bytes).
    let store = store().with_quota(quota(1 << 30, 100_000));
    store.deliver(&bob(&home), &mut &b"seed\n"[..]).unwrap();
    std::thread::scope(|s| {
        for t in 0..6 {
            let (store, account) = (&store, bob(&home));
            s.spawn(move || {
                for i in 0..120 {
                    let body = format!("From: t{t}\n\nmessage {i} {}\n", "x".repeat(i * 7));
                    store.deliver(&account, &mut body.as_bytes()).unwrap();
                }
            });
        }
        s.spawn(|| {
            for _ in 0..40 {
                if let Ok(mut mb) = store.open(&bob(&home)) {
                    let n = mb.messages().len();
                    let doomed: Vec<usize> = (0..n).step_by(3).collect();
                    mb.delete(&doomed).unwrap();
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
    });
    let (sum, count) = figures(&home);
    assert_eq!(sum, Some(count));
    let mb = home.open_ok();
    assert_eq!(mb.messages().len() as u64, count.messages);
}

#[test]
fn leftovers_older_than_36_hours_are_cleaned_from_tmp() {
    let home = Home::with_maildir();
    let old = home.maildir().join("tmp/1.M1P1.crashed");
    let young = home.maildir().join("tmp/2.M1P1.writing");
    fs::write(&old, b"part").unwrap();
    fs::write(&young, b"part").unwrap();
    let file = fs::File::options().write(true).open(&old).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(37 * 3600))
        .unwrap();
    store().deliver(&bob(&home), &mut &b"x\n"[..]).unwrap();
    assert!(!old.exists());
    assert!(young.exists());
}

#[test]
fn files_made_as_root_belong_to_the_maildir_owner() {
    // SAFETY: geteuid takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: needs root");
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let home = Home::with_maildir();
    for sub in ["", "new", "cur", "tmp"] {
        std::os::unix::fs::chown(home.maildir().join(sub), Some(65534), Some(65534)).unwrap();
    }
    let account = bob(&home).with_ids(65534, 65534);
    store()
        .with_quota(quota(1 << 20, 100))
        .deliver(&account, &mut &b"x\n"[..])
        .unwrap();
    let mut made = vec![
        home.maildir().join("maildirsize"),
        home.maildir().join("pop3d.quota.lock"),
    ];
    made.extend(
        names(&home, "new")
            .iter()
            .map(|n| home.maildir().join("new").join(n)),
    );
    assert_eq!(made.len(), 3);
    for path in made {
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (65534, 65534),
            "{}",
            path.display()
        );
    }
}
