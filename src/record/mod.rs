//! Recording: segment files in Matroska ([`mkv`]), their recovery after a
//! power cut, the recorder thread with rotation, loop deletion and events.

pub mod mkv;
pub mod recorder;
pub mod store;
pub mod verify;
