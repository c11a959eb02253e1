//! Faults: the server killed during UPDATE, a client gone in the middle of a large RETR, and a
//! full disk. In every case no message is lost or damaged, and the next session is served.
//!
//! The kill -9 test runs 20 trials in CI. A long run, with a seed to replay a failure:
//!
//!     POP3D_FAULT_TRIALS=1000 cargo test --release --test faults -- kill_9 --nocapture
//!     POP3D_FAULT_SEED=12345 cargo test --test faults -- kill_9
//!
//! The tmpfs test needs root (mount -t tmpfs); without it, it says so on stderr and checks
//! only what it can.

mod support;

use pop3d::store::memory::MemoryStore;
use pop3d::wire_size;
use pop3d::{Account, MailStore, Mailbox, MessageInfo, Service, StoreError, StoreErrorKind};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::pop::{tcp, Pop};
use support::temp_dir::TempDir;
use support::{note, BinServer, LibServer, Users};

/// Messages in the Maildir of the kill -9 test.
const MESSAGES: usize = 1000;
/// Trials of the kill -9 test unless POP3D_FAULT_TRIALS says otherwise.
const CI_TRIALS: usize = 20;

/// A small, seedable random number generator (SplitMix64): enough to pick subsets and delays,
/// and a failing trial can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// A passwd file with `bob`, password `pw`, in `dir`.
fn passwd(dir: &Path, users: &[&str]) -> PathBuf {
    let path = dir.join("passwd");
    let lines: String = users.iter().map(|u| format!("{u}:{{PLAIN}}pw\n")).collect();
    fs::write(&path, lines).expect("write passwd");
    path
}

/// One message of the generated Maildir: where it is, relative to the Maildir, and its bytes.
struct Generated {
    path: String,
    data: Vec<u8>,
}

/// 1,000 small messages, half in new/, half in cur/ with flags; half carry `,W=` (so their size
/// is not read at login) and half do not.
fn generate() -> Vec<Generated> {
    (0..MESSAGES)
        .map(|i| {
            let mut data =
                format!("From: sender{i}@example.org\nSubject: message {i}\n\nLine one of {i}.\n")
                    .into_bytes();
            for line in 0..i % 7 {
                data.extend_from_slice(format!(".dotted line {line}\r\nplain\n").as_bytes());
            }
            let base = format!("{}.M{i}P1.faults", 1_700_000_000 + i);
            let base = match i % 4 < 2 {
                true => format!("{base},S={},W={}", data.len(), wire_size(&data)),
                false => base,
            };
            let path = match i % 2 {
                0 => format!("new/{base}"),
                _ => format!("cur/{base}:2,S"),
            };
            Generated { path, data }
        })
        .collect()
}

fn write_maildir(maildir: &Path, messages: &[Generated]) {
    for sub in ["new", "cur", "tmp"] {
        fs::create_dir_all(maildir.join(sub)).expect("mkdir");
    }
    for m in messages {
        fs::write(maildir.join(&m.path), &m.data).expect("write message");
    }
}

/// Every file under `maildir`, relative to it.
fn files(maildir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for sub in ["new", "cur", "tmp"] {
        for e in fs::read_dir(maildir.join(sub)).expect("read_dir") {
            let e = e.expect("entry");
            out.insert(format!("{sub}/{}", e.file_name().to_string_lossy()));
        }
    }
    out
}

/// Logs in as bob and expects it to work at the first try: a stale lock would say [IN-USE].
fn login(addr: SocketAddr) -> Pop<TcpStream> {
    let mut c = Pop::over(tcp(addr));
    let reply = c.log_in("bob", "pw");
    assert!(reply.starts_with("+OK Logged in"), "login refused: {reply}");
    c
}

fn pop3d(passwd: &Path, maildir_template: &str, extra: &[&str]) -> BinServer {
    let mut args = vec![
        "--passwd",
        passwd.to_str().expect("utf-8 path"),
        "--maildir",
        maildir_template,
        "--fail-delay",
        "0",
    ];
    args.extend_from_slice(extra);
    BinServer::start(&args)
}

/// When a trial kills the server.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// Not at all: QUIT is answered (to time UPDATE).
    Never,
    /// Just before QUIT is sent.
    BeforeQuit,
    /// This long after QUIT is sent.
    AfterQuit(Duration),
}

/// What one kill trial saw.
#[derive(Debug, Default)]
struct Tally {
    before: usize,
    during: usize,
    after: usize,
    ok_replies: usize,
}

/// Runs one trial: DELE a random subset, QUIT, SIGKILL after `delay`, then check the Maildir
/// and that a new server logs in at once. Returns which phase the kill landed in.
fn kill_trial(
    dir: &Path,
    passwd: &Path,
    messages: &[Generated],
    rng: &mut Rng,
    share: u64,
    kill: Kill,
) -> (&'static str, bool, Duration) {
    let root = dir.join("mail");
    let maildir = root.join("bob");
    let _ = fs::remove_dir_all(&root);
    write_maildir(&maildir, messages);
    let template = format!("{}/%n", root.display());

    let mut server = pop3d(passwd, &template, &["--max-sessions", "2"]);
    let mut c = login(server.addr);
    // Delete `share` percent of the mailbox, picked at random.
    let doomed: BTreeSet<usize> = (0..MESSAGES).filter(|_| rng.below(100) < share).collect();
    let mut batch = String::new();
    for i in &doomed {
        batch.push_str(&format!("DELE {}\r\n", i + 1));
    }
    c.send(batch.as_bytes());
    for i in &doomed {
        let r = c.line();
        assert_eq!(r, format!("+OK Message {} deleted", i + 1));
    }

    if let Kill::BeforeQuit = kill {
        server.child.kill().expect("kill -9");
        server.child.wait().expect("reap");
    }
    // The server may be gone already: a failed send is fine.
    let _ = c.try_send(b"QUIT\r\n");
    let sent = Instant::now();
    let mut got_ok = false;
    match kill {
        Kill::BeforeQuit => {}
        Kill::AfterQuit(delay) => {
            // Spin rather than sleep: sleeping overshoots by more than UPDATE takes.
            while sent.elapsed() < delay {
                std::hint::spin_loop();
            }
            server.child.kill().expect("kill -9");
            server.child.wait().expect("reap");
            if let Ok(r) = c.try_line() {
                got_ok = r.starts_with("+OK");
            }
        }
        Kill::Never => {
            let r = c.line();
            assert!(r.starts_with("+OK Bye"), "{r}");
            got_ok = true;
        }
    }
    let took = sent.elapsed();
    drop(c);
    drop(server);

    // Every file is a message we wrote, byte for byte, or was DELE'd; nothing else is there.
    let on_disk = files(&maildir);
    let mut gone = 0;
    for (i, m) in messages.iter().enumerate() {
        match on_disk.contains(&m.path) {
            true => assert_eq!(
                fs::read(maildir.join(&m.path)).expect("read message"),
                m.data,
                "message {} damaged",
                i + 1
            ),
            false => {
                assert!(
                    doomed.contains(&i),
                    "message {} lost: it was not DELE'd",
                    i + 1
                );
                gone += 1;
            }
        }
    }
    let known: BTreeSet<&String> = messages.iter().map(|m| &m.path).collect();
    let strays: Vec<&String> = on_disk.iter().filter(|p| !known.contains(p)).collect();
    assert!(strays.is_empty(), "unexpected files: {strays:?}");
    if got_ok {
        assert_eq!(
            gone,
            doomed.len(),
            "+OK to QUIT, but not every DELE'd message is gone"
        );
    }

    // A new server on the same Maildir: the lock died with the process.
    let server = pop3d(passwd, &template, &[]);
    let mut c = login(server.addr);
    assert_eq!(
        c.cmd("STAT").split(' ').nth(1),
        Some((MESSAGES - gone).to_string().as_str())
    );
    assert_eq!(c.cmd("QUIT"), "+OK Bye");

    let phase = match gone {
        0 if !doomed.is_empty() => "before",
        n if n < doomed.len() => "during",
        _ => "after",
    };
    (phase, got_ok, took)
}

#[test]
fn kill_9_during_update_loses_nothing_and_leaves_no_stale_lock() {
    let trials = env_number("POP3D_FAULT_TRIALS").map_or(CI_TRIALS, |n| n as usize);
    let seed = env_number("POP3D_FAULT_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos() as u64
    });
    let mut rng = Rng(seed);
    let dir = TempDir::new("kill9");
    let passwd = passwd(dir.path(), &["bob"]);
    let messages = generate();

    // How long UPDATE takes here: QUIT to +OK with every message deleted, no kill.
    let (_, _, update) = kill_trial(dir.path(), &passwd, &messages, &mut rng, 100, Kill::Never);
    // Kill moments are spread evenly on a log scale from 10 µs to 50 ms after QUIT, so that
    // whatever this machine's speed, some land before UPDATE starts, some while it unlinks, and
    // some after it is done; and one kill in ten comes just before QUIT.
    let (low, high) = (10_000f64, 50_000_000f64);
    note(&format!(
        "kill -9: {trials} trials, seed {seed}; UPDATE of {MESSAGES} messages took {update:?}"
    ));

    let mut tally = Tally::default();
    let started = Instant::now();
    for trial in 0..trials {
        // From a few messages to all of them.
        let share = 1 + rng.below(100);
        let unit = rng.below(1 << 20) as f64 / f64::from(1 << 20);
        let kill = match rng.below(10) {
            0 => Kill::BeforeQuit,
            _ => Kill::AfterQuit(Duration::from_nanos((low * (high / low).powf(unit)) as u64)),
        };
        let (phase, got_ok, _) = kill_trial(dir.path(), &passwd, &messages, &mut rng, share, kill);
        match phase {
            "before" => tally.before += 1,
            "during" => tally.during += 1,
            _ => tally.after += 1,
        }
        tally.ok_replies += usize::from(got_ok);
        if trials > CI_TRIALS && (trial + 1) % 100 == 0 {
            note(&format!("kill -9: {} trials, {tally:?}", trial + 1));
        }
    }
    note(&format!(
        "kill -9: {trials} trials in {:?}: killed before UPDATE {}, during {}, after {} (+OK seen {})",
        started.elapsed(),
        tally.before,
        tally.during,
        tally.after,
        tally.ok_replies
    ));
}

/// bob's Maildir with a message of 20 MB and a small one, served by pop3d with `extra` options.
struct BigMailbox {
    server: BinServer,
    big: PathBuf,
    small: PathBuf,
    _dir: TempDir,
}

impl BigMailbox {
    fn serve(tag: &str, extra: &[&str]) -> Self {
        let dir = TempDir::new(tag);
        let passwd = passwd(dir.path(), &["bob"]);
        let (big, small) = big_mailbox(&dir.path().join("mail/bob"), 20 << 20);
        let template = format!("{}/mail/%n", dir.path().display());
        let server = pop3d(&passwd, &template, extra);
        BigMailbox {
            server,
            big,
            small,
            _dir: dir,
        }
    }
}

/// Writes a Maildir with one message of about `size` octets and one small message.
fn big_mailbox(maildir: &Path, size: usize) -> (PathBuf, PathBuf) {
    for sub in ["new", "cur", "tmp"] {
        fs::create_dir_all(maildir.join(sub)).expect("mkdir");
    }
    let line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.0123456789\n";
    let mut big = b"Subject: big\n\n".to_vec();
    while big.len() < size {
        big.extend_from_slice(line);
    }
    let big_path = maildir.join("new/1000.big");
    fs::write(&big_path, &big).expect("write big");
    let small_path = maildir.join("new/2000.small");
    fs::write(&small_path, b"Subject: small\n\nhi\n").expect("write small");
    (big_path, small_path)
}

/// Connects until the greeting is +OK (a busy pool answers [SYS/TEMP]) and returns how long
/// that took; fails past `limit`.
fn wait_for_free_worker(addr: SocketAddr, limit: Duration) -> (Pop<TcpStream>, Duration) {
    let started = Instant::now();
    loop {
        let (c, greeting) = Pop::connect(addr);
        if greeting.starts_with("+OK") {
            return (c, started.elapsed());
        }
        assert_eq!(greeting, "-ERR [SYS/TEMP] Server busy, try again later");
        assert!(
            started.elapsed() < limit,
            "worker still busy after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn client_gone_in_the_middle_of_a_20_mb_retr_frees_its_worker() {
    let mailbox = BigMailbox::serve("retr-drop", &["--max-sessions", "1"]);
    let (server, big, small) = (&mailbox.server, &mailbox.big, &mailbox.small);
    let big_data = fs::read(big).expect("read big");

    let mut c = Pop::login(server.addr, "bob", "pw");
    assert!(c.cmd("DELE 2").starts_with("+OK"));
    let status = c.cmd("RETR 1");
    assert!(status.starts_with("+OK"), "{status}");
    // Read a little of the message, then vanish with the rest unread (the kernel sends RST).
    let mut first = vec![0; 256 * 1024];
    c.read_exact(&mut first).expect("start of the message");
    assert!(first.starts_with(b"Subject: big\r\n\r\n"));
    drop(c);

    let (mut c, freed) = wait_for_free_worker(server.addr, Duration::from_secs(10));
    note(&format!(
        "20 MB RETR dropped after 256 KiB: the only worker served a new session after {freed:?}"
    ));
    assert!(c.cmd("USER bob").starts_with("+OK"));
    assert!(c.cmd("PASS pw").starts_with("+OK Logged in, 2 messages"));
    assert_eq!(c.cmd("QUIT"), "+OK Bye");
    assert_eq!(fs::read(big).expect("big kept"), big_data);
    assert!(small.exists(), "DELE without QUIT must not delete");
}

#[test]
fn client_that_stops_reading_a_large_retr_is_cut_off_by_the_timeout() {
    let mailbox = BigMailbox::serve("retr-stall", &["--max-sessions", "1", "--timeout", "1"]);
    let (server, big, small) = (&mailbox.server, &mailbox.big, &mailbox.small);

    let mut c = Pop::login(server.addr, "bob", "pw");
    assert!(c.cmd("DELE 2").starts_with("+OK"));
    assert!(c.cmd("RETR 1").starts_with("+OK"));
    // Stop reading but keep the connection open: the server's write blocks on a full socket.
    // Each blocked write may wait up to the timeout, and a trickle of progress starts it anew:
    // bounded, but a few times --timeout.
    let (mut d, freed) = wait_for_free_worker(server.addr, Duration::from_secs(30));
    note(&format!(
        "20 MB RETR not read (--timeout 1): the only worker served a new session after {freed:?}"
    ));
    assert!(d.cmd("USER bob").starts_with("+OK"));
    assert!(d.cmd("PASS pw").starts_with("+OK Logged in, 2 messages"));
    drop(c);
    assert!(big.exists() && small.exists());
}

// ---------------------------------------------------------------------------------------------
// Full disk, injected: a store whose delete fails

/// How the wrapped mailbox's delete fails.
#[derive(Clone, Copy)]
enum Failure {
    /// Nothing is removed.
    Nothing,
    /// The first half of the messages is removed, then the disk is "full".
    Half,
}

/// A MemoryStore whose UPDATE fails with ENOSPC.
struct FullDisk {
    inner: MemoryStore,
    failure: Failure,
}

struct FullDiskMailbox {
    inner: Box<dyn Mailbox>,
    failure: Failure,
}

impl MailStore for FullDisk {
    fn open(&self, account: &Account) -> Result<Box<dyn Mailbox>, StoreError> {
        Ok(Box::new(FullDiskMailbox {
            inner: self.inner.open(account)?,
            failure: self.failure,
        }))
    }
}

impl Mailbox for FullDiskMailbox {
    fn messages(&self) -> &[MessageInfo] {
        self.inner.messages()
    }

    fn read(&mut self, index: usize) -> Result<Box<dyn Read + '_>, StoreError> {
        self.inner.read(index)
    }

    fn delete(&mut self, indices: &[usize]) -> Result<(), StoreError> {
        if let Failure::Half = self.failure {
            self.inner.delete(&indices[..indices.len() / 2])?;
        }
        Err(StoreError::new(
            StoreErrorKind::Temporary,
            "No space left on device (injected)",
        ))
    }
}

#[test]
fn store_error_during_update_is_sys_temp_and_loses_nothing() {
    let messages: Vec<Vec<u8>> = (1..=4)
        .map(|i| format!("Subject: {i}\n\nbody {i}\n").into_bytes())
        .collect();
    for failure in [Failure::Nothing, Failure::Half] {
        let memory = MemoryStore::new();
        for m in &messages {
            memory.deliver("bob", m);
        }
        let store = Arc::new(FullDisk {
            inner: memory.clone(),
            failure,
        });
        let service = Service::new(Users::of(&[("bob", "pw")]), store)
            .auth_failure_delay(Duration::ZERO)
            .idle_timeout(Duration::from_secs(20));
        let server = LibServer::serving(service, 2);
        let mut c = Pop::login(server.addr, "bob", "pw");
        assert!(c.cmd("DELE 2").starts_with("+OK"));
        assert!(c.cmd("DELE 4").starts_with("+OK"));
        assert_eq!(
            c.cmd("QUIT"),
            "-ERR [SYS/TEMP] Some deleted messages were not removed"
        );
        assert!(c.closed());
        // Messages 1 and 3 were not DELE'd and must be there; 2 and 4 may or may not be.
        let left = memory.messages("bob");
        for keep in [0, 2] {
            assert!(left.contains(&messages[keep]), "message {} lost", keep + 1);
        }
        let want = match failure {
            Failure::Nothing => 4,
            Failure::Half => 3,
        };
        assert_eq!(left.len(), want);
        // The mailbox is not left locked: the next session logs in.
        let mut c = Pop::login(server.addr, "bob", "pw");
        assert_eq!(
            c.cmd("STAT").split(' ').nth(1),
            Some(want.to_string().as_str())
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Full disk, real: a small tmpfs

/// A small file system that fills up, which a temporary directory alone cannot give: a tmpfs
/// mounted on a [`TempDir`] for one test, unmounted on drop (before the directory goes).
struct Tmpfs(TempDir);

impl Tmpfs {
    /// Mounts a tmpfs of `size` octets and `inodes` inodes on a new temporary directory, or says
    /// why not.
    fn mount(tag: &str, size: usize, inodes: usize) -> Result<Tmpfs, String> {
        let at = TempDir::new(tag);
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},nr_inodes={inodes},mode=0700"))
            .arg("pop3d-test")
            .arg(at.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        match out.status.success() {
            true => Ok(Tmpfs(at)),
            false => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        }
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
}

/// Fills the file system at `dir`: empty files until no inode is left, then one file until no
/// block is left. Returns how many files it made.
fn fill(dir: &Path) -> usize {
    fs::create_dir(dir).expect("mkdir fill");
    let mut n = 0;
    loop {
        match fs::File::create(dir.join(format!("f{n}"))) {
            Ok(_) => n += 1,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("fill: {e}"),
        }
        assert!(n < 100_000, "tmpfs does not fill up");
    }
    // The last inode went to a file; free one for the block filler, then fill the blocks.
    fs::remove_file(dir.join("f0")).expect("rm");
    let mut big = fs::File::create(dir.join("f0")).expect("create filler");
    let chunk = vec![0u8; 64 * 1024];
    loop {
        match big.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("fill: {e}"),
        }
    }
    n
}

#[test]
fn full_tmpfs_gives_sys_temp_and_loses_nothing() {
    let dir = TempDir::new("tmpfs");
    let tmpfs = match Tmpfs::mount("tmpfs-mnt", 1 << 20, 64) {
        Ok(t) => t,
        Err(why) => {
            note(&format!(
                "SKIPPED full_tmpfs_gives_sys_temp_and_loses_nothing: cannot mount a tmpfs ({why}); \
                 the injected store error test covers UPDATE failures"
            ));
            return;
        }
    };
    let mnt = tmpfs.path();
    let passwd = passwd(dir.path(), &["bob", "carol", "dave"]);
    let root = mnt.join("mail");
    let template = format!("{}/%n", root.display());
    let message = |i: usize| format!("Subject: {i}\n\nbody {i}\n").into_bytes();
    // bob: mail, never logged in, so no lock file yet. dave: mail and a lock file from an
    // earlier session. carol: no Maildir at all.
    for user in ["bob", "dave"] {
        let maildir = root.join(user);
        for sub in ["new", "cur", "tmp"] {
            fs::create_dir_all(maildir.join(sub)).expect("mkdir");
        }
        for i in 1..=3 {
            fs::write(maildir.join(format!("new/100{i}.{user}")), message(i)).expect("write");
        }
    }
    let server = pop3d(&passwd, &template, &[]);
    {
        let mut c = Pop::login(server.addr, "dave", "pw");
        assert_eq!(c.cmd("QUIT"), "+OK Bye");
    }
    assert!(root.join("dave/pop3d.lock").exists());
    let snapshot = |user: &str| -> BTreeMap<String, Vec<u8>> {
        files(&root.join(user))
            .into_iter()
            .map(|p| {
                let data = fs::read(root.join(user).join(&p)).expect("read");
                (p, data)
            })
            .collect()
    };
    let bob_before = snapshot("bob");
    let dave_before = snapshot("dave");

    let made = fill(&mnt.join("fill"));
    let df = |flag: &str| {
        Command::new("df")
            .arg(flag)
            .arg(mnt)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim_end().to_string())
            .unwrap_or_default()
    };
    note(&format!(
        "tmpfs filled with {made} files:\n{}\n{}",
        df("-k"),
        df("-i")
    ));

    let refused = |user: &str| {
        let (mut c, _) = Pop::connect(server.addr);
        assert!(c.cmd(&format!("USER {user}")).starts_with("+OK"));
        let r = c.cmd("PASS pw");
        assert_eq!(
            r, "-ERR [SYS/TEMP] Mailbox cannot be opened, try again later",
            "{user} on a full disk"
        );
        // The session goes on: the client may try again or QUIT.
        assert_eq!(c.cmd("QUIT"), "+OK Bye");
    };
    // A new user's Maildir cannot be created, and a lock file cannot be created.
    refused("carol");
    refused("bob");
    assert_eq!(
        snapshot("bob"),
        bob_before,
        "bob's mail changed on a full disk"
    );

    // dave's lock file exists: reading and deleting need no space.
    let mut c = Pop::login(server.addr, "dave", "pw");
    assert!(c.cmd("RETR 2").starts_with("+OK"));
    assert_eq!(c.body(), b"Subject: 2\r\n\r\nbody 2\r\n");
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert_eq!(c.cmd("QUIT"), "+OK Bye, 1 message deleted");
    let mut dave_after = dave_before.clone();
    dave_after.remove("new/1001.dave");
    assert_eq!(snapshot("dave"), dave_after);

    // Space again: bob logs in and has all his mail.
    fs::remove_dir_all(mnt.join("fill")).expect("free the disk");
    let mut c = Pop::login(server.addr, "bob", "pw");
    assert!(c.cmd("STAT").starts_with("+OK 3 "));
    assert_eq!(c.cmd("QUIT"), "+OK Bye");
    assert_eq!(snapshot("bob"), bob_before);
    drop(server);
}

// ---------------------------------------------------------------------------------------------
// A write that times out after part of a reply went out

/// A client in memory whose socket takes bytes until `stall_at` octets have been written, then
/// times out once (a client that stopped reading for the idle timeout), then takes everything
/// again (the client reads on).
struct StallingClient {
    input: Vec<u8>,
    read: bool,
    output: Vec<u8>,
    stall_at: usize,
    stalled: bool,
}

impl Read for StallingClient {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.read {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.read = true;
        let n = self.input.len().min(buf.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        Ok(n)
    }
}

impl pop3d::Stream for StallingClient {}

impl Write for StallingClient {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.stalled && self.output.len() >= self.stall_at {
            self.stalled = true;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let room = match self.stalled {
            true => buf.len(),
            false => self.stall_at - self.output.len(),
        };
        let n = buf.len().min(room);
        self.output.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `USER bob`, `PASS pw`, `RETR 1` on a session whose client stalls at `stall_at`.
fn stalled_retr(message: &[u8], stall_at: usize) -> Vec<u8> {
    let store = MemoryStore::new();
    store.deliver("bob", message);
    let service = Service::new(Users::of(&[("bob", "pw")]), Arc::new(store))
        .auth_failure_delay(Duration::ZERO);
    let mut client = StallingClient {
        input: b"USER bob\r\nPASS pw\r\nRETR 1\r\n".to_vec(),
        read: false,
        output: Vec::new(),
        stall_at,
        stalled: false,
    };
    let _ = pop3d::run_session(&service, &mut client, None, pop3d::TlsMode::Off);
    client.output
}

/// What a client makes of the RETR reply in `stream`: the message if a terminator came, else
/// `None` (a truncated reply, which a client discards).
fn retr_as_a_client_reads_it(stream: &[u8]) -> Option<Vec<u8>> {
    let mut lines = stream.split_inclusive(|&b| b == b'\n');
    for _ in 0..4 {
        lines.next()?; // greeting, USER, PASS and RETR status lines
    }
    let mut body = Vec::new();
    for line in lines {
        if line == b".\r\n" {
            return Some(body);
        }
        body.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    None
}

#[test]
fn write_timeout_in_the_middle_of_a_retr_never_forges_a_message() {
    // A message whose first 16 KiB read ends in "\n." and whose rest starts "\n.x": the first
    // flush ends in "..", the second starts "\r\n..x\r\n".
    let mut message = b"Subject: stall\n\n".to_vec();
    while message.len() < 16_382 - 80 {
        message.extend_from_slice(&[b'a'; 70]);
        message.push(b'\n');
    }
    message.resize(16_382, b'b');
    message.extend_from_slice(b"\n.\n.x\ntail\n");
    let whole = stalled_retr(&message, usize::MAX);
    let encoded = retr_as_a_client_reads_it(&whole).expect("the whole message");
    assert_eq!(encoded, message_with_crlf(&message));

    // Stall after "\r\n." of the second flush: exactly where a resent "\r\n..x" makes ".\r\n".
    let second = find(&whole, b"..\r\n..x\r\n").expect("marker") + 2;
    for stall_at in [second + 3, second + 1, second + 7, whole.len() / 2, 100] {
        let stream = stalled_retr(&message, stall_at);
        // Whatever reached the client is a prefix of the real reply: nothing sent twice, nothing
        // in the middle of the message that is not the message.
        assert!(
            whole.starts_with(&stream),
            "stall at {stall_at}: the stream is not a prefix of the reply; it continues {:?}",
            String::from_utf8_lossy(&stream[stall_at..stream.len().min(stall_at + 60)])
        );
        // And a client never takes a damaged message for a whole one.
        if let Some(got) = retr_as_a_client_reads_it(&stream) {
            assert_eq!(
                got, encoded,
                "stall at {stall_at}: client accepted a damaged message"
            );
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `message` with LF line ends as CRLF (it has no CR of its own).
fn message_with_crlf(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in message {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}
