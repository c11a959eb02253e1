//! [`CheckPassword`]: qmail's checkpassword interface, an external program per login.

use super::reply::{Reply, REPLY_FD, REPLY_MAX};
use super::{lookup, uid_refusal, unavailable, DEFAULT_FIRST_UID};
use crate::account::Account;
use crate::auth::{AuthError, Authenticator};
use std::ffi::OsString;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The most a checkpassword run may take before it is killed, unless set: local programs answer
/// in milliseconds, and one waiting on a network database longer than this is broken; the
/// client is then told to try again later.
const TIME_LIMIT: Duration = Duration::from_secs(20);
/// The interface's limit on what descriptor 3 carries (name, password and timestamp with their
/// NULs): checkpassword programs read at most 512 bytes.
const INPUT_MAX: usize = 512;
/// How much of the program's standard error is kept for the log.
const STDERR_KEPT: usize = 512;
/// Descriptors at or above this are free of 0–4, so moving ours to 3 and 4 cannot clobber.
const HIGH_FD: RawFd = 10;
/// The descriptor the program reads the name and password from.
const INPUT_FD: RawFd = 3;

/// System (or a program's own) accounts checked by a checkpassword program, as qmail-popup
/// runs it: `user\0password\0timestamp\0` on descriptor 3 (the timestamp empty: there is no
/// APOP here), the reply program as its arguments. Exit status 0 is success, 1 a rejected
/// login, 111 a temporary failure, anything else (or a signal, or no answer within 20
/// seconds, when it is killed and reaped) a failure of the program; all but 1 are reported as
/// [`Unavailable`](crate::AuthErrorKind::Unavailable).
///
/// On success the program has become the account and run the reply program, which writes the
/// uid, gid and home to descriptor 4 ([`checkpassword_reply`](super::checkpassword_reply));
/// those make the [`Account`]. Root and uids under [`first_uid`](Self::first_uid) are refused
/// then, and so is a login name of the passwd database whose reply gives another uid than the
/// database does (the reply program runs as the account, whose other processes could tamper
/// with it; names that are not in the database, a virtual-user program's, are taken as the
/// reply says). A program that exits 0 without running its arguments gives no reply, and the login
/// fails as unavailable.
///
/// How long an unknown user takes against a wrong password is the program's affair; the
/// session still pads every failure to its failure delay and to the slowest check it has seen
/// (this type reports no costliest check of its own: it cannot run one without a password).
/// The program runs with pop3d's environment, standard input and output on `/dev/null`, and
/// its standard error kept (512 bytes) for the log. Most checkpassword programs must run as
/// root to switch to the account.
#[derive(Debug, Clone)]
pub struct CheckPassword {
    program: PathBuf,
    reply_program: Vec<OsString>,
    first_uid: u32,
    time_limit: Duration,
}

impl CheckPassword {
    /// Runs `program` with `reply_program` (a command and its arguments, `pop3d
    /// --checkpassword-reply` for the binary) as its arguments.
    pub fn new(program: impl Into<PathBuf>, reply_program: Vec<OsString>) -> CheckPassword {
        CheckPassword {
            program: program.into(),
            reply_program,
            first_uid: DEFAULT_FIRST_UID,
            time_limit: TIME_LIMIT,
        }
    }

    /// Kills the program (and fails the login as unavailable) when it has not answered
    /// within `limit`. Default 20 seconds.
    pub fn time_limit(mut self, limit: Duration) -> CheckPassword {
        self.time_limit = limit;
        self
    }

    /// Refuses accounts whose uid is under `uid` (root is refused whatever it is).
    pub fn first_uid(mut self, uid: u32) -> CheckPassword {
        self.first_uid = uid;
        self
    }

    /// Checks the program is an executable file, for `pop3d --check`; returns what to report.
    pub fn check(&self) -> Result<String, String> {
        let shown = self.program.display();
        if !self.program.is_absolute() {
            return Err(format!(
                "--checkpassword {shown}: give the program's absolute path"
            ));
        }
        let meta = std::fs::metadata(&self.program)
            .map_err(|e| format!("--checkpassword {shown}: {e}"))?;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return Err(format!("--checkpassword {shown}: not an executable file"));
        }
        Ok(format!("accounts checked by {shown}"))
    }

    /// Runs the program once; its exit status, its reply and its standard error.
    fn run(&self, input: &[u8]) -> Result<(i32, Vec<u8>, Vec<u8>), String> {
        let (input_read, input_write) = pipe()?;
        let (reply_read, reply_write) = pipe()?;
        let (input_fd, reply_fd) = (input_read.as_raw_fd(), reply_write.as_raw_fd());
        let mut command = Command::new(&self.program);
        command
            .args(&self.reply_program)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: only dup2, which is async-signal-safe, between fork and exec. Both sources
        // are at HIGH_FD or above, so neither is clobbered by the other's move; dup2 leaves
        // the copies without close-on-exec, the originals keep it.
        unsafe {
            command.pre_exec(move || {
                for (from, to) in [(input_fd, INPUT_FD), (reply_fd, REPLY_FD)] {
                    if libc::dup2(from, to) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.program.display()))?;
        drop((input_read, reply_write));
        // At most 512 bytes: the pipe takes them at once, whether the program reads or not.
        let _ = std::fs::File::from(input_write).write_all(input);
        let deadline = Instant::now() + self.time_limit;
        let stderr = child.stderr.take().map(OwnedFd::from);
        let outputs = drain(&reply_read, stderr.as_ref(), deadline);
        let status = wait_until(&mut child, deadline);
        let status = status?;
        let (reply, errors) = outputs?;
        let code = match (status.code(), status.signal()) {
            (Some(code), _) => code,
            (None, Some(signal)) => return Err(format!("killed by signal {signal}")),
            _ => return Err("ended in an unknown way".into()),
        };
        Ok((code, reply, errors))
    }
}

impl Authenticator for CheckPassword {
    /// The system account, from the passwd database (for `--deliver`).
    fn lookup(&self, user: &str) -> Result<Account, AuthError> {
        super::look_up(user, self.first_uid)
    }

    fn authenticate(&self, user: &str, password: &[u8]) -> Result<Account, AuthError> {
        let program = self.program.display();
        if password.contains(&0) {
            return Err(AuthError::rejected(format!(
                "a password with NUL for {user}"
            )));
        }
        let mut input = Vec::with_capacity(user.len() + password.len() + 3);
        input.extend_from_slice(user.as_bytes());
        input.push(0);
        input.extend_from_slice(password);
        input.extend_from_slice(b"\0\0");
        if input.len() > INPUT_MAX {
            input.fill(0);
            return Err(AuthError::rejected(format!(
                "name and password of {user} are over the checkpassword limit of {INPUT_MAX} octets"
            )));
        }
        let outcome = self.run(&input);
        input.fill(0);
        std::hint::black_box(&input);
        let (code, reply, errors) = outcome.map_err(|e| unavailable(format!("{program}: {e}")))?;
        let said = String::from_utf8_lossy(&errors);
        let said = said.trim();
        let said = if said.is_empty() {
            String::new()
        } else {
            format!(": {said}")
        };
        match code {
            0 => {}
            1 => {
                return Err(AuthError::rejected(format!(
                    "{program} rejected {user}{said}"
                )))
            }
            111 => {
                return Err(unavailable(format!(
                    "{program}: temporary failure for {user}{said}"
                )))
            }
            code => {
                return Err(unavailable(format!(
                    "{program} exited {code} for {user}{said}"
                )))
            }
        }
        let reply = Reply::parse(&reply).map_err(|e| {
            unavailable(format!(
                "{program} accepted {user} but gave no usable reply on descriptor 4 ({e}); \
                 does it run its arguments?{said}"
            ))
        })?;
        if let Some(why) = uid_refusal(user, reply.uid, self.first_uid) {
            return Err(AuthError::rejected(why));
        }
        // The reply comes from a process of the account, which the account's other processes
        // could tamper with: a system account may only be itself.
        let system = lookup::passwd(user)
            .map_err(|e| unavailable(format!("cannot read the passwd database: {e}")))?;
        if let Some(entry) = system.filter(|entry| entry.uid != reply.uid) {
            return Err(unavailable(format!(
                "{program} made {user} uid {}, but the passwd database says uid {}",
                reply.uid, entry.uid
            )));
        }
        Ok(Account::new(user)
            .with_home(reply.home)
            .with_ids(reply.uid, reply.gid))
    }
}

/// A pipe whose two ends are close-on-exec and at [`HIGH_FD`] or above: (read, write).
fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: an array of two descriptors for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(format!("pipe: {}", io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just made and are ours alone.
    let ends = unsafe { [OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])] };
    let [read, write] = ends.map(|end| {
        // SAFETY: F_DUPFD_CLOEXEC on an open descriptor makes a new one we own.
        let high = unsafe { libc::fcntl(end.as_raw_fd(), libc::F_DUPFD_CLOEXEC, HIGH_FD) };
        // SAFETY: a new descriptor, ours alone, when non-negative.
        (high >= 0).then(|| unsafe { OwnedFd::from_raw_fd(high) })
    });
    match (read, write) {
        (Some(read), Some(write)) => Ok((read, write)),
        _ => Err(format!("fcntl: {}", io::Error::last_os_error())),
    }
}

/// Reads the reply and standard error until both end or `deadline` passes; the reply is
/// capped at [`REPLY_MAX`], the kept error text at [`STDERR_KEPT`] (the rest is read and
/// dropped, so the program never blocks on a full pipe).
fn drain(
    reply: &OwnedFd,
    stderr: Option<&OwnedFd>,
    deadline: Instant,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    let mut open: Vec<(RawFd, usize, Vec<u8>)> = vec![(reply.as_raw_fd(), REPLY_MAX, Vec::new())];
    if let Some(fd) = stderr {
        open.push((fd.as_raw_fd(), STDERR_KEPT, Vec::new()));
    }
    let mut done: Vec<(RawFd, Vec<u8>)> = Vec::new();
    while !open.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("no answer in time".into());
        }
        let mut polls: Vec<libc::pollfd> = open
            .iter()
            .map(|&(fd, _, _)| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ms = left.as_millis().clamp(1, 1000) as libc::c_int;
        // SAFETY: a valid array of pollfd and its length.
        let ready = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, ms) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("poll: {e}"));
        }
        let mut ended = Vec::new();
        for (i, poll) in polls.iter().enumerate() {
            if poll.revents == 0 {
                continue;
            }
            let (fd, cap, kept) = &mut open[i];
            let mut buf = [0u8; 4096];
            // SAFETY: reading into a local buffer of its true length; poll said it won't block.
            let n = unsafe { libc::read(*fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                ended.push(i);
                continue;
            }
            let room = cap.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..(n as usize).min(room)]);
        }
        for i in ended.into_iter().rev() {
            let (fd, _, kept) = open.remove(i);
            done.push((fd, kept));
        }
    }
    let take = |fd: RawFd, done: &mut Vec<(RawFd, Vec<u8>)>| {
        done.iter()
            .position(|(f, _)| *f == fd)
            .map(|i| done.swap_remove(i).1)
            .unwrap_or_default()
    };
    let reply_bytes = take(reply.as_raw_fd(), &mut done);
    let errors = stderr
        .map(|fd| take(fd.as_raw_fd(), &mut done))
        .unwrap_or_default();
    Ok((reply_bytes, errors))
}

/// Waits for `child` until `deadline`; kills and reaps it after.
fn wait_until(child: &mut Child, deadline: Instant) -> Result<std::process::ExitStatus, String> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("no answer in time: killed".into());
            }
            Err(e) => return Err(format!("wait: {e}")),
        }
    }
}
