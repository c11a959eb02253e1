//! What an open Maildir keeps open while the session is idle, counted in `/proc/self/fd`.
//!
//! Other tests of this binary open and close files on other threads at any moment, so the
//! counting runs in a child process: this test binary again, told to run this one test alone.

use super::*;
use std::process::Command;

/// Set in the child that does the counting.
const CHILD: &str = "POP3D_TEST_DESCRIPTOR_CHILD";

/// Runs the test `name` (a path below this module) alone in a child process, unless this is
/// that child: true if the caller is the child and should do the work.
fn in_child(name: &str) -> bool {
    if std::env::var_os(CHILD).is_some() {
        return true;
    }
    let full = format!(
        "{}::{name}",
        module_path!().split_once("::").map_or("", |(_, m)| m)
    );
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", &full, "--test-threads=1", "--nocapture"])
        .env(CHILD, "1")
        .output()
        .expect("run the test binary");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(text.contains("1 passed"), "the child ran no test:\n{text}");
    false
}

/// The process's open descriptors, each with what it names, less the one listing them.
fn open_descriptors() -> Vec<(String, PathBuf)> {
    let mut fds: Vec<(String, PathBuf)> = fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .map(|e| {
            let e = e.expect("entry");
            let target = fs::read_link(e.path()).unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), target)
        })
        .filter(|(_, target)| !target.starts_with("/proc"))
        .collect();
    fds.sort();
    fds
}

/// The descriptors in `now` that were not in `before`, as the paths they name.
fn added(before: &[(String, PathBuf)], now: &[(String, PathBuf)]) -> Vec<PathBuf> {
    now.iter()
        .filter(|fd| !before.contains(fd))
        .map(|(_, target)| target.clone())
        .collect()
}

#[test]
fn an_idle_mailbox_holds_one_descriptor() {
    if !in_child("an_idle_mailbox_holds_one_descriptor") {
        return;
    }
    let home = Home::with_maildir();
    home.deliver("new", "1000.a", b"new mail\n");
    home.deliver("cur", "2000.b:2,S", b"seen mail\n");
    home.deliver("new", "3000.c", b"more\n");
    let before = open_descriptors();
    let mut mb = home.open_ok();
    let held = added(&before, &open_descriptors());
    eprintln!("held while idle: {held:?}");
    assert!(held.len() <= 1, "an idle mailbox holds {held:?}");
    assert_eq!(
        held,
        [home.maildir()],
        "the one descriptor is the Maildir's"
    );

    // Reading and deleting open what they need and close it again.
    assert_eq!(read_all(&mut *mb, 1), b"seen mail\n");
    assert_eq!(added(&before, &open_descriptors()), held);
    mb.delete(&[0, 2]).expect("delete");
    assert_eq!(added(&before, &open_descriptors()), held);

    drop(mb);
    assert_eq!(added(&before, &open_descriptors()), Vec::<PathBuf>::new());
    assert_eq!(uidls(&*home.open_ok()), ["2000.b"]);
}
