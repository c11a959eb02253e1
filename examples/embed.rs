//! A host program that does its own delivery and serves the mail over POP3 with pop3d.
//!
//! The whole embedding API on one page: an [`Authenticator`] over your user database, a
//! [`MailStore`](pop3d::MailStore) (here the in-memory one; `MaildirStore` or your own type
//! work the same), a [`Service`], and a [`Server`] on a bounded pool of threads.
//!
//! Run it, then type a line: it is "delivered" to alice as a message, as an SMTP side would.
//!
//! ```text
//! cargo run --example embed -- 127.0.0.1:1110
//! curl -u alice@example.org:secret pop3://127.0.0.1:1110/1
//! ```
//! End of input (Ctrl-D) stops the server.

use pop3d::store::memory::MemoryStore;
use pop3d::{Account, AuthError, Authenticator, Server, Service};
use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

/// The host program's own user database.
struct HostUsers {
    users: Vec<(&'static str, &'static str)>,
}

impl Authenticator for HostUsers {
    fn authenticate(&self, user: &str, password: &[u8]) -> Result<Account, AuthError> {
        // A real program checks a password hash (see pop3d::auth::password::verify).
        match self.users.iter().find(|(name, _)| *name == user) {
            Some((name, pw)) if pw.as_bytes() == password => Ok(Account::new(*name)),
            _ => Err(AuthError::rejected(format!("bad login for {user}"))),
        }
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1110".into());
    let store = MemoryStore::new();
    let users = HostUsers {
        users: vec![("alice@example.org", "secret")],
    };

    let service = Service::new(Arc::new(users), Arc::new(store.clone()))
        .default_domain("example.org") // "alice" logs in as alice@example.org
        .auth_failure_delay(Duration::from_millis(500));

    let mut server = Server::new(service).max_sessions(8);
    let local = server.listen(addr)?;
    println!("listening on {local}");
    let stop = server.shutdown_handle();
    let pop3 = std::thread::spawn(move || server.run());

    // The delivery side: every line read is a new message for alice.
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line?;
        let message = format!(
            "From: host@example.org\r\nTo: alice@example.org\r\nSubject: {line}\r\n\r\n{line}\r\n"
        );
        let uidl = store.deliver("alice@example.org", message.as_bytes());
        println!("delivered {} as {uidl}", n + 1);
    }

    stop.shutdown();
    pop3.join().expect("server thread")?;
    println!("stopped");
    Ok(())
}
