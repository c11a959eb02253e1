//! A host program that takes mail over its own SMTP and serves it over POP3 with pop3d.
//!
//! The whole embedding API on one page: an [`Authenticator`] over your user database (with
//! [`lookup`](Authenticator::lookup) for delivery), a [`MaildirStore`] with a default quota,
//! delivery with [`deliver_to`] and each error turned into its SMTP reply, a [`Service`], and a
//! [`Server`] on a bounded pool of threads.
//!
//! Run it, then type lines: each is "delivered" as a message, as an SMTP side would deliver
//! after DATA. A plain line goes to alice; `to USER: TEXT` goes to USER (bob may hold one
//! message; anyone else is unknown).
//!
//! ```text
//! cargo run --example embed -- 127.0.0.1:1110
//! curl -u alice@example.org:secret pop3://127.0.0.1:1110/1
//! ```
//! End of input (Ctrl-D) stops the server and removes the mail.

use pop3d::store::delivery::{deliver_to, OverQuota};
use pop3d::store::maildir::MaildirStore;
use pop3d::store::Quota;
use pop3d::user_name::{normalize_with, Case};
use pop3d::{Account, AuthError, Authenticator, Server, Service};
use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

/// The host program's own user database: name, password, own quota.
struct HostUsers {
    users: Vec<(&'static str, &'static str, Option<Quota>)>,
}

impl HostUsers {
    fn account(&self, user: &str) -> Option<(Account, &'static str)> {
        let (name, password, quota) = self.users.iter().find(|(name, ..)| *name == user)?;
        let account = Account::new(*name);
        Some((
            quota.map_or(account.clone(), |q| account.with_quota(q)),
            password,
        ))
    }
}

impl Authenticator for HostUsers {
    fn authenticate(&self, user: &str, password: &[u8]) -> Result<Account, AuthError> {
        // A real program checks a password hash (see pop3d::auth::password::verify).
        match self.account(user) {
            Some((account, pw)) if pw.as_bytes() == password => Ok(account),
            _ => Err(AuthError::rejected(format!("bad login for {user}"))),
        }
    }

    /// Delivery needs the account (for its quota), not the password.
    fn lookup(&self, user: &str) -> Result<Account, AuthError> {
        self.account(user)
            .map(|(account, _)| account)
            .ok_or_else(|| AuthError::rejected(format!("no account {user}")))
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1110".into());
    let root = std::env::temp_dir().join(format!("pop3d-embed-{}", std::process::id()));
    // Mail for alice@example.org lives in ROOT/example.org/alice; at most 1 MB each by default.
    let store = MaildirStore::new(&format!("{}/%d/%n", root.display()))
        .expect("template")
        .with_quota(Quota::parse("storage=1M").expect("quota"));
    let one_message = Quota {
        storage: None,
        messages: Some(1),
    };
    let users = Arc::new(HostUsers {
        users: vec![
            ("alice@example.org", "secret", None),
            ("bob@example.org", "secret", Some(one_message)),
        ],
    });
    let store = Arc::new(store);

    let service = Service::new(users.clone(), store.clone())
        .default_domain("example.org") // "alice" logs in as alice@example.org
        .auth_failure_delay(Duration::from_millis(500));

    let mut server = Server::new(service).max_sessions(8);
    let local = server.listen(addr)?;
    println!("listening on {local}");
    let stop = server.shutdown_handle();
    let pop3 = std::thread::spawn(move || server.run());

    // The SMTP side: RCPT TO names a user, DATA gives the message; each error becomes a reply.
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line?;
        let (rcpt, text) = match line.strip_prefix("to ").and_then(|l| l.split_once(": ")) {
            Some((rcpt, text)) => (rcpt.to_owned(), text.to_owned()),
            None => ("alice".to_owned(), line),
        };
        let message =
            format!("From: host@example.org\r\nTo: {rcpt}\r\nSubject: {text}\r\n\r\n{text}\r\n");
        // The same name a login would give: lower case, the default domain added.
        let result = normalize_with(&rcpt, Some("example.org"), Case::Fold)
            .map_err(|e| format!("553 5.1.3 {e}"))
            .and_then(|user| {
                deliver_to(&*users, &*store, &user, &mut message.as_bytes())
                    .map_err(|e| e.smtp_reply(OverQuota::Permanent).to_string())
            });
        match result {
            Ok(uidl) => println!("delivered {} as {uidl}", n + 1),
            Err(reply) => println!("refused {}: {reply}", n + 1),
        }
    }

    stop.shutdown();
    pop3.join().expect("server thread")?;
    let _ = std::fs::remove_dir_all(&root);
    println!("stopped");
    Ok(())
}
