//! System accounts (`--pam`, `--shadow`, `--checkpassword`): real accounts made by the test
//! with useradd and chpasswd, a real PAM service file with pam_unix, Debian's `checkpw` as a
//! real checkpassword program, and Python's poplib as the client of the real pop3d binary.
//!
//! Every test needs root (to make accounts and read /etc/shadow) and says "skipped" otherwise.

mod support;

use pop3d::auth::system::{CheckPassword, Pam, Shadow};
use pop3d::Authenticator;
use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::maildir::run_bounded;
use support::system_user::{is_root, SystemUser};
use support::temp_dir::TempDir;
use support::{note, BinServer};

/// The failure delay the servers run with: every failed login must take at least this.
const FAIL_DELAY: Duration = Duration::from_millis(400);
/// The message each test account has in its Maildir.
const MESSAGE: &[u8] = b"From: a@example.org\r\nSubject: hello\r\n\r\nBody.\r\n";

fn skipped() -> bool {
    if !is_root() {
        note("skipped: needs root");
    }
    !is_root()
}

/// A system account with one message in `~/Maildir`.
fn account(tag: &str, password: &str) -> SystemUser {
    let user = SystemUser::create(tag, password).expect("root");
    give_mail(&user);
    user
}

/// Puts one message in `~/Maildir/new`, all of it the account's own.
fn give_mail(user: &SystemUser) {
    let maildir = user.home.join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    fs::write(maildir.join("new/1700000000.1.test"), MESSAGE).unwrap();
    for path in [
        maildir.clone(),
        maildir.join("cur"),
        maildir.join("new"),
        maildir.join("tmp"),
        maildir.join("new/1700000000.1.test"),
    ] {
        chown(&path, Some(user.uid), Some(user.gid)).unwrap();
    }
}

/// A PAM service file `/etc/pam.d/NAME` using pam_unix only; removed on drop.
struct PamService {
    name: String,
    path: PathBuf,
}

impl PamService {
    fn install(tag: &str) -> PamService {
        let name = format!("p3t{tag}{}", std::process::id());
        let path = Path::new("/etc/pam.d").join(&name);
        fs::write(
            &path,
            "# made by pop3d's tests/system_accounts.rs, removed when the test ends\n\
             auth    required pam_unix.so\n\
             account required pam_unix.so\n",
        )
        .unwrap();
        PamService { name, path }
    }
}

impl Drop for PamService {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// pop3d on loopback with the account source `source`, each user's `~/Maildir`, and the test
/// failure delay, as a real host runs it: started as root, serving as `nobody`, so that the
/// password checks run in the privileged broker and each mailbox as its account.
fn server(source: &[&str]) -> BinServer {
    let delay = FAIL_DELAY.as_secs_f64().to_string();
    let mut args = vec![
        "--user",
        "nobody",
        "--maildir",
        "%h/Maildir",
        "--fail-delay",
        &delay,
        "--exempt-loopback",
    ];
    args.extend_from_slice(source);
    BinServer::start(&args)
}

/// Logs in with poplib and asks STAT: `Ok(message count)` or `Err(the server's -ERR line)`,
/// and how long the login (PASS) took.
fn login(server: &BinServer, user: &str, password: &str) -> (Result<u32, String>, Duration) {
    const SCRIPT: &str = r#"
import poplib, sys, time
pop = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=20)
pop.user(sys.argv[2])
start = time.monotonic()
try:
    pop.pass_(sys.argv[3])
except poplib.error_proto as e:
    print("ERR", time.monotonic() - start, e.args[0].decode())
    sys.exit(0)
took = time.monotonic() - start
count, _ = pop.stat()
msg = b"\r\n".join(pop.retr(1)[1]) + b"\r\n" if count else b""
pop.quit()
print("OK", took, count, msg.hex())
"#;
    let out = run_bounded(
        Command::new("python3").args(["-c", SCRIPT, &server.port().to_string(), user, password]),
        Duration::from_secs(30),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "poplib: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut fields = stdout.trim().splitn(3, ' ');
    let (status, took, rest) = (fields.next(), fields.next(), fields.next().unwrap_or(""));
    let took = Duration::from_secs_f64(took.expect("a time").parse().unwrap());
    match status {
        Some("OK") => {
            let (count, hex) = rest.split_once(' ').unwrap();
            if count != "0" {
                assert_eq!(hex, hex_of(MESSAGE), "RETR 1 is not the message");
            }
            (Ok(count.parse().unwrap()), took)
        }
        _ => (Err(rest.to_owned()), took),
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The account logs in and sees its message; a wrong password and an unknown user fail with
/// `[AUTH]`, each after the failure delay.
fn logs_in_and_refuses(server: &BinServer, user: &SystemUser) {
    let (ok, _) = login(server, &user.name, &user.password);
    assert_eq!(ok, Ok(1), "log:\n{}", server.log());
    for (name, password) in [
        (user.name.as_str(), "wrong password"),
        ("p3tnosuchuser", user.password.as_str()),
    ] {
        let (refused, took) = login(server, name, password);
        let text = refused.expect_err("a refused login");
        assert!(text.starts_with("-ERR [AUTH]"), "{name}: {text}");
        assert!(took >= FAIL_DELAY, "{name}: refused after {took:?}");
        assert!(took < FAIL_DELAY * 10, "{name}: refused after {took:?}");
    }
    let log = server.log();
    assert!(
        !log.contains(&user.password),
        "the log holds a password:\n{log}"
    );
}

#[test]
fn pam_logs_a_system_account_in_and_refuses_the_rest() {
    if skipped() {
        return;
    }
    let service = PamService::install("pam");
    let user = account("pam", "pam secret 1");
    let server = server(&["--pam", &service.name]);
    logs_in_and_refuses(&server, &user);
    // pam_acct_mgmt refuses an expired account, with the right password.
    expire(&user);
    let (refused, _) = login(&server, &user.name, &user.password);
    assert!(refused.unwrap_err().starts_with("-ERR [AUTH]"));
    assert!(server.log().contains("expired"), "{}", server.log());
}

/// Sets the account's expiry date to 1970-01-02, long past.
fn expire(user: &SystemUser) {
    let chage = Command::new("chage")
        .args(["-E", "1", &user.name])
        .output()
        .unwrap();
    assert!(chage.status.success(), "chage: {chage:?}");
}

#[test]
fn shadow_logs_a_system_account_in_and_refuses_the_rest() {
    if skipped() {
        return;
    }
    let user = account("shd", "shadow secret 2");
    let server = server(&["--shadow"]);
    logs_in_and_refuses(&server, &user);
    // A locked account is refused like a wrong password, even with the right one.
    let locked = Command::new("usermod")
        .args(["-L", &user.name])
        .output()
        .unwrap();
    assert!(locked.status.success());
    let (refused, _) = login(&server, &user.name, &user.password);
    assert!(refused.unwrap_err().starts_with("-ERR [AUTH]"));
    // Unlocked but past its expiry date: refused too.
    let unlocked = Command::new("usermod")
        .args(["-U", &user.name])
        .output()
        .unwrap();
    assert!(unlocked.status.success());
    assert_eq!(login(&server, &user.name, &user.password).0, Ok(1));
    expire(&user);
    let (refused, _) = login(&server, &user.name, &user.password);
    assert!(refused.unwrap_err().starts_with("-ERR [AUTH]"));
    assert!(server.log().contains("has expired"), "{}", server.log());
}

/// `~/Maildir/.password` for checkpw: the password, readable by the account alone.
fn checkpw_password(user: &SystemUser) {
    let file = user.home.join("Maildir/.password");
    fs::write(&file, format!("{}\n", user.password)).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    chown(&file, Some(user.uid), Some(user.gid)).unwrap();
}

#[test]
fn checkpw_logs_a_system_account_in_and_refuses_the_rest() {
    if skipped() {
        return;
    }
    let user = account("ckp", "checkpw secret 3");
    checkpw_password(&user);
    let server = server(&["--checkpassword", "/usr/bin/checkpw"]);
    logs_in_and_refuses(&server, &user);
}

/// A checkpassword program that is a shell script exiting `code`.
fn exiting(dir: &Path, code: u8) -> String {
    let path = dir.join(format!("exit{code}"));
    fs::write(&path, format!("#!/bin/sh\nexec 3<&-\nexit {code}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn checkpassword_exit_codes_give_temp_and_auth_failures() {
    if skipped() {
        return;
    }
    let dir = TempDir::new("checkpassword-exit");
    for (code, want) in [
        (111, "-ERR [SYS/TEMP]"),
        (1, "-ERR [AUTH]"),
        (0, "-ERR [SYS/TEMP]"),
    ] {
        let program = exiting(dir.path(), code);
        let server = server(&["--checkpassword", &program]);
        let (refused, took) = login(&server, "p3tanyone", "any password");
        let text = refused.expect_err("refused");
        assert!(text.starts_with(want), "exit {code}: {text}");
        assert!(took >= FAIL_DELAY, "exit {code}: refused after {took:?}");
    }
}

#[test]
fn first_uid_above_the_account_refuses_it() {
    if skipped() {
        return;
    }
    let user = account("fuid", "first uid secret 4");
    checkpw_password(&user);
    let above = (user.uid + 1).to_string();
    for source in [
        vec!["--shadow"],
        vec!["--checkpassword", "/usr/bin/checkpw"],
    ] {
        let mut args = source.clone();
        args.extend_from_slice(&["--first-uid", &above]);
        let refused = login(&server(&args), &user.name, &user.password).0;
        assert!(
            refused.unwrap_err().starts_with("-ERR [AUTH]"),
            "{source:?}"
        );
        let at = user.uid.to_string();
        let mut args = source.clone();
        args.extend_from_slice(&["--first-uid", &at]);
        assert_eq!(
            login(&server(&args), &user.name, &user.password).0,
            Ok(1),
            "{source:?}"
        );
    }
}

#[test]
fn a_name_with_capitals_logs_in_only_as_written() {
    if skipped() {
        return;
    }
    let name = format!("P3tCap{}", std::process::id() % 100_000);
    let user = SystemUser::create_named(&name, "capital secret 5").expect("root");
    give_mail(&user);
    let service = PamService::install("cap");
    for source in [vec!["--shadow"], vec!["--pam", &service.name]] {
        let server = server(&source);
        assert_eq!(login(&server, &name, &user.password).0, Ok(1), "{source:?}");
        for other in [name.to_lowercase(), name.to_uppercase()] {
            let refused = login(&server, &other, &user.password).0;
            assert!(refused.unwrap_err().starts_with("-ERR [AUTH]"), "{other}");
        }
    }
}

/// The reply must be the account's: a program that accepts anyone and runs the reply as one
/// fixed account serves that account, and no other system account; run as root, nobody.
#[test]
fn a_checkpassword_reply_serves_only_the_account_it_names() {
    if skipped() {
        return;
    }
    let owner = account("rpa", "reply secret 7");
    let other = account("rpb", "reply secret 8");
    let dir = TempDir::new("checkpassword-reply");
    let as_owner = dir.path().join("as-owner");
    fs::write(
        &as_owner,
        format!(
            "#!/bin/sh\nexec 3<&-\nHOME={} exec setpriv --reuid={} --regid={} --clear-groups \"$@\"\n",
            owner.home.display(),
            owner.uid,
            owner.gid
        ),
    )
    .unwrap();
    let as_root = dir.path().join("as-root");
    fs::write(&as_root, "#!/bin/sh\nexec 3<&-\nexec \"$@\"\n").unwrap();
    for program in [&as_owner, &as_root] {
        fs::set_permissions(program, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let owner_server = server(&["--checkpassword", as_owner.to_str().unwrap()]);
    assert_eq!(login(&owner_server, &owner.name, "anything").0, Ok(1));
    let refused = login(&owner_server, &other.name, "anything").0.unwrap_err();
    assert!(refused.starts_with("-ERR [SYS/TEMP]"), "{refused}");
    let root_server = server(&["--checkpassword", as_root.to_str().unwrap()]);
    let refused = login(&root_server, &owner.name, "anything").0.unwrap_err();
    assert!(refused.starts_with("-ERR [AUTH]"), "{refused}");
}

/// A checkpassword program that does not answer is killed at the time limit and reaped, and
/// the login fails as unavailable. Needs no root.
#[test]
fn a_checkpassword_program_that_hangs_is_killed_and_reaped() {
    let dir = TempDir::new("checkpassword-hang");
    let program = dir.path().join("hang");
    let pid_file = dir.path().join("pid");
    fs::write(
        &program,
        format!(
            "#!/bin/sh\necho $$ > {}\nexec sleep 30\n",
            pid_file.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
    let reply = vec![
        env!("CARGO_BIN_EXE_pop3d").into(),
        "--checkpassword-reply".into(),
    ];
    let source = CheckPassword::new(&program, reply).time_limit(Duration::from_millis(500));
    let start = Instant::now();
    let refused = source.authenticate("p3thang", b"pw").unwrap_err();
    let took = start.elapsed();
    assert_eq!(
        refused.kind(),
        pop3d::AuthErrorKind::Unavailable,
        "{refused}"
    );
    assert!(refused.detail().contains("killed"), "{refused}");
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let pid = fs::read_to_string(&pid_file).unwrap();
    // Not even a zombie: /proc/PID goes only once the process is reaped.
    assert!(
        !Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "pid {pid} still there"
    );
}

fn pop3d(args: &[&str]) -> Output {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_pop3d")).args(args),
        Duration::from_secs(10),
    )
}

#[test]
fn check_and_usage_errors_name_the_source() {
    let state = TempDir::new("sys-check");
    let state_arg = state.path().to_str().unwrap();
    let both = pop3d(&["--check", "--shadow", "--pam", "login"]);
    assert_eq!(both.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&both.stderr).contains("one account source per run"));
    let stray = pop3d(&["--check", "--first-uid", "many"]);
    assert_eq!(stray.status.code(), Some(2));
    let domain = pop3d(&["--check", "--shadow", "--default-domain", "example.org"]);
    assert_eq!(domain.status.code(), Some(2));
    let missing = pop3d(&[
        "--check",
        "--state-dir",
        state_arg,
        "--pam",
        "p3tnosuchservice",
    ]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/etc/pam.d/p3tnosuchservice"));
    let not_there = pop3d(&[
        "--check",
        "--state-dir",
        state_arg,
        "--checkpassword",
        "/nonexistent/ckpw",
    ]);
    assert_eq!(not_there.status.code(), Some(1));
    if skipped() {
        return;
    }
    for good in [
        &["--pam", "login"][..],
        &["--shadow"],
        &["--checkpassword", "/usr/bin/checkpw"],
    ] {
        let mut args = vec!["--check", "--state-dir", state_arg];
        args.extend_from_slice(good);
        let out = pop3d(&args);
        assert!(
            out.status.success(),
            "{good:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The median time of `trials` calls of `check`.
/// The median times of `a` and of `b` over `trials` each, taken in turns so that a load on
/// the machine that comes and goes weighs on both alike.
fn medians(trials: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (Duration, Duration) {
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        f();
        start.elapsed()
    };
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..trials {
        ta.push(time(&mut a));
        tb.push(time(&mut b));
    }
    ta.sort();
    tb.sort();
    (ta[trials / 2], tb[trials / 2])
}

/// Median times of a wrong password for a real account and of an unknown user, per source,
/// through the library as the binary calls it: printed, and for shadow and PAM (which pop3d
/// equalises) within a factor of two of each other.
#[test]
fn an_unknown_user_costs_what_a_wrong_password_costs() {
    if skipped() {
        return;
    }
    let user = account("tim", "timing secret 6");
    checkpw_password(&user);
    let service = PamService::install("tim");
    let reply = vec![
        env!("CARGO_BIN_EXE_pop3d").into(),
        "--checkpassword-reply".into(),
    ];
    let sources: [(&str, Box<dyn Authenticator>, bool); 3] = [
        ("shadow", Box::new(Shadow::new()), true),
        ("pam", Box::new(Pam::new(&service.name).unwrap()), true),
        (
            "checkpw",
            Box::new(CheckPassword::new("/usr/bin/checkpw", reply)),
            false,
        ),
    ];
    for (name, source, equalised) in sources {
        assert!(
            source
                .authenticate(&user.name, user.password.as_bytes())
                .is_ok(),
            "{name}"
        );
        let (wrong, unknown) = medians(
            31,
            || assert!(source.authenticate(&user.name, b"wrong").is_err()),
            || assert!(source.authenticate("p3tnosuchuser", b"wrong").is_err()),
        );
        note(&format!(
            "{name}: median wrong password {wrong:?}, unknown user {unknown:?}; costliest check {:?}",
            source.costliest_check()
        ));
        if equalised {
            assert!(
                unknown * 2 >= wrong && wrong * 2 >= unknown,
                "{name}: {wrong:?} vs {unknown:?}"
            );
        }
    }
}

#[test]
fn deliver_finds_a_system_account_without_a_password() {
    if skipped() {
        return;
    }
    let user = account("dl", "pw-dl");
    for source in [&["--shadow"][..], &["--pam", "login"][..]] {
        let out = support::run_with_input(
            Command::new(env!("CARGO_BIN_EXE_pop3d"))
                .args(["--deliver", &user.name, "--maildir", "%h/Maildir"])
                .args(source),
            b"Subject: delivered\n\nhi\n",
            Duration::from_secs(30),
        );
        assert!(
            out.status.success(),
            "{source:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // An unknown account is 67 (EX_NOUSER), as MTAs expect.
        let unknown = Command::new(env!("CARGO_BIN_EXE_pop3d"))
            .args(["--deliver", "p3tnosuchuser", "--maildir", "%h/Maildir"])
            .args(source)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(unknown.status.code(), Some(67), "{source:?}");
    }
    let new = user.home.join("Maildir/new");
    let delivered: Vec<_> = fs::read_dir(&new)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| fs::read(p).unwrap().starts_with(b"Subject: delivered"))
        .collect();
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    use std::os::unix::fs::MetadataExt;
    for path in delivered {
        assert_eq!(fs::metadata(&path).unwrap().uid(), user.uid, "{path:?}");
    }
}
