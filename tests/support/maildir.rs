//! (filled in with the real-client tests)
