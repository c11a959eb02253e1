//! `--hash-password`: a password in, the passwd-file field for it out. From a terminal the
//! password is read without echo, twice; from a pipe, one line as it comes.

use pop3d::auth::password;
use std::io::{BufRead, Write};
use std::os::fd::AsRawFd;

/// The passwd-file field for the password on standard input, hashed with `scheme`.
pub fn run(scheme: &str) -> Result<String, String> {
    let stdin = std::io::stdin();
    // SAFETY: isatty only looks at the descriptor.
    let line = if unsafe { libc::isatty(stdin.as_raw_fd()) } == 1 {
        let first = prompt("Password: ")?;
        let again = prompt("Again: ")?;
        if first != again {
            return Err("the passwords do not match".into());
        }
        first
    } else {
        read_line(&mut stdin.lock())?
    };
    if line.is_empty() {
        return Err("no password on standard input".into());
    }
    password::hash(scheme, &line).map_err(|e| e.to_string())
}

/// One line from `input`, without its line end.
fn read_line(input: &mut impl BufRead) -> Result<Vec<u8>, String> {
    let mut line = Vec::new();
    input
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(line)
}

/// Asks on standard error and reads a line from the terminal on standard input with echo
/// off, which is back on afterwards whatever happens.
fn prompt(text: &str) -> Result<Vec<u8>, String> {
    let fd = std::io::stdin().as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fills it for a terminal descriptor.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
        return Err(format!(
            "cannot read the terminal settings: {}",
            std::io::Error::last_os_error()
        ));
    }
    let mut quiet = saved;
    quiet.c_lflag &= !libc::ECHO;
    quiet.c_lflag |= libc::ECHONL;
    // Echo goes off before the prompt shows, so nothing typed after it is ever echoed.
    // SAFETY: a valid termios for the same descriptor.
    unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &quiet) };
    eprint!("{text}");
    let _ = std::io::stderr().flush();
    let line = read_line(&mut std::io::stdin().lock());
    // SAFETY: as above, the settings read before.
    unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &saved) };
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_loses_its_line_end_only() {
        for (input, want) in [
            (&b"pw\n"[..], &b"pw"[..]),
            (b"pw\r\n", b"pw"),
            (b" p w \n", b" p w "),
            (b"pw", b"pw"),
            (b"\n", b""),
        ] {
            assert_eq!(read_line(&mut &input[..]).unwrap(), want);
        }
    }
}
