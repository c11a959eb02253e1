//! The messages between the front and a broker child, and their encoding: pure code, bytes in
//! and typed values out.
//!
//! A frame is a 4-byte big-endian length and that many bytes: a tag, then the fields. Integers
//! are big-endian; a string or byte field is a 4-byte length and its bytes; an optional field is
//! a byte 0 (absent) or 1 (present) before it. Anything malformed, from either side, is an
//! error: a frame too long, a field running past the end, bytes left over, an unknown tag.

use pop3d::{Account, AuthErrorKind, MessageInfo, StoreErrorKind};
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

/// The longest frame either side accepts: a batch of [`BATCH`] message entries fits with room
/// to spare, and a reader never allocates more than this for one frame.
pub const MAX_FRAME: usize = 1 << 20;

/// Message entries per [`Reply::Messages`] frame: 4,096 entries of at most 86 bytes each
/// (size, UIDL length, a 70-byte UIDL) stay well under [`MAX_FRAME`].
pub const BATCH: usize = 4096;

/// The longest string or byte field (a login name, a home directory, a password, an error's
/// detail): far above what any of them needs, small enough to refuse garbage early.
const MAX_FIELD: usize = 64 * 1024;

/// What the front asks a broker child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Check a login with the real account source (as root), then exit.
    Authenticate { user: String, password: Vec<u8> },
    /// Become the account, open its mailbox, and serve it until the channel closes.
    Open(Account),
    /// Write message `index` (0-based) into the pipe that comes with this frame.
    Read { index: u64 },
    /// Remove these messages for good (UPDATE).
    Delete { indices: Vec<u64> },
    /// Remove the messages retrieved at least this many seconds ago (EXPIRE, at login); the
    /// new message list follows the reply.
    Expire { age_secs: u64 },
    /// Record that these messages were retrieved in this session (EXPIRE, in UPDATE).
    Retrieved { indices: Vec<u64> },
    /// Read the certificate and key files named at start (SIGHUP), as root, then exit. The
    /// request names no file: the front cannot make the broker read another.
    ReadTls,
}

/// What a broker child answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The login is good: the account, with its home and ids.
    Account(Account),
    /// The login failed.
    AuthFailed { kind: AuthErrorKind, detail: String },
    /// The mailbox is open and has `count` messages; their entries follow in
    /// [`Reply::Messages`] frames.
    Opened { count: u64 },
    /// The next entries of the message list.
    Messages(Vec<MessageInfo>),
    /// A store operation failed.
    Failed {
        kind: StoreErrorKind,
        detail: String,
    },
    /// The message is open; its bytes are coming through the pipe.
    Reading,
    /// The message has been written to the pipe: `octets` bytes in all (fewer if the front
    /// closed the pipe first).
    Sent { octets: u64 },
    /// The messages are removed.
    Deleted,
    /// The expired messages are removed: how many, or `None` when the store keeps no record
    /// of retrievals. The new message list follows, as after [`Reply::Opened`].
    Expired { removed: Option<u64> },
    /// The retrievals are recorded.
    Recorded,
    /// The certificate and key files, as read.
    TlsFiles { cert: Vec<u8>, key: Vec<u8> },
    /// The message is these ranges of the regular file that comes with this frame, opened
    /// for reading only (`Mailbox::file_ranges`): the front reads them itself, and the pipe
    /// sent with the request is not used.
    File { ranges: Vec<Range<u64>> },
}

/// A frame that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError(String);

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed frame: {}", self.0)
    }
}

impl std::error::Error for FrameError {}

fn bad(what: impl Into<String>) -> FrameError {
    FrameError(what.into())
}

impl Request {
    /// The frame for this request, length prefix included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Writer::new();
        match self {
            Request::Authenticate { user, password } => {
                out.u8(1);
                out.bytes(user.as_bytes());
                out.bytes(password);
            }
            Request::Open(account) => {
                out.u8(2);
                out.account(account);
            }
            Request::Read { index } => {
                out.u8(3);
                out.u64(*index);
            }
            Request::Delete { indices } => {
                out.u8(4);
                out.indices(indices);
            }
            Request::Expire { age_secs } => {
                out.u8(5);
                out.u64(*age_secs);
            }
            Request::Retrieved { indices } => {
                out.u8(6);
                out.indices(indices);
            }
            Request::ReadTls => out.u8(7),
        }
        out.finish()
    }

    /// The request in a frame's body (what follows the length prefix).
    pub fn decode(body: &[u8]) -> Result<Request, FrameError> {
        let mut r = Reader(body);
        let request = match r.u8()? {
            1 => Request::Authenticate {
                user: r.string()?,
                password: r.bytes()?.to_vec(),
            },
            2 => Request::Open(r.account()?),
            3 => Request::Read { index: r.u64()? },
            4 => Request::Delete {
                indices: r.indices()?,
            },
            5 => Request::Expire { age_secs: r.u64()? },
            6 => Request::Retrieved {
                indices: r.indices()?,
            },
            7 => Request::ReadTls,
            tag => return Err(bad(format!("unknown request {tag}"))),
        };
        r.end()?;
        Ok(request)
    }
}

impl Reply {
    /// The frame for this reply, length prefix included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Writer::new();
        match self {
            Reply::Account(account) => {
                out.u8(1);
                out.account(account);
            }
            Reply::AuthFailed { kind, detail } => {
                out.u8(2);
                out.u8(match kind {
                    AuthErrorKind::Rejected => 0,
                    _ => 1,
                });
                out.bytes(clip(detail).as_bytes());
            }
            Reply::Opened { count } => {
                out.u8(3);
                out.u64(*count);
            }
            Reply::Messages(entries) => {
                out.u8(4);
                out.u32(entries.len() as u32);
                for m in entries {
                    out.u64(m.size);
                    out.bytes(m.uidl.as_bytes());
                }
            }
            Reply::Failed { kind, detail } => {
                out.u8(5);
                out.u8(match kind {
                    StoreErrorKind::InUse => 0,
                    StoreErrorKind::Permanent => 2,
                    _ => 1,
                });
                out.bytes(clip(detail).as_bytes());
            }
            Reply::Reading => out.u8(6),
            Reply::Sent { octets } => {
                out.u8(7);
                out.u64(*octets);
            }
            Reply::Deleted => out.u8(8),
            Reply::Expired { removed } => {
                out.u8(9);
                match removed {
                    None => out.u8(0),
                    Some(n) => {
                        out.u8(1);
                        out.u64(*n);
                    }
                }
            }
            Reply::Recorded => out.u8(10),
            Reply::TlsFiles { cert, key } => {
                out.u8(11);
                out.bytes(cert);
                out.bytes(key);
            }
            Reply::File { ranges } => {
                out.u8(12);
                let bounds: Vec<u64> = ranges.iter().flat_map(|r| [r.start, r.end]).collect();
                out.indices(&bounds);
            }
        }
        out.finish()
    }

    /// The reply in a frame's body (what follows the length prefix).
    pub fn decode(body: &[u8]) -> Result<Reply, FrameError> {
        let mut r = Reader(body);
        let reply = match r.u8()? {
            1 => Reply::Account(r.account()?),
            2 => Reply::AuthFailed {
                kind: match r.u8()? {
                    0 => AuthErrorKind::Rejected,
                    1 => AuthErrorKind::Unavailable,
                    k => return Err(bad(format!("unknown authentication error {k}"))),
                },
                detail: r.string()?,
            },
            3 => Reply::Opened { count: r.u64()? },
            4 => {
                let n = r.u32()? as usize;
                // Each entry takes at least 13 bytes (size, UIDL length, one character).
                if n == 0 || n > BATCH || n > r.0.len() / 13 {
                    return Err(bad(format!("{n} message entries in {} bytes", r.0.len())));
                }
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let size = r.u64()?;
                    let uidl = r.string()?;
                    if !valid_uidl(&uidl) {
                        return Err(bad(format!(
                            "UIDL {uidl:?} is not 1 to 70 printable characters"
                        )));
                    }
                    entries.push(MessageInfo { size, uidl });
                }
                Reply::Messages(entries)
            }
            5 => Reply::Failed {
                kind: match r.u8()? {
                    0 => StoreErrorKind::InUse,
                    1 => StoreErrorKind::Temporary,
                    2 => StoreErrorKind::Permanent,
                    k => return Err(bad(format!("unknown store error {k}"))),
                },
                detail: r.string()?,
            },
            6 => Reply::Reading,
            7 => Reply::Sent { octets: r.u64()? },
            8 => Reply::Deleted,
            9 => Reply::Expired {
                removed: match r.u8()? {
                    0 => None,
                    1 => Some(r.u64()?),
                    f => return Err(bad(format!("optional-field flag {f}"))),
                },
            },
            10 => Reply::Recorded,
            11 => Reply::TlsFiles {
                cert: r.bytes()?.to_vec(),
                key: r.bytes()?.to_vec(),
            },
            12 => {
                let bounds = r.indices()?;
                // Whole ranges, each in order and after the one before.
                let ranges: Vec<Range<u64>> =
                    bounds.chunks(2).map(|b| b[0]..b[b.len() - 1]).collect();
                let ordered = bounds.len() % 2 == 0 && bounds.windows(2).all(|w| w[0] <= w[1]);
                if !ordered {
                    return Err(bad("file ranges out of order"));
                }
                Reply::File { ranges }
            }
            tag => return Err(bad(format!("unknown reply {tag}"))),
        };
        r.end()?;
        Ok(reply)
    }
}

/// The body length a frame's 4-byte prefix announces, if acceptable.
pub fn body_length(prefix: [u8; 4]) -> Result<usize, FrameError> {
    match u32::from_be_bytes(prefix) as usize {
        0 => Err(bad("empty frame")),
        n if n > MAX_FRAME => Err(bad(format!("frame of {n} bytes"))),
        n => Ok(n),
    }
}

/// A UIDL as RFC 1939 section 7 allows it, so that a child cannot forge reply lines.
fn valid_uidl(uidl: &str) -> bool {
    (1..=70).contains(&uidl.len()) && uidl.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// An error's detail cut to fit a field, at a character boundary.
fn clip(detail: &str) -> &str {
    let mut end = detail.len().min(MAX_FIELD);
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    &detail[..end]
}

struct Writer(Vec<u8>);

impl Writer {
    fn new() -> Writer {
        Writer(vec![0; 4])
    }

    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
    }

    fn opt_u32(&mut self, v: Option<u32>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.u32(v);
            }
        }
    }

    fn account(&mut self, a: &Account) {
        self.bytes(a.name.as_bytes());
        match &a.home {
            None => self.u8(0),
            Some(home) => {
                self.u8(1);
                self.bytes(home.as_os_str().as_encoded_bytes());
            }
        }
        self.opt_u32(a.uid);
        self.opt_u32(a.gid);
    }

    fn indices(&mut self, indices: &[u64]) {
        self.u32(indices.len() as u32);
        indices.iter().for_each(|&i| self.u64(i));
    }

    fn finish(mut self) -> Vec<u8> {
        let len = (self.0.len() - 4) as u32;
        self.0[..4].copy_from_slice(&len.to_be_bytes());
        self.0
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if n > self.0.len() {
            return Err(bad("a field runs past the end"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().unwrap_or([0; 4]),
        ))
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().unwrap_or([0; 8]),
        ))
    }

    fn bytes(&mut self) -> Result<&'a [u8], FrameError> {
        let n = self.u32()? as usize;
        if n > MAX_FIELD {
            return Err(bad(format!("a field of {n} bytes")));
        }
        self.take(n)
    }

    fn string(&mut self) -> Result<String, FrameError> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| bad("a text field is not UTF-8"))
    }

    fn opt_u32(&mut self) -> Result<Option<u32>, FrameError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u32()?)),
            f => Err(bad(format!("optional-field flag {f}"))),
        }
    }

    fn account(&mut self) -> Result<Account, FrameError> {
        let name = self.string()?;
        if name.is_empty() {
            return Err(bad("an account without a name"));
        }
        let mut account = Account::new(name);
        match self.u8()? {
            0 => {}
            1 => {
                use std::os::unix::ffi::OsStrExt;
                let home = std::ffi::OsStr::from_bytes(self.bytes()?);
                account = account.with_home(PathBuf::from(home));
            }
            f => return Err(bad(format!("optional-field flag {f}"))),
        }
        account.uid = self.opt_u32()?;
        account.gid = self.opt_u32()?;
        Ok(account)
    }

    fn indices(&mut self) -> Result<Vec<u64>, FrameError> {
        let n = self.u32()? as usize;
        // Each index takes 8 bytes: a count the frame cannot hold is refused before anything
        // is allocated for it.
        if n > self.0.len() / 8 {
            return Err(bad(format!("{n} indices in {} bytes", self.0.len())));
        }
        (0..n).map(|_| self.u64()).collect()
    }

    fn end(&self) -> Result<(), FrameError> {
        match self.0.len() {
            0 => Ok(()),
            n => Err(bad(format!("{n} bytes left over"))),
        }
    }
}

#[cfg(test)]
mod tests;
