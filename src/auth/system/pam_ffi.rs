//! Linux-PAM's C interface, loaded at run time: `libpam.so.0` is opened with `dlopen(3)` the
//! first time a [`Pam`](super::Pam) needs it, so building pop3d needs no PAM headers or
//! development package, and a host without PAM runs pop3d with the other sources.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::sync::OnceLock;

/// The library's file name (its soname since Linux-PAM 0.x).
const LIBRARY: &str = "libpam.so.0";

// Return codes (Linux-PAM's `_pam_types.h`).
pub(super) const PAM_SUCCESS: c_int = 0;
pub(super) const PAM_BUF_ERR: c_int = 5;
pub(super) const PAM_PERM_DENIED: c_int = 6;
pub(super) const PAM_AUTH_ERR: c_int = 7;
pub(super) const PAM_CRED_INSUFFICIENT: c_int = 8;
pub(super) const PAM_USER_UNKNOWN: c_int = 10;
pub(super) const PAM_MAXTRIES: c_int = 11;
pub(super) const PAM_NEW_AUTHTOK_REQD: c_int = 12;
pub(super) const PAM_ACCT_EXPIRED: c_int = 13;
pub(super) const PAM_CRED_EXPIRED: c_int = 16;
pub(super) const PAM_CONV_ERR: c_int = 19;
pub(super) const PAM_AUTHTOK_EXPIRED: c_int = 27;

// Message styles of the conversation.
pub(super) const PAM_PROMPT_ECHO_OFF: c_int = 1;
pub(super) const PAM_PROMPT_ECHO_ON: c_int = 2;

// Items and flags.
const PAM_FAIL_DELAY: c_int = 10;
pub(super) const PAM_SILENT: c_int = 0x8000;
pub(super) const PAM_DISALLOW_NULL_AUTHTOK: c_int = 0x1;

/// `struct pam_message`.
#[repr(C)]
pub(super) struct PamMessage {
    pub msg_style: c_int,
    pub msg: *const c_char,
}

/// `struct pam_response`: PAM frees `resp` and the array with `free(3)`.
#[repr(C)]
pub(super) struct PamResponse {
    pub resp: *mut c_char,
    pub resp_retcode: c_int,
}

/// The conversation function's type.
pub(super) type ConvFn = unsafe extern "C" fn(
    c_int,
    *mut *const PamMessage,
    *mut *mut PamResponse,
    *mut c_void,
) -> c_int;

/// `struct pam_conv`.
#[repr(C)]
pub(super) struct PamConv {
    pub conv: ConvFn,
    pub appdata_ptr: *mut c_void,
}

/// An opaque `pam_handle_t`.
#[repr(C)]
pub(super) struct PamHandle {
    _private: [u8; 0],
}

/// `pam_start`.
type StartFn = unsafe extern "C" fn(
    *const c_char,
    *const c_char,
    *const PamConv,
    *mut *mut PamHandle,
) -> c_int;
/// `pam_authenticate`, `pam_acct_mgmt` and `pam_end`: a handle and an int.
type HandleFn = unsafe extern "C" fn(*mut PamHandle, c_int) -> c_int;
/// `pam_strerror`.
type StrerrorFn = unsafe extern "C" fn(*mut PamHandle, c_int) -> *const c_char;
/// `pam_set_item`.
type SetItemFn = unsafe extern "C" fn(*mut PamHandle, c_int, *const c_void) -> c_int;

/// The functions pop3d calls, found in the loaded library.
pub(super) struct Library {
    pub start: StartFn,
    pub authenticate: HandleFn,
    pub acct_mgmt: HandleFn,
    pub end: HandleFn,
    strerror: StrerrorFn,
    set_item: SetItemFn,
}

/// The loaded library, or why it could not be loaded; loaded once per process, never unloaded
/// (PAM modules keep pointers into it).
pub(super) fn library() -> Result<&'static Library, String> {
    static LOADED: OnceLock<Result<Library, String>> = OnceLock::new();
    LOADED.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn load() -> Result<Library, String> {
    let name = CString::new(LIBRARY).expect("no NUL");
    // SAFETY: a valid file name; RTLD_NOW resolves everything now rather than fail later.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(format!("cannot load {LIBRARY}: {}", dl_error()));
    }
    let symbol = |name: &str| -> Result<*mut c_void, String> {
        let c_name = CString::new(name).expect("no NUL");
        // SAFETY: a live handle from dlopen and a valid symbol name.
        let found = unsafe { libc::dlsym(handle, c_name.as_ptr()) };
        if found.is_null() {
            Err(format!("{LIBRARY} has no {name}: {}", dl_error()))
        } else {
            Ok(found)
        }
    };
    // SAFETY: each symbol is the Linux-PAM function of that name, whose C prototype (from
    // security/pam_appl.h) the field's type restates; the library stays loaded for good.
    unsafe {
        Ok(Library {
            start: std::mem::transmute::<*mut c_void, StartFn>(symbol("pam_start")?),
            authenticate: std::mem::transmute::<*mut c_void, HandleFn>(symbol("pam_authenticate")?),
            acct_mgmt: std::mem::transmute::<*mut c_void, HandleFn>(symbol("pam_acct_mgmt")?),
            end: std::mem::transmute::<*mut c_void, HandleFn>(symbol("pam_end")?),
            strerror: std::mem::transmute::<*mut c_void, StrerrorFn>(symbol("pam_strerror")?),
            set_item: std::mem::transmute::<*mut c_void, SetItemFn>(symbol("pam_set_item")?),
        })
    }
}

/// The text of the last `dlopen`/`dlsym` error.
fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string valid until the next dl call.
    let text = unsafe { libc::dlerror() };
    if text.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: non-NULL, NUL-terminated, copied at once.
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned()
    }
}

impl Library {
    /// PAM's text for `code`.
    pub fn error_text(&self, handle: *mut PamHandle, code: c_int) -> String {
        // SAFETY: `handle` is live (pam_strerror only reads it); the result is a static or
        // handle-owned NUL-terminated string, copied at once.
        let text = unsafe { (self.strerror)(handle, code) };
        if text.is_null() {
            format!("PAM error {code}")
        } else {
            // SAFETY: as above.
            unsafe { CStr::from_ptr(text) }
                .to_string_lossy()
                .into_owned()
        }
    }

    /// Replaces libpam's own failure delay (pam_unix asks for two seconds) with nothing: the
    /// session pads every failed login to its own failure delay, from when the password came.
    pub fn no_fail_delay(&self, handle: *mut PamHandle) {
        // SAFETY: a live handle; the item is a function pointer that lives for good.
        unsafe {
            (self.set_item)(handle, PAM_FAIL_DELAY, no_delay as *const c_void);
        }
    }
}

/// The failure-delay function libpam calls instead of sleeping.
extern "C" fn no_delay(_status: c_int, _usec: c_uint, _appdata: *mut c_void) {}
