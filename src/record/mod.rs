//! Recording: the segment format ([`ebml`], [`mkv`]), reading it back and
//! repairing it after a power cut ([`scan`]), the data directory and its
//! index of segments ([`store`], [`index`]) and its lock ([`lock`]), the recorder thread
//! ([`recorder`]) and `blackbox verify` ([`verify`]).

pub mod ebml;
pub mod index;
pub mod journal;
pub mod lock;
pub mod mkv;
pub mod names;
pub mod recorder;
pub mod scan;
pub mod store;
pub mod verify;
