//! The pop3d daemon: standalone, or one session under inetd.

mod accounts;
mod broker;
mod check;
mod deliver;
mod descriptors;
mod hash_password;
mod logging;
mod mailstore;
mod options;
mod passwd_files;
mod pid_file;
mod privileges;
mod settings;
mod shared_cost;
mod standalone;
mod state;
mod syslog;
mod systemd;

use pop3d::{Service, TlsConfig, TlsMode};
use settings::Settings;
use std::process::ExitCode;

/// Exit status for a command line that cannot be understood.
const EXIT_USAGE: u8 = 2;
/// Exit status for a configuration or start-up failure.
const EXIT_CONFIG: u8 = 1;

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
    let parsed = options::parser().parse(&args);
    let given = |name: &str| parsed.as_ref().ok().and_then(|m| m.opt_str(name));
    // A bad level is reported by settings::parse, once the log is set up.
    let level = given("log-level").and_then(|l| logging::parse_level(&l).ok());
    let also_syslog = parsed.as_ref().is_ok_and(|m| m.opt_present("syslog"));
    let state_dir = given("state-dir").unwrap_or_else(|| settings::DEFAULT_STATE_DIR.into());
    logging::init(logging::Setup {
        syslog_only: inetd,
        fallback: (!delivering).then_some(state_dir.as_ref()),
        also_syslog,
        level,
    });
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
    let matches = match parsed {
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
    let settings = match settings::parse(&matches) {
        Ok(s) => s,
        Err(e) => return report(EXIT_USAGE, &e),
    };
    match run(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(EXIT_CONFIG, &e),
    }
}

/// Reads the TLS files (while still privileged: a key is usually readable by root alone).
pub fn load_tls(s: &Settings) -> Result<Option<TlsConfig>, String> {
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

fn run(mut s: Settings) -> Result<(), String> {
    // Adopted first: the environment that names them is changed before any thread starts.
    let passed = match s.inetd || s.check {
        true => Vec::new(),
        false => systemd::listeners()?,
    };
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
        return check::run(&s, target.as_ref());
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
    let (store, auth, broker) = match privileges::is_root() {
        true => {
            let ((store, auth), broker) = broker::start_for(&s, store, auth)?;
            (store, auth, Some(broker))
        }
        false => (store, auth, None),
    };
    let tls = load_tls(&s)?;
    let service = state::open(
        std::mem::take(&mut s.session)
            .apply(Service::new(auth, store))
            .fold_case(s.accounts.folds_case()),
        &s.state_dir,
        s.inetd,
    );
    if s.inetd {
        if let Some(target) = &target {
            privileges::drop_to(target, s.chroot.as_deref())?;
        }
        s.accounts.source.ready()?;
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
    standalone::run(
        &s,
        service,
        standalone::Privileged {
            tls,
            target: target.as_ref(),
            passed,
            broker,
        },
    )
}
