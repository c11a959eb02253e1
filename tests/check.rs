//! `--check` catches what would break the start or the logins after it, and reports every
//! problem at once; a passwd file that is missing, unreadable or malformed refuses the start,
//! standalone and under `-i`, with a message that names the file.

mod support;

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use support::maildir::{run_bounded, Corpus};
use support::{note, path_str};

fn pop3d(args: &[&str]) -> Output {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_pop3d"))
            .args(args)
            .stdin(Stdio::null()),
        Duration::from_secs(20),
    )
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn is_root() -> bool {
    // SAFETY: geteuid takes nothing and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn every_problem_is_reported_in_one_run() {
    let corpus = Corpus::new("p3t-check-all");
    let dir = corpus.dir.path();
    // Per-domain files: one good, one with a malformed line, one account without a home.
    for (domain, lines) in [
        ("a.example", "bob:{PLAIN}pw::::/srv/bob\n"),
        (
            "b.example",
            "carol:{PLAIN}pw::::/srv/carol\nno colon here\n",
        ),
        ("c.example", "dave:{PLAIN}pw\n"),
    ] {
        fs::create_dir_all(dir.join("vmail").join(domain)).unwrap();
        fs::write(dir.join("vmail").join(domain).join("passwd"), lines).unwrap();
    }
    let template = format!("{}/vmail/%d/passwd", path_str(dir));
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let state = path_str(&dir.join("state"));
    let out = pop3d(&[
        "--check",
        "--passwd",
        &template,
        "--maildir",
        "%h/Maildir",
        "--listen",
        &busy_addr,
        "--state-dir",
        &state,
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(!stdout.contains("configuration OK"), "{stdout}");
    for want in [
        "b.example/passwd: line 2: no ':'",
        "c.example/passwd line 1: user dave has no home directory",
        &format!("--listen {busy_addr}: cannot listen"),
        "3 problems found",
    ] {
        assert!(stderr.contains(want), "{want:?} not reported:\n{stderr}");
    }

    // Templates: relative, and one without a per-user part (one mailbox per domain).
    fs::write(dir.join("vmail/b.example/passwd"), "carol:{PLAIN}pw\n").unwrap();
    let out = pop3d(&[
        "--check",
        "--passwd",
        &template,
        "--maildir",
        "Maildir/%d",
        "--state-dir",
        &state,
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("--maildir Maildir/%d: not an absolute path"),
        "{stderr}"
    );
    assert!(stderr.contains("no %u, %n or %h"), "{stderr}");
    assert!(stderr.contains("2 problems found"), "{stderr}");

    // All well: each domain's file counted, "1 account" in the singular.
    let out = pop3d(&[
        "--check",
        "--passwd",
        &template,
        "--maildir",
        "/srv/mail/%d/%n",
        "--state-dir",
        &state,
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("configuration OK (3 accounts in 3 files)"),
        "{stdout}"
    );
    let single = dir.join("vmail/a.example/passwd");
    let out = pop3d(&[
        "--check",
        "--passwd",
        &path_str(&single),
        "--maildir",
        "%h/Maildir",
        "--state-dir",
        &state,
    ]);
    let (stdout, _) = text(&out);
    assert!(stdout.contains("(1 account in "), "{stdout}");

    // A %d template that matches no file at all.
    let out = pop3d(&[
        "--check",
        "--passwd",
        &format!("{}/nowhere/%d/passwd", path_str(dir)),
        "--state-dir",
        &state,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("nowhere"), "{}", text(&out).1);
}

#[test]
fn check_reads_the_passwd_file_as_the_user_and_finds_a_missing_chroot() {
    if !is_root() {
        note("skipped: needs root (--user)");
        return;
    }
    let corpus = Corpus::new("p3t-check-user");
    fs::set_permissions(&corpus.passwd, fs::Permissions::from_mode(0o600)).unwrap();
    let state = path_str(&corpus.dir.path().join("state"));
    let passwd = path_str(&corpus.passwd);
    let out = pop3d(&[
        "--check",
        "--passwd",
        &passwd,
        "--user",
        "nobody",
        "--state-dir",
        &state,
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("{passwd}: --user nobody cannot read it")),
        "{stderr}"
    );
    // Readable by root alone is fine without --user.
    let out = pop3d(&["--check", "--passwd", &passwd, "--state-dir", &state]);
    assert!(out.status.success(), "{:?}", text(&out));

    fs::set_permissions(&corpus.passwd, fs::Permissions::from_mode(0o644)).unwrap();
    let out = pop3d(&[
        "--check",
        "--passwd",
        &passwd,
        "--user",
        "nobody",
        "--chroot",
        "/nonexistent-p3t-chroot",
        "--state-dir",
        &state,
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--chroot /nonexistent-p3t-chroot: no such directory"),
        "{stderr}"
    );
}

#[test]
fn a_missing_malformed_or_unreadable_passwd_file_refuses_the_start() {
    let corpus = Corpus::new("p3t-check-start");
    let dir = corpus.dir.path();
    let state = path_str(&dir.join("state"));
    let missing = path_str(&dir.join("missing-passwd"));
    let malformed = dir.join("malformed-passwd");
    fs::write(&malformed, "alice:{PLAIN}pw\nno colon\n").unwrap();
    let malformed = path_str(&malformed);
    let mut cases = vec![
        (missing.clone(), "No such file", vec![]),
        (malformed.clone(), "line 2", vec![]),
    ];
    if is_root() {
        // Readable by root, not by the account pop3d runs as.
        let secret = dir.join("root-only-passwd");
        fs::copy(&corpus.passwd, &secret).unwrap();
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
        cases.push((
            path_str(&secret),
            "Permission denied",
            vec!["--user", "nobody"],
        ));
    } else {
        note("skipped the --user case: needs root");
    }
    for (passwd, why, extra) in cases {
        // Standalone: exit 1, naming the file, without serving.
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--allow-root",
            "--passwd",
            &passwd,
            "--state-dir",
            &state,
        ];
        args.extend(&extra);
        let out = pop3d(&args);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{passwd}: {stderr}");
        assert!(stderr.contains(&passwd) && stderr.contains(why), "{stderr}");
        // Under -i: exit 1, and no greeting for the client.
        let mut args = vec![
            "-i",
            "--allow-root",
            "--passwd",
            &passwd,
            "--state-dir",
            &state,
        ];
        args.extend(&extra);
        let out = pop3d(&args);
        assert_eq!(out.status.code(), Some(1), "-i {passwd}: {:?}", text(&out));
        assert!(out.stdout.is_empty(), "{:?}", text(&out));
    }
}
