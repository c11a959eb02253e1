//! A mail store in memory: for host programs that deliver mail themselves, and for tests.

use super::delivery::{Deliver, DeliveryError, DeliveryErrorKind, Quota, Usage};
use super::{MailStore, Mailbox, MessageInfo, StoreError, StoreErrorKind};
use crate::account::Account;
use crate::protocol::wire_size;
use crate::user_name::{normalize_with, Case};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest UIDL (RFC 1939 §7).
const MAX_UIDL: usize = 70;

/// Mailboxes held in memory, keyed by account name. Cheap to clone: clones share the mail.
///
/// Names are normalized as logins are ([`normalize_with`]), with the store's
/// [`Case`] and default domain, both when mail is delivered and when a mailbox is opened: set
/// them as the [`Service`](crate::Service) has them (by default: folded to lower case, no
/// domain), so that `deliver("Alice@Example.org", ..)` lands where the login `alice@example.org`
/// looks.
///
/// UIDLs are never reused, even across restarts: a host that keeps mail elsewhere gives its own
/// ([`deliver_with_uidl`](Self::deliver_with_uidl)), and generated ones are made of the time,
/// a random number drawn when the store is made, and a counter.
///
/// ```
/// use pop3d::store::memory::MemoryStore;
/// let store = MemoryStore::new();
/// let uidl = store.deliver("bob@example.org", b"Subject: hi\r\n\r\nHello\r\n");
/// assert_eq!(store.count("bob@example.org"), 1);
/// # let _ = uidl;
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    case: Case,
    default_domain: Option<String>,
    quota: Option<Quota>,
    /// Drawn when the store is made: with the time, keeps generated UIDLs apart from those
    /// of an earlier run.
    instance: u32,
    next_id: Arc<AtomicU64>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        let mut random = [0u8; 4];
        // Without randomness the time part still moves on between runs.
        let _ = getrandom::getrandom(&mut random);
        MemoryStore {
            inner: Arc::default(),
            case: Case::Fold,
            default_domain: None,
            quota: None,
            instance: u32::from_be_bytes(random),
            next_id: Arc::default(),
        }
    }
}

#[derive(Default)]
struct Inner {
    boxes: HashMap<String, Vec<Stored>>,
    locked: HashSet<String>,
}

#[derive(Clone)]
struct Stored {
    uidl: String,
    data: Arc<[u8]>,
}

impl MemoryStore {
    /// An empty store; names folded to lower case, no default domain, no quota.
    pub fn new() -> Self {
        Self::default()
    }

    /// Compares names as `case` says: the same as the [`Service`](crate::Service)'s
    /// [`fold_case`](crate::Service::fold_case).
    pub fn with_case(mut self, case: Case) -> Self {
        self.case = case;
        self
    }

    /// Adds `domain` to bare names: the same as the [`Service`](crate::Service)'s
    /// [`default_domain`](crate::Service::default_domain).
    pub fn default_domain(mut self, domain: impl Into<String>) -> Self {
        self.default_domain = Some(domain.into());
        self
    }

    /// The quota of accounts without one of their own, for [`Deliver::deliver`].
    pub fn with_quota(mut self, quota: Quota) -> Self {
        self.quota = Some(quota);
        self
    }

    /// The key of `user`'s mailbox. A name no login could give is kept as it is: no login
    /// finds it, as none would find it anywhere.
    fn key(&self, user: &str) -> String {
        normalize_with(user, self.default_domain.as_deref(), self.case)
            .unwrap_or_else(|_| user.to_owned())
    }

    /// A UIDL never given before, in this run or an earlier one.
    fn new_uidl(&self) -> String {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("m{secs:x}.{:08x}.{n}", self.instance)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the maps half-updated (every update is one call), so a
        // poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Delivers `message` to `user`'s mailbox and returns its UIDL, with no quota and no
    /// account lookup: the shortcut for tests and simple hosts ([`Deliver::deliver`] checks
    /// quotas). Sessions already running do not see it; the next one does.
    pub fn deliver(&self, user: &str, message: &[u8]) -> String {
        let uidl = self.new_uidl();
        self.store(&self.key(user), uidl.clone(), message.into());
        uidl
    }

    /// Delivers `message` to `user`'s mailbox under `uidl`, the host's own identifier for it,
    /// checking the store's quota. The UIDL must be 1 to 70 printable ASCII characters and
    /// new to the mailbox; the host must never give it again to another message, since
    /// clients that leave mail on the server remember it.
    pub fn deliver_with_uidl(
        &self,
        user: &str,
        uidl: &str,
        message: &[u8],
    ) -> Result<String, DeliveryError> {
        let valid = (1..=MAX_UIDL).contains(&uidl.len())
            && uidl.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if !valid {
            return Err(DeliveryError::new(
                DeliveryErrorKind::Temporary,
                format!("UIDL {uidl:?} is not 1 to 70 printable ASCII characters"),
            ));
        }
        self.checked(&self.key(user), self.quota, uidl.to_owned(), message.into())
    }

    /// Stores a message after checking `quota` and that its UIDL is new to the mailbox.
    fn checked(
        &self,
        key: &str,
        quota: Option<Quota>,
        uidl: String,
        data: Arc<[u8]>,
    ) -> Result<String, DeliveryError> {
        let mut inner = self.lock();
        let held = inner.boxes.get(key).map(Vec::as_slice).unwrap_or_default();
        if held.iter().any(|s| s.uidl == uidl) {
            return Err(DeliveryError::new(
                DeliveryErrorKind::Temporary,
                format!("{key} already has a message with UIDL {uidl}"),
            ));
        }
        if let Some(quota) = quota {
            let usage = Usage {
                bytes: held.iter().map(|s| s.data.len() as u64).sum(),
                messages: held.len() as u64,
            };
            let size = data.len() as u64;
            if quota.too_big(size) {
                let detail = format!("message of {size} bytes is larger than {key}'s quota");
                return Err(DeliveryError::new(DeliveryErrorKind::TooBig, detail));
            }
            if quota.exceeded_by(usage, size) {
                let detail = format!("{key} is over quota ({quota})");
                return Err(DeliveryError::new(DeliveryErrorKind::OverQuota, detail));
            }
        }
        let stored = Stored {
            uidl: uidl.clone(),
            data,
        };
        inner.boxes.entry(key.to_owned()).or_default().push(stored);
        Ok(uidl)
    }

    fn store(&self, key: &str, uidl: String, data: Arc<[u8]>) {
        let stored = Stored { uidl, data };
        self.lock()
            .boxes
            .entry(key.to_owned())
            .or_default()
            .push(stored);
    }

    /// How many messages `user` has.
    pub fn count(&self, user: &str) -> usize {
        self.lock().boxes.get(&self.key(user)).map_or(0, Vec::len)
    }

    /// A copy of `user`'s messages, oldest first.
    pub fn messages(&self, user: &str) -> Vec<Vec<u8>> {
        let inner = self.lock();
        let key = self.key(user);
        let stored = inner.boxes.get(&key).map(Vec::as_slice).unwrap_or_default();
        stored.iter().map(|s| s.data.to_vec()).collect()
    }
}

/// Reads the message into memory (where this store keeps mail) and checks the account's
/// quota, else the store's.
impl Deliver for MemoryStore {
    fn deliver(&self, account: &Account, message: &mut dyn Read) -> Result<String, DeliveryError> {
        let mut data = Vec::new();
        message
            .read_to_end(&mut data)
            .map_err(|e| DeliveryError::io("reading the message", e))?;
        let quota = account.quota.or(self.quota);
        self.checked(
            &self.key(&account.name),
            quota,
            self.new_uidl(),
            data.into(),
        )
    }
}

impl MailStore for MemoryStore {
    fn open(&self, account: &Account) -> Result<Box<dyn Mailbox>, StoreError> {
        let key = self.key(&account.name);
        let mut inner = self.lock();
        if !inner.locked.insert(key.clone()) {
            return Err(StoreError::new(
                StoreErrorKind::InUse,
                format!("{key} is locked by another session"),
            ));
        }
        let snapshot = inner.boxes.get(&key).cloned().unwrap_or_default();
        let info = snapshot
            .iter()
            .map(|s| MessageInfo {
                size: wire_size(&s.data),
                uidl: s.uidl.clone(),
            })
            .collect();
        Ok(Box::new(MemoryMailbox {
            store: self.clone(),
            user: key,
            snapshot,
            info,
        }))
    }
}

struct MemoryMailbox {
    store: MemoryStore,
    user: String,
    snapshot: Vec<Stored>,
    info: Vec<MessageInfo>,
}

impl Mailbox for MemoryMailbox {
    fn messages(&self) -> &[MessageInfo] {
        &self.info
    }

    fn read(&mut self, index: usize) -> Result<Box<dyn Read + '_>, StoreError> {
        let stored = self.snapshot.get(index).ok_or_else(|| {
            StoreError::new(
                StoreErrorKind::Temporary,
                format!("no message index {index}"),
            )
        })?;
        Ok(Box::new(&stored.data[..]))
    }

    fn delete(&mut self, indices: &[usize]) -> Result<(), StoreError> {
        let doomed: HashSet<&str> = indices
            .iter()
            .filter_map(|&i| self.snapshot.get(i))
            .map(|s| s.uidl.as_str())
            .collect();
        let mut inner = self.store.lock();
        if let Some(messages) = inner.boxes.get_mut(&self.user) {
            messages.retain(|s| !doomed.contains(s.uidl.as_str()));
        }
        Ok(())
    }
}

impl Drop for MemoryMailbox {
    fn drop(&mut self) {
        self.store.lock().locked.remove(&self.user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_lock_and_delete() {
        let store = MemoryStore::new();
        let bob = Account::new("bob");
        store.deliver("bob", b"one\n");
        store.deliver("bob", b"two\r\n");
        let mut mb = store.open(&bob).unwrap();
        assert_eq!(
            store.open(&bob).err().map(|e| e.kind()),
            Some(StoreErrorKind::InUse)
        );
        store.deliver("bob", b"three\n");
        assert_eq!(mb.messages().len(), 2);
        assert_eq!(mb.messages()[0].size, 5);
        let mut text = Vec::new();
        mb.read(1).unwrap().read_to_end(&mut text).unwrap();
        assert_eq!(text, b"two\r\n");
        mb.delete(&[0]).unwrap();
        drop(mb);
        assert_eq!(
            store.messages("bob"),
            vec![b"two\r\n".to_vec(), b"three\n".to_vec()]
        );
        let mb = store.open(&bob).unwrap();
        assert_eq!(mb.messages().len(), 2);
    }

    #[test]
    fn delivery_and_login_name_the_same_mailbox() {
        let store = MemoryStore::new();
        store.deliver("Alice@Example.org", b"one\n");
        let alice = Account::new("alice@example.org");
        let e = Deliver::deliver(
            &store,
            &Account::new("ALICE@example.ORG"),
            &mut &b"two\n"[..],
        );
        e.unwrap();
        assert_eq!(store.open(&alice).unwrap().messages().len(), 2);

        let bare = MemoryStore::new().default_domain("example.org");
        bare.deliver("Bob", b"x\n");
        assert_eq!(bare.count("bob@example.org"), 1);

        let kept = MemoryStore::new().with_case(Case::Keep);
        kept.deliver("Carol", b"x\n");
        assert_eq!((kept.count("Carol"), kept.count("carol")), (1, 0));
    }

    #[test]
    fn uidls_are_never_given_twice_even_after_a_restart() {
        // Two stores made in the same second stand for a run and the run after a restart.
        let (first, second) = (MemoryStore::new(), MemoryStore::new());
        let mut seen = HashSet::new();
        for store in [&first, &second] {
            for _ in 0..100 {
                let uidl = store.deliver("bob", b"x\n");
                assert!(uidl.len() <= MAX_UIDL && uidl.bytes().all(|b| (0x21..=0x7e).contains(&b)));
                assert!(seen.insert(uidl), "reused");
            }
        }
    }

    #[test]
    fn a_host_may_give_its_own_uidls_and_quotas_apply() {
        let store = MemoryStore::new().with_quota(Quota {
            storage: Some(10),
            messages: Some(2),
        });
        assert_eq!(
            store.deliver_with_uidl("bob", "host-1", b"12345").unwrap(),
            "host-1"
        );
        let again = store.deliver_with_uidl("bob", "host-1", b"1").unwrap_err();
        assert_eq!(again.kind(), DeliveryErrorKind::Temporary);
        for bad in ["", "has space", &"x".repeat(71)] {
            assert!(
                store.deliver_with_uidl("bob", bad, b"1").is_err(),
                "{bad:?}"
            );
        }
        let full = store
            .deliver_with_uidl("bob", "host-2", b"123456")
            .unwrap_err();
        assert_eq!(full.kind(), DeliveryErrorKind::OverQuota);
        let big = store
            .deliver_with_uidl("bob", "host-3", &[b'x'; 11])
            .unwrap_err();
        assert_eq!(big.kind(), DeliveryErrorKind::TooBig);
        let bob = Account::new("bob").with_quota(Quota::default());
        Deliver::deliver(&store, &bob, &mut &b"123456"[..]).expect("the account's own quota");
        let mb = store.open(&bob).unwrap();
        assert_eq!(mb.messages()[0].uidl, "host-1");
    }
}
