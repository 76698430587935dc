//! Sensor noise for benchmark frames: flat test-pattern colours compress
//! unrealistically fast, and a camera's picture is never flat.

use blackbox::convert::I420;

/// Adds a deterministic +-6 levels of noise to every plane.
pub fn add_sensor_noise(img: &mut I420) {
    let mut x: u32 = 0x9E37_79B9;
    let (y, u, v) = img.planes_mut();
    for plane in [y, u, v] {
        for px in plane.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let delta = (x % 13) as i16 - 6;
            *px = (i16::from(*px) + delta).clamp(16, 240) as u8;
        }
    }
    img.pad();
}
