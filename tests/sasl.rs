//! Authentication against the pop3d binary: AUTH (RFC 5034) with PLAIN, LOGIN, CRAM-MD5 and
//! SCRAM-SHA-256, APOP, and USER/PASS; by real clients (curl, Python scramp) and in literal bytes
//! with the client side computed here (RFC 4616, 2195, 5802, 7677, 1939).
//!
//! What CAPA (and bare AUTH) offers depends on the passwd file as a whole: real clients pick the
//! strongest mechanism offered and do not fall back when it fails, so CRAM-MD5 is offered only
//! when every account has a plaintext-equivalent secret, and SCRAM-SHA-256 only when every
//! account has that or stored SCRAM keys. Each test therefore runs against the file shape that
//! fits what it tests ([`Accounts`]); every account has a Maildir holding one message.

mod support;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::maildir::{first_difference, run_bounded, sha512_crypt};
use support::pop::{Pop, TlsPop};
use support::temp_dir::TempDir;
use support::wire::expected_wire;
use support::{hash_password, BinServer, TestCert};

const CLIENT_LIMIT: Duration = Duration::from_secs(30);

/// The one reply to every failed login.
const FAILED: &str = "-ERR [AUTH] Authentication failed";

/// The reply to AUTH with a mechanism that is not offered (a bad command, not a failed login).
const UNSUPPORTED: &str = "-ERR Unsupported authentication mechanism";

/// `{PLAIN}`: every mechanism works for it.
const ALICE: (&str, &str) = ("alice", "s3cret pw");
/// `{CLEAR}`: the other plaintext-equivalent spelling; every mechanism works for it.
const BOB: (&str, &str) = ("bob", "b0b's pw");
/// `{SCRAM-SHA-256}`: SCRAM, PLAIN, LOGIN and USER/PASS; the name needs SCRAM's escapes.
const SCRAM_USER: (&str, &str) = ("sc=am,x", "scram,pw=");
/// `{ARGON2ID}`: PLAIN, LOGIN and USER/PASS only.
const ARGON_USER: (&str, &str) = ("argo", "argon pw");
/// `{SHA512-CRYPT}` from `openssl passwd -6`: PLAIN, LOGIN and USER/PASS only.
const CRYPT_USER: (&str, &str) = ("crypt.user", "crypt pw");

/// The password field of each test account. The hashes are made once for all tests: argon2
/// and PBKDF2 are slow in a debug build.
fn stored((user, password): (&str, &str)) -> String {
    static SCRAM: OnceLock<String> = OnceLock::new();
    static ARGON: OnceLock<String> = OnceLock::new();
    static CRYPT: OnceLock<String> = OnceLock::new();
    match (user, password) {
        ALICE => format!("{{PLAIN}}{password}"),
        BOB => format!("{{CLEAR}}{password}"),
        SCRAM_USER => SCRAM
            .get_or_init(|| hash_password("SCRAM-SHA-256", password))
            .clone(),
        ARGON_USER => ARGON
            .get_or_init(|| hash_password("ARGON2ID", password))
            .clone(),
        CRYPT_USER => CRYPT.get_or_init(|| sha512_crypt(password)).clone(),
        other => panic!("not a test account: {other:?}"),
    }
}

/// The shapes of passwd file the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accounts {
    /// alice `{PLAIN}` and bob `{CLEAR}`: every mechanism is offered.
    Plain,
    /// alice `{PLAIN}` and a `{SCRAM-SHA-256}` user: SCRAM is offered, CRAM-MD5 is not.
    Scram,
    /// alice, the SCRAM user and an `{ARGON2ID}` user: only PLAIN and LOGIN are offered.
    Mixed,
    /// alice and a `{SHA512-CRYPT}` user: only PLAIN and LOGIN are offered.
    Crypt,
}

impl Accounts {
    const ALL: [Accounts; 4] = [
        Accounts::Plain,
        Accounts::Scram,
        Accounts::Mixed,
        Accounts::Crypt,
    ];

    fn users(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Accounts::Plain => &[ALICE, BOB],
            Accounts::Scram => &[ALICE, SCRAM_USER],
            Accounts::Mixed => &[ALICE, SCRAM_USER, ARGON_USER],
            Accounts::Crypt => &[ALICE, CRYPT_USER],
        }
    }

    /// The mechanisms CAPA's SASL line and bare AUTH must list, in this order.
    fn offered(self) -> &'static [&'static str] {
        match self {
            Accounts::Plain => &["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"],
            Accounts::Scram => &["PLAIN", "LOGIN", "SCRAM-SHA-256"],
            Accounts::Mixed | Accounts::Crypt => &["PLAIN", "LOGIN"],
        }
    }
}

/// What each account's mailbox holds: dots, a NUL, 8-bit bytes, no final newline.
fn message_of(user: &str) -> Vec<u8> {
    format!("From: test@example.org\nSubject: for {user}\n\n.dot line\n..\n.\nbin \0\u{e9}\nend")
        .into_bytes()
}

/// A passwd file of one [`Accounts`] shape, Maildirs for its accounts, and a certificate.
struct Setup {
    /// Holds everything; removed on drop.
    dir: TempDir,
    cert: TestCert,
    passwd: String,
}

impl Setup {
    fn new(tag: &str, accounts: Accounts) -> Self {
        let dir = TempDir::new(tag);
        let cert = TestCert::generate(dir.path());
        let setup = Setup {
            passwd: dir.path().join("passwd").display().to_string(),
            dir,
            cert,
        };
        let lines: Vec<_> = accounts
            .users()
            .iter()
            .map(|&account| {
                let home = setup.home(account.0);
                maildir_with(&home.join("Maildir"), &message_of(account.0));
                (account.0, stored(account))
            })
            .collect();
        setup.write(&lines);
        setup
    }

    fn home(&self, user: &str) -> PathBuf {
        self.dir.path().join("home").join(user)
    }

    /// Writes the passwd file in place: `(user, password field)` lines, each account's home
    /// its own directory.
    fn write(&self, lines: &[(&str, String)]) {
        let text: String = lines
            .iter()
            .map(|(user, field)| format!("{user}:{field}::::{}::\n", self.home(user).display()))
            .collect();
        rewrite(Path::new(&self.passwd), &text);
    }

    /// pop3d with STLS, a TLS port, APOP, a 50 ms failure delay and `extra`.
    fn start(&self, extra: &[&str]) -> BinServer {
        self.start_with_delay("0.05", extra)
    }

    fn start_with_delay(&self, delay: &str, extra: &[&str]) -> BinServer {
        let mut args: Vec<String> = vec![
            "--passwd".into(),
            self.passwd.clone(),
            "--maildir".into(),
            "%h/Maildir".into(),
            "--fail-delay".into(),
            delay.into(),
            // These tests fail logins on purpose from 127.0.0.1; the penalty is not theirs.
            "--exempt-loopback".into(),
            "--apop".into(),
            "--listen-tls".into(),
            "127.0.0.1:0".into(),
        ];
        args.extend(self.cert.args());
        args.extend(extra.iter().map(|s| s.to_string()));
        BinServer::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

/// Writes `text` over the file at `path` in place (same inode), as an editor that does not
/// rename would, and makes sure the file's stamp changed even if the size did not: on a
/// filesystem with coarse timestamps, waits for the clock to move on and writes again. (Two
/// edits within one timestamp tick and of the same size are indistinguishable to any server.)
fn rewrite(path: &Path, text: &str) {
    let stamp = |m: &fs::Metadata| (m.size(), m.mtime(), m.mtime_nsec(), m.ctime_nsec());
    let before = fs::metadata(path).ok().map(|m| stamp(&m));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        fs::write(path, text).unwrap();
        if before != Some(stamp(&fs::metadata(path).unwrap())) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the stamp of {path:?} does not change"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn maildir_with(maildir: &Path, raw: &[u8]) {
    for sub in ["new", "cur", "tmp"] {
        fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    fs::write(maildir.join("new/1700000000.M1P1.sasl"), raw).unwrap();
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    B64.encode(bytes)
}

/// The bytes of a `+ BASE64` challenge.
fn challenge(line: &str) -> Vec<u8> {
    let data = line
        .strip_prefix("+ ")
        .unwrap_or_else(|| panic!("not a challenge: {line:?}"));
    B64.decode(data)
        .unwrap_or_else(|_| panic!("bad base64: {line:?}"))
}

/// After a login: the mailbox is `user`'s, and its message comes back byte-exact.
fn retrieve<S: Read + Write>(c: &mut Pop<S>, user: &str) {
    let want = expected_wire(&message_of(user));
    assert_eq!(
        c.cmd("RETR 1"),
        format!("+OK {} octets", want.len()),
        "{user}"
    );
    let got = c.body();
    assert!(got == want, "{user}: {}", first_difference(&got, &want));
    c.quit();
}

fn plain_connect(server: &BinServer) -> Pop<std::net::TcpStream> {
    let (c, greeting) = Pop::connect(server.addr);
    assert!(greeting.starts_with("+OK"), "{greeting}");
    c
}

// ---- real clients ----

/// curl over STLS as `user`, with `--login-options OPTIONS` if given (else curl picks the
/// mechanism itself) and `extra`: the message byte-exact; returns the trace.
fn curl_login(
    server: &BinServer,
    (user, password): (&str, &str),
    options: Option<&str>,
    extra: &[&str],
) -> String {
    let url = format!("pop3://127.0.0.1:{}/1", server.port());
    let mut args: Vec<String> = [
        "--verbose",
        "--silent",
        "--show-error",
        "--max-time",
        "20",
        "--ssl-reqd",
        "--insecure",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(options) = options {
        args.extend(["--login-options".to_owned(), options.to_owned()]);
    }
    args.push("--user".into());
    args.push(format!("{user}:{password}"));
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(url);
    let run = support::curl_when_free(&args);
    let trace = text(&run.stderr);
    assert!(run.status.success(), "curl {options:?} as {user}: {trace}");
    let want = expected_wire(&message_of(user));
    // curl writes the message as received, minus the terminator and the dot-stuffing.
    assert!(
        run.stdout == want,
        "curl {options:?} as {user}: {}",
        first_difference(&run.stdout, &want)
    );
    trace
}

/// The TLS version and cipher of a curl trace, and the line that logged in.
fn tls_and_login(trace: &str) -> (&str, &str) {
    let tls = trace
        .lines()
        .find_map(|l| l.strip_prefix("* SSL connection using "))
        .unwrap_or_else(|| panic!("no TLS:\n{trace}"));
    let login = trace
        .lines()
        .find(|l| l.starts_with("> AUTH") || l.starts_with("> APOP") || l.starts_with("> USER"))
        .unwrap_or_else(|| panic!("no login:\n{trace}"));
    assert!(tls.starts_with("TLSv1.3 / "), "{tls}");
    (tls, login)
}

#[test]
fn curl_logs_in_with_each_mechanism_it_is_told_to_use() {
    let plain = Setup::new("curl-plain", Accounts::Plain);
    let mixed = Setup::new("curl-mixed", Accounts::Mixed);
    let plain = plain.start(&["--insecure-loopback"]);
    let mixed = mixed.start(&["--insecure-loopback"]);
    for (server, options, extra, user, sent) in [
        // Every account {PLAIN} or {CLEAR}: every mechanism curl has.
        (&plain, "AUTH=PLAIN", &[][..], ALICE, "> AUTH PLAIN"),
        (
            &plain,
            "AUTH=PLAIN",
            &["--sasl-ir"][..],
            ALICE,
            "> AUTH PLAIN ",
        ),
        (&plain, "AUTH=LOGIN", &[][..], BOB, "> AUTH LOGIN"),
        (&plain, "AUTH=CRAM-MD5", &[][..], ALICE, "> AUTH CRAM-MD5"),
        (&plain, "AUTH=CRAM-MD5", &[][..], BOB, "> AUTH CRAM-MD5"),
        (&plain, "AUTH=+APOP", &[][..], ALICE, "> APOP alice "),
        (&plain, "AUTH=+APOP", &[][..], BOB, "> APOP bob "),
        // One-way hashes in the file: PLAIN and LOGIN for every account (no APOP, which would
        // lock the hashed accounts out; see apop_is_offered_only_when_every_account_can_use_it).
        (&mixed, "AUTH=PLAIN", &[][..], ARGON_USER, "> AUTH PLAIN"),
        (&mixed, "AUTH=PLAIN", &[][..], SCRAM_USER, "> AUTH PLAIN"),
        (&mixed, "AUTH=PLAIN", &[][..], ALICE, "> AUTH PLAIN"),
        (&mixed, "AUTH=LOGIN", &[][..], ARGON_USER, "> AUTH LOGIN"),
    ] {
        let trace = curl_login(server, user, Some(options), extra);
        let (tls, login) = tls_and_login(&trace);
        println!("curl {options} {extra:?} as {}: {tls}; {login}", user.0);
        assert!(login.starts_with(sent), "{options} as {}: {login}", user.0);
    }
}

/// The bug that set the rule: with CRAM-MD5 offered because some accounts could serve it, curl
/// (like Thunderbird) chose it for every account and did not fall back, so an account with a
/// one-way hash could not log in at all. Left to choose, curl must get in to every account.
#[test]
fn curl_left_to_choose_logs_in_to_every_account() {
    let crypt = Setup::new("curl-choice-crypt", Accounts::Crypt);
    let server = crypt.start(&["--insecure-loopback"]);
    // What curl sees after STLS: no mechanism that only some accounts can serve.
    let mut c = TlsPop::starttls(server.addr);
    assert_eq!(sasl_of(&mut c), Accounts::Crypt.offered());
    for user in [CRYPT_USER, ALICE] {
        let trace = curl_login(&server, user, None, &[]);
        let (tls, login) = tls_and_login(&trace);
        println!("curl as {}, its own choice: {tls}; {login}", user.0);
        assert!(
            login.starts_with("> AUTH PLAIN") || login.starts_with("> AUTH LOGIN"),
            "{}: {login}\n{trace}",
            user.0
        );
    }
    // Where every account can serve it, curl does take the challenge-response mechanism: the
    // reason it must not be offered above.
    let plain = Setup::new("curl-choice-plain", Accounts::Plain);
    let server = plain.start(&["--insecure-loopback"]);
    for user in [ALICE, BOB] {
        let trace = curl_login(&server, user, None, &[]);
        let (tls, login) = tls_and_login(&trace);
        println!("curl as {}, its own choice: {tls}; {login}", user.0);
        assert!(
            login.starts_with("> AUTH CRAM-MD5") || login.starts_with("> AUTH SCRAM-SHA-256"),
            "{}: {login}\n{trace}",
            user.0
        );
    }
}

/// Python: poplib over STLS, checks that CAPA offers SCRAM-SHA-256, then the exchange by the
/// third-party scramp library (which also checks the server's signature), then RETR 1 to
/// stdout. Args: HOST PORT USER PASSWORD.
const SCRAMP_SCRIPT: &str = r#"
import base64, poplib, ssl, sys
from scramp import ScramClient
host, port, user, password = sys.argv[1:5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
pop = poplib.POP3(host, int(port), timeout=20)
pop.stls(ctx)
sasl = pop.capa().get("SASL", [])
assert "SCRAM-SHA-256" in sasl, sasl
b64 = lambda s: base64.b64encode(s.encode()).decode()
unb64 = lambda r: base64.b64decode(r[2:]).decode()
client = ScramClient(["SCRAM-SHA-256"], user, password)
# poplib takes any reply that starts with "+" as success, so "+ challenge" lines come back here.
assert pop._shortcmd("AUTH SCRAM-SHA-256") == b"+ "
client.set_server_first(unb64(pop._shortcmd(b64(client.get_client_first()))))
client.set_server_final(unb64(pop._shortcmd(b64(client.get_client_final()))))
reply = pop._shortcmd("")
assert reply.startswith(b"+OK Logged in"), reply
resp, lines, octets = pop.retr(1)
sys.stdout.buffer.write(b"".join(line + b"\r\n" for line in lines))
print(pop.quit().decode(), file=sys.stderr)
"#;

#[test]
fn python_scramp_logs_in_with_scram_sha_256_over_stls() {
    // A {PLAIN} account (keys derived by the server) and one with stored keys: SCRAM is offered.
    let setup = Setup::new("scramp", Accounts::Scram);
    let server = setup.start(&["--insecure-loopback"]);
    for (user, password) in Accounts::Scram.users().iter().copied() {
        let run = run_bounded(
            Command::new("python3")
                .args(["-c", SCRAMP_SCRIPT, "127.0.0.1"])
                .arg(server.port().to_string())
                .args([user, password]),
            CLIENT_LIMIT,
        );
        let stderr = text(&run.stderr);
        assert!(
            !stderr.contains("No module named 'scramp'"),
            "the scramp Python package is missing: pip install scramp"
        );
        assert!(run.status.success(), "scramp as {user}: {stderr}");
        let want = expected_wire(&message_of(user));
        assert!(
            run.stdout == want,
            "{user}: {}",
            first_difference(&run.stdout, &want)
        );
    }
    // Both logins were over TLS (the log line is read a moment after the server writes it).
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.log().matches(" tls messages=1").count() < 2 {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---- PLAIN and LOGIN in literal bytes: with one-way hashes in the file ----

#[test]
fn auth_plain_with_and_without_an_initial_response() {
    let setup = Setup::new("plain", Accounts::Mixed);
    let server = setup.start(&[]);
    // Initial response in the AUTH line.
    let mut c = plain_connect(&server);
    let reply = c.cmd(&format!("AUTH PLAIN {}", b64("\0alice\0s3cret pw")));
    let size = expected_wire(&message_of(ALICE.0)).len();
    assert_eq!(reply, format!("+OK Logged in, 1 message ({size} octets)"));
    retrieve(&mut c, ALICE.0);
    // No initial response: an empty challenge, then the message.
    let mut c = plain_connect(&server);
    assert_eq!(c.cmd("AUTH PLAIN"), "+ ");
    assert!(c
        .cmd(&b64("\0alice\0s3cret pw"))
        .starts_with("+OK Logged in"));
    retrieve(&mut c, ALICE.0);
    // The authzid may name the user itself; the mechanism name is case-insensitive.
    let mut c = plain_connect(&server);
    let reply = c.cmd(&format!("auth plain {}", b64("alice\0alice\0s3cret pw")));
    assert!(reply.starts_with("+OK Logged in"), "{reply}");
    retrieve(&mut c, ALICE.0);
    // Hashed secrets work with PLAIN as with PASS.
    for (user, password) in [SCRAM_USER, ARGON_USER] {
        let mut c = plain_connect(&server);
        let reply = c.cmd(&format!(
            "AUTH PLAIN {}",
            b64(format!("\0{user}\0{password}"))
        ));
        assert!(reply.starts_with("+OK Logged in"), "{user}: {reply}");
        retrieve(&mut c, user);
    }
}

#[test]
fn auth_plain_refusals() {
    let setup = Setup::new("plain-refusals", Accounts::Mixed);
    let server = setup.start(&[]);
    let mut c = plain_connect(&server);
    // "=" is an empty initial response (RFC 5034 §4): no user, no password.
    assert_eq!(c.cmd("AUTH PLAIN ="), FAILED);
    // The same as an empty response to the empty challenge.
    assert_eq!(c.cmd("AUTH PLAIN"), "+ ");
    assert_eq!(c.cmd(""), FAILED);
    // Two failures: a third would close the connection (MAX_FAILED_LOGINS). A new one.
    let mut c = plain_connect(&server);
    // A message without its two NULs, and a cancel, each count as a failed login (a SCRAM round
    // costs the server a key derivation; giving up must not be free).
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", b64("alice\0s3cret pw"))),
        "-ERR Malformed PLAIN response"
    );
    // "*" cancels; the session goes on.
    assert_eq!(c.cmd("AUTH PLAIN"), "+ ");
    assert_eq!(c.cmd("*"), "-ERR Authentication cancelled");
    assert_eq!(
        c.cmd("NOOP"),
        "-ERR Not allowed before login",
        "a command again"
    );
    // Bad base64, in the AUTH line and as a response. A new connection: two failures so far.
    let mut c = plain_connect(&server);
    assert_eq!(c.cmd("AUTH PLAIN !!!!"), "-ERR Invalid base64 data");
    assert_eq!(c.cmd("AUTH PLAIN"), "+ ");
    assert_eq!(c.cmd("AGFsaWNl*"), "-ERR Invalid base64 data");
    // Acting as someone else is refused like a wrong password, even with the right one.
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", b64("argo\0alice\0s3cret pw"))),
        FAILED
    );
    // Still not logged in; a new connection logs in fine.
    assert_eq!(c.cmd("STAT"), "-ERR Not allowed before login");
    let mut c = plain_connect(&server);
    let reply = c.cmd(&format!("AUTH PLAIN {}", b64("\0alice\0s3cret pw")));
    assert!(reply.starts_with("+OK"), "{reply}");
    assert!(!server.log().contains("panicked"));
}

#[test]
fn auth_login_asks_for_the_name_then_the_password() {
    let setup = Setup::new("login", Accounts::Mixed);
    let server = setup.start(&[]);
    let mut c = plain_connect(&server);
    let asked = c.cmd("AUTH LOGIN");
    assert_eq!(challenge(&asked), b"Username:");
    assert_eq!(challenge(&c.cmd(&b64("alice"))), b"Password:");
    assert!(c.cmd(&b64("s3cret pw")).starts_with("+OK Logged in"));
    retrieve(&mut c, ALICE.0);
    // The user name as an initial response.
    let mut c = plain_connect(&server);
    let asked = c.cmd(&format!("AUTH LOGIN {}", b64(ARGON_USER.0)));
    assert_eq!(challenge(&asked), b"Password:");
    assert!(c.cmd(&b64(ARGON_USER.1)).starts_with("+OK Logged in"));
    retrieve(&mut c, ARGON_USER.0);
    // "*" cancels at either step.
    let mut c = plain_connect(&server);
    c.cmd("AUTH LOGIN");
    assert_eq!(c.cmd("*"), "-ERR Authentication cancelled");
    c.cmd("AUTH LOGIN");
    c.cmd(&b64("alice"));
    assert_eq!(c.cmd("*"), "-ERR Authentication cancelled");
}

// ---- CRAM-MD5, APOP, SCRAM-SHA-256: the client side computed here ----

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The CRAM-MD5 response (RFC 2195): `user SP hex(HMAC-MD5(password, challenge))`.
fn cram_md5_response(user: &str, password: &str, challenge: &[u8]) -> String {
    let mut mac = <Hmac<md5::Md5> as Mac>::new_from_slice(password.as_bytes()).unwrap();
    mac.update(challenge);
    b64(format!("{user} {}", hex(&mac.finalize().into_bytes())))
}

#[test]
fn cram_md5_digest_computed_by_the_test() {
    // RFC 2195's own example, to check this test's arithmetic.
    let mut mac = <Hmac<md5::Md5> as Mac>::new_from_slice(b"tanstaaftanstaaf").unwrap();
    mac.update(b"<1896.697170952@postoffice.reston.mci.net>");
    assert_eq!(
        hex(&mac.finalize().into_bytes()),
        "b913a602c7eda7a495b4e6e7334d3890"
    );
    // Every account {PLAIN} or {CLEAR}: CRAM-MD5 is offered.
    let setup = Setup::new("cram-md5", Accounts::Plain);
    let server = setup.start(&[]);
    let mut c = plain_connect(&server);
    let challenge = challenge(&c.cmd("AUTH CRAM-MD5"));
    let text = String::from_utf8(challenge.clone()).unwrap();
    assert!(
        text.starts_with('<') && text.ends_with('>') && text.contains('@'),
        "{text}"
    );
    let reply = c.cmd(&cram_md5_response(ALICE.0, ALICE.1, &challenge));
    assert!(reply.starts_with("+OK Logged in"), "{reply}");
    retrieve(&mut c, ALICE.0);
    // A {CLEAR} secret serves it the same.
    let mut c = plain_connect(&server);
    let bob = self::challenge(&c.cmd("AUTH CRAM-MD5"));
    let reply = c.cmd(&cram_md5_response(BOB.0, BOB.1, &bob));
    assert!(reply.starts_with("+OK Logged in"), "{reply}");
    retrieve(&mut c, BOB.0);
    // Each challenge is new.
    let mut c = plain_connect(&server);
    let again = self::challenge(&c.cmd("AUTH CRAM-MD5"));
    assert_ne!(again, challenge);
    assert_ne!(again, bob);
    // A response to the old challenge fails.
    assert_eq!(
        c.cmd(&cram_md5_response(ALICE.0, ALICE.1, &challenge)),
        FAILED
    );
}

/// The APOP digest (RFC 1939 §7) for the timestamp in `greeting`.
fn apop_digest(greeting: &str, password: &str) -> String {
    let start = greeting.find('<').expect("timestamp in the greeting");
    let end = greeting.rfind('>').unwrap() + 1;
    hex(&md5::Md5::digest(format!(
        "{}{password}",
        &greeting[start..end]
    )))
}

#[test]
fn apop_digest_computed_by_the_test() {
    let setup = Setup::new("apop", Accounts::Plain);
    let server = setup.start(&[]);
    let (mut c, greeting) = Pop::connect(server.addr);
    // <pid.random@host>, new for each greeting.
    let stamp = &greeting[greeting.find('<').unwrap()..];
    assert!(stamp.ends_with('>') && stamp.contains('@'), "{greeting}");
    let reply = c.cmd(&format!("APOP alice {}", apop_digest(&greeting, ALICE.1)));
    assert!(reply.starts_with("+OK Logged in"), "{reply}");
    retrieve(&mut c, ALICE.0);
    let (mut c, again) = Pop::connect(server.addr);
    assert_ne!(again, greeting);
    // A {CLEAR} secret serves it the same.
    let reply = c.cmd(&format!("APOP bob {}", apop_digest(&again, BOB.1)));
    assert!(reply.starts_with("+OK Logged in"), "{reply}");
    retrieve(&mut c, BOB.0);
    // Without --apop, no timestamp and no APOP.
    let plain = BinServer::start(&["--passwd", &setup.passwd, "--maildir", "%h/Maildir"]);
    let (mut c, greeting) = Pop::connect(plain.addr);
    assert_eq!(greeting, "+OK POP3 server ready");
    assert_eq!(
        c.cmd("APOP alice 0123456789abcdef0123456789abcdef"),
        "-ERR APOP is not enabled"
    );
}

type HmacSha256 = Hmac<Sha256>;

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// A SCRAM-SHA-256 client (RFC 5802 §3, RFC 7677), written from the RFC.
struct Scram {
    user: String,
    password: String,
    client_first_bare: String,
    nonce: String,
    server_signature: Vec<u8>,
}

impl Scram {
    fn new(user: &str, password: &str) -> Self {
        let nonce = b64(Sha256::digest(format!("{user}{:?}", Instant::now())))
            .replace(['+', '/', '='], "x");
        Self::with_nonce(user, password, &nonce)
    }

    fn with_nonce(user: &str, password: &str, nonce: &str) -> Self {
        // saslname: "=" and "," escaped (RFC 5802 §5.1).
        let name = user.replace('=', "=3D").replace(',', "=2C");
        let nonce = nonce.to_owned();
        Scram {
            user: user.into(),
            password: password.into(),
            client_first_bare: format!("n={name},r={nonce}"),
            nonce,
            server_signature: Vec::new(),
        }
    }

    /// The client-first message (no channel binding, no authzid).
    fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// The client-final message for `server_first`.
    fn client_final(&mut self, server_first: &str) -> String {
        let mut attrs = server_first.split(',');
        let nonce = attrs.next().unwrap().strip_prefix("r=").expect("r=");
        let salt = B64
            .decode(attrs.next().unwrap().strip_prefix("s=").expect("s="))
            .unwrap();
        let iterations: u32 = attrs
            .next()
            .unwrap()
            .strip_prefix("i=")
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            nonce.starts_with(&self.nonce),
            "server nonce does not extend ours"
        );
        assert!(nonce.len() > self.nonce.len(), "server added no nonce");
        assert!(iterations >= 4096, "{iterations}");
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(self.password.as_bytes(), &salt, iterations, &mut salted);
        let client_key = hmac_sha256(&salted, b"Client Key");
        let stored_key = Sha256::digest(&client_key);
        let without_proof = format!("c={},r={nonce}", b64("n,,"));
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = hmac_sha256(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = hmac_sha256(&salted, b"Server Key");
        self.server_signature = hmac_sha256(&server_key, auth_message.as_bytes());
        format!("{without_proof},p={}", b64(proof))
    }

    /// Checks the server-final message `v=...`.
    fn verify(&self, server_final: &str) {
        let v = server_final
            .strip_prefix("v=")
            .unwrap_or_else(|| panic!("{server_final}"));
        assert_eq!(
            B64.decode(v).unwrap(),
            self.server_signature,
            "server signature for {}",
            self.user
        );
    }
}

/// Runs a SCRAM-SHA-256 login; returns the reply to the client-final message (a challenge
/// holding `v=` on success, an -ERR otherwise) and the client.
fn scram_exchange<S: Read + Write>(
    c: &mut Pop<S>,
    user: &str,
    password: &str,
    initial_response: bool,
) -> (String, Scram) {
    let mut scram = Scram::new(user, password);
    let first = if initial_response {
        c.cmd(&format!("AUTH SCRAM-SHA-256 {}", b64(scram.client_first())))
    } else {
        assert_eq!(c.cmd("AUTH SCRAM-SHA-256"), "+ ");
        c.cmd(&b64(scram.client_first()))
    };
    let server_first = String::from_utf8(challenge(&first)).unwrap();
    let reply = c.cmd(&b64(scram.client_final(&server_first)));
    (reply, scram)
}

/// A full SCRAM-SHA-256 login, checking the server's signature.
fn scram_login<S: Read + Write>(c: &mut Pop<S>, user: &str, password: &str, initial: bool) {
    let (reply, scram) = scram_exchange(c, user, password, initial);
    scram.verify(&String::from_utf8(challenge(&reply)).unwrap());
    let reply = c.cmd("");
    assert!(reply.starts_with("+OK Logged in"), "{user}: {reply}");
}

#[test]
fn scram_sha_256_client_written_from_the_rfc() {
    // RFC 7677 §3's exchange, to check this test's client first.
    let mut rfc = Scram::with_nonce("user", "pencil", "rOprNGfwEbeRWgbNEkqO");
    assert_eq!(rfc.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    assert_eq!(
        rfc.client_final(
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        ),
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
         p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    );
    rfc.verify("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    // Stored keys and a {PLAIN} secret, no one-way hash: SCRAM is offered.
    let setup = Setup::new("scram", Accounts::Scram);
    let server = setup.start(&["--insecure-loopback"]);
    // A {PLAIN} secret (keys derived by the server), in plaintext (SCRAM sends no password).
    let mut c = plain_connect(&server);
    scram_login(&mut c, ALICE.0, ALICE.1, true);
    retrieve(&mut c, ALICE.0);
    // The {SCRAM-SHA-256} secret from --hash-password, over STLS, without initial response.
    let mut c = TlsPop::starttls(server.addr);
    scram_login(&mut c, SCRAM_USER.0, SCRAM_USER.1, false);
    retrieve(&mut c, SCRAM_USER.0);
    // On the implicit-TLS port too.
    let (mut c, _) = TlsPop::implicit(server.tls_addr());
    scram_login(&mut c, SCRAM_USER.0, SCRAM_USER.1, true);
    retrieve(&mut c, SCRAM_USER.0);
    // The server proves itself only to a client that knew the password: no v= after a wrong
    // proof, and "*" cancels half-way.
    let mut c = plain_connect(&server);
    let (reply, _) = scram_exchange(&mut c, SCRAM_USER.0, "wrong", true);
    assert_eq!(reply, FAILED);
    let mut scram = Scram::new(ALICE.0, ALICE.1);
    let first = c.cmd(&format!("AUTH SCRAM-SHA-256 {}", b64(scram.client_first())));
    let _ = scram.client_final(&String::from_utf8(challenge(&first)).unwrap());
    assert_eq!(c.cmd("*"), "-ERR Authentication cancelled");
}

// ---- what is offered ----

fn sasl_of<S: Read + Write>(c: &mut Pop<S>) -> Vec<String> {
    let (status, lines) = c.multi("CAPA");
    assert_eq!(status, "+OK Capability list follows");
    lines
        .iter()
        .find_map(|l| l.strip_prefix("SASL "))
        .map(|l| l.split(' ').map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The mechanisms whose offer depends on the passwd file.
const CHALLENGE_MECHANISMS: [&str; 2] = ["CRAM-MD5", "SCRAM-SHA-256"];

/// AUTH agrees with what was listed: an offered challenge mechanism starts (and is cancelled),
/// one not offered is refused as unsupported.
fn check_auth_agrees<S: Read + Write>(c: &mut Pop<S>, offered: &[&str], what: &str) {
    for name in CHALLENGE_MECHANISMS {
        let reply = c.cmd(&format!("AUTH {name}"));
        if offered.contains(&name) {
            assert!(reply.starts_with("+ "), "{what}: AUTH {name}: {reply}");
            assert_eq!(c.cmd("*"), "-ERR Authentication cancelled", "{what}");
        } else {
            assert_eq!(reply, UNSUPPORTED, "{what}: AUTH {name}");
        }
    }
}

#[test]
fn bare_auth_lists_the_mechanisms_capa_lists() {
    for accounts in Accounts::ALL {
        let setup = Setup::new("bare-auth", accounts);
        let server = setup.start(&[]);
        let mut c = plain_connect(&server);
        let (status, mechanisms) = c.multi("AUTH");
        assert_eq!(status, "+OK Supported mechanisms follow");
        assert_eq!(mechanisms, accounts.offered(), "{accounts:?}");
        assert_eq!(sasl_of(&mut c), mechanisms, "{accounts:?}");
        check_auth_agrees(&mut c, accounts.offered(), &format!("{accounts:?}"));
        assert_eq!(c.cmd("AUTH GSSAPI"), UNSUPPORTED);
        // The file's last account (a one-way hash where there is one) logs in with PLAIN.
        let (user, password) = *accounts.users().last().unwrap();
        let reply = c.cmd(&format!(
            "AUTH PLAIN {}",
            b64(format!("\0{user}\0{password}"))
        ));
        assert!(reply.starts_with("+OK"), "{accounts:?}: {reply}");
        // After login, no more SASL line and no more AUTH.
        assert!(sasl_of(&mut c).is_empty());
        assert!(c.cmd("AUTH").starts_with("-ERR"));
    }
}

/// The accounts of a passwd file: (user, password) and the password field.
type FileLines<'a> = Vec<((&'a str, &'a str), String)>;

#[test]
fn challenge_mechanisms_are_offered_only_for_secrets_that_serve_them() {
    const ALL: &[&str] = &["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"];
    const SCRAM: &[&str] = &["PLAIN", "LOGIN", "SCRAM-SHA-256"];
    const NONE: &[&str] = &["PLAIN", "LOGIN"];
    let dir = TempDir::new("secret-kinds");
    let home = dir.path().join("home");
    maildir_with(&home.join("Maildir"), b"Subject: x\n\nx\n");
    // The SHA512-CRYPT line again as a {PLAIN} one of the very same length: an edit that
    // leaves the file's size as it was.
    let crypt_line = format!("{}:{}", CRYPT_USER.0, stored(CRYPT_USER));
    let pad = "x".repeat(crypt_line.len() - CRYPT_USER.0.len() - ":{PLAIN}".len());
    let same_size = (CRYPT_USER.0, pad.as_str());
    let plain_same_size = || format!("{{PLAIN}}{}", same_size.1);
    // (what, the accounts, what must be offered), each case an edit of the one file of one
    // server; each case offers something else than the one before.
    let cases: Vec<(&str, FileLines, &[&str])> = vec![
        (
            "all {PLAIN} and {CLEAR}",
            vec![(ALICE, stored(ALICE)), (BOB, stored(BOB))],
            ALL,
        ),
        (
            "{PLAIN} and {SCRAM-SHA-256}",
            vec![(ALICE, stored(ALICE)), (SCRAM_USER, stored(SCRAM_USER))],
            SCRAM,
        ),
        (
            "{PLAIN} and {SHA512-CRYPT}",
            vec![(ALICE, stored(ALICE)), (CRYPT_USER, stored(CRYPT_USER))],
            NONE,
        ),
        (
            "the hash replaced by {PLAIN}, same file size",
            vec![(ALICE, stored(ALICE)), (same_size, plain_same_size())],
            ALL,
        ),
        (
            "{SCRAM-SHA-256} alone",
            vec![(SCRAM_USER, stored(SCRAM_USER))],
            SCRAM,
        ),
        (
            "{ARGON2ID} first, then {PLAIN}",
            vec![(ARGON_USER, stored(ARGON_USER)), (ALICE, stored(ALICE))],
            NONE,
        ),
        ("{CLEAR} alone", vec![(BOB, stored(BOB))], ALL),
        (
            "{PLAIN}, {SCRAM-SHA-256} and {ARGON2ID}",
            vec![
                (ALICE, stored(ALICE)),
                (SCRAM_USER, stored(SCRAM_USER)),
                (ARGON_USER, stored(ARGON_USER)),
            ],
            NONE,
        ),
        (
            "{PLAIN}, {CLEAR} and {SCRAM-SHA-256}",
            vec![
                (ALICE, stored(ALICE)),
                (BOB, stored(BOB)),
                (SCRAM_USER, stored(SCRAM_USER)),
            ],
            SCRAM,
        ),
        (
            "{SCRAM-SHA-256} and {SHA512-CRYPT}",
            vec![
                (SCRAM_USER, stored(SCRAM_USER)),
                (CRYPT_USER, stored(CRYPT_USER)),
            ],
            NONE,
        ),
    ];
    let passwd = dir.path().join("passwd");
    // A comment and a blank line are not accounts.
    let file_of = |accounts: &[((&str, &str), String)]| -> String {
        let lines: String = accounts
            .iter()
            .map(|((user, _), field)| format!("{user}:{field}::::{}::\n", home.display()))
            .collect();
        format!("# test accounts\n\n{lines}")
    };
    rewrite(&passwd, &file_of(&cases[0].1));
    let server = BinServer::start(&[
        "--passwd",
        passwd.to_str().unwrap(),
        "--maildir",
        "%h/Maildir",
        "--fail-delay",
        "0.05",
    ]);
    for (what, accounts, want) in &cases {
        let text = file_of(accounts);
        if what.contains("same file size") {
            let size = fs::metadata(&passwd).unwrap().len();
            assert_eq!(text.len() as u64, size, "{what}");
        }
        rewrite(&passwd, &text);
        // The next connection sees the edit.
        let mut c = plain_connect(&server);
        assert_eq!(sasl_of(&mut c), *want, "{what}");
        let (_, listed) = c.multi("AUTH");
        assert_eq!(listed, *want, "{what}");
        check_auth_agrees(&mut c, want, what);
        // Whatever the secrets, PASS works for every account.
        for ((user, password), _) in accounts {
            let mut c = plain_connect(&server);
            assert_eq!(c.cmd(&format!("USER {user}")), "+OK Send your password");
            let reply = c.cmd(&format!("PASS {password}"));
            assert!(
                reply.starts_with("+OK Logged in"),
                "{what}, {user}: {reply}"
            );
            c.quit();
        }
    }
    assert!(!server.log().contains("panicked"), "{}", server.log());

    // One file per domain (%d): no one file to vouch for every account, so neither is offered,
    // even where the one file there is has only {PLAIN} secrets.
    let domain = dir.path().join("domains/example.org");
    fs::create_dir_all(&domain).unwrap();
    rewrite(
        &domain.join("passwd"),
        &file_of(&[(ALICE, stored(ALICE)), (BOB, stored(BOB))]),
    );
    let template = dir.path().join("domains/%d/passwd");
    let server = BinServer::start(&[
        "--passwd",
        template.to_str().unwrap(),
        "--maildir",
        "%h/Maildir",
        "--fail-delay",
        "0.05",
    ]);
    let mut c = plain_connect(&server);
    assert_eq!(sasl_of(&mut c), NONE, "%d");
    let (_, listed) = c.multi("AUTH");
    assert_eq!(listed, NONE, "%d");
    check_auth_agrees(&mut c, NONE, "%d");
    assert_eq!(c.cmd("USER alice@example.org"), "+OK Send your password");
    let reply = c.cmd(&format!("PASS {}", ALICE.1));
    assert!(reply.starts_with("+OK Logged in"), "%d: {reply}");
    c.quit();
}

#[test]
fn hash_password_takes_the_scheme_as_its_own_argument_too() {
    // The usage line is `--hash-password [SCHEME]`; getopts only attaches an optional value
    // given as --hash-password=SCHEME. The other spelling must not silently hash with the
    // default scheme.
    let out = support::run_with_input(
        Command::new(env!("CARGO_BIN_EXE_pop3d")).args(["--hash-password", "SCRAM-SHA-256"]),
        b"pw\n",
        CLIENT_LIMIT,
    );
    let printed = text(&out.stdout);
    assert!(
        printed.starts_with("{SCRAM-SHA-256}") || (!out.status.success() && printed.is_empty()),
        "`pop3d --hash-password SCRAM-SHA-256` printed {printed:?}"
    );
}

// ---- every failure alike ----

/// One way of failing to log in: runs it on a fresh connection and returns (the reply to the
/// last credential, how long that reply took).
type Attempt = fn(SocketAddr) -> (String, Duration);

fn timed<S: Read + Write>(c: &mut Pop<S>, line: &str) -> (String, Duration) {
    let started = Instant::now();
    let reply = c.cmd(line);
    (reply, started.elapsed())
}

fn connect(addr: SocketAddr) -> (Pop<std::net::TcpStream>, String) {
    let (c, greeting) = Pop::connect(addr);
    assert!(greeting.starts_with("+OK"), "{greeting}");
    (c, greeting)
}

fn pass(addr: SocketAddr, user: &str, password: &str) -> (String, Duration) {
    let (mut c, _) = connect(addr);
    assert_eq!(c.cmd(&format!("USER {user}")), "+OK Send your password");
    timed(&mut c, &format!("PASS {password}"))
}

fn plain(addr: SocketAddr, message: &str) -> (String, Duration) {
    let (mut c, _) = connect(addr);
    timed(&mut c, &format!("AUTH PLAIN {}", b64(message)))
}

fn login(addr: SocketAddr, user: &str, password: &str) -> (String, Duration) {
    let (mut c, _) = connect(addr);
    c.cmd("AUTH LOGIN");
    assert_eq!(challenge(&c.cmd(&b64(user))), b"Password:");
    timed(&mut c, &b64(password))
}

fn cram(addr: SocketAddr, user: &str, password: &str) -> (String, Duration) {
    let (mut c, _) = connect(addr);
    let challenge = challenge(&c.cmd("AUTH CRAM-MD5"));
    timed(&mut c, &cram_md5_response(user, password, &challenge))
}

fn scram(addr: SocketAddr, user: &str, password: &str) -> (String, Duration) {
    let (mut c, _) = connect(addr);
    let mut scram = Scram::new(user, password);
    let first = c.cmd(&format!("AUTH SCRAM-SHA-256 {}", b64(scram.client_first())));
    let server_first = String::from_utf8(challenge(&first)).unwrap();
    timed(&mut c, &b64(scram.client_final(&server_first)))
}

#[test]
fn apop_is_offered_only_when_every_account_can_use_it() {
    // A client that sees the timestamp may insist on APOP, which fails for an account without
    // a plaintext secret: with --apop, only an all-{PLAIN} file gets the timestamp.
    for accounts in Accounts::ALL {
        let setup = Setup::new("apop-offered", accounts);
        let server = setup.start(&[]);
        let (mut c, greeting) = Pop::connect(server.addr);
        if accounts == Accounts::Plain {
            assert!(greeting.contains('<'), "{accounts:?}: {greeting}");
        } else {
            assert_eq!(greeting, "+OK POP3 server ready", "{accounts:?}");
            assert_eq!(
                c.cmd(&format!(
                    "APOP {} 0123456789abcdef0123456789abcdef",
                    ALICE.0
                )),
                "-ERR APOP is not enabled",
                "{accounts:?}"
            );
            assert!(
                server.log().contains("APOP is not offered"),
                "{accounts:?}: no start-up warning"
            );
        }
    }
}

fn apop(addr: SocketAddr, user: &str, password: &str) -> (String, Duration) {
    let (mut c, greeting) = connect(addr);
    timed(
        &mut c,
        &format!("APOP {user} {}", apop_digest(&greeting, password)),
    )
}

#[test]
fn every_failed_login_gets_the_same_reply_after_the_delay() {
    // Each failure on a file where its mechanism is offered: CRAM-MD5 and SCRAM where every
    // secret is {PLAIN} or {CLEAR}, SCRAM with stored keys, and one-way hashes for the rest.
    let setups: Vec<_> = Accounts::ALL
        .into_iter()
        .map(|accounts| (accounts, Setup::new("failures", accounts)))
        .collect();
    let servers: Vec<_> = setups
        .iter()
        .map(|(accounts, setup)| (*accounts, setup.start_with_delay("0.3", &[])))
        .collect();
    let addr_of = |accounts| {
        servers
            .iter()
            .find(|(a, _)| *a == accounts)
            .map(|(_, server)| server.addr)
            .unwrap()
    };
    // (`Keys`: `Scram` is the name of the test's SCRAM client.)
    use Accounts::{Crypt, Mixed, Plain, Scram as Keys};
    let attempts: Vec<(&str, Accounts, Attempt)> = vec![
        ("PASS wrong password", Plain, |a| pass(a, "alice", "wrong")),
        ("PASS unknown user", Plain, |a| {
            pass(a, "nobody", "s3cret pw")
        }),
        ("PASS wrong password, {CLEAR}", Plain, |a| {
            pass(a, "bob", "wrong")
        }),
        ("PASS wrong password, argon2", Mixed, |a| {
            pass(a, "argo", "wrong")
        }),
        ("PASS unknown user, hashes", Mixed, |a| {
            pass(a, "nobody", "argon pw")
        }),
        ("PASS wrong password, scram", Keys, |a| {
            pass(a, "sc=am,x", "wrong")
        }),
        ("PASS wrong password, crypt", Crypt, |a| {
            pass(a, "crypt.user", "wrong")
        }),
        ("PLAIN wrong password", Plain, |a| {
            plain(a, "\0alice\0wrong")
        }),
        ("PLAIN unknown user", Plain, |a| {
            plain(a, "\0nobody\0s3cret pw")
        }),
        ("PLAIN other authzid", Mixed, |a| {
            plain(a, "argo\0alice\0s3cret pw")
        }),
        ("PLAIN empty password", Plain, |a| plain(a, "\0alice\0")),
        ("PLAIN =", Plain, |a| {
            timed(&mut connect(a).0, "AUTH PLAIN =")
        }),
        ("PLAIN wrong password, argon2", Mixed, |a| {
            plain(a, "\0argo\0wrong")
        }),
        ("PLAIN wrong password, crypt", Crypt, |a| {
            plain(a, "\0crypt.user\0wrong")
        }),
        ("LOGIN wrong password", Plain, |a| {
            login(a, "alice", "wrong")
        }),
        ("LOGIN unknown user", Plain, |a| {
            login(a, "nobody", "s3cret pw")
        }),
        ("LOGIN bad user name", Plain, |a| {
            login(a, "no body", "s3cret pw")
        }),
        ("LOGIN wrong password, argon2", Mixed, |a| {
            login(a, "argo", "wrong")
        }),
        ("CRAM-MD5 wrong password", Plain, |a| {
            cram(a, "alice", "wrong")
        }),
        ("CRAM-MD5 unknown user", Plain, |a| {
            cram(a, "nobody", "s3cret pw")
        }),
        ("CRAM-MD5 wrong password, {CLEAR}", Plain, |a| {
            cram(a, "bob", "wrong")
        }),
        ("CRAM-MD5 another account's password", Plain, |a| {
            cram(a, "bob", "s3cret pw")
        }),
        ("SCRAM wrong password", Plain, |a| {
            scram(a, "alice", "wrong")
        }),
        ("SCRAM unknown user", Plain, |a| {
            scram(a, "nobody", "s3cret pw")
        }),
        ("SCRAM wrong password, {CLEAR}", Plain, |a| {
            scram(a, "bob", "wrong")
        }),
        ("SCRAM wrong password, scram", Keys, |a| {
            scram(a, "sc=am,x", "wrong")
        }),
        ("SCRAM unknown user, stored keys", Keys, |a| {
            scram(a, "nobody", "scram,pw=")
        }),
        ("SCRAM wrong password, plain among keys", Keys, |a| {
            scram(a, "alice", "wrong")
        }),
        ("APOP wrong password", Plain, |a| apop(a, "alice", "wrong")),
        ("APOP unknown user", Plain, |a| {
            apop(a, "nobody", "s3cret pw")
        }),
    ];
    // In parallel: each waits out its own delay.
    let runs: Vec<_> = attempts
        .into_iter()
        .map(|(name, accounts, attempt)| {
            let addr = addr_of(accounts);
            (name, std::thread::spawn(move || attempt(addr)))
        })
        .collect();
    let mut wrong = Vec::new();
    for (name, run) in runs {
        let (reply, took) = run.join().unwrap_or_else(|_| panic!("{name} panicked"));
        println!("{name}: {reply} after {took:?}");
        if reply != FAILED || took < Duration::from_millis(300) {
            wrong.push(format!("{name}: {reply:?} after {took:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    for (accounts, server) in &servers {
        assert!(!server.log().contains("panicked"), "{accounts:?}");
    }
}

/// CRAM-MD5 and SCRAM are offered because every secret serves them when AUTH comes; an edit of
/// the file in the middle of the exchange leaves a one-way hash where a secret was. That login
/// fails like a wrong password, after the delay, and the next connection is not offered them.
#[test]
fn a_secret_turned_into_a_hash_mid_login_fails_like_a_wrong_password() {
    let setup = Setup::new("mid-login", Accounts::Plain);
    let server = setup.start_with_delay("0.3", &[]);
    let all_plain = || vec![(ALICE.0, stored(ALICE)), (BOB.0, stored(BOB))];
    let hashed = vec![(ALICE.0, sha512_crypt(ALICE.1)), (BOB.0, stored(BOB))];
    let failed_after_delay = |(reply, took): (String, Duration), what: &str| {
        assert_eq!(reply, FAILED, "{what}");
        assert!(took >= Duration::from_millis(300), "{what}: {took:?}");
    };

    // CRAM-MD5: the challenge is out, then alice's secret becomes a hash.
    let (mut c, _) = connect(server.addr);
    let sent = challenge(&c.cmd("AUTH CRAM-MD5"));
    setup.write(&hashed);
    failed_after_delay(
        timed(&mut c, &cram_md5_response(ALICE.0, ALICE.1, &sent)),
        "CRAM-MD5",
    );
    let mut c = plain_connect(&server);
    assert_eq!(sasl_of(&mut c), Accounts::Mixed.offered(), "after the edit");

    // SCRAM: AUTH while every secret serves it, the client-first after the edit. The server
    // carries on with keys nothing matches, and never proves itself.
    setup.write(&all_plain());
    let (mut c, _) = connect(server.addr);
    assert_eq!(sasl_of(&mut c), Accounts::Plain.offered(), "edited back");
    assert_eq!(c.cmd("AUTH SCRAM-SHA-256"), "+ ");
    setup.write(&hashed);
    let mut scram = Scram::new(ALICE.0, ALICE.1);
    let first = c.cmd(&b64(scram.client_first()));
    let server_first = String::from_utf8(challenge(&first)).unwrap();
    failed_after_delay(
        timed(&mut c, &b64(scram.client_final(&server_first))),
        "SCRAM",
    );
    // PASS still works with the new secret, on a new connection.
    let (_, took) = pass(server.addr, ALICE.0, "wrong");
    assert!(took >= Duration::from_millis(300));
    let mut c = plain_connect(&server);
    assert_eq!(c.cmd("USER alice"), "+OK Send your password");
    assert!(c
        .cmd(&format!("PASS {}", ALICE.1))
        .starts_with("+OK Logged in"));
    retrieve(&mut c, ALICE.0);
    assert!(!server.log().contains("panicked"), "{}", server.log());
}
