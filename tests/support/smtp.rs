//! A small SMTP client for the tests that hand mail to a real MTA: one message per connection,
//! ESMTP with `BODY=8BITMIME` so 8-bit bytes pass as they are, every line sent with CRLF and a
//! leading dot doubled (RFC 5321 4.5.2, the same rules as RETR's: [`encode`]).

use super::wire::encode;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// What the server answered to one message.
#[derive(Clone, Debug, Default)]
pub struct Sent {
    /// The recipients the server took (a 2xx reply to RCPT TO).
    pub accepted: Vec<String>,
    /// The recipients it refused, each with its whole reply (`550 5.1.1 <x@y>: ... User unknown`).
    pub rejected: Vec<(String, String)>,
    /// The queue id from the final reply (`250 2.0.0 Ok: queued as ID`), when it gave one.
    pub queue_id: Option<String>,
    /// The final reply to the message, `None` when no recipient was accepted (no DATA sent).
    pub data_reply: Option<String>,
}

/// One reply: the code and all its lines joined by newlines (codes kept).
struct Reply {
    code: u16,
    text: String,
}

/// Sends `message` from `from` to every address of `to` over one SMTP session to `addr`
/// (at most 60 s for each reply). Refused recipients are reported, not errors; an I/O error
/// or an unexpected reply to EHLO, MAIL or DATA is an error.
pub fn send(addr: SocketAddr, from: &str, to: &[&str], message: &[u8]) -> std::io::Result<Sent> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    let mut smtp = Session {
        writer: stream.try_clone()?,
        reader: BufReader::new(stream),
    };
    smtp.expect(b"", 2)?;
    smtp.expect(b"EHLO client.pop3d.test\r\n", 2)?;
    smtp.expect(
        format!("MAIL FROM:<{from}> BODY=8BITMIME\r\n").as_bytes(),
        2,
    )?;
    let mut sent = Sent::default();
    for rcpt in to {
        let reply = smtp.exchange(format!("RCPT TO:<{rcpt}>\r\n").as_bytes())?;
        if reply.code / 100 == 2 {
            sent.accepted.push(rcpt.to_string());
        } else {
            sent.rejected.push((rcpt.to_string(), reply.text));
        }
    }
    if sent.accepted.is_empty() {
        smtp.expect(b"RSET\r\n", 2)?;
    } else {
        smtp.expect(b"DATA\r\n", 3)?;
        // SMTP's transparency (RFC 5321 4.5.2) is POP3's: CRLF lines, a leading dot doubled.
        let reply = smtp.expect(&encode(message, None), 2)?;
        sent.queue_id = reply
            .text
            .split("queued as ")
            .nth(1)
            .map(|id| id.trim().to_owned());
        sent.data_reply = Some(reply.text);
    }
    let _ = smtp.exchange(b"QUIT\r\n");
    Ok(sent)
}

/// The two halves of one SMTP connection.
struct Session {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Session {
    /// Writes `bytes` (nothing for the greeting) and reads the reply.
    fn exchange(&mut self, bytes: &[u8]) -> std::io::Result<Reply> {
        self.writer.write_all(bytes)?;
        read_reply(&mut self.reader)
    }

    /// [`exchange`](Self::exchange), failing unless the reply's first digit is `class`.
    fn expect(&mut self, bytes: &[u8], class: u16) -> std::io::Result<Reply> {
        let reply = self.exchange(bytes)?;
        if reply.code / 100 != class {
            let sent = String::from_utf8_lossy(&bytes[..bytes.len().min(60)]).into_owned();
            return Err(std::io::Error::other(format!(
                "SMTP {sent:?}: {}",
                reply.text
            )));
        }
        Ok(reply)
    }
}

/// Reads one reply, all its `NNN-` lines and the final `NNN ` one.
fn read_reply(reader: &mut impl BufRead) -> std::io::Result<Reply> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other(format!(
                "SMTP server closed the connection after {text:?}"
            )));
        }
        let line = line.trim_end();
        let code = line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an SMTP reply: {line:?}")))?;
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(line);
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(Reply { code, text });
        }
    }
}
