//! The pop3d daemon: standalone, or one session under inetd.

mod accounts;
mod broker;
mod deliver;
mod descriptors;
mod hash_password;
mod mailstore;
mod options;
mod privileges;
mod state;
mod syslog;

use pop3d::auth::server_secret::{self, SECRET_FILE};
use pop3d::{ListenerKind, MinVersion, NetRange, Server, Service, TlsConfig, TlsMode, Workarounds};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Exit status for a command line that cannot be understood.
const EXIT_USAGE: u8 = 2;
/// Exit status for a configuration or start-up failure.
const EXIT_CONFIG: u8 = 1;

struct Settings {
    listen: Vec<SocketAddr>,
    listen_tls: Vec<SocketAddr>,
    /// Certificate and key files.
    tls: Option<(PathBuf, PathBuf)>,
    tls_min: MinVersion,
    /// inetd mode with TLS from the first byte.
    inetd_tls: bool,
    inetd: bool,
    check: bool,
    accounts: accounts::Accounts,
    store: mailstore::Spec,
    max_sessions: Option<usize>,
    max_per_ip: Option<usize>,
    /// Listener addresses that expect a PROXY protocol header.
    proxy_listeners: Vec<SocketAddr>,
    proxy_trusted: Vec<NetRange>,
    user: Option<String>,
    group: Option<String>,
    chroot: Option<PathBuf>,
    allow_root: bool,
    /// Lowest uid a session may switch to.
    first_uid: u32,
    /// `--mail-group`: the saved gid of a session's process.
    mail_group: Option<String>,
    /// Where the server secret and the shared penalty file are.
    state_dir: PathBuf,
    session: SessionSettings,
}

/// The session settings the command line gave; what it did not give keeps the library's
/// default.
#[derive(Default)]
struct SessionSettings {
    idle_timeout: Option<Duration>,
    login_timeout: Option<Duration>,
    fail_delay: Option<Duration>,
    implementation: Option<String>,
    default_domain: Option<String>,
    apop: bool,
    allow_plaintext: bool,
    insecure_loopback: bool,
    exempt_loopback: bool,
    workarounds: Workarounds,
    login_delay: Option<Duration>,
    expire: Option<pop3d::Expire>,
}

impl SessionSettings {
    fn apply(self, mut service: Service) -> Service {
        if let Some(t) = self.idle_timeout {
            service = service.idle_timeout(t);
        }
        if let Some(t) = self.login_timeout {
            service = service.login_timeout(t);
        }
        if let Some(d) = self.fail_delay {
            service = service.auth_failure_delay(d);
        }
        if let Some(text) = self.implementation {
            service = service.implementation(text);
        }
        if let Some(domain) = self.default_domain {
            service = service.default_domain(domain);
        }
        service = self.expire.into_iter().fold(service, Service::expire);
        service
            .apop(self.apop)
            .allow_plaintext(self.allow_plaintext)
            .trust_loopback(!self.insecure_loopback)
            .exempt_loopback(self.exempt_loopback)
            .workarounds(self.workarounds)
            .login_delay(self.login_delay.unwrap_or_default())
            .hostname(hostname())
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Not an option: what a checkpassword program runs, as the account, after a good password.
    if let Some(status) = accounts::checkpassword_reply(&args) {
        return status;
    }
    // Under inetd, stderr is the client's socket: everything goes to syslog, from the start.
    // So under --deliver, where stderr is the MTA's bounce text.
    let delivering = deliver::requested(&args);
    let inetd = args.iter().any(|a| a == "--inetd" || a == "-i") || delivering;
    let level = std::env::var("POP3D_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(log::LevelFilter::Info);
    if inetd {
        syslog::init(level);
    } else {
        env_logger::Builder::new()
            .filter_level(log::LevelFilter::Info)
            .parse_env("POP3D_LOG")
            .init();
    }
    let report = |code: u8, text: &str| {
        if inetd {
            log::error!("{text}");
        } else {
            eprintln!("pop3d: {text}");
            if code == EXIT_USAGE {
                eprintln!("Try 'pop3d --help' for more information.");
            }
        }
        ExitCode::from(code)
    };
    let matches = match options::parser().parse(&args) {
        Ok(m) => m,
        Err(e) if delivering => return deliver::usage_failure(&args, &e.to_string()),
        Err(e) => return report(EXIT_USAGE, &e.to_string()),
    };
    if let Some(user) = matches.opt_str("deliver") {
        return deliver::main(&matches, &user);
    }
    if matches.opt_present("help") {
        print!("{}", options::usage());
        return ExitCode::SUCCESS;
    }
    if matches.opt_present("version") {
        println!("pop3d {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if matches.opt_present("hash-password") {
        // getopts attaches an optional value only as --hash-password=SCHEME; the man page's
        // --hash-password SCHEME leaves it as a free argument.
        let mut free = matches.free.iter();
        let scheme = matches
            .opt_str("hash-password")
            .or_else(|| free.next().cloned())
            .unwrap_or_else(|| "ARGON2ID".into());
        if let Some(extra) = free.next() {
            return report(EXIT_USAGE, &format!("unexpected argument {extra:?}"));
        }
        return match hash_password::run(&scheme) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => report(EXIT_USAGE, &e),
        };
    }
    if let Some(extra) = matches.free.first() {
        return report(EXIT_USAGE, &format!("unexpected argument {extra:?}"));
    }
    let settings = match settings(&matches) {
        Ok(s) => s,
        Err(e) => return report(EXIT_USAGE, &e),
    };
    match run(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(EXIT_CONFIG, &e),
    }
}

fn settings(m: &getopts::Matches) -> Result<Settings, String> {
    let mut session = SessionSettings::default();
    if let Some(secs) = m.opt_str("timeout") {
        session.idle_timeout = Some(match number(&secs, "--timeout")? {
            0 => return Err("--timeout must be at least 1 second".into()),
            n => Duration::from_secs(n),
        });
    }
    if let Some(secs) = m.opt_str("login-timeout") {
        session.login_timeout = Some(match number(&secs, "--login-timeout")? {
            0 => return Err("--login-timeout must be at least 1 second".into()),
            n => Duration::from_secs(n),
        });
    }
    if let Some(secs) = m.opt_str("fail-delay") {
        session.fail_delay = Some(
            Duration::try_from_secs_f64(
                secs.parse::<f64>()
                    .map_err(|_| format!("--fail-delay: {secs:?} is not a number of seconds"))?,
            )
            .map_err(|_| format!("--fail-delay: {secs:?} is out of range"))?,
        );
    }
    session.implementation = m.opt_str("implementation");
    session.default_domain = m.opt_str("default-domain");
    session.apop = m.opt_present("apop");
    session.allow_plaintext = m.opt_present("allow-plaintext");
    session.insecure_loopback = m.opt_present("insecure-loopback");
    session.exempt_loopback = m.opt_present("exempt-loopback");
    if let Some(secs) = m.opt_str("login-delay") {
        session.login_delay = Some(Duration::from_secs(number(&secs, "--login-delay")?));
    }
    session.expire = m.opt_get("expire").map_err(|e| format!("--expire: {e}"))?;
    if let Some(list) = m.opt_str("workarounds") {
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !session.workarounds.enable(name) {
                let known: Vec<&str> = Workarounds::NAMES.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "--workarounds: {name:?} is not one of {}",
                    known.join(", ")
                ));
            }
        }
    }
    let listen_tls = addresses(m, "listen-tls")?;
    let mut listen = addresses(m, "listen")?;
    if listen.is_empty() && listen_tls.is_empty() {
        listen.push(SocketAddr::from(([0, 0, 0, 0], 110)));
    }
    let tls = match (m.opt_str("tls-cert"), m.opt_str("tls-key")) {
        (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    if tls.is_none() && (!listen_tls.is_empty() || m.opt_present("tls")) {
        return Err("--listen-tls and --tls need --tls-cert and --tls-key".into());
    }
    if m.opt_present("tls") && !m.opt_present("inetd") {
        return Err("--tls is for --inetd; standalone, use --listen-tls".into());
    }
    let proxy_listeners = addresses(m, "proxy-listener")?;
    if let Some(stray) = proxy_listeners
        .iter()
        .find(|a| !listen.contains(a) && !listen_tls.contains(a))
    {
        return Err(format!(
            "--proxy-listener {stray} names no --listen or --listen-tls address"
        ));
    }
    let proxy_trusted = m
        .opt_strs("proxy-trusted")
        .iter()
        .map(|n| n.parse().map_err(|e| format!("--proxy-trusted: {e}")))
        .collect::<Result<Vec<NetRange>, String>>()?;
    if !proxy_listeners.is_empty() && proxy_trusted.is_empty() {
        return Err("--proxy-listener needs --proxy-trusted: who may send the headers".into());
    }
    if (m.opt_present("group") || m.opt_present("chroot")) && !m.opt_present("user") {
        return Err("--group and --chroot go with --user".into());
    }
    let max_per_ip = match m.opt_str("max-per-ip") {
        Some(n) => Some(number(&n, "--max-per-ip")? as usize),
        None => None,
    };
    let tls_min = match m.opt_str("tls-min").as_deref() {
        None | Some("1.2") => MinVersion::Tls12,
        Some("1.3") => MinVersion::Tls13,
        Some("1.0") => MinVersion::Tls10,
        Some(other) => return Err(format!("--tls-min: {other:?} is not 1.2, 1.3 or 1.0")),
    };
    let max_sessions = match m.opt_str("max-sessions") {
        Some(n) => match number(&n, "--max-sessions")? {
            0 => return Err("--max-sessions must be at least 1".into()),
            n => Some(n as usize),
        },
        None => None,
    };
    Ok(Settings {
        listen,
        listen_tls,
        tls,
        tls_min,
        inetd_tls: m.opt_present("tls"),
        inetd: m.opt_present("inetd"),
        check: m.opt_present("check"),
        accounts: accounts::Accounts::from_matches(m)?,
        store: mailstore::Spec::from_matches(m)?,
        max_sessions,
        max_per_ip,
        proxy_listeners,
        proxy_trusted,
        user: m.opt_str("user"),
        group: m.opt_str("group"),
        chroot: m.opt_str("chroot").map(PathBuf::from),
        allow_root: m.opt_present("allow-root"),
        first_uid: match m.opt_str("first-uid") {
            Some(n) => u32::try_from(number(&n, "--first-uid")?)
                .map_err(|_| format!("--first-uid {n}: not a uid"))?,
            None => 1000,
        },
        mail_group: m.opt_str("mail-group"),
        state_dir: PathBuf::from(
            m.opt_str("state-dir")
                .unwrap_or_else(|| "/var/lib/pop3d".into()),
        ),
        session,
    })
}

/// Every address given with `--OPTION`.
fn addresses(m: &getopts::Matches, option: &str) -> Result<Vec<SocketAddr>, String> {
    let mut all = Vec::new();
    for addr in m.opt_strs(option) {
        let resolved = addr.to_socket_addrs().map_err(|e| {
            format!("--{option} {addr}: {e} (expected host:port, e.g. 127.0.0.1:110)")
        })?;
        all.extend(resolved);
    }
    Ok(all)
}

/// This machine's name, for APOP timestamps and SASL challenges.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer and its length; gethostname NUL-terminates within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(0);
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if rc == 0 && !name.is_empty() => name.to_owned(),
        _ => "localhost".into(),
    }
}

fn number(text: &str, option: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("{option}: {text:?} is not a whole number"))
}

/// Reads the TLS files (while still privileged: a key is usually readable by root alone).
fn load_tls(s: &Settings) -> Result<Option<TlsConfig>, String> {
    let Some((cert, key)) = &s.tls else {
        return Ok(None);
    };
    let tls = TlsConfig::from_pem_files(cert, key, s.tls_min).map_err(|e| e.to_string())?;
    // A handshake per inetd session would cost too much; standalone and --check test once.
    if !s.inetd || s.check {
        tls.self_test()
            .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))?;
    }
    // Under inetd each connection is a process of its own: tickets sealed with a key derived
    // from the server secret let a client resume with the next one.
    match (s.inetd && !s.check).then(|| state::secret(&s.state_dir)) {
        Some(Some(secret)) => Ok(Some(tls.share_tickets(&secret).map_err(|e| e.to_string())?)),
        _ => Ok(Some(tls)),
    }
}

fn run(s: Settings) -> Result<(), String> {
    let store = s.store.open()?;
    let target = match &s.user {
        Some(user) => Some(privileges::lookup(user, s.group.as_deref())?),
        None if privileges::is_root() && !s.allow_root && !s.check => {
            return Err("refusing to serve as root: give --user ACCOUNT to drop to \
                        (or --allow-root to insist)"
                .into());
        }
        None => None,
    };
    if s.check {
        load_tls(&s)?;
        let accounts = s.accounts.source.check()?;
        let secret = s.state_dir.join(SECRET_FILE);
        match server_secret::load(&secret) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!("pop3d: {} will be created at start", secret.display());
            }
            Err(e) => return Err(format!("{}: {e}", secret.display())),
        }
        println!("pop3d: configuration OK ({accounts})");
        return Ok(());
    }
    let auth = s
        .accounts
        .source
        .open(s.session.apop, s.inetd, &s.state_dir)?;
    if !s.inetd {
        // Measured now rather than at the first login (see Authenticator::costliest_check).
        auth.costliest_check();
    }
    // Root forks the broker (which keeps root to run each session as its account) now: before
    // any thread starts (the TLS self-test starts one) and before root is given up.
    let (store, auth) = match privileges::is_root() {
        true => broker::start_for(&s, store, auth)?,
        false => (store, auth),
    };
    let tls = load_tls(&s)?;
    let service = state::open(
        s.session
            .apply(Service::new(auth, store))
            .fold_case(s.accounts.folds_case()),
        &s.state_dir,
        s.inetd,
    );
    if s.inetd {
        if let Some(target) = &target {
            privileges::drop_to(target, s.chroot.as_deref())?;
        }
        let mode = match &tls {
            Some(tls) if s.inetd_tls => TlsMode::Implicit(tls),
            Some(tls) => TlsMode::Starttls(tls),
            None => TlsMode::Off,
        };
        let proxy = (!s.proxy_trusted.is_empty()).then_some(s.proxy_trusted.as_slice());
        // A client that vanishes is not a server failure: log it, exit 0.
        if let Err(e) = pop3d::inetd::run(&service, mode, proxy) {
            log::info!("connection error: {e}");
        }
        return Ok(());
    }
    descriptors::raise_for(
        s.max_sessions
            .unwrap_or(pop3d::Server::DEFAULT_MAX_SESSIONS),
    );
    // glibc gives each busy thread its own malloc arena and keeps them: after a load, RSS stayed
    // 8 MB higher with 64 session threads. Two arenas cost no measurable speed.
    // SAFETY: mallopt only changes an allocator setting, before the threads start.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    // Block the stop signals before any thread starts, so only the signal thread receives them.
    let signals = stop_signals();
    let mut server = Server::new(service).proxy_trusted(s.proxy_trusted.clone());
    if let Some(n) = s.max_sessions {
        server = server.max_sessions(n);
    }
    if let Some(n) = s.max_per_ip {
        server = server.max_per_ip(n);
    }
    if let Some(tls) = tls {
        server = server.with_tls(tls);
    }
    let listeners = s
        .listen
        .iter()
        .map(|a| (a, false))
        .chain(s.listen_tls.iter().map(|a| (a, true)));
    for (addr, implicit_tls) in listeners {
        let kind = ListenerKind {
            implicit_tls,
            proxy: s.proxy_listeners.contains(addr),
        };
        let local = server
            .listen_as(addr, kind)
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let what = match (implicit_tls, kind.proxy) {
            (false, false) => "",
            (true, false) => " for TLS",
            (false, true) => " for PROXY",
            (true, true) => " for PROXY and TLS",
        };
        log::info!("listening{what} on {local}");
    }
    // The ports are bound (the reason to start as root): now give root up.
    if let Some(target) = &target {
        privileges::drop_to(target, s.chroot.as_deref())?;
        log::info!("running as {}", s.user.as_deref().unwrap_or_default());
    }
    let handle = server.shutdown_handle();
    std::thread::Builder::new()
        .name("pop3d-signals".into())
        .spawn(move || {
            let mut sig: libc::c_int = 0;
            // SAFETY: a valid, initialised signal set and an out-parameter.
            if unsafe { libc::sigwait(&signals, &mut sig) } == 0 {
                log::info!("signal {sig}: shutting down");
                handle.shutdown();
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    server.run().map_err(|e| format!("server: {e}"))?;
    log::info!("stopped");
    Ok(())
}

/// Blocks SIGTERM and SIGINT in this thread (and so in all threads started after) and
/// returns the set, for sigwait.
fn stop_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before anything reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}
