//! The load generator (examples/loadgen.rs) against the real pop3d binary: each workload runs
//! for about a second with two clients and must finish without an error. Nothing here measures
//! speed; this only shows that the benchmark tool works.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::temp_dir::TempDir;
use support::BinServer;

fn loadgen() -> PathBuf {
    support::example("loadgen")
}

/// Two users, u1 and u2 (password `pw`), each with a Maildir of 30 messages: small ones and a
/// few of 100 KB, with dot-lines and CRLF line ends here and there, some named with `,W=` and
/// some without, some in `cur/` with flags.
fn mailboxes(dir: &Path) -> (String, String) {
    let mut passwd = String::new();
    for user in ["u1", "u2"] {
        passwd.push_str(&format!("{user}:{{PLAIN}}pw\n"));
        let maildir = dir.join(user).join("Maildir");
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        for i in 0..30u32 {
            let mut body = format!("From: a@example.org\nTo: {user}@example.org\nSubject: {i}\n\n");
            let lines = if i % 10 == 9 { 1500 } else { 20 + i };
            for l in 0..lines {
                match l % 17 {
                    0 => body.push_str(".a line that starts with a dot\n"),
                    5 => body.push_str("a line with a CRLF end\r\n"),
                    // Lines that make a dot-stuffed line look like the terminator, or nearly.
                    9 => body.push_str(".\n"),
                    11 => body.push_str("..\r\n"),
                    13 => body.push_str(".\rx\n"),
                    _ => body.push_str("some text of a message, long enough to look like one\n"),
                }
            }
            let wire = body.len() + body.matches('\n').count() - body.matches("\r\n").count();
            let name = match i % 3 {
                0 => format!("new/17000{i:05}.M{i}P1.test,S={},W={wire}", body.len()),
                1 => format!("new/17000{i:05}.M{i}P1.test"),
                _ => format!("cur/17000{i:05}.M{i}P1.test:2,S"),
            };
            std::fs::write(maildir.join(name), body).unwrap();
        }
    }
    let passwd_path = dir.join("passwd");
    std::fs::write(&passwd_path, passwd).unwrap();
    let template = format!("{}/%u/Maildir", dir.display());
    (passwd_path.to_str().unwrap().to_owned(), template)
}

fn run(server: &BinServer, args: &[&str]) -> Output {
    Command::new(loadgen())
        .args(args)
        .arg(server.addr.to_string())
        .output()
        .expect("run loadgen")
}

/// The value of `key` in the RESULT line.
fn result(out: &Output, key: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line in {stdout}"));
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        .to_owned()
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn every_workload_runs_without_errors() {
    let dir = TempDir::new("loadgen");
    let (passwd, template) = mailboxes(dir.path());
    let server = BinServer::start(&["--passwd", &passwd, "--maildir", &template]);
    let users = ["-u", "u%d", "-U", "1-2", "-p", "pw", "-c", "2"];
    for workload in ["small", "retr", "keep", "idle"] {
        let mut args = vec!["-w", workload, "-t", "1"];
        args.extend_from_slice(&users);
        let out = run(&server, &args);
        assert!(out.status.success(), "{workload}: {}", describe(&out));
        assert_eq!(
            result(&out, "errors"),
            "0",
            "{workload}: {}",
            describe(&out)
        );
        let sessions: u64 = result(&out, "sessions").parse().unwrap();
        assert!(sessions > 0, "{workload}: {}", describe(&out));
        if workload == "retr" || workload == "keep" {
            let messages: u64 = result(&out, "messages").parse().unwrap();
            assert!(messages >= 30, "{workload}: {}", describe(&out));
        }
        if workload == "idle" {
            assert_eq!(sessions, 2, "{}", describe(&out));
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(stdout.contains("READY sessions=2 failed=0"), "{stdout}");
        }
    }
    // A fixed number of sessions, the way the benchmark times one login.
    let out = run(&server, &["-w", "small", "-n", "3", "-u", "u1", "-p", "pw"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(result(&out, "sessions"), "3");
}

#[test]
fn a_failed_session_makes_the_run_fail() {
    let dir = TempDir::new("loadgen-fail");
    let (passwd, template) = mailboxes(dir.path());
    let server = BinServer::start(&[
        "--passwd",
        &passwd,
        "--maildir",
        &template,
        "--fail-delay",
        "0",
    ]);
    let out = run(
        &server,
        &["-w", "small", "-n", "2", "-u", "u1", "-p", "wrong"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(result(&out, "errors"), "2");
    assert_eq!(result(&out, "sessions"), "0");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pass: -ERR [AUTH]"), "{stderr}");
}
