//! A `log` backend for syslog(3), facility mail: in inetd mode stderr is the client's socket,
//! and standalone with `--syslog`.
//!
//! With no syslog daemon (no `/dev/log`, as in a container or a minimal system), syslog(3)
//! drops every message. Then the messages go to a file in the state directory instead
//! ([`fall_back_to`]), and until it is known (or when it cannot be opened), to the console
//! (`LOG_CONS`): never to the client's socket.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The syslog logger.
pub struct Syslog;

static LOGGER: Syslog = Syslog;

/// Whether this process logs to syslog at all (so that its socket is looked after).
static IN_USE: AtomicBool = AtomicBool::new(false);

/// The file messages go to when there is no syslog daemon.
struct Fallback {
    dir: Option<PathBuf>,
    file: Option<File>,
}

static FALLBACK: Mutex<Fallback> = Mutex::new(Fallback {
    dir: None,
    file: None,
});

/// The file in the state directory that takes the messages when there is no `/dev/log`.
pub const FALLBACK_FILE: &str = "pop3d.log";

/// Sends log records to syslog as "pop3d[pid]", and only there.
pub fn init(level: log::LevelFilter) {
    connect_to_syslog();
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

/// The logger, for a process that logs to syslog beside something else (call [`connect`]).
pub fn logger() -> &'static Syslog {
    &LOGGER
}

/// When no syslog daemon listens on `/dev/log`, sends the messages to `dir`/[`FALLBACK_FILE`]
/// instead (opened now, while privileged, and kept open).
pub fn fall_back_to(dir: &Path) {
    if dev_log_listens() {
        return;
    }
    let mut fallback = FALLBACK.lock().unwrap_or_else(|e| e.into_inner());
    fallback.dir = Some(dir.to_owned());
    fallback.file = open(dir);
}

fn open(dir: &Path) -> Option<File> {
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir);
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(dir.join(FALLBACK_FILE))
        .ok()
}

/// Whether a syslog daemon listens on `/dev/log` (a datagram socket, or a stream one).
pub fn dev_log_listens() -> bool {
    use std::os::unix::net::{UnixDatagram, UnixStream};
    UnixDatagram::unbound().is_ok_and(|s| s.connect("/dev/log").is_ok())
        || UnixStream::connect("/dev/log").is_ok()
}

/// Opens the connection to syslog (and the fallback file) again after [`disconnect`]: a
/// process that closes every descriptor it inherited closes them first.
pub fn connect() {
    if !IN_USE.load(Ordering::SeqCst) {
        return;
    }
    connect_to_syslog();
    let mut fallback = FALLBACK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = fallback.dir.clone() {
        fallback.file = open(&dir);
    }
}

/// Opens the connection to syslog, for a process that logs there (beside stderr or alone).
pub fn connect_to_syslog() {
    IN_USE.store(true, Ordering::SeqCst);
    // SAFETY: the identity is a static C string, as openlog requires (it keeps the pointer).
    unsafe {
        libc::openlog(
            c"pop3d".as_ptr(),
            libc::LOG_PID | libc::LOG_NDELAY | libc::LOG_CONS,
            libc::LOG_MAIL,
        )
    };
}

/// Closes the connection to syslog and the fallback file, before their descriptors are
/// closed behind their backs (and their numbers reused for something else).
pub fn disconnect() {
    if !IN_USE.load(Ordering::SeqCst) {
        return;
    }
    // SAFETY: closelog takes no arguments; a later syslog call reconnects.
    unsafe { libc::closelog() };
    FALLBACK.lock().unwrap_or_else(|e| e.into_inner()).file = None;
}

impl log::Log for Syslog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let text = record.args().to_string().replace('\0', "\\0");
        let mut fallback = FALLBACK.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(file) = &mut fallback.file {
            let line = format!(
                "{} pop3d[{}]: {}: {text}\n",
                now(),
                std::process::id(),
                record.level()
            );
            // One write, so lines of several processes do not mix (O_APPEND).
            let _ = file.write_all(line.as_bytes());
            return;
        }
        drop(fallback);
        let priority = match record.level() {
            log::Level::Error => libc::LOG_ERR,
            log::Level::Warn => libc::LOG_WARNING,
            log::Level::Info => libc::LOG_INFO,
            log::Level::Debug | log::Level::Trace => libc::LOG_DEBUG,
        };
        if let Ok(msg) = CString::new(text) {
            // SAFETY: a constant format with one C string argument.
            unsafe { libc::syslog(priority, c"%s".as_ptr(), msg.as_ptr()) };
        }
    }

    fn flush(&self) {}
}

/// The local time, as syslog writes it in its files ("2026-12-06T11:43:41").
fn now() -> String {
    // SAFETY: time with a null pointer only returns the time; localtime_r fills a zeroed tm
    // (integers and a pointer, for which zero is valid); strftime writes at most buf.len().
    unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        let mut buf = [0u8; 32];
        let n = libc::strftime(
            buf.as_mut_ptr().cast(),
            buf.len(),
            c"%Y-%m-%dT%H:%M:%S".as_ptr(),
            &tm,
        );
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}
