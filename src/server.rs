//! (being written)
/// (being written)
pub struct Server;
/// (being written)
pub struct ShutdownHandle;
