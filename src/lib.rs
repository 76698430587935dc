//! blackbox: dashcam firmware for the Raspberry Pi 5.
//!
//! One process owns the camera. A capture thread pulls raw frames from a
//! [`capture::Source`], a small pool of encoder threads turns them into JPEGs
//! ([`pipeline`], [`encode`], [`convert`]), and the [`bus::Bus`] hands the
//! encoded frames to every consumer: live viewers get the newest frame and skip
//! what they missed, ordered subscribers (the frame tap, later the recorder) get
//! every frame through a bounded queue. The HTTP side ([`http`]) and the tap
//! ([`tap`]) run on one smol executor; nothing CPU-bound runs there.
//!
//! # Implementation
//! Frames are shared, not copied: an encoded [`frame::Frame`] is reference
//! counted, so N viewers cost N socket writes. The capture thread converts a
//! raw buffer straight into a planar I420 image (one read of the driver's
//! buffer, which can then go back to the driver), and the encoder threads
//! compress it with mozjpeg's raw-data interface. Counters live in
//! [`stats::Stats`] and are read by `/api/status` and `/metrics`.

pub mod account;
pub mod app;
pub mod auth;
pub mod bus;
pub mod cameras;
pub mod caption;
pub mod capture;
pub mod cli;
pub mod clock;
pub mod config;
pub mod convert;
pub mod encode;
pub mod encoders;
pub mod failures;
pub mod faults;
pub mod font;
pub mod frame;
pub mod gps;
pub mod http;
pub mod impact;
pub mod memory;
pub mod net;
pub mod ota;
pub mod parking;
pub mod pipeline;
pub mod placeholder;
pub mod privilege;
pub mod probe;
pub mod ready;
pub mod record;
pub mod ring;
pub mod state;
pub mod stats;
pub mod supervise;
pub mod sync;
pub mod systemd;
pub mod tap;
pub mod timesync;
pub mod tls;
pub mod wifi;
