//! The session as a whole, driven in memory: literal bytes in, literal bytes out.
use super::*;
use crate::account::Account;
use crate::store::memory::MemoryStore;
use crate::timeouts::Timed;
use crate::{AuthError, Authenticator};
use std::sync::Arc;
use std::time::Duration;

struct OneUser;

impl Authenticator for OneUser {
    fn authenticate(&self, user: &str, password: &[u8]) -> Result<Account, AuthError> {
        match (user, password) {
            ("bob", b"p w") => Ok(Account::new("bob")),
            _ => Err(AuthError::rejected("no")),
        }
    }
}

/// Input handed out in pieces of the given sizes (cycled), output recorded.
struct Scripted<'a> {
    input: &'a [u8],
    pieces: &'a [usize],
    turn: usize,
    output: Vec<u8>,
}

impl Read for Scripted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = self.pieces[self.turn % self.pieces.len()];
        self.turn += 1;
        let n = want.min(buf.len()).min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

impl Write for Scripted<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl crate::stream::Stream for Scripted<'_> {}

fn run(input: &[u8], pieces: &[usize]) -> (Vec<u8>, End, MemoryStore) {
    let store = MemoryStore::new();
    // The host's own UIDLs, so that the expected bytes can name them.
    let uidls = ["m0000000001", "m0000000002"];
    let messages: [&[u8]; 2] = [
        b"Subject: a\n\n.dot\nbody\n",
        b"Subject: b\r\n\r\nno newline",
    ];
    for (uidl, message) in uidls.iter().zip(messages) {
        store.deliver_with_uidl("bob", uidl, message).unwrap();
    }
    let service =
        Service::new(Arc::new(OneUser), Arc::new(store.clone())).auth_failure_delay(Duration::ZERO);
    let stream = Scripted {
        input,
        pieces,
        turn: 0,
        output: Vec::new(),
    };
    let mut conn = Connection::new(Timed::new(stream, Duration::from_secs(60), None));
    let end = Session::new(&service, "test")
        .greet_and_run(&mut conn)
        .unwrap();
    let out = conn.into_inner().unwrap().into_inner().output;
    (out, end, store)
}

const SCRIPT: &[u8] = b"CAPA\r\nUSER bob\r\nPASS x\r\nUSER bob\nPASS p w\r\nSTAT\r\n\
    LIST\r\nUIDL 2\r\nRETR 1\r\nTOP 2 0\r\nbogus\r\nLIST 0\r\nDELE 1\r\nRETR 1\r\n\
    RSET\r\nDELE 2\r\nQUIT\r\n";

const WANT: &[u8] = b"+OK POP3 server ready\r\n\
    +OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n\
    PIPELINING\r\nUTF8 USER\r\nLANG\r\nSASL PLAIN LOGIN\r\n.\r\n\
    +OK Send your password\r\n-ERR [AUTH] Authentication failed\r\n\
    +OK Send your password\r\n+OK Logged in, 2 messages (52 octets)\r\n+OK 2 52\r\n\
    +OK Scan listing follows\r\n1 26\r\n2 26\r\n.\r\n+OK 2 m0000000002\r\n\
    +OK 26 octets\r\nSubject: a\r\n\r\n..dot\r\nbody\r\n.\r\n\
    +OK Top of message follows\r\nSubject: b\r\n\r\n.\r\n\
    -ERR Unknown command\r\n-ERR Message number out of range\r\n\
    +OK Message 1 deleted\r\n-ERR Message 1 is deleted\r\n+OK 2 messages (52 octets)\r\n\
    +OK Message 2 deleted\r\n+OK Bye, 1 message deleted\r\n";

#[test]
fn whole_session_in_literal_bytes() {
    let (out, end, store) = run(SCRIPT, &[4096]);
    assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(WANT));
    assert_eq!(end, End::Quit);
    assert_eq!(
        store.messages("bob"),
        vec![b"Subject: a\n\n.dot\nbody\n".to_vec()]
    );
}

#[test]
fn same_bytes_whatever_the_input_split() {
    for pieces in [&[1][..], &[2], &[3, 1], &[7, 13, 1]] {
        assert_eq!(run(SCRIPT, pieces).0, WANT, "pieces {pieces:?}");
    }
    for cut in 1..SCRIPT.len() {
        assert_eq!(run(SCRIPT, &[cut, SCRIPT.len()]).0, WANT, "cut at {cut}");
    }
}

#[test]
fn end_of_input_before_quit_deletes_nothing() {
    let (_, end, store) = run(b"USER bob\r\nPASS p w\r\nDELE 1\r\nDELE 2\r\n", &[4096]);
    assert_eq!(end, End::Dropped);
    assert_eq!(store.count("bob"), 2);
}
