//! (being written)
/// (being written)
pub enum Command {}
/// (being written)
pub enum ParseError {}
/// (being written)
pub fn parse() {}
