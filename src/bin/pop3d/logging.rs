//! Where the daemon's log goes: standard error (env_logger), syslog, or both.

use crate::syslog;
use log::LevelFilter;
use std::path::Path;

/// The level `--log-level` gives, or an error naming the levels there are.
pub fn parse_level(text: &str) -> Result<LevelFilter, String> {
    text.parse().map_err(|_| {
        format!("--log-level: {text:?} is not one of error, warn, info, debug, trace, off")
    })
}

/// Where the log goes.
pub struct Setup<'a> {
    /// Under `--inetd` or `--deliver` stderr is the client's socket or the MTA's bounce
    /// text: syslog only.
    pub syslog_only: bool,
    /// Without a syslog daemon, write to a file in this state directory (`--inetd`; not
    /// `--deliver`, whose failures the MTA reports).
    pub fallback: Option<&'a Path>,
    /// `--syslog`: standalone, syslog beside stderr.
    pub also_syslog: bool,
    /// `--log-level`, which overrides `POP3D_LOG`.
    pub level: Option<LevelFilter>,
}

/// Starts logging. Under `inetd` (stderr is the client's socket) only to syslog, or when no
/// syslog daemon listens to a file in the state directory; otherwise to stderr, and to syslog too
/// with `also_syslog` (when a syslog daemon listens). `level` (`--log-level`) overrides
/// `POP3D_LOG`.
pub fn init(setup: Setup) {
    let Setup {
        syslog_only,
        fallback,
        also_syslog,
        level,
    } = setup;
    if syslog_only {
        let level = level.unwrap_or_else(|| {
            std::env::var("POP3D_LOG")
                .ok()
                .and_then(|l| l.parse().ok())
                .unwrap_or(LevelFilter::Info)
        });
        if let Some(dir) = fallback {
            syslog::fall_back_to(dir);
        }
        syslog::init(level);
        return;
    }
    let mut builder = env_logger::Builder::new();
    match level {
        Some(level) => builder.filter_level(level),
        None => builder
            .filter_level(LevelFilter::Info)
            .parse_env("POP3D_LOG"),
    };
    let stderr = builder.build();
    let max = stderr.filter();
    let no_daemon = also_syslog && !syslog::dev_log_listens();
    let logger: Box<dyn log::Log> = match also_syslog && !no_daemon {
        true => {
            syslog::connect_to_syslog();
            Box::new(Both { stderr })
        }
        false => Box::new(stderr),
    };
    if log::set_boxed_logger(logger).is_ok() {
        log::set_max_level(max);
    }
    if no_daemon {
        log::warn!("--syslog: no syslog daemon listens on /dev/log; logging to stderr only");
    }
}

/// Standard error and syslog, with the filter of the first.
struct Both {
    stderr: env_logger::Logger,
}

impl log::Log for Both {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        self.stderr.enabled(metadata)
    }

    fn log(&self, record: &log::Record) {
        if self.stderr.matches(record) {
            self.stderr.log(record);
            syslog::logger().log(record);
        }
    }

    fn flush(&self) {
        self.stderr.flush();
    }
}
