//! A mail store in memory: for host programs that deliver mail themselves, and for tests.

use super::{MailStore, Mailbox, MessageInfo, StoreError, StoreErrorKind};
use crate::account::Account;
use crate::protocol::wire_size;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Mutex, MutexGuard};

/// Mailboxes held in memory, keyed by account name. Cheap to clone: clones share the mail.
///
/// ```
/// use pop3d::store::memory::MemoryStore;
/// let store = MemoryStore::new();
/// let uidl = store.deliver("bob@example.org", b"Subject: hi\r\n\r\nHello\r\n");
/// assert_eq!(store.count("bob@example.org"), 1);
/// # let _ = uidl;
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    boxes: HashMap<String, Vec<Stored>>,
    locked: HashSet<String>,
    next_id: u64,
}

#[derive(Clone)]
struct Stored {
    uidl: String,
    data: Arc<[u8]>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the maps half-updated (every update is one call), so a
        // poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Delivers `message` to `user`'s mailbox and returns its UIDL. Sessions already running
    /// do not see it; the next one does.
    pub fn deliver(&self, user: &str, message: &[u8]) -> String {
        let mut inner = self.lock();
        inner.next_id += 1;
        let uidl = format!("m{:010}", inner.next_id);
        let stored = Stored {
            uidl: uidl.clone(),
            data: message.into(),
        };
        inner.boxes.entry(user.to_owned()).or_default().push(stored);
        uidl
    }

    /// How many messages `user` has.
    pub fn count(&self, user: &str) -> usize {
        self.lock().boxes.get(user).map_or(0, Vec::len)
    }

    /// A copy of `user`'s messages, oldest first.
    pub fn messages(&self, user: &str) -> Vec<Vec<u8>> {
        let inner = self.lock();
        let stored = inner.boxes.get(user).map(Vec::as_slice).unwrap_or_default();
        stored.iter().map(|s| s.data.to_vec()).collect()
    }
}

impl MailStore for MemoryStore {
    fn open(&self, account: &Account) -> Result<Box<dyn Mailbox>, StoreError> {
        let mut inner = self.lock();
        if !inner.locked.insert(account.name.clone()) {
            return Err(StoreError::new(
                StoreErrorKind::InUse,
                format!("{} is locked by another session", account.name),
            ));
        }
        let snapshot = inner.boxes.get(&account.name).cloned().unwrap_or_default();
        let info = snapshot
            .iter()
            .map(|s| MessageInfo {
                size: wire_size(&s.data),
                uidl: s.uidl.clone(),
            })
            .collect();
        Ok(Box::new(MemoryMailbox {
            store: self.clone(),
            user: account.name.clone(),
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
}
