//! The Postfix harness itself (tests/support/postfix.rs): a real Postfix from Debian, started
//! with its own configuration, queue and log on loopback, delivers locally into an mbox spool
//! byte for byte, takes concurrent mail without loss or duplicates, turns unknown users away,
//! and maps a delivery command's exit status (sysexits) to a delivery, a bounce or a deferral
//! as the mbox and delivery-agent tests rely on. Needs root (Postfix's daemons, system
//! accounts); skips otherwise.

mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, Instant};
use support::postfix::{LocalRecipients, PipeTransport, Postfix, PostfixConfig, SENDER};
use support::system_user::SystemUser;
use support::temp_dir::TempDir;
use support::{maildir::first_difference, note};

const IDLE: Duration = Duration::from_secs(30);

fn skip() {
    note("skipped: needs root");
}

/// A message that breaks naive mail code: 8-bit bytes, a `From ` line, a `>From ` line, dots
/// at line starts, a lone dot, CRLF line ends and no final line end.
fn tricky_message(to: &str, subject: &str) -> Vec<u8> {
    let mut m = format!(
        "From: Sender <{SENDER}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\
         Date: Sun, 06 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@sink.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    .into_bytes();
    m.extend_from_slice(b"Caf\xe9 \xff\xfe\x80\x7f end\r\nFrom the start of a line\r\n");
    m.extend_from_slice(b">From already quoted\r\n.leading dot\r\n.\r\n..\r\nlast line");
    m
}

#[test]
fn local_delivery_writes_the_spool_byte_exact() {
    let Some(user) = SystemUser::create("pfa", "unused pw") else {
        return skip();
    };
    let started = Instant::now();
    let postfix = Postfix::start(PostfixConfig::default()).unwrap();
    note(&format!("postfix started in {:?}", started.elapsed()));
    let to = postfix.address(&user.name);
    let message = tricky_message(&to, "spool");
    let sent = postfix.send(SENDER, &[&to], &message);
    assert_eq!(sent.accepted, std::slice::from_ref(&to), "{sent:?}");
    let id = sent.queue_id.expect("queued");
    postfix.wait_idle(IDLE);

    let got = postfix.deliveries(&to);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (
            got[0].queue_id.as_str(),
            got[0].relay.as_str(),
            got[0].dsn.as_str()
        ),
        (id.as_str(), "local", "2.0.0")
    );
    assert_eq!(
        (got[0].status.as_str(), got[0].detail.as_str()),
        ("sent", "delivered to mailbox")
    );

    let path = postfix.spool().join(&user.name);
    let meta = fs::metadata(&path).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (user.uid, 0o600));
    let spool = fs::read(&path).unwrap();
    // The From_ line: the envelope sender, two spaces, ctime(3)'s 24 characters.
    let first_end = spool.iter().position(|&b| b == b'\n').unwrap();
    let from_line = String::from_utf8(spool[..first_end].to_vec()).unwrap();
    let date = from_line
        .strip_prefix(&format!("From {SENDER}  "))
        .unwrap_or_else(|| panic!("From_ line: {from_line:?}"));
    assert_eq!(date.len(), 24, "{from_line:?}");
    // Then the headers Postfix prepends, then the message with LF line ends, its `From ` line
    // quoted (and only that one), a final line end added and the blank line mbox puts after
    // each message.
    let added = format!(
        "Return-Path: <{SENDER}>\nX-Original-To: {to}\nDelivered-To: {to}\n\
         Received: from client.pop3d.test (unknown [127.0.0.1])\n\
         \tby mx.pop3d.test (Postfix) with ESMTP id {id}\n\tfor <{to}>; "
    );
    let rest = &spool[first_end + 1..];
    assert!(
        rest.starts_with(added.as_bytes()),
        "{}",
        first_difference(rest, added.as_bytes())
    );
    let received_end = rest[added.len()..]
        .iter()
        .position(|&b| b == b'\n')
        .unwrap();
    let body = &rest[added.len() + received_end + 1..];
    let mut want = Vec::new();
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b"From ") {
            want.push(b'>');
        }
        want.extend_from_slice(line);
        want.push(b'\n');
    }
    want.push(b'\n');
    assert!(
        body == want.as_slice(),
        "spool differs: {}",
        first_difference(body, &want)
    );
    assert!(body.windows(13).any(|w| w == b"\n>From the st"));
    // A line that was `>From ` already is left as it is (the quoting cannot be undone).
    assert!(body.windows(18).any(|w| w == b"\n>From already quo"));
}

#[test]
fn concurrent_messages_all_arrive_once() {
    let Some(user) = SystemUser::create("pfb", "unused pw") else {
        return skip();
    };
    let postfix = Postfix::start(PostfixConfig::default()).unwrap();
    let to = postfix.address(&user.name);
    let started = Instant::now();
    let ids: Vec<String> = std::thread::scope(|s| {
        let sends: Vec<_> = (0..50)
            .map(|n| {
                let (postfix, to) = (&postfix, &to);
                s.spawn(move || {
                    let mut m = tricky_message(to, &format!("concurrent-{n}"));
                    m.extend_from_slice(format!("\r\nmarker-{n}-end\r\n").as_bytes());
                    postfix.send(SENDER, &[to], &m).queue_id.expect("queued")
                })
            })
            .collect();
        sends.into_iter().map(|t| t.join().unwrap()).collect()
    });
    postfix.wait_idle(IDLE);
    note(&format!(
        "50 messages sent and delivered in {:?}",
        started.elapsed()
    ));

    let spool = fs::read(postfix.spool().join(&user.name)).unwrap();
    let text = String::from_utf8_lossy(&spool);
    let separators = text.matches(&format!("\nFrom {SENDER}  ")).count() + 1;
    assert!(text.starts_with(&format!("From {SENDER}  ")));
    assert_eq!(separators, 50, "From_ lines in the spool");
    for n in 0..50 {
        assert_eq!(
            text.matches(&format!("\nmarker-{n}-end\n")).count(),
            1,
            "message {n}"
        );
    }
    let delivered = postfix.deliveries(&to);
    assert_eq!(delivered.len(), 50);
    assert!(
        delivered.iter().all(|d| d.status == "sent"),
        "{delivered:?}"
    );
    let mut logged: Vec<&str> = delivered.iter().map(|d| d.queue_id.as_str()).collect();
    let mut ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    logged.sort_unstable();
    ids.sort_unstable();
    logged.dedup();
    assert_eq!(logged, ids, "one delivery for each queued message");
}

#[test]
fn unknown_local_users_are_refused_or_bounced() {
    if !support::system_user::is_root() {
        return skip();
    }
    // Postfix's default, the passwd file as local_recipient_maps: refused at RCPT TO.
    let strict = Postfix::start(PostfixConfig::default()).unwrap();
    let ghost = strict.address("p3tnosuchuser");
    let sent = strict.send(SENDER, &[&ghost], b"Subject: x\r\n\r\nx\r\n");
    assert!(
        sent.accepted.is_empty() && sent.queue_id.is_none(),
        "{sent:?}"
    );
    let (_, reply) = &sent.rejected[0];
    assert!(
        reply.starts_with("550 5.1.1 ") && reply.contains("User unknown in local recipient table"),
        "{reply}"
    );
    strict.wait_log("NOQUEUE: reject: RCPT", IDLE);

    // An empty local_recipient_maps: taken, then local(8) bounces it to the sender.
    let open = Postfix::start(PostfixConfig {
        local_recipients: LocalRecipients::Any,
        ..PostfixConfig::default()
    })
    .unwrap();
    let ghost = open.address("p3tnosuchuser");
    let sent = open.send(SENDER, &[&ghost], b"Subject: x\r\n\r\nx\r\n");
    assert_eq!(sent.accepted, std::slice::from_ref(&ghost));
    open.wait_idle(IDLE);
    let got = open.deliveries(&ghost);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].status.as_str(), got[0].dsn.as_str()),
        ("bounced", "5.1.1")
    );
    assert!(got[0].detail.contains("unknown user"), "{:?}", got[0]);
    let bounces = open.sink_messages();
    assert_eq!(bounces.len(), 1, "one bounce to the sender");
    let bounce = String::from_utf8_lossy(&bounces[0]);
    assert!(
        bounce.contains(&format!("Final-Recipient: rfc822; {ghost}")),
        "{bounce}"
    );
    assert!(bounce.contains("Status: 5.1.1"), "{bounce}");
}

/// A delivery command for the tests: what local(8) or pipe(8) gave it goes to `$OUT` (or
/// `$HOME`), and the recipient's extension (`user+75@...`) picks the exit status.
const COMMAND: &str = r#"#!/bin/sh
out=${OUT:-$HOME}
case "$EXTENSION" in
'')     { id -u; id -g; echo "$USER"; echo "$RECIPIENT"; echo "$SENDER"; } > "$out/env.$1"
        exec cat > "$out/message.$1" ;;
quota)  echo "5.2.2 Mailbox full: quota exceeded" >&2; exit 77 ;;
*)      echo "failing as told" >&2; exit "$EXTENSION" ;;
esac
"#;

#[test]
fn mailbox_command_exit_status_maps_to_delivery_bounce_or_deferral() {
    let Some(user) = SystemUser::create("pfc", "unused pw") else {
        return skip();
    };
    let bin = TempDir::new("pfc-bin");
    let script = bin.path().join("deliver.sh");
    fs::write(&script, COMMAND).unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let postfix = Postfix::start(PostfixConfig {
        mailbox_command: Some(format!("{} local", script.display())),
        ..PostfixConfig::default()
    })
    .unwrap();
    let to = |ext: &str| postfix.address(&format!("{}{ext}", user.name));
    let message = tricky_message(&to(""), "command");
    for ext in ["", "+67", "+75", "+77", "+quota"] {
        let sent = postfix.send(SENDER, &[&to(ext)], &message);
        assert_eq!(sent.accepted.len(), 1, "{sent:?}");
    }
    postfix.wait_idle(IDLE);

    // Delivered: the command ran as the recipient, with local(8)'s environment.
    let env = fs::read_to_string(user.home.join("env.local")).unwrap();
    let want = format!(
        "{}\n{}\n{}\n{}\n{SENDER}\n",
        user.uid,
        user.gid,
        user.name,
        to("")
    );
    assert_eq!(env, want);
    let got = fs::read(user.home.join("message.local")).unwrap();
    // local(8) gives a command the message as mbox would hold it, From_ line first, but with
    // no `>From ` quoting: an agent must drop that first line and keep the rest as it is.
    let from_line = format!("From {SENDER}  ");
    assert!(
        got.starts_with(from_line.as_bytes()),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let rest = &got[from_line.len() + 24..];
    let head = format!("\nReturn-Path: <{SENDER}>\nX-Original-To: {}\n", to(""));
    assert!(
        rest.starts_with(head.as_bytes()),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        got.ends_with(&lf(&message)),
        "{}",
        String::from_utf8_lossy(&got)
    );

    let outcome = |ext: &str, status: &str, dsn: &str| {
        let d = postfix.deliveries(&to(ext));
        assert_eq!(d.len(), 1, "{ext}: {d:?}");
        note(&format!(
            "mailbox_command, recipient {ext:?}: status={} dsn={} ({})",
            d[0].status, d[0].dsn, d[0].detail
        ));
        assert_eq!((d[0].status.as_str(), d[0].dsn.as_str()), (status, dsn));
        d.into_iter().next().unwrap()
    };
    assert_eq!(outcome("", "sent", "2.0.0").relay, "local");
    outcome("+67", "bounced", "5.1.1");
    let temp = outcome("+75", "deferred", "4.3.0");
    let still_queued = std::slice::from_ref(&temp.queue_id);
    assert_eq!(postfix.deferred(), still_queued);
    outcome("+77", "bounced", "5.7.0");
    let quota = outcome("+quota", "bounced", "5.2.2");
    assert!(quota.detail.contains("quota exceeded"), "{quota:?}");

    // A flush tries the deferred message again: deferred again, still queued.
    postfix.flush();
    postfix.wait_for(IDLE, "second attempt", || {
        postfix.deliveries(&to("+75")).len() == 2
    });
    assert_eq!(postfix.deliveries(&to("+75"))[1].status, "deferred");
    postfix.wait_idle(IDLE);
    assert_eq!(postfix.deferred(), still_queued);

    // Postfix's bounces reach the sender with the status in them.
    let bounces: Vec<String> = postfix
        .sink_messages()
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert_eq!(bounces.len(), 3, "{bounces:#?}");
    for status in ["5.1.1", "5.7.0", "5.2.2"] {
        let with = bounces
            .iter()
            .filter(|b| b.contains(&format!("Status: {status}")))
            .count();
        assert_eq!(with, 1, "{status}: {bounces:#?}");
    }
}

#[test]
fn pipe_transport_delivers_virtual_domains() {
    if !support::system_user::is_root() {
        return skip();
    }
    let bin = TempDir::new("pfd-bin");
    let script = bin.path().join("deliver.sh");
    fs::write(&script, COMMAND).unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let out = bin.path().join("out");
    fs::create_dir(&out).unwrap();
    // The command runs as nobody.
    fs::set_permissions(&out, fs::Permissions::from_mode(0o1777)).unwrap();
    let postfix = Postfix::start(PostfixConfig {
        virtual_pipe: Some(PipeTransport {
            domains: vec!["virt.test".into()],
            user: "nobody".into(),
            flags: "Rq".into(),
            argv: vec![
                "/usr/bin/env".into(),
                format!("OUT={}", out.display()),
                "EXTENSION=${extension}".into(),
                "RECIPIENT=${recipient}".into(),
                "SENDER=${sender}".into(),
                "USER=${user}".into(),
                script.display().to_string(),
                "${user}".into(),
            ],
        }),
        ..PostfixConfig::default()
    })
    .unwrap();
    let message = tricky_message("bob@virt.test", "pipe");
    for to in ["bob@virt.test", "bob+67@virt.test"] {
        let sent = postfix.send(SENDER, &[to], &message);
        assert_eq!(sent.accepted.len(), 1, "{sent:?}");
    }
    postfix.wait_idle(IDLE);
    let ok = &postfix.deliveries("bob@virt.test")[0];
    assert_eq!((ok.relay.as_str(), ok.status.as_str()), ("pop3d", "sent"));
    let got = fs::read(out.join("message.bob")).unwrap();
    assert!(got.starts_with(format!("Return-Path: <{SENDER}>\n").as_bytes()));
    assert!(
        got.ends_with(&lf(&message)),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let env = fs::read_to_string(out.join("env.bob")).unwrap();
    assert!(
        env.ends_with(&format!("bob\nbob@virt.test\n{SENDER}\n")),
        "{env}"
    );
    let unknown = &postfix.deliveries("bob+67@virt.test")[0];
    assert_eq!(
        (unknown.status.as_str(), unknown.dsn.as_str()),
        ("bounced", "5.1.1")
    );
    assert_eq!(postfix.sink_messages().len(), 1);
}

#[test]
fn stopping_ends_every_process_even_a_hung_delivery() {
    let Some(user) = SystemUser::create("pfe", "unused pw") else {
        return skip();
    };
    let postfix = Postfix::start(PostfixConfig {
        mailbox_command: Some("/bin/sleep 300".into()),
        ..PostfixConfig::default()
    })
    .unwrap();
    let to = postfix.address(&user.name);
    postfix.send(SENDER, &[&to], b"Subject: hang\r\n\r\nx\r\n");
    // Wait until the command runs: a process of the instance named sleep.
    let sleeping = || {
        postfix.processes().into_iter().find(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
        })
    };
    postfix.wait_for(IDLE, "sleep process", || sleeping().is_some());
    let sleeping = sleeping().unwrap();
    let all = postfix.processes();
    assert!(
        all.len() >= 5,
        "master, qmgr, pickup, postlogd, local, sleep: {all:?}"
    );
    let started = Instant::now();
    postfix.stop();
    note(&format!(
        "stopped {} processes in {:?}",
        all.len(),
        started.elapsed()
    ));
    let left: Vec<u32> = all
        .into_iter()
        .filter(|&p| Postfix::is_running(p))
        .collect();
    assert!(
        left.is_empty(),
        "still running: {left:?} (sleep was {sleeping})"
    );
}

/// `message` with LF line ends and a final one.
fn lf(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in message.split(|&b| b == b'\n') {
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        out.push(b'\n');
    }
    out
}
