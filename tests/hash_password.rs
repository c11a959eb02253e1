//! `--hash-password` at a terminal (a real pseudo-terminal, driven by Python's pty module):
//! the password is not echoed and is asked twice; from a pipe, one line is read as before.

mod support;

use std::process::Command;

const DRIVER: &str = r#"
import os, pty, subprocess, sys, time
pop3d, first, second = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
master, slave = pty.openpty()
p = subprocess.Popen([pop3d, "--hash-password=SHA512-CRYPT"], stdin=slave,
                     stdout=subprocess.PIPE, stderr=slave)
os.close(slave)
seen = b""
def until(text):
    global seen
    deadline = time.time() + 20
    while text not in seen and time.time() < deadline:
        seen += os.read(master, 1000)
until(b"Password: ")
os.write(master, first + b"\n")
until(b"Again: ")
os.write(master, second + b"\n")
out = p.stdout.read()
code = p.wait()
try:
    while True:
        chunk = os.read(master, 1000)
        if not chunk:
            break
        seen += chunk
except OSError:
    pass
print("CODE", code)
print("TERMINAL", repr(seen))
print("STDOUT", out.decode().strip())
"#;

fn drive(first: &str, second: &str) -> String {
    let out = Command::new("python3")
        .args(["-c", DRIVER, env!("CARGO_BIN_EXE_pop3d"), first, second])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn at_a_terminal_the_password_is_asked_twice_and_never_echoed() {
    let out = drive("tty-s3cret", "tty-s3cret");
    assert!(out.contains("CODE 0"), "{out}");
    assert!(out.contains("STDOUT {SHA512-CRYPT}$6$"), "{out}");
    let terminal = out.lines().find(|l| l.starts_with("TERMINAL")).unwrap();
    assert!(
        terminal.contains("Password: ") && terminal.contains("Again: "),
        "{out}"
    );
    assert!(!terminal.contains("tty-s3cret"), "echoed: {terminal}");

    let out = drive("tty-s3cret", "tty-other");
    assert!(out.contains("CODE 2"), "{out}");
    assert!(out.contains("the passwords do not match"), "{out}");
    assert!(
        out.contains("STDOUT \n") || out.trim_end().ends_with("STDOUT"),
        "{out}"
    );
}

#[test]
fn from_a_pipe_one_line_is_hashed() {
    let out = support::run_with_input(
        Command::new(env!("CARGO_BIN_EXE_pop3d")).arg("--hash-password=SHA512-CRYPT"),
        b"piped pw\n",
        std::time::Duration::from_secs(30),
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("{SHA512-CRYPT}$6$"));
}
