//! `cur/` and `new/` are opened again for each read and removal: what was swapped in since
//! the login is refused then, as it would have been at the login.

use super::*;
use std::os::unix::fs::symlink;

/// A Maildir with one message in `cur/`, opened, and a directory outside it holding a file of
/// the same name.
fn opened_with_decoy() -> (Home, Box<dyn Mailbox>, PathBuf) {
    let home = Home::with_maildir();
    home.deliver("cur", "1000.a:2,S", b"mine\n");
    let mb = home.open_ok();
    let decoy = home.0.path().join("elsewhere");
    fs::create_dir(&decoy).expect("mkdir");
    fs::write(decoy.join("1000.a:2,S"), b"not yours\n").expect("write");
    (home, mb, decoy)
}

#[test]
fn a_cur_swapped_for_a_symlink_after_login_is_refused() {
    let (home, mut mb, decoy) = opened_with_decoy();
    let cur = home.maildir().join("cur");
    fs::rename(&cur, home.maildir().join("cur.old")).expect("move cur away");
    symlink(&decoy, &cur).expect("symlink");

    let e = mb.read(0).err().expect("read through a symlinked cur/");
    assert_eq!(e.kind(), StoreErrorKind::Temporary);
    assert!(
        e.detail().contains("cur/ is no longer a directory"),
        "{}",
        e.detail()
    );
    let e = mb
        .delete(&[0])
        .expect_err("delete through a symlinked cur/");
    assert_eq!(e.kind(), StoreErrorKind::Temporary);
    assert_eq!(
        fs::read(decoy.join("1000.a:2,S")).expect("decoy"),
        b"not yours\n"
    );
}

#[test]
fn a_cur_given_to_another_owner_after_login_is_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: changing a directory's owner needs root");
        return;
    }
    let home = Home::with_maildir();
    home.deliver("cur", "1000.a:2,S", b"mine\n");
    let store = MaildirStore::new("%h/Maildir").expect("template");
    let mut account = Account::new("bob").with_home(home.0.path());
    account.uid = Some(0);
    let mut mb = store.open(&account).expect("open");
    let cur = home.maildir().join("cur");
    std::os::unix::fs::chown(&cur, Some(4242), None).expect("chown");

    let e = mb.read(0).err().expect("read from a cur/ of another owner");
    assert_eq!(e.kind(), StoreErrorKind::Temporary);
    assert!(e.detail().contains("owned by uid 4242"), "{}", e.detail());
    assert!(mb.delete(&[0]).is_err());
    assert!(cur.join("1000.a:2,S").exists());

    std::os::unix::fs::chown(&cur, Some(0), None).expect("chown back");
    assert_eq!(read_all(&mut *mb, 0), b"mine\n");
}
