//! EXPIRE in the Maildir store: only recorded retrievals expire, a damaged record expires
//! nothing, and the snapshot loses exactly what was removed.

use super::*;
use std::time::Duration;

fn names(mb: &dyn Mailbox) -> Vec<String> {
    mb.messages().iter().map(|m| m.uidl.clone()).collect()
}

#[test]
fn only_recorded_retrievals_expire() {
    let home = Home::with_maildir();
    for name in ["1000.a", "1001.b", "1002.c"] {
        home.deliver("new", name, b"Subject: x\n\nbody\n");
    }
    let mut mb = home.open_ok();
    assert_eq!(mb.expire(Duration::ZERO).unwrap(), Some(0), "no record yet");
    mb.retrieved(&[0, 2]).unwrap();
    drop(mb);
    let record = fs::read_to_string(home.maildir().join("pop3d.retrieved")).unwrap();
    assert!(record.starts_with("pop3d retrieved 1\n"), "{record}");

    // Not yet a day: nothing goes; at age zero, the two recorded do, and the snapshot says so.
    let mut mb = home.open_ok();
    assert_eq!(mb.expire(Duration::from_secs(86_400)).unwrap(), Some(0));
    assert_eq!(names(mb.as_ref()), ["1000.a", "1001.b", "1002.c"]);
    assert_eq!(mb.expire(Duration::ZERO).unwrap(), Some(2));
    assert_eq!(names(mb.as_ref()), ["1001.b"]);
    assert!(!home.maildir().join("new/1000.a").exists());
    assert!(home.maildir().join("new/1001.b").exists());
    let mut body = String::new();
    mb.read(0).unwrap().read_to_string(&mut body).unwrap();
    assert!(body.contains("body"));
    drop(mb);
    assert!(
        !home.maildir().join("pop3d.retrieved").exists(),
        "empty record kept"
    );
}

#[test]
fn a_damaged_record_expires_nothing_after_the_damage() {
    let home = Home::with_maildir();
    for name in ["1000.a", "1001.b", "1002.c"] {
        home.deliver("new", name, b"x\n");
    }
    let record = home.maildir().join("pop3d.retrieved");
    for damaged in [
        "pop3d retrieved 1\n5 1000.a\nnot a line\n5 1001.b\n",
        "pop3d retrieved 1\n5 1002.x\n5 1000.a\n",
        "pop3d sizes 1\n5 1000.a\n",
        "pop3d retrieved 1\n99999999999999999999999 1000.a\n",
    ] {
        fs::write(&record, damaged).unwrap();
        let mut mb = home.open_ok();
        let removed = mb.expire(Duration::ZERO).unwrap().unwrap();
        assert!(removed <= 1, "{damaged:?}: {removed}");
        assert!(home.maildir().join("new/1001.b").exists(), "{damaged:?}");
        assert!(home.maildir().join("new/1002.c").exists(), "{damaged:?}");
        if removed == 1 {
            assert!(!home.maildir().join("new/1000.a").exists());
            home.deliver("new", "1000.a", b"x\n");
        }
    }
    // A time in the future is not due.
    fs::write(&record, format!("pop3d retrieved 1\n{} 1000.a\n", u64::MAX)).unwrap();
    let mut mb = home.open_ok();
    assert_eq!(mb.expire(Duration::ZERO).unwrap(), Some(0));
}
