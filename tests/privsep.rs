//! Each session runs as its own account: started as root, pop3d keeps a privileged broker, and
//! every mailbox whose account has another uid is opened and served by a child of the broker
//! running as that account, while the front serves the protocol as `--user`.
//!
//! The accounts are real system accounts (made and removed by the tests), listed in a passwd
//! file with their uid, gid and home, each with a Maildir of its own (mode 0700). What runs as
//! whom is read from /proc. Standalone and under a real xinetd. Root only.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::pop::Pop;
use support::system_user::{is_root, SystemUser};
use support::temp_dir::TempDir;
use support::wire::{encode, expected_wire};
use support::{note, path_str, BinServer};

/// The longest any wait here lasts: a process to appear, a client to finish.
const LIMIT: Duration = Duration::from_secs(20);

/// The account the front runs as.
const FRONT_USER: &str = "nobody";

fn skip() -> bool {
    if !is_root() {
        note("skipped: needs root (system accounts, and pop3d started as root)");
    }
    !is_root()
}

/// A system account with a Maildir of a few messages that name it.
struct Tenant {
    user: SystemUser,
    /// The stored messages by UIDL.
    messages: BTreeMap<String, Vec<u8>>,
    /// The directory that holds its Maildir.
    home: PathBuf,
    /// That directory as the passwd file gives it (inside a chroot, it differs).
    shown_home: PathBuf,
}

impl Tenant {
    fn new(tag: &str) -> Tenant {
        Self::new_under(tag, None)
    }

    /// An account whose Maildir is in `/homes/NAME` inside `chroot`, if given (in its own
    /// home otherwise).
    fn new_under(tag: &str, chroot: Option<&Path>) -> Tenant {
        let user = SystemUser::create(tag, "pw of a tenant").expect("root");
        let (home, shown_home) = match chroot {
            Some(root) => {
                let shown = Path::new("/homes").join(&user.name);
                (root.join(shown.strip_prefix("/").unwrap()), shown)
            }
            None => (user.home.clone(), user.home.clone()),
        };
        let maildir = home.join("Maildir");
        for sub in ["", "cur", "new", "tmp"] {
            fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        let name = &user.name;
        let bodies: [Vec<u8>; 4] = [
            format!("From: a@example.org\nSubject: for {name}\n\nhello {name}\n").into_bytes(),
            format!("Subject: dots\r\n\r\n.\r\n..twice\r\n.{name}\r\nend").into_bytes(),
            [
                b"Subject: 8bit\n\n\xe9t\xe9 \x00 \xff\n".as_slice(),
                name.as_bytes(),
            ]
            .concat(),
            format!("Subject: long\n\n{}\n", name.repeat(3000)).into_bytes(),
        ];
        let mut messages = BTreeMap::new();
        for (i, body) in bodies.into_iter().enumerate() {
            let uidl = format!("17000000{i:02}.M{i}P1.{name}");
            fs::write(maildir.join("new").join(&uidl), &body).unwrap();
            messages.insert(uidl, body);
        }
        for path in walk(&maildir) {
            chown(&path, Some(user.uid), Some(user.gid)).unwrap();
        }
        fs::set_permissions(&maildir, fs::Permissions::from_mode(0o700)).unwrap();
        Tenant {
            user,
            messages,
            home,
            shown_home,
        }
    }

    /// This account's passwd-file line: its own uid, gid and home.
    fn line(&self) -> String {
        self.line_as(&self.user.name, &self.shown_home)
    }

    /// A line named `name` with this account's ids and password, and `home` as its home.
    fn line_as(&self, name: &str, home: &Path) -> String {
        let u = &self.user;
        format!(
            "{name}:{{PLAIN}}{}:{}:{}::{}::",
            u.password,
            u.uid,
            u.gid,
            home.display()
        )
    }

    /// Stores one more message, owned by the account; returns its UIDL.
    fn deliver(&mut self, uidl: &str, raw: Vec<u8>) -> String {
        let path = self.home.join("Maildir/new").join(uidl);
        fs::write(&path, &raw).unwrap();
        chown(&path, Some(self.user.uid), Some(self.user.gid)).unwrap();
        self.messages.insert(uidl.to_owned(), raw);
        uidl.to_owned()
    }

    fn on_disk(&self) -> Vec<String> {
        let mut names: Vec<String> = ["new", "cur"]
            .iter()
            .flat_map(|sub| fs::read_dir(self.home.join("Maildir").join(sub)).unwrap())
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_owned()];
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        match path.is_dir() {
            true => all.extend(walk(&path)),
            false => all.push(path),
        }
    }
    all
}

/// A passwd file and a state directory that the front (as `--user`) can read.
struct Setup {
    dir: TempDir,
}

impl Setup {
    fn new(tag: &str, lines: &[String]) -> Setup {
        let dir = TempDir::new(tag);
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(dir.path().join("passwd"), lines.join("\n") + "\n").unwrap();
        Setup { dir }
    }

    /// The options for this source and store, for the standalone server and for xinetd. (A
    /// PAM or mbox variant changes these.)
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let passwd = path_str(&self.dir.path().join("passwd"));
        let state = path_str(&self.dir.path().join("state"));
        let mut args: Vec<String> = ["--user", FRONT_USER, "--passwd", &passwd]
            .iter()
            .chain(&["--state-dir", &state, "--fail-delay", "0.05"])
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    fn start(&self, extra: &[&str]) -> BinServer {
        let args = self.args(extra);
        BinServer::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

/// A process as /proc shows it.
#[derive(Debug, Clone)]
struct Proc {
    pid: u32,
    ppid: u32,
    name: String,
    /// Real, effective, saved and file-system uid.
    uid: [u32; 4],
    gid: [u32; 4],
    groups: Vec<u32>,
}

impl Proc {
    /// The process `pid`, unless it is gone or a zombie.
    fn read(pid: u32) -> Option<Proc> {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        if status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'))
        {
            return None;
        }
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        let ids = |key: &str| -> Option<[u32; 4]> {
            let v: Vec<u32> = field(key).iter().filter_map(|s| s.parse().ok()).collect();
            v.try_into().ok()
        };
        Some(Proc {
            pid,
            ppid: field("PPid:").first()?.parse().ok()?,
            name: field("Name:").first()?.clone(),
            uid: ids("Uid:")?,
            gid: ids("Gid:")?,
            groups: field("Groups:")
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect(),
        })
    }

    /// Every live process (zombies, whose uid may be reused by a later test's account, left
    /// out).
    fn all() -> Vec<Proc> {
        fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter_map(Proc::read)
            .collect()
    }
}

/// Waits for the one process named `name` that runs as `uid` (the tenants' uids are unique).
fn process_of(name: &str, uid: u32) -> Proc {
    let deadline = Instant::now() + LIMIT;
    loop {
        let found: Vec<Proc> = Proc::all()
            .into_iter()
            .filter(|p| p.name == name && p.uid[0] == uid)
            .collect();
        match found.as_slice() {
            [one] => return one.clone(),
            [] if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => panic!("{name} processes of uid {uid}: {found:?}"),
        }
    }
}

/// The broker of the front `front`.
fn broker_of(front: u32) -> Proc {
    let found: Vec<Proc> = Proc::all()
        .into_iter()
        .filter(|p| p.ppid == front && p.name == "pop3d-broker")
        .collect();
    assert_eq!(found.len(), 1, "brokers of {front}: {found:?}");
    found[0].clone()
}

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Checks that `tenant`'s mailbox is held by a child of the broker running as the account
/// alone, that the broker is root and a child of the front, and that the front runs as
/// [`FRONT_USER`]; returns the child.
fn check_processes(tenant: &Tenant, front: Option<u32>) -> Proc {
    let u = &tenant.user;
    let child = process_of("pop3d-mailbox", u.uid);
    assert_eq!(child.uid, [u.uid; 4], "{child:?}");
    assert_eq!(child.gid, [u.gid; 4], "{child:?}");
    assert_eq!(child.groups, [u.gid], "{child:?}");
    let broker = Proc::read(child.ppid).expect("the child's parent");
    assert_eq!((broker.name.as_str(), broker.uid), ("pop3d-broker", [0; 4]));
    let front_proc = Proc::read(broker.ppid).expect("the broker's parent");
    if let Some(front) = front {
        assert_eq!(front_proc.pid, front);
    }
    assert_eq!(front_proc.name, "pop3d", "{front_proc:?}");
    assert_eq!(front_proc.uid, [uid_of(FRONT_USER); 4], "{front_proc:?}");
    child
}

/// poplib: logs in, says READY and waits for a line on stdin; then STAT, UIDL, RETR of every
/// message into OUT/UIDL, TOP 1 0 into OUT/top, DELE 1, QUIT; prints the UIDL of message 1.
const POPLIB: &str = r#"
import os, poplib, sys
host, port, user, password, out = sys.argv[1:6]
poplib._MAXLINE = 1 << 20
pop = poplib.POP3(host, int(port), timeout=20)
pop.user(user)
pop.pass_(password)
print("READY", flush=True)
sys.stdin.readline()
count, total = pop.stat()
_, uidls, _ = pop.uidl()
uidl = dict(u.decode().split() for u in uidls)
for n in range(1, count + 1):
    _, lines, _ = pop.retr(n)
    with open(os.path.join(out, uidl[str(n)]), "wb") as f:
        f.write(b"".join(l + b"\r\n" for l in lines))
_, lines, _ = pop.top(1, 0)
with open(os.path.join(out, "top"), "wb") as f:
    f.write(b"".join(l + b"\r\n" for l in lines))
pop.dele(1)
pop.quit()
print(uidl["1"])
"#;

/// A poplib session held open at READY.
struct Poplib {
    child: Child,
    out: TempDir,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Poplib {
    fn log_in(addr: SocketAddr, user: &SystemUser) -> Poplib {
        let out = TempDir::new("privsep-poplib");
        let mut child = Command::new("python3")
            .args(["-c", POPLIB, "127.0.0.1", &addr.port().to_string()])
            .args([&user.name, &user.password])
            .arg(out.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        if line != "READY\n" {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("poplib {}: {line:?} {err}", user.name);
        }
        Poplib { child, out, stdout }
    }

    /// Lets the session go on to its end; checks what it got against `tenant`'s messages and
    /// returns the UIDL of the message it deleted.
    fn finish(mut self, tenant: &Tenant) -> String {
        self.child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        let status = self.child.wait().unwrap();
        let mut err = String::new();
        let _ = self.child.stderr.take().unwrap().read_to_string(&mut err);
        assert!(status.success(), "poplib {}: {err}", tenant.user.name);
        let first = rest.trim().to_owned();
        for (uidl, raw) in &tenant.messages {
            let got = fs::read(self.out.path().join(uidl)).unwrap();
            assert!(got == expected_wire(raw), "{uidl} differs");
        }
        let top = fs::read(self.out.path().join("top")).unwrap();
        assert_eq!(top, unstuffed(&encode(&tenant.messages[&first], Some(0))));
        first
    }
}

impl Drop for Poplib {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TOP or RETR body as a client holds it: terminator gone, dot-stuffing undone.
fn unstuffed(body: &[u8]) -> Vec<u8> {
    let body = body.strip_suffix(b".\r\n").unwrap();
    let mut out = Vec::new();
    for line in body.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    out
}

#[test]
fn two_accounts_are_served_each_by_a_process_of_its_own_uid() {
    if skip() {
        return;
    }
    let (a, b) = (Tenant::new("psa"), Tenant::new("psb"));
    let setup = Setup::new("privsep-two", &[a.line(), b.line()]);
    let server = setup.start(&[]);
    let front = server.child.id();
    let (pa, pb) = (
        Poplib::log_in(server.addr, &a.user),
        Poplib::log_in(server.addr, &b.user),
    );
    check_processes(&a, Some(front));
    check_processes(&b, Some(front));
    for (session, tenant) in [(pa, &a), (pb, &b)] {
        let deleted = session.finish(tenant);
        let mut left: Vec<String> = tenant.messages.keys().cloned().collect();
        left.retain(|u| *u != deleted);
        assert_eq!(tenant.on_disk(), left, "after QUIT");
    }
}

#[test]
fn accounts_of_the_front_user_or_without_a_uid_are_served_in_the_front() {
    if skip() {
        return;
    }
    let dir = TempDir::new("privsep-shared");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let nobody = uid_of(FRONT_USER);
    let mut lines = Vec::new();
    for (user, ids) in [
        ("shared", format!("{nobody}:{nobody}")),
        ("noids", ":".into()),
    ] {
        let home = dir.path().join(user);
        for sub in ["", "cur", "new", "tmp"] {
            fs::create_dir_all(home.join("Maildir").join(sub)).unwrap();
        }
        fs::write(home.join("Maildir/new/1.M1P1.x"), "Subject: s\n\nshared\n").unwrap();
        for path in walk(&home) {
            chown(&path, Some(nobody), Some(nobody)).unwrap();
        }
        lines.push(format!("{user}:{{PLAIN}}pw:{ids}::{}::", home.display()));
    }
    let setup = Setup::new("privsep-shared-passwd", &lines);
    let server = setup.start(&[]);
    let front = server.child.id();
    let broker = broker_of(front);
    for user in ["shared", "noids"] {
        let mut pop = Pop::login(server.addr, user, "pw");
        // No child of the broker: the front itself holds the Maildir open.
        assert!(Proc::all().iter().all(|p| p.ppid != broker.pid), "{user}");
        let maildir = dir.path().join(user).join("Maildir");
        let open = fs::read_dir(format!("/proc/{front}/fd"))
            .unwrap()
            .filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
            .any(|target| target == maildir);
        assert!(open, "the front does not hold {}", maildir.display());
        assert_eq!(pop.cmd("RETR 1"), "+OK 22 octets");
        assert_eq!(pop.body(), b"Subject: s\r\n\r\nshared\r\n");
        pop.quit();
    }
}

/// USER and PASS; the reply to PASS.
fn pass_reply(addr: SocketAddr, user: &str, password: &str) -> String {
    let (mut c, greeting) = Pop::connect(addr);
    assert!(greeting.starts_with("+OK"), "{greeting}");
    assert!(c.cmd(&format!("USER {user}")).starts_with("+OK"));
    c.cmd(&format!("PASS {password}"))
}

#[test]
fn a_home_pointing_at_another_accounts_maildir_is_refused_by_the_file_system() {
    if skip() {
        return;
    }
    let (a, b) = (Tenant::new("psh"), Tenant::new("psv"));
    // "thief" has b's uid, gid and password, and a's home.
    let setup = Setup::new("privsep-home", &[a.line(), b.line_as("thief", &a.home)]);
    let server = setup.start(&[]);
    let reply = pass_reply(server.addr, "thief", &b.user.password);
    assert_eq!(reply, "-ERR [SYS/PERM] Mailbox cannot be opened");
    // Refused by the kernel, because the child runs as b: not only by pop3d's owner check.
    let log = server.wait_for_log("mailbox error: user=thief");
    assert!(log.contains("Permission denied"), "{log}");
    // a's own login still works, and nothing was touched.
    let mut c = Pop::login(server.addr, &a.user.name, &a.user.password);
    c.quit();
    assert_eq!(a.on_disk(), a.messages.keys().cloned().collect::<Vec<_>>());
}

#[test]
fn root_and_uids_below_first_uid_are_refused() {
    if skip() {
        return;
    }
    let (low, high) = (Tenant::new("psl"), Tenant::new("psu"));
    let (low, high) = if low.user.uid < high.user.uid {
        (low, high)
    } else {
        (high, low)
    };
    let root = format!("root0:{{PLAIN}}pw:0:0::{}::", high.home.display());
    let setup = Setup::new("privsep-low", &[low.line(), high.line(), root]);
    let first = high.user.uid.to_string();
    let server = setup.start(&["--first-uid", &first]);
    for (user, password) in [
        ("root0", "pw"),
        (low.user.name.as_str(), low.user.password.as_str()),
    ] {
        let reply = pass_reply(server.addr, user, password);
        assert_eq!(reply, "-ERR [SYS/PERM] Mailbox cannot be opened", "{user}");
    }
    server.wait_for_log("uid 0 (root) is never served");
    server.wait_for_log(&format!("is below --first-uid {first}"));
    let mut c = Pop::login(server.addr, &high.user.name, &high.user.password);
    check_processes(&high, Some(server.child.id()));
    c.quit();
}

#[test]
fn killing_a_child_or_the_broker_fails_that_session_and_the_front_serves_on() {
    if skip() {
        return;
    }
    let (a, mut b, c) = (Tenant::new("psk"), Tenant::new("psm"), Tenant::new("psn"));
    // Larger than every buffer between the child and the client (pipe, sockets), so that the
    // child is still writing it when it is killed.
    let big = b.deliver("1800000000.M9P1.big", b"Subject: big\n\n".repeat(2_000_000));
    let setup = Setup::new("privsep-kill", &[a.line(), b.line(), c.line()]);
    let server = setup.start(&[]);
    let front = server.child.id();

    // A child killed while its session is idle: the next RETR is an -ERR, no cut message.
    let mut pa = Pop::login(server.addr, &a.user.name, &a.user.password);
    let child = check_processes(&a, Some(front));
    kill(child.pid);
    assert!(pa.cmd("RETR 1").starts_with("-ERR [SYS/TEMP]"));
    assert!(pa.cmd("STAT").starts_with("+OK"));

    // A child killed in the middle of a message: the connection is cut, never a short one
    // that looks whole.
    let mut pb = Pop::login(server.addr, &b.user.name, &b.user.password);
    let child = check_processes(&b, Some(front));
    let (_, uidls) = pb.multi("UIDL");
    let n = uidls.iter().position(|l| l.ends_with(&big)).unwrap() + 1;
    pb.send(format!("RETR {n}\r\n").as_bytes());
    assert!(pb.line().starts_with("+OK"));
    // SIGSTOP keeps the child half-way; the kill then ends it there.
    stop_then_kill(child.pid);
    let mut rest = Vec::new();
    let _ = pb.read_to_end(&mut rest);
    assert!(
        !rest.ends_with(b"\r\n.\r\n"),
        "a cut message ended like a whole one"
    );

    // The broker killed: sessions already open go on; new logins that need it fail; the
    // front still answers.
    let mut pc = Pop::login(server.addr, &c.user.name, &c.user.password);
    check_processes(&c, Some(front));
    kill(broker_of(front).pid);
    let reply = pass_reply(server.addr, &a.user.name, &a.user.password);
    assert!(reply.starts_with("-ERR [SYS/TEMP]"), "{reply}");
    assert!(pc.cmd("RETR 1").starts_with("+OK"));
    assert!(!pc.body().is_empty());
    pc.quit();
    pa.quit();
    let (mut d, greeting) = Pop::connect(server.addr);
    assert!(greeting.starts_with("+OK"));
    assert!(d.cmd("CAPA").starts_with("+OK"));
    server.wait_for_log("the privileged broker");
}

/// RETR of every message, each checked byte for byte against the stored one.
fn retrieve_all<S: Read + Write>(pop: &mut Pop<S>, tenant: &Tenant) {
    let (_, uidls) = pop.multi("UIDL");
    assert_eq!(uidls.len(), tenant.messages.len());
    for line in uidls {
        let (n, uidl) = line.split_once(' ').unwrap();
        assert!(pop.cmd(&format!("RETR {n}")).starts_with("+OK"));
        assert!(
            pop.body() == expected_wire(&tenant.messages[uidl]),
            "{uidl}"
        );
    }
}

#[test]
fn under_chroot_the_child_sees_the_tree_the_front_sees() {
    if skip() {
        return;
    }
    let dir = TempDir::new("privsep-chroot");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    // The passwd file gives the home as it is inside the chroot.
    let a = Tenant::new_under("psr", Some(dir.path()));
    fs::write(dir.path().join("passwd"), a.line() + "\n").unwrap();
    let (root, state) = (path_str(dir.path()), path_str(&dir.path().join("state")));
    let server = BinServer::start(&[
        "--user",
        FRONT_USER,
        "--passwd",
        "/passwd",
        "--chroot",
        &root,
        "--state-dir",
        &state,
    ]);
    let mut pop = Pop::login(server.addr, &a.user.name, &a.user.password);
    let child = check_processes(&a, Some(server.child.id()));
    let child_root = fs::read_link(format!("/proc/{}/root", child.pid)).unwrap();
    assert_eq!(child_root, dir.path());
    retrieve_all(&mut pop, &a);
    pop.quit();
}

fn kill(pid: u32) {
    // SAFETY: kill takes plain integers.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
}

fn stop_then_kill(pid: u32) {
    // SAFETY: kill takes plain integers.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGSTOP) }, 0);
    std::thread::sleep(Duration::from_millis(100));
    kill(pid);
}

// ---- Under xinetd ----

/// A real xinetd serving `pop3d --inetd` on a loopback port, in the foreground; stopped on
/// drop.
struct Xinetd {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Xinetd {
    fn start(pop3d_args: &[String]) -> Xinetd {
        let dir = TempDir::new("privsep-xinetd");
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let config = dir.path().join("xinetd.conf");
        let service = format!(
            "service p3tprivsep{port}\n{{\n\ttype = UNLISTED\n\tsocket_type = stream\n\t\
             protocol = tcp\n\twait = no\n\tuser = root\n\tbind = 127.0.0.1\n\tport = {port}\n\t\
             server = {}\n\tserver_args = --inetd {}\n\tinstances = 20\n\tper_source = 20\n\t\
             cps = 200 1\n}}\n",
            env!("CARGO_BIN_EXE_pop3d"),
            pop3d_args.join(" "),
        );
        fs::write(&config, service).unwrap();
        let pidfile = dir.path().join("pid");
        let child = Command::new("xinetd")
            .args(["-dontfork", "-f"])
            .arg(&config)
            .arg("-pidfile")
            .arg(&pidfile)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("xinetd (Debian package xinetd)");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + LIMIT;
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "xinetd does not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Xinetd {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for Xinetd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn under_xinetd_each_session_runs_as_its_account() {
    if skip() {
        return;
    }
    let (a, b) = (Tenant::new("psx"), Tenant::new("psy"));
    let setup = Setup::new("privsep-xinetd", &[a.line(), b.line_as("thief", &a.home)]);
    let xinetd = Xinetd::start(&setup.args(&[]));
    // The probe connection above was one session already; this one logs in.
    let mut pa = Pop::login(xinetd.addr, &a.user.name, &a.user.password);
    let child = check_processes(&a, None);
    let front = Proc::read(Proc::read(child.ppid).unwrap().ppid).unwrap();
    assert_eq!(front.ppid, xinetd.child.id(), "the front is xinetd's child");
    retrieve_all(&mut pa, &a);
    pa.quit();
    // The session's processes are gone with it.
    let deadline = Instant::now() + LIMIT;
    while Proc::all().iter().any(|p| p.uid[0] == a.user.uid) {
        assert!(
            Instant::now() < deadline,
            "a process of {} remains",
            a.user.name
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let reply = pass_reply(xinetd.addr, "thief", &b.user.password);
    assert_eq!(reply, "-ERR [SYS/PERM] Mailbox cannot be opened");
    assert_eq!(a.on_disk(), a.messages.keys().cloned().collect::<Vec<_>>());
}

/// A PAM service file `/etc/pam.d/NAME` with pam_unix alone, removed on drop.
struct PamFile(PathBuf);

impl PamFile {
    fn install(tag: &str) -> (PamFile, String) {
        let name = format!("p3t{tag}{}", std::process::id());
        let path = PathBuf::from("/etc/pam.d").join(&name);
        fs::write(
            &path,
            "auth required pam_unix.so\naccount required pam_unix.so\n",
        )
        .unwrap();
        (PamFile(path), name)
    }
}

impl Drop for PamFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// The gid of the group `mail`, which owns mail spools on Debian.
fn mail_gid() -> u32 {
    let out = Command::new("getent")
        .args(["group", "mail"])
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.split(':')
        .nth(2)
        .expect("a mail group")
        .parse()
        .unwrap()
}

#[test]
fn under_xinetd_pam_sessions_on_mbox_spools_run_as_the_account_and_no_other() {
    if skip() {
        return;
    }
    let (a, b) = (
        SystemUser::create("pxa", "pam pw a").expect("root"),
        SystemUser::create("pxb", "pam pw b").expect("root"),
    );
    let (_pam, service) = PamFile::install("pxm");
    // A spool directory as Debian's /var/mail: root:mail, 2775; spools user:mail, 0660.
    let dir = TempDir::new("privsep-mbox");
    let spool = dir.path().join("mail");
    fs::create_dir(&spool).unwrap();
    chown(&spool, Some(0), Some(mail_gid())).unwrap();
    fs::set_permissions(&spool, fs::Permissions::from_mode(0o2775)).unwrap();
    let message = |u: &SystemUser| {
        format!("Subject: for {0}\n\nonly {0} may read this\n", u.name).into_bytes()
    };
    for u in [&a, &b] {
        let path = spool.join(&u.name);
        let mut mbox = b"From sender@example.org  Sat Dec  5 10:00:00 2026\n".to_vec();
        mbox.extend(message(u));
        mbox.push(b'\n');
        fs::write(&path, mbox).unwrap();
        chown(&path, Some(u.uid), Some(mail_gid())).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o660)).unwrap();
    }
    let state = dir.path().join("state");
    let args: Vec<String> = [
        "--user",
        FRONT_USER,
        "--pam",
        &service,
        "--mbox",
        &format!("{}/%u", spool.display()),
        "--state-dir",
        &path_str(&state),
        "--fail-delay",
        "0.05",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let xinetd = Xinetd::start(&args);
    let mut pa = Pop::login(xinetd.addr, &a.name, &a.password);
    // The spool is held by a process of a's uid and gid, child of the root broker.
    let child = process_of("pop3d-mailbox", a.uid);
    assert_eq!(child.uid, [a.uid; 4], "{child:?}");
    assert_eq!(child.gid[..2], [a.gid, a.gid], "{child:?}");
    let broker = Proc::read(child.ppid).expect("the child's parent");
    assert_eq!((broker.name.as_str(), broker.uid), ("pop3d-broker", [0; 4]));
    assert!(pa.cmd("RETR 1").starts_with("+OK"));
    assert_eq!(pa.body(), expected_wire(&message(&a)));
    pa.quit();
    // a's spool made a hard link to b's (the same file, b's): refused, never b's mail.
    let a_spool = spool.join(&a.name);
    fs::remove_file(&a_spool).unwrap();
    fs::hard_link(spool.join(&b.name), &a_spool).unwrap();
    let reply = pass_reply(xinetd.addr, &a.name, &a.password);
    assert!(reply.starts_with("-ERR [SYS/PERM]"), "{reply}");
}
