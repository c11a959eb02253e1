//! A real Postfix (Debian's package), started by a test with its own configuration, queue and
//! log, listening on a loopback port of its own, and stopped when the test ends.
//!
//! Each instance lives in one temporary directory:
//!
//! | path        | what                                                                 |
//! |-------------|----------------------------------------------------------------------|
//! | `conf/`     | `main.cf` and `master.cf`, generated; the `-c` directory              |
//! | `queue/`    | `queue_directory` (Postfix makes its subdirectories at start)         |
//! | `data/`     | `data_directory`, owned by `postfix` (master.lock, caches)            |
//! | `maillog`   | `maillog_file`, written by `postlogd`: every line of this instance    |
//! | `spool/`    | `mail_spool_directory` unless the test gives one: root:mail, 2775     |
//! | `sink/`     | each message for `@sink.test` (the bounces to test senders), a file   |
//!
//! Nothing outside that directory is written: no `/etc/postfix/main.cf` is needed (root may
//! run `postfix -c`, `postqueue -c` with any directory), no syslog, no port but the instance's
//! own. `syslog_name` is unique per instance, so several run at once.
//!
//! Mail that does not go to the test domain, a virtual pipe domain or [`SINK_DOMAIN`] bounces
//! at once (`default_transport = error`): nothing leaves the machine. Bounces and the
//! postmaster's notices go to [`SINK_DOMAIN`], so a test sends from `someone@sink.test` and
//! reads Postfix's bounces with [`Postfix::sink_messages`].

use super::maildir::run_bounded;
use super::smtp::{self, Sent};
use super::system_user::is_root;
use super::temp_dir::TempDir;
use std::collections::BTreeSet;
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The domain whose mail is kept in the instance's `sink/` directory: send from an address
/// there and Postfix's bounces come back to it.
pub const SINK_DOMAIN: &str = "sink.test";

/// The sender to use when a test wants to read the bounces.
pub const SENDER: &str = "sender@sink.test";

/// How a Postfix instance is set up. `Default` gives local delivery of `pop3d.test` into the
/// instance's own spool directory, unknown local users refused at RCPT TO.
#[derive(Clone, Debug)]
pub struct PostfixConfig {
    /// `mydestination`: the domain that `local(8)` delivers for.
    pub domain: String,
    /// `mail_spool_directory`; `None` for the instance's own `spool/` (root:mail, mode 2775,
    /// as Debian's `/var/mail`). Debian's `mailbox_delivery_lock` (fcntl, dotlock) applies.
    pub spool: Option<PathBuf>,
    /// `mailbox_command`: local delivery runs it as the recipient (through `/bin/sh` when it
    /// has shell characters) with the message on standard input, instead of writing the spool.
    pub mailbox_command: Option<String>,
    /// Which local recipients smtpd takes.
    pub local_recipients: LocalRecipients,
    /// A `pipe(8)` transport for virtual domains (`virtual_transport`).
    pub virtual_pipe: Option<PipeTransport>,
    /// `recipient_delimiter`: `user+ext@domain` goes to `user`, `$EXTENSION` is `ext`.
    pub recipient_delimiter: String,
    /// More `main.cf` lines (`name = value`), written last so they win.
    pub extra_main_cf: Vec<String>,
}

impl Default for PostfixConfig {
    fn default() -> Self {
        PostfixConfig {
            domain: "pop3d.test".into(),
            spool: None,
            mailbox_command: None,
            local_recipients: LocalRecipients::Passwd,
            virtual_pipe: None,
            recipient_delimiter: "+".into(),
            extra_main_cf: Vec::new(),
        }
    }
}

/// `local_recipient_maps`: where an unknown local user is turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalRecipients {
    /// Postfix's default: the passwd file. smtpd refuses an unknown user at RCPT TO with
    /// `550 5.1.1 ... User unknown in local recipient table`; no bounce is made.
    Passwd,
    /// Empty: smtpd takes any local recipient and `local(8)` bounces an unknown one (`dsn=5.1.1,
    /// status=bounced (unknown user: "x")`), so the sender gets Postfix's bounce.
    Any,
}

/// A `pipe(8)` transport named `pop3d` in master.cf, the `virtual_transport` of `domains`, one
/// recipient a delivery (`pop3d_destination_recipient_limit = 1`, so `${recipient}` is one).
#[derive(Clone, Debug)]
pub struct PipeTransport {
    /// `virtual_mailbox_domains` (any recipient there is taken; the command decides).
    pub domains: Vec<String>,
    /// `user=`: the account the command runs as (neither root nor postfix: pipe refuses them).
    pub user: String,
    /// `flags=`, e.g. `R` (Return-Path), `D` (Delivered-To), `O` (X-Original-To), `F` (From_
    /// line), `h`/`u` (lower-case domain/user); may be empty.
    pub flags: String,
    /// `argv=`: the program and its arguments, with pipe's macros (`${recipient}`, `${user}`,
    /// `${sender}`...). An argument with spaces is written in master.cf's `{ ... }` braces.
    pub argv: Vec<String>,
}

/// One delivery attempt, parsed from a `QUEUEID: to=<...>, ..., status=...` line of the log.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The queue id.
    pub queue_id: String,
    /// The recipient (`to=`).
    pub to: String,
    /// The original recipient (`orig_to=`), when it differs.
    pub orig_to: Option<String>,
    /// `relay=`: `local`, `pop3d`, `none`...
    pub relay: String,
    /// The enhanced status code, `2.0.0`, `5.1.1`, `4.3.0`...
    pub dsn: String,
    /// `sent`, `bounced`, `deferred`...
    pub status: String,
    /// The text in parentheses after the status (`delivered to mailbox`, a command's output).
    pub detail: String,
}

/// A running Postfix instance; stopped, with every process it started, on drop.
pub struct Postfix {
    config: PostfixConfig,
    addr: SocketAddr,
    dir: TempDir,
    master: Option<u32>,
}

/// Makes each instance's syslog_name unique in this machine's run.
static INSTANCE: AtomicU32 = AtomicU32::new(0);

impl Postfix {
    /// Starts an instance (at most 30 s); `None` when not root (Postfix's daemons need it).
    /// Fails the test when Postfix is not installed or does not start.
    pub fn start(config: PostfixConfig) -> Option<Postfix> {
        if !is_root() {
            return None;
        }
        assert!(
            Path::new("/usr/sbin/postfix").exists(),
            "Postfix is not installed (Debian package postfix; tests/run.sh installs it)"
        );
        let dir = TempDir::new("postfix");
        let n = INSTANCE.fetch_add(1, Ordering::SeqCst);
        let name = format!("postfix-p3t{}x{n}", std::process::id() % 100_000);
        for sub in ["conf", "queue", "data", "sink"] {
            fs::create_dir(dir.path().join(sub)).unwrap();
        }
        chown(dir.path().join("data"), Some(postfix_uid()), None).unwrap();
        // The sink's command runs as nobody (pipe runs nothing as root or postfix).
        let nobody = account_id("-u", "nobody");
        chown(dir.path().join("sink"), Some(nobody), None).unwrap();
        let sink = dir.path().join("sink.sh");
        fs::write(
            &sink,
            "#!/bin/sh\nexec cat > \"$(mktemp \"$1/msg.XXXXXXXX\")\"\n",
        )
        .unwrap();
        fs::set_permissions(&sink, fs::Permissions::from_mode(0o755)).unwrap();
        if config.spool.is_none() {
            let spool = dir.path().join("spool");
            fs::create_dir(&spool).unwrap();
            chown(&spool, Some(0), Some(account_id("-g", "mail"))).unwrap();
            fs::set_permissions(&spool, fs::Permissions::from_mode(0o2775)).unwrap();
        }
        let mut postfix = Postfix {
            config,
            addr: "127.0.0.1:0".parse().unwrap(),
            dir,
            master: None,
        };
        // A port the kernel just gave may be taken again before master binds it: try another.
        for _attempt in 0..5 {
            postfix.addr = free_port();
            postfix.write_config(&name);
            let out = run_bounded(
                Command::new("postfix").args(["-c", &postfix.conf(), "start"]),
                Duration::from_secs(30),
            );
            if out.status.success() {
                postfix.master = Some(postfix.master_pid());
                return Some(postfix);
            }
            if !postfix.log().contains("Address already in use") {
                panic!(
                    "postfix start failed: {}{}\nlog:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                    postfix.log()
                );
            }
        }
        panic!("postfix found no free port:\n{}", postfix.log());
    }

    /// The smtpd listener, on 127.0.0.1.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The domain local delivery serves (`mydestination`).
    pub fn domain(&self) -> &str {
        &self.config.domain
    }

    /// `user@domain` for the local domain.
    pub fn address(&self, user: &str) -> String {
        format!("{user}@{}", self.config.domain)
    }

    /// The instance's directory (see the module's table).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `mail_spool_directory`: where local delivery appends to `USER`.
    pub fn spool(&self) -> PathBuf {
        self.config
            .spool
            .clone()
            .unwrap_or_else(|| self.dir.path().join("spool"))
    }

    /// Sends `message` over SMTP (see [`smtp::send`]); fails the test on an I/O error or an
    /// unexpected reply. Refused recipients are in [`Sent::rejected`]. When this returns with a
    /// queue id, the message is in Postfix's queue.
    pub fn send(&self, from: &str, to: &[&str], message: &[u8]) -> Sent {
        smtp::send(self.addr, from, to, message)
            .unwrap_or_else(|e| panic!("SMTP to Postfix: {e}\nlog:\n{}", self.log()))
    }

    /// Waits at most `limit` until Postfix has nothing left to do: no message in `incoming`,
    /// `active` or `maildrop`, and every message it took logged as removed or deferred (the
    /// log comes through postlogd a moment after the fact). Deferred messages stay in the
    /// queue ([`deferred`](Self::deferred)); Postfix retries them only after
    /// `minimal_backoff_time` (300 s) or on [`flush`](Self::flush).
    pub fn wait_idle(&self, limit: Duration) {
        let queue = self.dir.path().join("queue");
        let busy = || {
            ["incoming", "active", "maildrop"]
                .iter()
                .map(|q| queue_files(&queue.join(q)).len())
                .sum::<usize>()
        };
        self.wait_for(limit, "idle queue", || {
            busy() == 0 && self.unfinished().is_empty()
        });
    }

    /// Queue ids the qmgr took whose end (removed, or deferred and still queued) is not logged.
    fn unfinished(&self) -> BTreeSet<String> {
        let log = self.log();
        let deferred: BTreeSet<String> = self.deferred().into_iter().collect();
        let mut open = BTreeSet::new();
        for line in log.lines() {
            let Some((id, rest)) = queue_line(line) else {
                continue;
            };
            if rest.contains("(queue active)") {
                open.insert(id.to_owned());
            } else if rest == "removed" {
                open.remove(id);
            }
        }
        &open - &deferred
    }

    /// The queue ids in the deferred queue.
    pub fn deferred(&self) -> Vec<String> {
        queue_files(&self.dir.path().join("queue").join("deferred"))
    }

    /// Asks Postfix to try every deferred message now (`postqueue -f`).
    pub fn flush(&self) {
        let out = run_bounded(
            Command::new("postqueue").args(["-c", &self.conf(), "-f"]),
            Duration::from_secs(30),
        );
        assert!(
            out.status.success(),
            "postqueue -f: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The instance's whole log so far.
    pub fn log(&self) -> String {
        fs::read(self.dir.path().join("maillog"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Waits at most `limit` until the log contains `text`; returns the log, or fails the test
    /// with it.
    pub fn wait_log(&self, text: &str, limit: Duration) -> String {
        self.wait_for(limit, &format!("{text:?} in the log"), || {
            self.log().contains(text)
        });
        self.log()
    }

    /// Checks `done` every 20 ms for at most `limit`; fails the test with `what` and the log
    /// when it stays false.
    pub fn wait_for(&self, limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "no {what} after {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every delivery attempt logged for `recipient` (compared without case), oldest first.
    pub fn deliveries(&self, recipient: &str) -> Vec<Delivery> {
        self.log()
            .lines()
            .filter_map(parse_delivery)
            .filter(|d| d.to.eq_ignore_ascii_case(recipient))
            .collect()
    }

    /// The messages delivered to [`SINK_DOMAIN`] (bounces, postmaster notices), oldest first.
    pub fn sink_messages(&self) -> Vec<Vec<u8>> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> =
            fs::read_dir(self.dir.path().join("sink"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .map(|p| (fs::metadata(&p).unwrap().modified().unwrap(), p))
                .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, p)| fs::read(p).unwrap())
            .collect()
    }

    /// The live processes of the instance: master, its session and their descendants (a
    /// delivery command too, though pipe and local start it in a session of its own).
    pub fn processes(&self) -> Vec<u32> {
        let Some(master) = self.master else {
            return Vec::new();
        };
        instance_processes(master)
            .into_iter()
            .filter(|&p| alive(p))
            .collect()
    }

    /// Whether process `pid` is still running (not a zombie).
    pub fn is_running(pid: u32) -> bool {
        alive(pid)
    }

    /// Stops the instance now (as drop does).
    pub fn stop(mut self) {
        self.shut_down();
    }

    /// Stops master (SIGTERM, as `postfix stop` does), waits at most 10 s for it to end, then
    /// kills (SIGKILL) any process of the instance left: master's session and the descendants
    /// of master, found before and after the stop.
    fn shut_down(&mut self) {
        let Some(master) = self.master.take() else {
            return;
        };
        let before = instance_processes(master);
        // What `postfix stop` does, without its one-second polling: SIGTERM to master, which
        // passes it to its process group.
        // SAFETY: kill has no memory effects; the pid is this instance's master.
        unsafe { libc::kill(master as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(master) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut left = before;
        left.extend(instance_processes(master));
        for pid in left {
            if alive(pid) {
                // SAFETY: kill has no memory effects; the pid is one of this instance's.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }

    fn conf(&self) -> String {
        self.dir.path().join("conf").to_str().unwrap().to_owned()
    }

    fn master_pid(&self) -> u32 {
        let path = self.dir.path().join("queue/pid/master.pid");
        let text = fs::read_to_string(&path).unwrap_or_default();
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{}: {text:?}\n{}", path.display(), self.log()))
    }

    fn write_config(&self, syslog_name: &str) {
        let c = &self.config;
        let dir = self.dir.path().to_str().unwrap();
        let mut main = vec![
            "compatibility_level = 3.6".to_owned(),
            format!("queue_directory = {dir}/queue"),
            format!("data_directory = {dir}/data"),
            "mail_owner = postfix".into(),
            "setgid_group = postdrop".into(),
            format!("syslog_name = {syslog_name}"),
            format!("maillog_file = {dir}/maillog"),
            format!("maillog_file_prefixes = {dir}/"),
            "inet_interfaces = 127.0.0.1".into(),
            "inet_protocols = ipv4".into(),
            format!("myhostname = mx.{}", c.domain),
            format!("mydomain = {}", c.domain),
            format!("myorigin = {}", c.domain),
            format!("mydestination = {}", c.domain),
            "mynetworks = 127.0.0.0/8".into(),
            "smtpd_peername_lookup = no".into(),
            "in_flow_delay = 0".into(),
            "biff = no".into(),
            "alias_maps =".into(),
            "alias_database =".into(),
            format!("recipient_delimiter = {}", c.recipient_delimiter),
            format!("mail_spool_directory = {}", self.spool().display()),
            "message_size_limit = 104857600".into(),
            "mailbox_size_limit = 0".into(),
            "default_transport = error:5.7.1 no mail leaves a test".into(),
            "relay_transport = error:5.7.1 no mail leaves a test".into(),
            format!("transport_maps = inline:{{ {SINK_DOMAIN}=sink: }}"),
            "sink_destination_recipient_limit = 1".into(),
        ];
        for notice in ["bounce", "2bounce", "delay", "error"] {
            main.push(format!(
                "{notice}_notice_recipient = postmaster@{SINK_DOMAIN}"
            ));
        }
        main.push(match c.local_recipients {
            LocalRecipients::Passwd => "local_recipient_maps = unix:passwd.byname".into(),
            LocalRecipients::Any => "local_recipient_maps =".into(),
        });
        if let Some(command) = &c.mailbox_command {
            main.push(format!("mailbox_command = {command}"));
        }
        let mut master = format!(
            "{}:{} inet n - n - - smtpd\n",
            self.addr.ip(),
            self.addr.port()
        );
        for (service, kind, private, unprivileged, wakeup, limit, program) in MASTER_SERVICES {
            master.push_str(&format!(
                "{service} {kind} {private} {unprivileged} n {wakeup} {limit} {program}\n"
            ));
        }
        master.push_str(&format!(
            "sink unix - n n - - pipe\n  user=nobody argv={dir}/sink.sh {dir}/sink\n"
        ));
        if let Some(pipe) = &c.virtual_pipe {
            main.push(format!(
                "virtual_mailbox_domains = {}",
                pipe.domains.join(" ")
            ));
            main.push("virtual_transport = pop3d".into());
            main.push("pop3d_destination_recipient_limit = 1".into());
            let argv: Vec<String> = pipe
                .argv
                .iter()
                .map(|a| {
                    if a.contains(char::is_whitespace) {
                        format!("{{ {a} }}")
                    } else {
                        a.clone()
                    }
                })
                .collect();
            let flags = if pipe.flags.is_empty() {
                String::new()
            } else {
                format!("flags={} ", pipe.flags)
            };
            master.push_str(&format!(
                "pop3d unix - n n - - pipe\n  {flags}user={} argv={}\n",
                pipe.user,
                argv.join(" ")
            ));
        }
        main.extend(c.extra_main_cf.iter().cloned());
        let conf = self.dir.path().join("conf");
        let past = std::time::SystemTime::now() - Duration::from_secs(10);
        for (file, text) in [("main.cf", main.join("\n") + "\n"), ("master.cf", master)] {
            fs::write(conf.join(file), text).unwrap();
            // Postfix reads a file changed within the current second again and again until
            // that second is over (in case an editor is still writing it): up to 2 s a start.
            let f = fs::File::options()
                .write(true)
                .open(conf.join(file))
                .unwrap();
            f.set_modified(past).unwrap();
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// The services of master.cf besides smtpd and the pipes: Debian's, none chrooted (the queue
/// is not under /var/spool/postfix), no TLS, no lmtp/smtp clients (no mail leaves).
/// (service, type, private, unprivileged, wakeup, process limit, command)
const MASTER_SERVICES: &[(&str, &str, &str, &str, &str, &str, &str)] = &[
    ("pickup", "unix", "n", "-", "60", "1", "pickup"),
    ("cleanup", "unix", "n", "-", "-", "0", "cleanup"),
    ("qmgr", "unix", "n", "-", "300", "1", "qmgr"),
    ("rewrite", "unix", "-", "-", "-", "-", "trivial-rewrite"),
    ("bounce", "unix", "-", "-", "-", "0", "bounce"),
    ("defer", "unix", "-", "-", "-", "0", "bounce"),
    ("trace", "unix", "-", "-", "-", "0", "bounce"),
    ("verify", "unix", "-", "-", "-", "1", "verify"),
    ("flush", "unix", "n", "-", "1000?", "0", "flush"),
    ("proxymap", "unix", "-", "-", "-", "-", "proxymap"),
    ("showq", "unix", "n", "-", "-", "-", "showq"),
    ("error", "unix", "-", "-", "-", "-", "error"),
    ("retry", "unix", "-", "-", "-", "-", "error"),
    ("discard", "unix", "-", "-", "-", "-", "discard"),
    ("local", "unix", "-", "n", "-", "-", "local"),
    ("virtual", "unix", "-", "n", "-", "-", "virtual"),
    ("anvil", "unix", "-", "-", "-", "1", "anvil"),
    ("scache", "unix", "-", "-", "-", "1", "scache"),
    ("postlog", "unix-dgram", "n", "-", "-", "1", "postlogd"),
];

/// `(queue id, rest)` of a log line `... prog[pid]: QUEUEID: rest`.
fn queue_line(line: &str) -> Option<(&str, &str)> {
    let (_, after) = line.split_once("]: ")?;
    let (id, rest) = after.split_once(": ")?;
    let is_id = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric());
    (is_id && id != "NOQUEUE").then_some((id, rest))
}

/// A delivery line: `QUEUEID: to=<a>, [orig_to=<b>,] relay=R, ..., dsn=D, status=S (detail)`.
fn parse_delivery(line: &str) -> Option<Delivery> {
    let (id, rest) = queue_line(line)?;
    let to = rest.strip_prefix("to=<")?.split_once('>')?.0;
    let field = |name: &str| -> Option<&str> {
        let start = rest.find(&format!(", {name}="))? + name.len() + 3;
        Some(rest[start..].split([',', ' ']).next().unwrap_or(""))
    };
    let status_at = rest.find(", status=")? + ", status=".len();
    let (status, detail) = rest[status_at..]
        .split_once(' ')
        .unwrap_or((&rest[status_at..], ""));
    Some(Delivery {
        queue_id: id.to_owned(),
        to: to.to_owned(),
        orig_to: field("orig_to").map(|o| o.trim_matches(['<', '>']).to_owned()),
        relay: field("relay")?.to_owned(),
        dsn: field("dsn")?.to_owned(),
        status: status.to_owned(),
        detail: detail
            .strip_prefix('(')
            .and_then(|d| d.strip_suffix(')'))
            .unwrap_or(detail)
            .to_owned(),
    })
}

/// The names of the files under `dir`, at any depth (deferred/ is hashed into subdirectories).
fn queue_files(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            names.extend(queue_files(&path));
        } else {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names
}

/// A loopback port free a moment ago.
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn postfix_uid() -> u32 {
    account_id("-u", "postfix")
}

/// `id FLAG NAME` for a system account or, with `-g` and a group name, `getent group`.
fn account_id(flag: &str, name: &str) -> u32 {
    let out = if flag == "-g" {
        Command::new("getent").args(["group", name]).output()
    } else {
        Command::new("id").args([flag, name]).output()
    }
    .expect("id/getent runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = if flag == "-g" {
        text.split(':').nth(2).unwrap_or("")
    } else {
        text.trim()
    };
    field
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no account/group {name}"))
}

/// `(pid, state, ppid, session)` of every process.
fn processes() -> Vec<(u32, char, u32, u32)> {
    let mut all = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses.
        let Some((_, tail)) = stat.rsplit_once(") ") else {
            continue;
        };
        let f: Vec<&str> = tail.split(' ').collect();
        if let (Some(state), Some(ppid), Some(session)) = (
            f.first().and_then(|s| s.chars().next()),
            f.get(1).and_then(|s| s.parse().ok()),
            f.get(3).and_then(|s| s.parse().ok()),
        ) {
            all.push((pid, state, ppid, session));
        }
    }
    all
}

/// Master (a session leader) and every process of its session or descended from it.
fn instance_processes(master: u32) -> BTreeSet<u32> {
    let all = processes();
    let mut found: BTreeSet<u32> = all
        .iter()
        .filter(|p| p.0 == master || p.3 == master)
        .map(|p| p.0)
        .collect();
    loop {
        let more: Vec<u32> = all
            .iter()
            .filter(|p| found.contains(&p.2) && !found.contains(&p.0))
            .map(|p| p.0)
            .collect();
        if more.is_empty() {
            return found;
        }
        found.extend(more);
    }
}

/// Whether `pid` runs (a zombie does not: where PID 1 does not reap, the daemons' zombies stay).
fn alive(pid: u32) -> bool {
    processes().iter().any(|p| p.0 == pid && p.1 != 'Z')
}
