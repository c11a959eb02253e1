//! Authentication against the pop3d binary: AUTH (RFC 5034) with PLAIN, LOGIN, CRAM-MD5 and
//! SCRAM-SHA-256, APOP, and USER/PASS; by real clients (curl `--login-options`, Python scramp)
//! and in literal bytes with the client side computed here (RFC 4616, 2195, 5802, 7677, 1939).
//!
//! Accounts: alice with a `{PLAIN}` secret (every mechanism), a user with a `{SCRAM-SHA-256}`
//! secret and one with an `{ARGON2ID}` hash, both made by `pop3d --hash-password`. Each has a
//! Maildir holding one message.

mod support;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::maildir::{expected_wire, first_difference, run_bounded, sha512_crypt};
use support::{hash_password, BinServer, Pop, TempDir, TestCert, TlsPop};

const CLIENT_LIMIT: Duration = Duration::from_secs(30);

/// The one reply to every failed login.
const FAILED: &str = "-ERR [AUTH] Authentication failed";

/// `{PLAIN}`: every mechanism works for it.
const ALICE: (&str, &str) = ("alice", "s3cret pw");
/// `{SCRAM-SHA-256}`: SCRAM, PLAIN, LOGIN and USER/PASS; the name needs SCRAM's escapes.
const SCRAM_USER: (&str, &str) = ("sc=am,x", "scram,pw=");
/// `{ARGON2ID}`: PLAIN, LOGIN and USER/PASS only.
const ARGON_USER: (&str, &str) = ("argo", "argon pw");

/// What each account's mailbox holds: dots, a NUL, 8-bit bytes, no final newline.
fn message_of(user: &str) -> Vec<u8> {
    format!("From: test@example.org\nSubject: for {user}\n\n.dot line\n..\n.\nbin \0\u{e9}\nend")
        .into_bytes()
}

/// A passwd file and Maildirs for the three accounts, and a certificate.
struct Setup {
    /// Holds everything; removed on drop.
    _dir: TempDir,
    cert: TestCert,
    passwd: String,
}

impl Setup {
    fn new(tag: &str) -> Self {
        let dir = TempDir::new(tag);
        let cert = TestCert::generate(dir.path());
        let mut text = String::new();
        // Hashed once for all tests: argon2 in a debug build costs most of a second.
        static HASHES: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
        let (scram, argon) = HASHES.get_or_init(|| {
            (
                hash_password("SCRAM-SHA-256", SCRAM_USER.1),
                hash_password("ARGON2ID", ARGON_USER.1),
            )
        });
        for (user, field) in [
            (ALICE.0, format!("{{PLAIN}}{}", ALICE.1)),
            (SCRAM_USER.0, scram.clone()),
            (ARGON_USER.0, argon.clone()),
        ] {
            let home = dir.path().join("home").join(user);
            maildir_with(&home.join("Maildir"), &message_of(user));
            text.push_str(&format!("{user}:{field}::::{}::\n", home.display()));
        }
        let passwd = dir.path().join("passwd");
        fs::write(&passwd, text).unwrap();
        Setup {
            passwd: passwd.display().to_string(),
            _dir: dir,
            cert,
        }
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
            "--apop".into(),
            "--listen-tls".into(),
            "127.0.0.1:0".into(),
        ];
        args.extend(self.cert.args());
        args.extend(extra.iter().map(|s| s.to_string()));
        BinServer::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
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
    let (c, greeting) = Pop::plain(server.addr);
    assert!(greeting.starts_with("+OK"), "{greeting}");
    c
}

// ---- real clients ----

/// curl over STLS with `--login-options AUTH=MECH` (and `extra`) as `user`: the message
/// byte-exact; returns the trace.
fn curl_login(
    server: &BinServer,
    (user, password): (&str, &str),
    options: &str,
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
        "--login-options",
        options,
        "--user",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("{user}:{password}"));
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(url);
    let run = support::curl_when_free(&args);
    let trace = text(&run.stderr);
    assert!(run.status.success(), "curl {options}: {trace}");
    let want = expected_wire(&message_of(user));
    // curl writes the message as received, minus the terminator and the dot-stuffing.
    assert!(
        run.stdout == want,
        "curl {options}: {}",
        first_difference(&run.stdout, &want)
    );
    trace
}

#[test]
fn curl_logs_in_with_each_mechanism_it_is_told_to_use() {
    let setup = Setup::new("curl-mechanisms");
    let server = setup.start(&["--insecure-loopback"]);
    for (options, extra, user, sent) in [
        ("AUTH=PLAIN", &[][..], ALICE, "> AUTH PLAIN"),
        ("AUTH=PLAIN", &["--sasl-ir"][..], ALICE, "> AUTH PLAIN "),
        ("AUTH=PLAIN", &[][..], ARGON_USER, "> AUTH PLAIN"),
        ("AUTH=PLAIN", &[][..], SCRAM_USER, "> AUTH PLAIN"),
        ("AUTH=LOGIN", &[][..], ALICE, "> AUTH LOGIN"),
        ("AUTH=CRAM-MD5", &[][..], ALICE, "> AUTH CRAM-MD5"),
        ("AUTH=+APOP", &[][..], ALICE, "> APOP alice "),
    ] {
        let trace = curl_login(&server, user, options, extra);
        let tls = trace
            .lines()
            .find_map(|l| l.strip_prefix("* SSL connection using "))
            .unwrap_or_else(|| panic!("no TLS:\n{trace}"));
        let login = trace
            .lines()
            .find(|l| l.starts_with("> AUTH") || l.starts_with("> APOP") || l.starts_with("> USER"))
            .unwrap_or_else(|| panic!("no login:\n{trace}"));
        println!("curl {options} {extra:?} as {}: {tls}; {login}", user.0);
        assert!(login.starts_with(sent), "{options}: {login}");
        assert!(tls.starts_with("TLSv1.2 / "), "{tls}");
    }
}

/// Python: poplib over STLS, the SCRAM-SHA-256 exchange by the third-party scramp library
/// (which also checks the server's signature), then RETR 1 to stdout. Args: HOST PORT USER
/// PASSWORD.
const SCRAMP_SCRIPT: &str = r#"
import base64, poplib, ssl, sys
from scramp import ScramClient
host, port, user, password = sys.argv[1:5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
pop = poplib.POP3(host, int(port), timeout=20)
pop.stls(ctx)
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
    let setup = Setup::new("scramp");
    let server = setup.start(&["--insecure-loopback"]);
    for (user, password) in [ALICE, SCRAM_USER] {
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

// ---- PLAIN and LOGIN in literal bytes ----

#[test]
fn auth_plain_with_and_without_an_initial_response() {
    let setup = Setup::new("plain");
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
    let setup = Setup::new("plain-refusals");
    let server = setup.start(&[]);
    let mut c = plain_connect(&server);
    // "=" is an empty initial response (RFC 5034 §4): no user, no password.
    assert_eq!(c.cmd("AUTH PLAIN ="), FAILED);
    // The same as an empty response to the empty challenge.
    assert_eq!(c.cmd("AUTH PLAIN"), "+ ");
    assert_eq!(c.cmd(""), FAILED);
    // Two failures: a third would close the connection (MAX_FAILED_LOGINS). A new one.
    let mut c = plain_connect(&server);
    // A message without its two NULs is a protocol error, answered at once.
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
    // Bad base64, in the AUTH line and as a response.
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
    let setup = Setup::new("login");
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
    let setup = Setup::new("cram-md5");
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
    // Each challenge is new.
    let mut c = plain_connect(&server);
    let again = self::challenge(&c.cmd("AUTH CRAM-MD5"));
    assert_ne!(again, challenge);
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
    let setup = Setup::new("apop");
    let server = setup.start(&[]);
    let (mut c, greeting) = Pop::plain(server.addr);
    // <pid.random@host>, new for each greeting.
    let stamp = &greeting[greeting.find('<').unwrap()..];
    assert!(stamp.ends_with('>') && stamp.contains('@'), "{greeting}");
    let reply = c.cmd(&format!("APOP alice {}", apop_digest(&greeting, ALICE.1)));
    assert!(reply.starts_with("+OK Logged in"), "{reply}");
    retrieve(&mut c, ALICE.0);
    let (_, again) = Pop::plain(server.addr);
    assert_ne!(again, greeting);
    // Without --apop, no timestamp and no APOP.
    let plain = BinServer::start(&["--passwd", &setup.passwd, "--maildir", "%h/Maildir"]);
    let (mut c, greeting) = Pop::plain(plain.addr);
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
    let setup = Setup::new("scram");
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

#[test]
fn bare_auth_lists_the_mechanisms_capa_lists() {
    let setup = Setup::new("bare-auth");
    let server = setup.start(&[]);
    let mut c = plain_connect(&server);
    let (status, mechanisms) = c.multi("AUTH");
    assert_eq!(status, "+OK Supported mechanisms follow");
    assert_eq!(mechanisms, ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"]);
    assert_eq!(sasl_of(&mut c), mechanisms);
    assert_eq!(
        c.cmd("AUTH GSSAPI"),
        "-ERR Unsupported authentication mechanism"
    );
    // After login, no more SASL line and no more AUTH.
    assert!(c
        .cmd(&format!("AUTH PLAIN {}", b64("\0alice\0s3cret pw")))
        .starts_with("+OK"));
    assert!(sasl_of(&mut c).is_empty());
    assert!(c.cmd("AUTH").starts_with("-ERR"));
}

#[test]
fn challenge_mechanisms_are_offered_only_for_secrets_that_serve_them() {
    let dir = TempDir::new("secret-kinds");
    let home = dir.path().join("home");
    maildir_with(&home.join("Maildir"), b"Subject: x\n\nx\n");
    let cases = [
        (sha512_crypt("pw"), vec!["PLAIN", "LOGIN"]),
        (hash_password("ARGON2ID", "pw"), vec!["PLAIN", "LOGIN"]),
        (
            hash_password("SCRAM-SHA-256", "pw"),
            vec!["PLAIN", "LOGIN", "SCRAM-SHA-256"],
        ),
        (
            "{PLAIN}pw".to_owned(),
            vec!["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"],
        ),
    ];
    for (field, want) in cases {
        let passwd = dir.path().join("passwd");
        fs::write(&passwd, format!("u:{field}::::{}::\n", home.display())).unwrap();
        let server = BinServer::start(&[
            "--passwd",
            passwd.to_str().unwrap(),
            "--maildir",
            "%h/Maildir",
            "--fail-delay",
            "0.05",
        ]);
        let mut c = plain_connect(&server);
        assert_eq!(sasl_of(&mut c), want, "{field}");
        let (_, listed) = c.multi("AUTH");
        assert_eq!(listed, want, "{field}");
        if !want.contains(&"CRAM-MD5") {
            assert_eq!(
                c.cmd("AUTH CRAM-MD5"),
                "-ERR Unsupported authentication mechanism"
            );
        }
        // Whatever the secret, PASS works.
        assert_eq!(c.cmd("USER u"), "+OK Send your password");
        assert!(c.cmd("PASS pw").starts_with("+OK Logged in"), "{field}");
        c.quit();
    }
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
    let (c, greeting) = Pop::plain(addr);
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

fn apop(addr: SocketAddr, user: &str, password: &str) -> (String, Duration) {
    let (mut c, greeting) = connect(addr);
    timed(
        &mut c,
        &format!("APOP {user} {}", apop_digest(&greeting, password)),
    )
}

#[test]
fn every_failed_login_gets_the_same_reply_after_the_delay() {
    let setup = Setup::new("failures");
    let server = setup.start_with_delay("0.3", &[]);
    let attempts: Vec<(&str, Attempt)> = vec![
        ("PASS wrong password", |a| pass(a, "alice", "wrong")),
        ("PASS unknown user", |a| pass(a, "nobody", "s3cret pw")),
        ("PASS wrong password, argon2", |a| pass(a, "argo", "wrong")),
        ("PASS wrong password, scram", |a| {
            pass(a, "sc=am,x", "wrong")
        }),
        ("PLAIN wrong password", |a| plain(a, "\0alice\0wrong")),
        ("PLAIN unknown user", |a| plain(a, "\0nobody\0s3cret pw")),
        ("PLAIN other authzid", |a| {
            plain(a, "argo\0alice\0s3cret pw")
        }),
        ("PLAIN empty password", |a| plain(a, "\0alice\0")),
        ("PLAIN =", |a| timed(&mut connect(a).0, "AUTH PLAIN =")),
        ("LOGIN wrong password", |a| login(a, "alice", "wrong")),
        ("LOGIN unknown user", |a| login(a, "nobody", "s3cret pw")),
        ("LOGIN bad user name", |a| login(a, "no body", "s3cret pw")),
        ("CRAM-MD5 wrong password", |a| cram(a, "alice", "wrong")),
        ("CRAM-MD5 unknown user", |a| cram(a, "nobody", "s3cret pw")),
        ("CRAM-MD5 hashed secret", |a| cram(a, "argo", "argon pw")),
        ("SCRAM wrong password", |a| scram(a, "alice", "wrong")),
        ("SCRAM unknown user", |a| scram(a, "nobody", "s3cret pw")),
        ("SCRAM wrong password, scram", |a| {
            scram(a, "sc=am,x", "wrong")
        }),
        ("SCRAM hashed secret", |a| scram(a, "argo", "argon pw")),
        ("APOP wrong password", |a| apop(a, "alice", "wrong")),
        ("APOP unknown user", |a| apop(a, "nobody", "s3cret pw")),
        ("APOP hashed secret", |a| apop(a, "argo", "argon pw")),
        ("APOP scram secret", |a| apop(a, "sc=am,x", "scram,pw=")),
    ];
    let addr = server.addr;
    // In parallel: each waits out its own delay.
    let runs: Vec<_> = attempts
        .into_iter()
        .map(|(name, attempt)| (name, std::thread::spawn(move || attempt(addr))))
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
    assert!(!server.log().contains("panicked"));
}
