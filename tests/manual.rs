//! The manual pages render without a warning from mandoc, and every extra field that
//! pop3d-passwd(5) documents is one the passwd-file parser reads (and the other way round).

use pop3d::auth::PasswdFile;
use pop3d::{Account, Authenticator, Expire};
use std::process::Command;
use std::time::Duration;

const PAGES: &[&str] = &["man/pop3d.8", "man/pop3d-passwd.5"];

fn page(name: &str) -> String {
    std::fs::read_to_string(format!("{}/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn every_page_lints_clean() {
    for name in PAGES {
        let out = Command::new("mandoc")
            .args(["-T", "lint", "-W", "warning"])
            .arg(format!("{}/{name}", env!("CARGO_MANIFEST_DIR")))
            .output()
            .expect("mandoc (Debian package mandoc)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && text.is_empty(), "{name}:\n{text}");
    }
}

/// The extra fields the parser reads: (key, a value to give it, whether the account got it).
type Check = (&'static str, &'static str, fn(&Account) -> bool);
const READ: &[Check] = &[
    ("quota_rule", "*:storage=1G", |a| {
        a.quota.is_some_and(|q| q.storage == Some(1 << 30))
    }),
    ("pop3_login_delay", "300", |a| {
        a.login_delay == Some(Duration::from_secs(300))
    }),
    ("pop3_expire", "30", |a| a.expire == Some(Expire::Days(30))),
];

/// The keys listed in the EXTRA FIELDS section (`.It Li key Ns = ...`).
fn documented_keys() -> Vec<String> {
    let text = page("man/pop3d-passwd.5");
    let section = text
        .split(".Sh EXTRA FIELDS\n")
        .nth(1)
        .and_then(|rest| rest.split("\n.Sh ").next())
        .expect("an EXTRA FIELDS section");
    section
        .lines()
        .filter_map(|l| l.strip_prefix(".It Li "))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect()
}

#[test]
fn every_documented_extra_field_is_parsed_and_every_parsed_one_documented() {
    let documented = documented_keys();
    assert!(!documented.is_empty());
    for key in &documented {
        assert!(
            READ.iter().any(|(k, _, _)| k == key),
            "pop3d-passwd(5) documents {key}, which this test does not know the parser reads"
        );
    }
    let dir = std::env::temp_dir().join(format!("pop3d-test-manual-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (key, value, got) in READ {
        assert!(
            documented.iter().any(|d| d == key),
            "{key} is not documented"
        );
        for spelling in [key.to_string(), format!("userdb_{key}")] {
            let passwd = dir.join("passwd");
            std::fs::write(
                &passwd,
                format!("ann:{{PLAIN}}pw::::/home/ann::{spelling}={value}\n"),
            )
            .unwrap();
            let file = PasswdFile::new(passwd.to_str().unwrap()).unwrap();
            let account = file.authenticate("ann", b"pw").unwrap();
            assert!(got(&account), "{spelling}={value} gave {account:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
