//! `pop3d --check`: what would break the start or the logins after it, every problem found
//! reported (not only the first), then `configuration OK` or exit status 1.

use crate::accounts::Source;
use crate::privileges::{self, Target};
use crate::settings::Settings;
use crate::{mailstore, passwd_files};
use pop3d::auth::server_secret::{self, SECRET_FILE};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;

/// Checks everything `s` names; prints each problem on stderr, and what is fine on stdout.
pub fn run(s: &Settings, target: Option<&Target>) -> Result<(), String> {
    let mut problems = Vec::new();
    // First, while this process has one thread: the check as --user forks.
    let summary = accounts(s, target, &mut problems);
    if let Err(e) = crate::load_tls(s) {
        problems.push(e);
    }
    problems.extend(store(s));
    if let Some(dir) = &s.chroot {
        if !dir.is_dir() {
            problems.push(format!("--chroot {}: no such directory", dir.display()));
        }
    }
    if !s.inetd {
        problems.extend(ports(s));
    }
    let secret = s.state_dir.join(SECRET_FILE);
    match server_secret::load(&secret) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("pop3d: {} will be created at start", secret.display());
        }
        Err(e) => problems.push(format!("{}: {e}", secret.display())),
    }
    if problems.is_empty() {
        println!("pop3d: configuration OK ({})", summary.unwrap_or_default());
        return Ok(());
    }
    // One problem is the error message itself, as it always was; several, one line each.
    if problems.len() == 1 {
        return Err(problems.remove(0));
    }
    for p in &problems {
        eprintln!("pop3d: {p}");
    }
    Err(format!("{} problems found", problems.len()))
}

/// "1 account", "2 accounts".
pub fn accounts_count(n: usize) -> String {
    match n {
        1 => "1 account".into(),
        n => format!("{n} accounts"),
    }
}

/// Checks the account source; returns what to say of it when all is well.
fn accounts(s: &Settings, target: Option<&Target>, problems: &mut Vec<String>) -> Option<String> {
    let Source::PasswdFile { path, .. } = &s.accounts.source else {
        return s.accounts.source.check().map_err(|e| problems.push(e)).ok();
    };
    let files = match passwd_files::files(path) {
        Ok(files) => files,
        Err(e) => {
            problems.push(e);
            return None;
        }
    };
    let (counts, found) = passwd_files::check(&files);
    problems.extend(found);
    // Logins read the file after the privilege drop, as --user and inside --chroot.
    let chroot_ok = s.chroot.as_deref().is_none_or(|d| d.is_dir());
    if let Some(target) = target.filter(|_| privileges::is_root() && chroot_ok) {
        let who = s.user.as_deref().unwrap_or_default();
        match unreadable_as(target, s.chroot.as_deref(), &files) {
            Ok(failures) => problems.extend(failures.into_iter().map(|(file, e)| {
                format!("{file}: --user {who} cannot read it ({e}), so every login would fail")
            })),
            Err(e) => problems.push(format!("cannot check the passwd file as --user {who}: {e}")),
        }
    }
    if uses_home(&s.store) {
        for (file, _) in &counts {
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            for (line, user) in passwd_files::homeless(&text) {
                problems.push(format!(
                    "{} line {line}: user {user} has no home directory, and the mailbox \
                     template uses %h",
                    file.display()
                ));
            }
        }
    }
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    Some(match counts.as_slice() {
        [(file, n)] => format!("{} in {}", accounts_count(*n), file.display()),
        _ => format!("{} in {} files", accounts_count(total), counts.len()),
    })
}

fn uses_home(store: &mailstore::Spec) -> bool {
    passwd_files::has_escape(store.template().0, 'h')
}

/// What is wrong with the mailbox template: a relative path lands mail relative to the
/// working directory; one without a per-user part gives every user one mailbox.
fn store(s: &Settings) -> Vec<String> {
    let (template, option) = s.store.template();
    let mut problems = Vec::new();
    if !template.starts_with('/') && !template.starts_with("%h") {
        problems.push(format!(
            "{option} {template}: not an absolute path (mail would land relative to the \
             working directory)"
        ));
    }
    let escapes = passwd_files::escapes(template);
    if !escapes.iter().any(|e| matches!(e, 'u' | 'n' | 'h')) {
        problems.push(format!(
            "{option} {template}: no %u, %n or %h, so users would share one mailbox"
        ));
    }
    problems
}

/// The `--listen` and `--listen-tls` addresses that cannot be bound now (in use, or a
/// privileged port for a user that is not root).
fn ports(s: &Settings) -> Vec<String> {
    let given = s.listen.iter().map(|a| ("--listen", a));
    let tls = s.listen_tls.iter().map(|a| ("--listen-tls", a));
    given
        .chain(tls)
        .filter_map(|(option, addr)| {
            TcpListener::bind(addr)
                .err()
                .map(|e| format!("{option} {addr}: cannot listen: {e}"))
        })
        .collect()
}

/// Which of `files` the account `target` cannot open, after entering `chroot` as a login
/// would: checked in a child process that gives root up for that.
fn unreadable_as(
    target: &Target,
    chroot: Option<&std::path::Path>,
    files: &[PathBuf],
) -> Result<Vec<(String, String)>, String> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: pipe2 just made these two descriptors, owned by nothing else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: --check runs this before any thread starts, so the child may allocate.
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            drop(read_end);
            let mut out = std::fs::File::from(write_end);
            let report = match privileges::drop_to(target, chroot) {
                Ok(()) => files
                    .iter()
                    .filter_map(|f| std::fs::File::open(f).err().map(|e| (f, e.to_string())))
                    .map(|(f, e)| format!("{}\t{e}\n", f.display()))
                    .collect(),
                Err(e) => format!("\t{e}\n"),
            };
            let _ = out.write_all(report.as_bytes());
            // SAFETY: _exit ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(0) }
        }
        pid => {
            drop(write_end);
            let lines: Vec<String> = BufReader::new(std::fs::File::from(read_end))
                .lines()
                .map_while(Result::ok)
                .collect();
            let mut status = 0;
            // SAFETY: waits for the child forked above, with an out-parameter.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            let mut failures = Vec::new();
            for line in lines {
                match line.split_once('\t') {
                    Some(("", e)) => return Err(e.to_owned()),
                    Some((file, e)) => failures.push((file.to_owned(), e.to_owned())),
                    None => {}
                }
            }
            Ok(failures)
        }
    }
}
