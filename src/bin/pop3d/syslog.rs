//! A `log` backend for syslog(3), facility mail: in inetd mode stderr is the client's socket.

use std::ffi::CString;

struct Syslog;

static LOGGER: Syslog = Syslog;

/// Sends log records to syslog as "pop3d[pid]".
pub fn init(level: log::LevelFilter) {
    connect();
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

/// Opens the connection to syslog now (a process about to close descriptors reconnects after).
pub fn connect() {
    // SAFETY: the identity is a static C string, as openlog requires (it keeps the pointer).
    unsafe {
        libc::openlog(
            c"pop3d".as_ptr(),
            libc::LOG_PID | libc::LOG_NDELAY,
            libc::LOG_MAIL,
        )
    };
}

/// Closes the connection to syslog, before its descriptor is closed behind its back.
pub fn disconnect() {
    // SAFETY: closelog takes no arguments; a later syslog call reconnects.
    unsafe { libc::closelog() };
}

impl log::Log for Syslog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let priority = match record.level() {
            log::Level::Error => libc::LOG_ERR,
            log::Level::Warn => libc::LOG_WARNING,
            log::Level::Info => libc::LOG_INFO,
            log::Level::Debug | log::Level::Trace => libc::LOG_DEBUG,
        };
        let text = record.args().to_string().replace('\0', "\\0");
        if let Ok(msg) = CString::new(text) {
            // SAFETY: a constant format with one C string argument.
            unsafe { libc::syslog(priority, c"%s".as_ptr(), msg.as_ptr()) };
        }
    }

    fn flush(&self) {}
}
