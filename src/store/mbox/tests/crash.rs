//! UPDATE stopped after each of its steps, as a crash would stop it, then the spool opened
//! again: every kept message is there once, byte-exact, and the deleted ones are all gone.

use super::{mbox_of, message, read_all};
use crate::store::mbox::journal::Step;
use crate::store::mbox::MboxMailbox;
use crate::test_dir::TestDir;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

fn open_concrete(path: &Path) -> MboxMailbox {
    MboxMailbox::open(path.to_path_buf(), None, Duration::from_secs(2)).unwrap()
}

#[test]
fn a_crash_after_any_step_of_update_loses_nothing() {
    let steps = [
        Step::Journaled,
        Step::TailWritten,
        Step::TailSynced,
        Step::Truncated,
    ];
    for step in steps {
        for append_after in [false, true] {
            let t = TestDir::new("mbox-crash");
            let path = t.path().join("spool");
            let msgs: Vec<Vec<u8>> = (0..40).map(message).collect();
            fs::write(&path, mbox_of(&msgs)).unwrap();
            let deleted = [3, 4, 10, 11, 12, 30, 39];
            let mut m = open_concrete(&path);
            m.update(&deleted, Some(step)).unwrap();
            drop(m);
            assert!(t.path().join(".spool.pop3d-journal").exists(), "{step:?}");
            let mut want: Vec<Vec<u8>> = (0..40)
                .filter(|i| !deleted.contains(i))
                .map(|i| msgs[i].clone())
                .collect();
            if append_after {
                // An MTA broke the dead session's locks and delivered.
                let extra = mbox_of(&[message(500)]);
                fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .unwrap()
                    .write_all(&extra)
                    .unwrap();
                want.push(message(500));
            }
            let mut again = open_concrete(&path);
            assert!(
                read_all(&mut again) == want,
                "{step:?}, appended: {append_after}"
            );
            assert!(!t.path().join(".spool.pop3d-journal").exists());
        }
    }
}

#[test]
fn a_journal_that_does_not_check_out_is_removed_and_the_spool_left_alone() {
    let t = TestDir::new("mbox-badjournal");
    let path = t.path().join("spool");
    let mbox = mbox_of(&(0..5).map(message).collect::<Vec<_>>());
    fs::write(&path, &mbox).unwrap();
    let mut m = open_concrete(&path);
    m.update(&[1], Some(Step::Journaled)).unwrap();
    drop(m);
    let journal = t.path().join(".spool.pop3d-journal");
    let mut bytes = fs::read(&journal).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&journal, &bytes).unwrap();
    let again = open_concrete(&path);
    assert_eq!(again.parsed.len(), 5);
    assert_eq!(fs::read(&path).unwrap(), mbox);
    assert!(!journal.exists());
}

#[test]
fn a_spool_changed_by_another_program_after_a_crash_keeps_the_journal_aside() {
    let t = TestDir::new("mbox-aside");
    let path = t.path().join("spool");
    fs::write(&path, mbox_of(&(0..5).map(message).collect::<Vec<_>>())).unwrap();
    let mut m = open_concrete(&path);
    m.update(&[1], Some(Step::Truncated)).unwrap();
    drop(m);
    let other = mbox_of(&[message(7)]);
    fs::write(&path, &other).unwrap();
    let again = open_concrete(&path);
    assert_eq!(again.parsed.len(), 1);
    assert_eq!(fs::read(&path).unwrap(), other);
    let aside: Vec<_> = fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".bad"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
}
