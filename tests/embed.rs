//! examples/embed.rs, run as a user would, with Python's poplib as the client.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use support::example;

#[test]
fn embed_delivers_and_serves() {
    let mut host = Command::new(example("embed"))
        .arg("127.0.0.1:0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run examples/embed (built by cargo test)");
    let mut out = BufReader::new(host.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("address")
        .to_string();
    let (host_ip, port) = addr.rsplit_once(':').unwrap();

    let mut input = host.stdin.take().unwrap();
    for subject in ["first", "second"] {
        writeln!(input, "{subject}").unwrap();
        line.clear();
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with("delivered "), "{line}");
    }

    let script = r#"
import poplib, sys
p = poplib.POP3(sys.argv[1], int(sys.argv[2]), timeout=20)
p.user("alice"); p.pass_("secret")
count, size = p.stat()
print(count)
for i in range(1, count + 1):
    print(b"\n".join(p.retr(i)[1]).decode())
p.dele(1)
p.quit()
"#;
    let py = Command::new("python3")
        .args(["-c", script, host_ip, port])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&py.stdout);
    assert!(
        py.status.success(),
        "poplib failed: {}",
        String::from_utf8_lossy(&py.stderr)
    );
    assert!(text.starts_with("2\n"), "{text}");
    assert!(
        text.contains("Subject: first") && text.contains("Subject: second"),
        "{text}"
    );

    // A second session sees the deletion and a message delivered meanwhile.
    writeln!(input, "third").unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    let py = Command::new("python3")
        .args(["-c", script, host_ip, port])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&py.stdout);
    assert!(
        text.starts_with("2\n") && !text.contains("Subject: first"),
        "{text}"
    );
    assert!(text.contains("Subject: third"), "{text}");

    // The SMTP side's replies: unknown user, a full mailbox.
    for (line_in, want) in [
        ("to nobody: hello", "refused 4: 550 5.1.1 "),
        ("to bob: one", "delivered 5 as "),
        ("to Bob@Example.org: two", "refused 6: 552 5.2.2 "),
    ] {
        writeln!(input, "{line_in}").unwrap();
        line.clear();
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with(want), "{line_in}: {line}");
    }

    drop(input);
    let status = host.wait().unwrap();
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(rest.contains("stopped"), "{rest}");
}
