//! Every limit pop3d enforces, each with the reason for its value.

use std::time::Duration;

/// Longest command line, CRLF included. RFC 2449 §4 raised RFC 1939's 47 octets to 255; a longer
/// line is refused whole, so a client cannot make the server buffer without bound.
pub const MAX_COMMAND_LINE: usize = 255;

/// Longest line of a SASL exchange (a base64 response to AUTH's challenge). RFC 5034 leaves it
/// open; PLAIN, LOGIN, CRAM-MD5 and SCRAM responses stay under 1 KiB even with long names and
/// passwords, and 4 KiB keeps a hostile client from making the server buffer more.
pub const MAX_SASL_LINE: usize = 4096;

/// Longest login name in octets. Long enough for any real `local@domain` (64 + 1 + 190), short
/// enough that it cannot blow up a path or a log line.
pub const MAX_USER_NAME: usize = 255;

/// Time a client has to log in, from connecting (PROXY header and TLS handshake included) to a
/// successful login. A real client needs a few round trips; a connection that lingers before
/// login only holds a worker. Shorter than the idle timeout RFC 1939 sets for logged-in users.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Time to receive one whole command line once its first byte has arrived. Each byte would
/// otherwise restart the idle timer, and a client sending one byte a minute could hold a worker
/// for hours (slowloris). A real client sends a line in one packet.
pub const LINE_DEADLINE: Duration = Duration::from_secs(30);

/// Default limit of sessions at once from one client address (standalone mode). Enough for an
/// office behind one NAT address polling every minute; small enough that one address cannot
/// take the whole pool (64), even while its logins are being slowed by the failure penalty.
pub const DEFAULT_MAX_PER_IP: usize = 16;

/// Failure penalty (after Dovecot's): the first failed login from an address delays its next
/// attempts by 2 s, doubling with each further failure up to 15 s. Retrying the same wrong
/// password (a client with a stale saved password) does not add to it.
pub const PENALTY_FIRST: Duration = Duration::from_secs(2);

/// Most a failure penalty can delay a login.
pub const PENALTY_MAX: Duration = Duration::from_secs(15);

/// An address's penalty is forgotten this long after its last failure.
pub const PENALTY_EXPIRY: Duration = Duration::from_secs(3600);

/// Addresses whose penalty is remembered at once: bounds the table's memory (about 100 bytes
/// each) however many addresses an attacker uses. When full, the oldest entries go first.
pub const PENALTY_TABLE_MAX: usize = 16 * 1024;

/// RFC 1939 §3: the autologout timer must be at least 10 minutes.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Consecutive bad commands (unknown, malformed, wrong state) before the server hangs up. Real
/// clients make one or two mistakes (probing CAPA or AUTH); a stream of garbage is not a client.
pub const MAX_BAD_COMMANDS: u32 = 10;

/// Failed logins on one connection before the server hangs up. Clients retry a rejected
/// password once or twice at most; more is guessing, and the failure delay alone would let one
/// connection guess forever.
pub const MAX_FAILED_LOGINS: u32 = 3;

/// Delay before a failed login is answered: it slows password guessing and hides whether the
/// user exists (the answer takes the same time either way).
pub const DEFAULT_AUTH_FAILURE_DELAY: Duration = Duration::from_secs(1);

/// Chunk read from a message file while streaming RETR and TOP: large enough for few system
/// calls, small enough that memory stays flat whatever the message size.
pub const MESSAGE_CHUNK: usize = 16 * 1024;

/// Output buffer of a session, flushed once per reply (or when full, while streaming).
pub const WRITE_BUFFER: usize = 16 * 1024;

/// Default number of sessions at once in standalone mode. Measured: an idle logged-in session
/// costs about 17 KiB of memory and two file descriptors (9,900 of them: 170 MB RSS, 19,806
/// descriptors), so 1,024 cost about 17 MB, and fit a 2,048-descriptor limit with room to
/// spare. Dovecot's default process limit for POP3 is 1,024 too. Threads start only as
/// clients come, so a quiet server does not pay for the limit.
pub const DEFAULT_MAX_SESSIONS: usize = 1024;

/// After a client address's connection is cut to make room in a full pool, a new connection
/// from that address does not cut another for this long (it is told the server is busy).
/// Without it, clients that reconnect the moment they are cut would cut each other thousands of
/// times a second, and a real client would be cut before its first command. With it, each
/// address can cut at most one connection per period: 100 addresses, 50 a second, while a
/// real client speaks within a round trip and is then cut only after every silent one.
pub const EVICTION_COOLDOWN: Duration = Duration::from_secs(2);

/// Addresses whose eviction cool-down is remembered at once (bounds the table's memory).
pub const EVICTION_TABLE_MAX: usize = 16 * 1024;

/// How long a session thread with nothing to do waits for a new connection before it ends. A
/// server polled every minute keeps its threads; a burst's extra threads go away after it.
pub const WORKER_IDLE_KEEP: Duration = Duration::from_secs(60);

/// Connections the kernel queues for accept. The standard library's 128 overflows in a burst
/// of clients polling on the minute (each then waits a SYN retry, 1 s or more); Dovecot uses
/// 1,000 too. Linux caps it at `net.core.somaxconn` (4,096 on current kernels).
pub const LISTEN_BACKLOG: libc::c_int = 4096;

/// Stack of each session thread. A session keeps its buffers on the heap; 256 KiB leaves room
/// for password hashing and logging while keeping idle threads cheap.
pub const SESSION_STACK: usize = 256 * 1024;

/// Most logins the optional login cache (`PasswdFile::with_login_cache`) remembers. Each costs
/// about 100 octets, so 10,000 is 1 MB at most; a server with more distinct users polling within
/// one TTL just checks some passwords in full again.
pub const LOGIN_CACHE_ENTRIES: usize = 10_000;

/// How long a last reply may take to write: the "server busy" answer, or the `-ERR` to a client
/// whose time ran out. It is one short line into an empty socket buffer; a client that will not
/// take even that is not waited for.
pub const LAST_REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// Margin added to the measured cost of the costliest password check before failures are padded
/// to it: a quarter. One timing of a check varies by some percent with the machine's load; a
/// check that ran over the bound would answer later than an unknown user.
pub const CHECK_COST_MARGIN_PERCENT: u32 = 25;

/// Longest a failed login (or the first SCRAM step) is padded to, however costly a check was
/// measured or seen to be (a stalled disk, a swapped-out process): 10 seconds. The cost caps
/// (see `auth::password::cost`) keep a real check of one hash below that.
pub const FAILURE_PAD_MAX: Duration = Duration::from_secs(10);

/// Kinds of hash (scheme and cost parameters) measured in a passwd file to find the costliest
/// check. A real file uses one to three; a check of each is timed once per version of the file,
/// so a hostile or careless file cannot make that take long.
pub const HASH_CLASSES_MEASURED: usize = 16;

/// Addresses kept in the failure penalty file shared by `--inetd` processes. Each process reads
/// and rewrites the whole file (about 140 octets an address) at a failed login, so it is kept
/// smaller than the in-memory table: 4096 addresses, at most about 600 KB.
pub const PENALTY_FILE_MAX: usize = 4096;

/// User names whose failures are remembered apart for one address, so that a successful login
/// clears its own user's failures and no one else's. Failures for further users count toward
/// the address's penalty but no login clears them; they expire with it.
pub const PENALTY_USERS_PER_ADDRESS: usize = 8;
