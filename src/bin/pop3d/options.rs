//! Every command-line option, defined once: getopts, `--help` and the man page test read this.

/// How an option takes its value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// A switch.
    Nothing,
    /// One value, given at most once.
    One,
    /// A value that may be given several times.
    Many,
    /// A switch that may carry a value.
    Maybe,
}

/// One command-line option.
pub struct Opt {
    pub short: &'static str,
    pub long: &'static str,
    pub takes: Takes,
    pub value: &'static str,
    pub help: &'static str,
}

pub const OPTIONS: &[Opt] = &[
    Opt { short: "l", long: "listen", takes: Takes::Many, value: "ADDR",
          help: "listen on ADDR (host:port; repeatable) [default: 0.0.0.0:110]" },
    Opt { short: "i", long: "inetd", takes: Takes::Nothing, value: "",
          help: "serve one session on stdin/stdout (inetd, xinetd, systemd sockets)" },
    Opt { short: "p", long: "passwd", takes: Takes::One, value: "FILE",
          help: "passwd-file of accounts; may contain %d [default: /etc/pop3d/passwd]" },
    Opt { short: "", long: "pam", takes: Takes::One, value: "SERVICE",
          help: "system accounts checked by the PAM service SERVICE (/etc/pam.d/SERVICE) instead of a passwd-file" },
    Opt { short: "", long: "shadow", takes: Takes::Nothing, value: "",
          help: "system accounts checked against the passwd and shadow databases with crypt(3)" },
    Opt { short: "", long: "checkpassword", takes: Takes::One, value: "PROGRAM",
          help: "accounts checked by a checkpassword PROGRAM (qmail's interface; absolute path)" },
    Opt { short: "", long: "keep-case", takes: Takes::Nothing, value: "",
          help: "login names are case-sensitive (always so for system accounts; passwd-file names are folded to lower case otherwise)" },
    Opt { short: "m", long: "maildir", takes: Takes::One, value: "TEMPLATE",
          help: "where a user's Maildir is: %u user, %n local part, %d domain, %h home [default: %h/Maildir]" },
    Opt { short: "", long: "mbox", takes: Takes::One, value: "TEMPLATE",
          help: "serve mbox spools instead of Maildirs, e.g. /var/mail/%u (escapes as for --maildir)" },
    Opt { short: "", long: "uidl-format", takes: Takes::One, value: "PRESET",
          help: "keep the UIDLs another server showed: maildir (the base name), dovecot, courier (from their files in each Maildir), x-uidl (each message's X-UIDL header; reads every message's header at each login) [default: maildir]" },
    Opt { short: "d", long: "default-domain", takes: Takes::One, value: "DOMAIN",
          help: "domain added to login names that have none" },
    Opt { short: "n", long: "max-sessions", takes: Takes::One, value: "N",
          help: "sessions served at once; a full server cuts the client waiting longest before login [default: 1024]" },
    Opt { short: "t", long: "timeout", takes: Takes::One, value: "SECS",
          help: "close a session idle this long [default: 600]" },
    Opt { short: "", long: "fail-delay", takes: Takes::One, value: "SECS",
          help: "least time before a failed login is answered, fractions allowed [default: 1]" },
    Opt { short: "", long: "implementation", takes: Takes::One, value: "TEXT",
          help: "advertise TEXT in CAPA's IMPLEMENTATION line [default: none]" },
    Opt { short: "", long: "tls-cert", takes: Takes::One, value: "FILE",
          help: "PEM certificate chain, server certificate first; enables STLS" },
    Opt { short: "", long: "tls-key", takes: Takes::One, value: "FILE",
          help: "PEM private key (PKCS#8) for --tls-cert" },
    Opt { short: "", long: "listen-tls", takes: Takes::Many, value: "ADDR",
          help: "listen for implicit TLS on ADDR, e.g. 0.0.0.0:995 (repeatable)" },
    Opt { short: "", long: "tls", takes: Takes::Nothing, value: "",
          help: "with --inetd: TLS from the first byte (a port 995 service)" },
    Opt { short: "", long: "tls-min", takes: Takes::One, value: "VERSION",
          help: "oldest TLS version accepted: 1.2, 1.3, or 1.0 for old clients (unsafe) [default: 1.2]" },
    Opt { short: "", long: "allow-plaintext", takes: Takes::Nothing, value: "",
          help: "accept passwords before STLS on non-loopback connections" },
    Opt { short: "", long: "insecure-loopback", takes: Takes::Nothing, value: "",
          help: "apply the plaintext rule to loopback connections too" },
    Opt { short: "", long: "exempt-loopback", takes: Takes::Nothing, value: "",
          help: "exempt loopback clients from the failure penalty and --max-per-ip (a local webmail)" },
    Opt { short: "", long: "login-delay", takes: Takes::One, value: "SECS",
          help: "least time between two logins of an account (LOGIN-DELAY); pop3_login_delay in a passwd entry overrides it; 0: none [default: 0]" },
    Opt { short: "", long: "expire", takes: Takes::One, value: "DAYS",
          help: "remove messages DAYS days after a session retrieved them and ended with QUIT (EXPIRE; 0: at the end of that session), or never; pop3_expire in a passwd entry overrides it [default: none]" },
    Opt { short: "", long: "workarounds", takes: Takes::One, value: "LIST",
          help: "comma-separated fixes for old clients: outlook-no-nuls, oe-ns-eoh [default: none]" },
    Opt { short: "", long: "apop", takes: Takes::Nothing, value: "",
          help: "offer APOP (needs {PLAIN} secrets); the greeting then carries a timestamp" },
    Opt { short: "", long: "hash-password", takes: Takes::Maybe, value: "SCHEME",
          help: "read a password on stdin and print its passwd-file field: ARGON2ID, SCRAM-SHA-256 or SHA512-CRYPT [default: ARGON2ID]" },
    Opt { short: "", long: "login-cache", takes: Takes::One, value: "SECS",
          help: "remember successful logins for SECS, sparing polling clients the password hash; 0 turns it off [default: 0]" },
    Opt { short: "", long: "login-timeout", takes: Takes::One, value: "SECS",
          help: "close a session not logged in this long after connecting [default: 60]" },
    Opt { short: "", long: "max-per-ip", takes: Takes::One, value: "N",
          help: "sessions at once from one client address, 0 for no limit [default: 16]" },
    Opt { short: "", long: "proxy-listener", takes: Takes::Many, value: "ADDR",
          help: "the --listen or --listen-tls ADDR expects a PROXY protocol header (repeatable)" },
    Opt { short: "", long: "proxy-trusted", takes: Takes::Many, value: "NET",
          help: "address or CIDR range that may send PROXY headers (repeatable)" },
    Opt { short: "", long: "user", takes: Takes::One, value: "USER",
          help: "after binding, become USER (initgroups, setgid, setuid)" },
    Opt { short: "", long: "group", takes: Takes::One, value: "GROUP",
          help: "with --user: use GROUP instead of the user's primary group" },
    Opt { short: "", long: "chroot", takes: Takes::One, value: "DIR",
          help: "with --user: chroot to DIR first; paths are then inside DIR" },
    Opt { short: "", long: "first-uid", takes: Takes::One, value: "N",
          help: "lowest uid a session may run as; lower ones (system accounts) and root are refused [default: 1000]" },
    Opt { short: "", long: "mail-group", takes: Takes::One, value: "GROUP",
          help: "group a session keeps as its saved gid, to make dot-locks in a mail spool (none for Maildir) [default: mail]" },
    Opt { short: "", long: "state-dir", takes: Takes::One, value: "DIR",
          help: "directory of the server secret and, under --inetd, the shared failure penalty [default: /var/lib/pop3d]" },
    Opt { short: "", long: "allow-root", takes: Takes::Nothing, value: "",
          help: "serve as root (refused otherwise; prefer --user)" },
    Opt { short: "", long: "deliver", takes: Takes::One, value: "USER",
          help: "deliver one message from standard input to USER's mailbox, then exit: a local delivery agent for Postfix, Exim or qmail" },
    Opt { short: "", long: "quota", takes: Takes::One, value: "RULE",
          help: "quota of accounts without their own, for --deliver: storage=SIZE,messages=N (SIZE in kilobytes, or with b, k, M, G, T) [default: none]" },
    Opt { short: "", long: "quota-temporary", takes: Takes::Nothing, value: "",
          help: "with --deliver: a full mailbox defers the mail (4.2.2, exit 75) instead of bouncing it (5.2.2, exit 77)" },
    Opt { short: "", long: "qmail", takes: Takes::Nothing, value: "",
          help: "with --deliver: exit 100 for a permanent failure and 111 for a temporary one, as qmail-local expects" },
    Opt { short: "", long: "pid-file", takes: Takes::One, value: "FILE",
          help: "standalone: write the process id to FILE, locked while pop3d runs, removed at exit" },
    Opt { short: "", long: "log-level", takes: Takes::One, value: "LEVEL",
          help: "least severity logged: error, warn, info, debug, trace or off; overrides POP3D_LOG [default: info]" },
    Opt { short: "", long: "syslog", takes: Takes::Nothing, value: "",
          help: "standalone: log to syslog (facility mail) as well as to standard error" },
    Opt { short: "c", long: "check", takes: Takes::Nothing, value: "",
          help: "check the configuration and the account source, then exit" },
    Opt { short: "h", long: "help", takes: Takes::Nothing, value: "",
          help: "print this help and exit" },
    Opt { short: "V", long: "version", takes: Takes::Nothing, value: "",
          help: "print the version and exit" },
];

/// The getopts parser for [`OPTIONS`].
pub fn parser() -> getopts::Options {
    let mut opts = getopts::Options::new();
    for o in OPTIONS {
        match o.takes {
            Takes::Nothing => opts.optflag(o.short, o.long, o.help),
            Takes::One => opts.optopt(o.short, o.long, o.help, o.value),
            Takes::Many => opts.optmulti(o.short, o.long, o.help, o.value),
            Takes::Maybe => opts.optflagopt(o.short, o.long, o.help, o.value),
        };
    }
    opts
}

/// The `--help` text.
pub fn usage() -> String {
    parser().usage(&format!(
        "pop3d {}: a small, fast POP3 server\n\nUsage: pop3d [OPTIONS]",
        env!("CARGO_PKG_VERSION")
    )) + "\nSee pop3d(8) for the passwd-file format, inetd and systemd set-up, and signals.\n"
}
