//! UIDL presets through the store: the other server's UIDL where it has one, the maildir UIDL
//! otherwise, and never one UIDL for two messages.

use super::*;

fn uidls(home: &Home, format: UidlFormat) -> Vec<String> {
    let store = MaildirStore::new("%h/Maildir")
        .expect("template")
        .with_uidl_format(format);
    let mb = store
        .open(&Account::new("bob").with_home(home.0.path()))
        .expect("open");
    mb.messages().iter().map(|m| m.uidl.clone()).collect()
}

#[test]
fn x_uidl_headers_where_valid() {
    let home = Home::with_maildir();
    home.deliver("new", "1000.a", b"X-UIDL: 5f1e2d\nSubject: a\n\nbody\n");
    home.deliver("cur", "1001.b:2,S", b"Subject: none\n\nX-UIDL: body only\n");
    home.deliver("new", "1002.c", b"X-UIDL: 5f1e2d\n\nthe same as 1000.a\n");
    home.deliver("new", "1003.d", b"x-uidl: 1003.a-clash\r\n\r\n");
    home.deliver(
        "new",
        "1003.a-clash",
        b"Subject: its name is the UIDL above\n\n",
    );
    assert_eq!(
        uidls(&home, UidlFormat::XUidl),
        ["5f1e2d", "1001.b", "1002.c", "1003.a-clash", "1003.d"]
    );
    assert_eq!(
        uidls(&home, UidlFormat::Maildir),
        ["1000.a", "1001.b", "1002.c", "1003.a-clash", "1003.d"]
    );
}

#[test]
fn dovecot_uidlist_where_it_names_the_message() {
    let home = Home::with_maildir();
    for name in ["1000.a", "1001.b", "1002.c"] {
        home.deliver("new", name, b"x\n");
    }
    fs::write(
        home.maildir().join("dovecot-uidlist"),
        "3 V1700000000 N9 Gabc\n\
         1 :1000.a:2,S\n\
         2 Pkept-by-dovecot :1001.b\n\
         garbage\n\
         7 :gone.z\n",
    )
    .unwrap();
    assert_eq!(
        uidls(&home, UidlFormat::Dovecot),
        ["000000016553f100", "kept-by-dovecot", "1002.c"]
    );
    // A damaged header: the file is not used.
    fs::write(home.maildir().join("dovecot-uidlist"), "9 V1\n1 :1000.a\n").unwrap();
    assert_eq!(
        uidls(&home, UidlFormat::Dovecot),
        ["1000.a", "1001.b", "1002.c"]
    );
}

#[test]
fn courier_sizelist() {
    let home = Home::with_maildir();
    for name in ["1000.a", "1001.b"] {
        home.deliver("cur", format!("{name}:2,S"), b"x\n");
    }
    fs::write(
        home.maildir().join("courierpop3dsizelist"),
        "/3 3 1700000000\n1000.a:2,S 2 1:1700000000:0\n",
    )
    .unwrap();
    assert_eq!(
        uidls(&home, UidlFormat::Courier),
        ["UID1-1700000000", "1001.b"]
    );
}
