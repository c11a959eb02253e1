//! (being written)
/// (being written)
pub struct Service;
/// (being written)
pub struct Session;
/// (being written)
pub struct SessionConfig;
