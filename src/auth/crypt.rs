//! The system's `crypt_r(3)`: the one implementation of the crypt(3) schemes that pop3d uses.
//!
//! On Debian this is libxcrypt, which knows yescrypt (`$y$`, the default for new accounts),
//! SHA-512 and SHA-256 crypt, bcrypt and MD5 crypt, and gets fixes with the system. We hand-roll
//! none of them.

use std::ffi::{c_char, CStr};

/// Bytes allocated for `struct crypt_data`. libxcrypt's is exactly 32768 bytes; glibc's old
/// libcrypt used about 128 KiB, so allocating more keeps us safe if linked against either.
const CRYPT_DATA_SIZE: usize = 136 * 1024;

/// `CRYPT_MAX_PASSPHRASE_SIZE` in libxcrypt's `crypt.h`, NUL included: longer passphrases fail.
pub(crate) const MAX_PASSPHRASE: usize = 512;

#[link(name = "crypt")]
extern "C" {
    /// `char *crypt_r(const char *phrase, const char *setting, struct crypt_data *data);`
    fn crypt_r(phrase: *const c_char, setting: *const c_char, data: *mut c_char) -> *mut c_char;
}

/// Hashes `phrase` with the scheme, parameters and salt that `setting` (usually a whole stored
/// hash) names. `None` when libcrypt refuses the setting: an unknown or malformed hash.
pub(crate) fn crypt(phrase: &CStr, setting: &CStr) -> Option<Vec<u8>> {
    // Zeroed, as crypt_r requires before first use; one per call keeps it thread-safe.
    let mut data = vec![0u8; CRYPT_DATA_SIZE].into_boxed_slice();
    // SAFETY: both strings are NUL-terminated; `data` is writable, zeroed and at least as large
    // as `struct crypt_data` (whose members are all `char`, so alignment 1 is enough).
    let out = unsafe { crypt_r(phrase.as_ptr(), setting.as_ptr(), data.as_mut_ptr().cast()) };
    let result = if out.is_null() {
        None
    } else {
        // SAFETY: a non-NULL result is a NUL-terminated string inside `data`, still alive here.
        let hashed = unsafe { CStr::from_ptr(out) }.to_bytes();
        // libxcrypt reports failure with a token starting with '*' ("*0", "*1").
        if hashed.first() == Some(&b'*') {
            None
        } else {
            Some(hashed.to_vec())
        }
    };
    // The work area held key material derived from the password: do not leave it on the heap.
    data.fill(0);
    std::hint::black_box(&data);
    result
}
