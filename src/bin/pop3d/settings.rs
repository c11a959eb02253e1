//! The daemon's settings: the command line parsed and checked, before anything is opened.

use crate::{accounts, mailstore};
use pop3d::{MinVersion, NetRange, Service, Workarounds};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// Where the standalone daemon listens when neither `--listen`, `--listen-tls` nor systemd
/// gives it a socket.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::UNSPECIFIED,
    110,
));

/// Where pop3d keeps its state (`--state-dir`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/pop3d";

/// What the command line asks the daemon (standalone, `--inetd` or `--check`) to do.
pub struct Settings {
    pub listen: Vec<SocketAddr>,
    pub listen_tls: Vec<SocketAddr>,
    /// Certificate and key files.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub tls_min: MinVersion,
    /// inetd mode with TLS from the first byte.
    pub inetd_tls: bool,
    pub inetd: bool,
    pub check: bool,
    pub accounts: accounts::Accounts,
    pub store: mailstore::Spec,
    pub max_sessions: Option<usize>,
    pub max_per_ip: Option<usize>,
    /// Listener addresses that expect a PROXY protocol header.
    pub proxy_listeners: Vec<SocketAddr>,
    pub proxy_trusted: Vec<NetRange>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub chroot: Option<PathBuf>,
    pub allow_root: bool,
    /// Lowest uid a session may switch to.
    pub first_uid: u32,
    /// `--mail-group`: the saved gid of a session's process.
    pub mail_group: Option<String>,
    /// Where the server secret and the shared penalty file are.
    pub state_dir: PathBuf,
    pub session: SessionSettings,
    /// `--pid-file`: where the standalone daemon writes its process id.
    pub pid_file: Option<PathBuf>,
}

/// The session settings the command line gave; what it did not give keeps the library's
/// default.
#[derive(Default)]
pub struct SessionSettings {
    pub idle_timeout: Option<Duration>,
    pub login_timeout: Option<Duration>,
    pub fail_delay: Option<Duration>,
    pub implementation: Option<String>,
    pub default_domain: Option<String>,
    pub apop: bool,
    pub allow_plaintext: bool,
    pub insecure_loopback: bool,
    pub exempt_loopback: bool,
    pub workarounds: Workarounds,
    pub login_delay: Option<Duration>,
    pub expire: Option<pop3d::Expire>,
}

impl SessionSettings {
    pub fn apply(self, mut service: Service) -> Service {
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

/// The settings the options give, or what is wrong with them.
pub fn parse(m: &getopts::Matches) -> Result<Settings, String> {
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
    // Empty for both: the sockets systemd passed, or else DEFAULT_LISTEN (see standalone.rs).
    let listen = addresses(m, "listen")?;
    let tls = match (m.opt_str("tls-cert"), m.opt_str("tls-key")) {
        (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    if tls.is_none() && (!listen_tls.is_empty() || m.opt_present("tls")) {
        return Err("--listen-tls and --tls need --tls-cert and --tls-key".into());
    }
    if let Some(level) = m.opt_str("log-level") {
        crate::logging::parse_level(&level)?;
    }
    if m.opt_present("syslog") && m.opt_present("inetd") {
        return Err(
            "--syslog is for the standalone daemon: under --inetd, syslog is the log".into(),
        );
    }
    if m.opt_present("pid-file") && m.opt_present("inetd") {
        return Err("--pid-file is for the standalone daemon, not --inetd".into());
    }
    if m.opt_present("tls") && !m.opt_present("inetd") {
        return Err("--tls is for --inetd; standalone, use --listen-tls".into());
    }
    let proxy_listeners = addresses(m, "proxy-listener")?;
    let default = [DEFAULT_LISTEN];
    let plain = match listen.is_empty() && listen_tls.is_empty() {
        true => &default[..],
        false => &listen[..],
    };
    if let Some(stray) = proxy_listeners
        .iter()
        .find(|a| !plain.contains(a) && !listen_tls.contains(a))
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
                .unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
        ),
        pid_file: m.opt_str("pid-file").map(PathBuf::from),
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

/// `text` as a whole number, or an error naming `option`.
pub fn number(text: &str, option: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("{option}: {text:?} is not a whole number"))
}
