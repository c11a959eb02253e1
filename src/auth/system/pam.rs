//! [`Pam`]: passwords checked by a PAM service, the way the host checks them.

use super::dummy::costs;
use super::pam_ffi::{self as ffi, Library, PamConv, PamHandle, PamMessage, PamResponse};
use super::{account, lookup, uid_refusal, unavailable, DEFAULT_FIRST_UID};
use crate::account::Account;
use crate::auth::{AuthError, Authenticator};
use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_void, CString};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where PAM looks for service files, in its order of preference.
const SERVICE_DIRS: [&str; 2] = ["/etc/pam.d", "/usr/lib/pam.d"];
/// Linux-PAM's `PAM_MAX_NUM_MSG`: a conversation with more messages is malformed.
const MAX_MESSAGES: c_int = 32;

/// How many recent checks of known users the padding of refusals is taken from.
const RECENT_CHECKS: usize = 16;

/// One PAM transaction at a time in this process: PAM modules are not all thread-safe.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// System accounts checked by a PAM service (`pam_authenticate`, then `pam_acct_mgmt`, with
/// `PAM_DISALLOW_NULL_AUTHTOK`).
///
/// The account must also be in the passwd database (`getpwnam_r(3)`, through NSS), which
/// gives its home, uid and gid; an unknown user, root and uids under
/// [`first_uid`](Self::first_uid) are refused without asking PAM (so no module ever checks
/// root's password), after about the same work as a check: the service's modules are loaded
/// (`pam_start`, `pam_end`) and a crypt(3) of the costliest kind in `/etc/shadow` is computed.
/// What a module spends beyond that (`pam_unix` on Debian 12 takes about twice one crypt;
/// an LDAP module a network round trip) is learnt: a refusal then waits until the median of
/// the last 16 checks of known users in this object has passed. A process that checks one
/// login and exits (the binary's per-login child) learns nothing, and relies on the session's
/// padding of every failure to the failure delay and to the slowest check it has seen.
///
/// The conversation answers every hidden prompt with the password and every echoed prompt with
/// the login name; its copy of the password is zeroed after. libpam's own failure delay
/// (two seconds for `pam_unix`) is turned off: the session pads failures itself.
///
/// # What a library user must know
/// - Checking another user's password needs root (`pam_unix` reads `/etc/shadow` only then).
/// - PAM modules are not all thread-safe and some keep state in the process (loaded
///   libraries, open LDAP connections, `pam_faillock` counters): this type runs one PAM
///   transaction at a time in the process. The pop3d binary goes further and runs each check in
///   a forked child process, so that a module that crashes, leaks or changes the process
///   (signals, ids) takes only that child with it; a host program that can should do the same.
/// - libpam is loaded with `dlopen(3)` at the first check; [`check`](Self::check) loads it
///   early and reports a missing library or service file.
#[derive(Debug, Clone)]
pub struct Pam {
    service: CString,
    first_uid: u32,
    /// How long the last checks of known users took, newest last.
    recent: Arc<Mutex<VecDeque<Duration>>>,
}

/// What the conversation answers; zeroed on drop.
struct Conversation {
    user: CString,
    /// The password, NUL-terminated.
    password: Vec<u8>,
}

impl Drop for Conversation {
    fn drop(&mut self) {
        self.password.fill(0);
        std::hint::black_box(&self.password);
    }
}

impl Pam {
    /// The PAM service `service` (`/etc/pam.d/SERVICE`), serving uids from
    /// [`DEFAULT_FIRST_UID`] up. Errors for a name that cannot be a service file's.
    pub fn new(service: &str) -> Result<Pam, String> {
        if service.is_empty() || service.contains('/') || service == "." || service == ".." {
            return Err(format!("{service:?} is not a PAM service name"));
        }
        let service = CString::new(service).map_err(|_| "a PAM service name has no NUL")?;
        Ok(Pam {
            service,
            first_uid: DEFAULT_FIRST_UID,
            recent: Arc::default(),
        })
    }

    /// Refuses accounts whose uid is under `uid` (root is refused whatever it is).
    pub fn first_uid(mut self, uid: u32) -> Pam {
        self.first_uid = uid;
        self
    }

    /// Loads libpam and finds the service's file, for `pop3d --check`; returns what to report.
    pub fn check(&self) -> Result<String, String> {
        ffi::library().map_err(|e| format!("--pam: {e}"))?;
        let name = self.service.to_string_lossy();
        let file = SERVICE_DIRS
            .iter()
            .map(|dir| Path::new(dir).join(name.as_ref()))
            .find(|path| path.is_file())
            .ok_or_else(|| {
                format!(
                    "--pam {name}: no /etc/pam.d/{name}: PAM would use its \"other\" service, \
                     which on most systems refuses everyone"
                )
            })?;
        Ok(format!("system accounts through PAM ({})", file.display()))
    }

    /// Remembers how long a check of a known user took.
    fn learn(&self, took: Duration) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == RECENT_CHECKS {
            recent.pop_front();
        }
        recent.push_back(took);
    }

    /// The median of the recent checks of known users (zero before the first).
    fn typical_check(&self) -> Duration {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let mut sorted: Vec<Duration> = recent.iter().copied().collect();
        sorted.sort();
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    }

    /// Runs one PAM transaction for `user`; `Ok(())` when PAM accepts, else PAM's code and text.
    fn transaction(
        &self,
        lib: &Library,
        conversation: &mut Conversation,
        check: bool,
    ) -> Result<(), (c_int, String)> {
        let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let conv = PamConv {
            conv: converse,
            appdata_ptr: (conversation as *mut Conversation).cast(),
        };
        let mut handle: *mut PamHandle = std::ptr::null_mut();
        // SAFETY: valid NUL-terminated strings, a conversation that outlives the handle (pam_end
        // comes before this function returns), and an out-pointer.
        let rc = unsafe {
            (lib.start)(
                self.service.as_ptr(),
                conversation.user.as_ptr(),
                &conv,
                &mut handle,
            )
        };
        if rc != ffi::PAM_SUCCESS || handle.is_null() {
            return Err((rc, format!("pam_start failed ({rc})")));
        }
        lib.no_fail_delay(handle);
        let flags = ffi::PAM_SILENT | ffi::PAM_DISALLOW_NULL_AUTHTOK;
        let mut rc = ffi::PAM_SUCCESS;
        if check {
            // SAFETY: a live handle from pam_start.
            rc = unsafe { (lib.authenticate)(handle, flags) };
            if rc == ffi::PAM_SUCCESS {
                // SAFETY: as above.
                rc = unsafe { (lib.acct_mgmt)(handle, flags) };
            }
        }
        let text = (rc != ffi::PAM_SUCCESS).then(|| lib.error_text(handle, rc));
        // SAFETY: the live handle, ended once; it is not used after.
        unsafe { (lib.end)(handle, rc) };
        match text {
            None => Ok(()),
            Some(text) => Err((rc, text)),
        }
    }
}

impl Authenticator for Pam {
    /// The system account, from the passwd database (for `--deliver`).
    fn lookup(&self, user: &str) -> Result<Account, AuthError> {
        super::look_up(user, self.first_uid)
    }

    fn authenticate(&self, user: &str, password: &[u8]) -> Result<Account, AuthError> {
        let started = Instant::now();
        let lib = ffi::library().map_err(unavailable)?;
        let entry = lookup::passwd(user)
            .map_err(|e| unavailable(format!("cannot read the passwd database: {e}")))?;
        let refusal = match &entry {
            None => Some(format!("unknown user {user}")),
            Some(entry) => uid_refusal(user, entry.uid, self.first_uid),
        };
        let nul = password.contains(&0);
        let mut conversation = Conversation {
            user: CString::new(user).map_err(|_| AuthError::rejected("NUL in a user name"))?,
            password: password
                .iter()
                .copied()
                .take_while(|&b| b != 0)
                .chain([0])
                .collect(),
        };
        let (Some(entry), None, false) = (entry, &refusal, nul) else {
            // The same work as a check, without asking PAM about this user.
            let _ = self.transaction(lib, &mut conversation, false);
            costs().spend(password);
            if let Some(rest) = self.typical_check().checked_sub(started.elapsed()) {
                std::thread::sleep(rest);
            }
            let why = refusal.unwrap_or_else(|| format!("a password with NUL for {user}"));
            return Err(AuthError::rejected(why));
        };
        let outcome = self.transaction(lib, &mut conversation, true);
        self.learn(started.elapsed());
        match outcome {
            Ok(()) => Ok(account(user, &entry)),
            Err((code, text)) => {
                let detail = format!("PAM {}: {user}: {text}", self.service.to_string_lossy());
                Err(match code {
                    ffi::PAM_AUTH_ERR
                    | ffi::PAM_USER_UNKNOWN
                    | ffi::PAM_MAXTRIES
                    | ffi::PAM_PERM_DENIED
                    | ffi::PAM_CRED_INSUFFICIENT
                    | ffi::PAM_ACCT_EXPIRED
                    | ffi::PAM_NEW_AUTHTOK_REQD
                    | ffi::PAM_CRED_EXPIRED
                    | ffi::PAM_AUTHTOK_EXPIRED => AuthError::rejected(detail),
                    // PAM_AUTHINFO_UNAVAIL, PAM_SYSTEM_ERR, PAM_BUF_ERR, a broken service...
                    _ => unavailable(detail),
                })
            }
        }
    }

    /// The costlier of one crypt(3) of each kind of hash in `/etc/shadow` and the system's
    /// default (measured once per process) and the median of the recent checks of known users,
    /// plus a quarter. Modules that cost more (LDAP, say) are learnt as logins come.
    fn costliest_check(&self) -> Duration {
        let typical = self.typical_check();
        super::shadow::costliest().max(typical + typical / 4)
    }
}

/// The conversation function: the password for hidden prompts, the login name for echoed
/// ones, nothing for messages.
///
/// # Safety
/// Called by libpam with `appdata` the [`Conversation`] given to `pam_start`.
unsafe extern "C" fn converse(
    count: c_int,
    messages: *mut *const PamMessage,
    responses: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    if count <= 0
        || count > MAX_MESSAGES
        || messages.is_null()
        || responses.is_null()
        || appdata.is_null()
    {
        return ffi::PAM_CONV_ERR;
    }
    let n = count as usize;
    // SAFETY (here and below): libpam passes `count` valid message pointers (Linux-PAM's
    // layout: an array of pointers), a writable `responses`, and our appdata.
    let conversation = unsafe { &*(appdata as *const Conversation) };
    let replies =
        unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) }.cast::<PamResponse>();
    if replies.is_null() {
        return ffi::PAM_BUF_ERR;
    }
    for i in 0..n {
        let message = unsafe { *messages.add(i) };
        if message.is_null() {
            unsafe { free_replies(replies, i) };
            return ffi::PAM_CONV_ERR;
        }
        let answer: Option<*const c_char> = match unsafe { (*message).msg_style } {
            ffi::PAM_PROMPT_ECHO_OFF => Some(conversation.password.as_ptr().cast()),
            ffi::PAM_PROMPT_ECHO_ON => Some(conversation.user.as_ptr()),
            _ => None,
        };
        if let Some(answer) = answer {
            // PAM frees (and Linux-PAM zeroes) each answer with free(3): it must be malloc'd.
            let copy = unsafe { libc::strdup(answer) };
            if copy.is_null() {
                unsafe { free_replies(replies, i) };
                return ffi::PAM_BUF_ERR;
            }
            unsafe { (*replies.add(i)).resp = copy };
        }
    }
    unsafe { *responses = replies };
    ffi::PAM_SUCCESS
}

/// Zeroes and frees the first `filled` answers and the array, on a failed conversation.
///
/// # Safety
/// `replies` is a calloc'd array of at least `filled` responses, each NULL or strdup'd.
unsafe fn free_replies(replies: *mut PamResponse, filled: usize) {
    for i in 0..filled {
        // SAFETY: as the function's contract says.
        let answer = unsafe { (*replies.add(i)).resp };
        if !answer.is_null() {
            // SAFETY: a NUL-terminated malloc'd copy, ours to wipe and free.
            unsafe {
                std::ptr::write_bytes(answer, 0, libc::strlen(answer));
                libc::free(answer.cast());
            }
        }
    }
    // SAFETY: the calloc'd array.
    unsafe { libc::free(replies.cast()) };
}
