//! `pop3d --deliver`, run as an MTA runs it: the message read back over POP3 by Python's
//! poplib byte for byte, the exit statuses and status lines an MTA acts on, many agents and
//! POP3 sessions at once against one Maildir++ quota, and agents killed mid-delivery.
//!
//! As root (as CI runs) the accounts belong to `nobody` (65534), whom the agent becomes before
//! writing, as it does when an MTA runs it as root; otherwise they are the tester's.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::temp_dir::TempDir;
use support::{path_str, run_with_input, BinServer};

const AGENT_LIMIT: Duration = Duration::from_secs(30);

/// The uid and gid the accounts have.
fn owner() -> (u32, u32) {
    // SAFETY: these take nothing and cannot fail.
    unsafe {
        if libc::geteuid() == 0 {
            (65534, 65534)
        } else {
            (libc::getuid(), libc::getgid())
        }
    }
}

/// Accounts in a passwd-file, each with a home of its own.
struct Site {
    dir: TempDir,
    passwd: PathBuf,
}

impl Site {
    /// `accounts`: (local part at example.org, extra fields).
    fn new(tag: &str, accounts: &[(&str, &str)]) -> Site {
        let dir = TempDir::new(tag);
        // nobody must reach the homes.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let (uid, gid) = owner();
        let mut lines = String::new();
        for (local, extra) in accounts {
            let home = dir.path().join(local);
            fs::create_dir(&home).unwrap();
            chown(&home, Some(uid), Some(gid)).unwrap();
            lines += &format!(
                "{local}@example.org:{{PLAIN}}secret:{uid}:{gid}::{}::{extra}\n",
                home.display()
            );
        }
        let passwd = dir.path().join("passwd");
        fs::write(&passwd, lines).unwrap();
        Site { dir, passwd }
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--passwd".into(),
            path_str(&self.passwd),
            "--maildir".into(),
            "%h/Maildir".into(),
            "--state-dir".into(),
            path_str(self.dir.path()),
        ]
    }

    fn agent(&self, user: &str, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pop3d"));
        cmd.arg("--deliver").arg(user).args(self.args()).args(extra);
        cmd
    }

    /// Runs the agent for `user` on `message`.
    fn deliver(&self, user: &str, message: &[u8], extra: &[&str]) -> Output {
        run_with_input(&mut self.agent(user, extra), message, AGENT_LIMIT)
    }

    fn maildir(&self, local: &str) -> PathBuf {
        self.dir.path().join(local).join("Maildir")
    }

    /// The message files in `new/` and `cur/`.
    fn files(&self, local: &str) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(dir) = fs::read_dir(self.maildir(local).join(sub)) {
                files.extend(dir.map(|e| e.unwrap().path()));
            }
        }
        files.sort();
        files
    }

    /// What maildirsize adds up to, and what the Maildir holds: (bytes, messages) each.
    fn figures(&self, local: &str) -> ((i64, i64), (i64, i64)) {
        let text = fs::read_to_string(self.maildir(local).join("maildirsize")).unwrap();
        let mut sum = (0, 0);
        for line in text.lines().skip(1) {
            let mut f = line.split_whitespace().map(|n| n.parse::<i64>().unwrap());
            sum.0 += f.next().unwrap();
            sum.1 += f.next().unwrap();
        }
        let files = self.files(local);
        let bytes = files
            .iter()
            .map(|p| fs::metadata(p).unwrap().len() as i64)
            .sum();
        (sum, (bytes, files.len() as i64))
    }

    fn server(&self) -> BinServer {
        let args = [self.args(), vec!["--fail-delay".into(), "0.05".into()]].concat();
        BinServer::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

/// Logs in as `user` with poplib, and prints one line per message: its UIDL and the hex of
/// its lines joined by LF (with a final LF). With `dele`, deletes them all and QUITs.
const POPLIB: &str = r#"
import poplib, sys, time
deadline = time.time() + 20
while True:
    p = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=20)
    p.user(sys.argv[2])
    try:
        p.pass_("secret")
        break
    except poplib.error_proto as e:
        p.close()
        if b"IN-USE" not in e.args[0] or time.time() > deadline:
            raise
        time.sleep(0.05)
uidls = [l.split()[1].decode() for l in p.uidl()[1]]
for n, uidl in enumerate(uidls, 1):
    lines = p.retr(n)[1]
    print(uidl, (b"\n".join(lines) + b"\n").hex())
    if sys.argv[3] == "dele":
        p.dele(n)
p.quit()
"#;

/// The messages `user` has over POP3: (UIDL, content).
fn pop3(server: &BinServer, user: &str, dele: bool) -> Vec<(String, Vec<u8>)> {
    let out = support::maildir::run_bounded(
        Command::new("python3").args([
            "-c",
            POPLIB,
            &server.port().to_string(),
            user,
            if dele { "dele" } else { "keep" },
        ]),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "poplib: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (uidl, hex) = l.split_once(' ').unwrap();
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (uidl.to_owned(), bytes)
        })
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_delivered_message_is_read_back_over_pop3_byte_exact() {
    let site = Site::new("deliver-exact", &[("bob", "")]);
    let body: &[u8] = b"Return-Path: <alice@example.net>\nSubject: caf\xc3\xa9 \xff\n\n\
        .a line with a dot\n..two dots\nFrom the start of a line\n\tindented \x01\n\nend\n";
    let envelope = b"From alice@example.net Sun Dec  6 11:00:00 2026\n";
    // The name as an MTA may give it: folded and completed as a login is.
    let out = site.deliver("Bob@Example.ORG", &[&envelope[..], body].concat(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let files = site.files("bob");
    assert_eq!(files.len(), 1);
    assert_eq!(
        fs::read(&files[0]).unwrap(),
        body,
        "the From_ line alone is left out"
    );

    let server = site.server();
    let got = pop3(&server, "bob@example.org", false);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, body);
    let name = files[0].file_name().unwrap().to_str().unwrap();
    assert_eq!(got[0].0, name, "the UIDL is the file name");
}

#[test]
fn exit_statuses_and_status_lines_tell_the_mta_what_happened() {
    let site = Site::new(
        "deliver-codes",
        &[
            (
                "full",
                "userdb_quota_rule=*:bytes=100 userdb_quota_rule2=*:messages=2",
            ),
            ("open", ""),
        ],
    );
    let small = b"Subject: x\n\n0123456789\n";
    let status = |out: &Output| (out.status.code(), stderr(out));
    let expect = |out: Output, code: i32, line: &str| {
        let (got, text) = status(&out);
        assert_eq!(got, Some(code), "{text}");
        assert!(text.starts_with(line), "{text:?} should start {line:?}");
    };

    expect(site.deliver("nobody@example.org", small, &[]), 67, "5.1.1 ");
    expect(
        site.deliver("nobody@example.org", small, &["--qmail"]),
        100,
        "5.1.1 ",
    );
    for _ in 0..2 {
        expect(site.deliver("full@example.org", small, &[]), 0, "");
    }
    // The third message is one too many (messages=2 from the passwd-file).
    expect(site.deliver("full@example.org", small, &[]), 77, "5.2.2 ");
    expect(
        site.deliver("full@example.org", small, &["--quota-temporary"]),
        75,
        "4.2.2 ",
    );
    expect(
        site.deliver("full@example.org", small, &["--qmail"]),
        100,
        "5.2.2 ",
    );
    let args = ["--quota-temporary", "--qmail"];
    expect(
        site.deliver("full@example.org", small, &args),
        111,
        "4.2.2 ",
    );
    assert_eq!(site.files("full").len(), 2);

    // --quota applies to accounts without a rule of their own.
    let quota = ["--quota", "bytes=50"];
    expect(
        site.deliver("open@example.org", &[b'x'; 51], &quota),
        77,
        "5.2.3 ",
    );
    expect(site.deliver("open@example.org", &[b'x'; 30], &quota), 0, "");
    expect(
        site.deliver("open@example.org", &[b'x'; 30], &quota),
        77,
        "5.2.2 ",
    );
    assert_eq!(site.files("open").len(), 1);

    // What the administrator must fix keeps the mail queued.
    expect(
        site.deliver("open@example.org", small, &["--quota", "lots"]),
        75,
        "4.3.0 ",
    );
    expect(
        site.deliver("open@example.org", small, &["--no-such-option"]),
        75,
        "4.3.0 ",
    );
    let missing = ["--passwd", "/nonexistent/passwd"];
    expect(
        site.deliver("open@example.org", small, &missing),
        75,
        "4.3.0 ",
    );
    expect(
        site.deliver("open@example.org", small, &["--no-such", "--qmail"]),
        111,
        "4.3.0 ",
    );
    assert_eq!(site.files("open").len(), 1);
}

#[test]
fn agents_and_pop3_sessions_at_once_never_lose_mail_or_make_the_quota_drift() {
    let site = Site::new(
        "deliver-many",
        &[("busy", "userdb_quota_rule=*:storage=1G")],
    );
    // A maildirsize a few lines short of the 5120 bytes that call for a recount (its figures
    // add up to the empty Maildir): recounts then happen while agents and sessions run.
    let maildir = site.maildir("busy");
    let (uid, gid) = owner();
    for dir in [maildir.clone(), maildir.join("tmp")] {
        fs::create_dir(&dir).unwrap();
        chown(&dir, Some(uid), Some(gid)).unwrap();
    }
    let padding = "0 0\n".repeat((5120 - 100) / 4);
    let size_file = maildir.join("maildirsize");
    fs::write(&size_file, format!("1073741824S\n{padding}")).unwrap();
    chown(&size_file, Some(uid), Some(gid)).unwrap();
    let server = site.server();
    let mut delivered = 0;
    let mut taken = Vec::new();
    for round in 0..3 {
        std::thread::scope(|s| {
            let agents: Vec<_> = (0..10)
                .map(|i| {
                    let site = &site;
                    s.spawn(move || {
                        let body = "x".repeat(60) + "\n";
                        let msg = format!("Subject: {round}.{i}\n\n{}", body.repeat(i * 5));
                        site.deliver("busy@example.org", msg.as_bytes(), &[])
                    })
                })
                .collect();
            let reader = s.spawn(|| pop3(&server, "busy@example.org", true));
            for agent in agents {
                let out = agent.join().unwrap();
                assert!(out.status.success(), "{}", stderr(&out));
                delivered += 1;
            }
            taken.extend(reader.join().unwrap());
        });
    }
    taken.extend(pop3(&server, "busy@example.org", true));
    let subjects: BTreeSet<String> = taken
        .iter()
        .map(|(_, m)| {
            String::from_utf8_lossy(&m[..m.iter().position(|&b| b == b'\n').unwrap()]).into_owned()
        })
        .collect();
    assert_eq!(taken.len(), delivered, "each message taken exactly once");
    assert_eq!(subjects.len(), delivered, "none duplicated");
    let (sum, count) = site.figures("busy");
    assert_eq!(sum, count, "maildirsize adds up to what the Maildir holds");
    let text = fs::read_to_string(&size_file).unwrap();
    assert!(
        text.len() < 4000,
        "recounted along the way: {} bytes",
        text.len()
    );
    assert_eq!(count, (0, 0));
}

#[test]
fn an_agent_killed_at_any_moment_leaves_no_partial_message() {
    let site = Site::new(
        "deliver-kill",
        &[("carol", "userdb_quota_rule=*:storage=1G")],
    );
    let whole: Vec<u8> = [
        b"Subject: whole\n\n".as_slice(),
        &b"0123456789abcdef\n".repeat(64 * 1024),
    ]
    .concat();
    let mut seed = Instant::now().elapsed().subsec_nanos() | 1;
    for attempt in 0..12 {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let mut agent = site
            .agent("carol@example.org", &[])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = agent.stdin.take().unwrap();
        // Some of the message, or all of it (then the kill may come before, during or after
        // the commit), then a kill -9 a few milliseconds later.
        let cut = if attempt % 3 == 0 {
            whole.len()
        } else {
            seed as usize % whole.len()
        };
        let _ = stdin.write_all(&whole[..cut]);
        if cut == whole.len() {
            drop(stdin);
        }
        std::thread::sleep(Duration::from_millis(u64::from(seed % 20)));
        // SAFETY: kill takes plain integers; the pid is our own child's, not yet waited for.
        unsafe { libc::kill(agent.id() as libc::pid_t, libc::SIGKILL) };
        let _ = agent.wait();
        for file in site.files("carol") {
            assert_eq!(
                fs::read(&file).unwrap(),
                whole,
                "{} is partial",
                file.display()
            );
        }
    }
    // A POP3 client sees whole messages only, and the next delivery cleans up nothing it
    // should not (tmp/ leftovers are young) and still succeeds.
    let out = site.deliver("carol@example.org", &whole, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let server = site.server();
    let got = pop3(&server, "carol@example.org", false);
    assert!(!got.is_empty());
    assert!(got.iter().all(|(_, m)| *m == whole));
    assert_eq!(got.len(), site.files("carol").len());
}

/// Waits for `pid` (a child not yet waited for) at most `limit`, killing it on overrun, and
/// returns its exit code and its peak resident memory in kilobytes.
fn wait_measured(pid: u32, limit: Duration) -> (Option<i32>, i64) {
    let deadline = Instant::now() + limit;
    loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: plain integers and pointers to our own locals, valid for the call.
        let r = unsafe { libc::wait4(pid as i32, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid as i32 {
            let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
            return (code, usage.ru_maxrss);
        }
        if Instant::now() > deadline {
            // SAFETY: kill takes plain integers; the child is ours and not yet reaped.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("the agent did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
// The agents are reaped by wait4 in wait_measured, which std cannot see.
#[allow(clippy::zombie_processes)]
fn memory_stays_flat_for_a_100_mb_message() {
    let site = Site::new("deliver-big", &[("big", "")]);
    let run = |megabytes: usize| {
        let mut agent = site
            .agent("big@example.org", &[])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = agent.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let chunk = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopq\n"
                .repeat(16 * 1024);
            for _ in 0..megabytes {
                stdin.write_all(&chunk).unwrap();
            }
        });
        let measured = wait_measured(agent.id(), Duration::from_secs(120));
        writer.join().unwrap();
        measured
    };
    let (code, small) = run(1);
    assert_eq!(code, Some(0));
    let (code, big) = run(100);
    assert_eq!(code, Some(0));
    let name = site.files("big")[1]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let size = 100 << 20;
    assert!(
        name.ends_with(&format!(",S={size},W={}", size + size / 64)),
        "{name}"
    );
    println!("peak RSS: {small} kB for 1 MB, {big} kB for 100 MB");
    // The same peak for 1 MB and 100 MB, give or take a few pages.
    assert!(
        big < small + 4096,
        "peak RSS {big} kB for 100 MB, {small} kB for 1 MB"
    );
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_keeps_the_mail_queued_and_leaves_nothing_behind() {
    // SAFETY: geteuid takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: needs root");
        return;
    }
    let site = Site::new("deliver-full", &[("tiny", "")]);
    let maildir = site.maildir("tiny");
    fs::create_dir(&maildir).unwrap();
    let (uid, gid) = owner();
    let options = format!("size=1m,mode=0700,uid={uid},gid={gid}");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &options, "p3tdeliver"])
        .arg(&maildir)
        .status()
        .expect("mount(8)");
    assert!(mounted.success());
    let _mount = Tmpfs(maildir.clone());

    let big = b"x".repeat(2 << 20);
    let out = site.deliver("tiny@example.org", &big, &[]);
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(stderr(&out).starts_with("4.3.0 "));
    assert!(site.files("tiny").is_empty());
    assert_eq!(fs::read_dir(maildir.join("tmp")).unwrap().count(), 0);
    let out = site.deliver("tiny@example.org", b"Subject: small\n\nfits\n", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(site.files("tiny").len(), 1);
}
