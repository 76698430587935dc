//! Virtual input devices made with the kernel's uinput. An accelerometer:
//! an input device with `INPUT_PROP_ACCELEROMETER` and the axes X, Y and Z
//! in thousandths of a g (resolution 1000 units per g, as the input ABI
//! defines it for accelerometers), whose samples the test writes. An
//! ignition line: one key, down while the ignition is on, as the Pi's
//! `gpio-key` overlay makes of a GPIO. Dropping either removes the device,
//! as unplugging it would.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;

use nix::libc;

const EV_SYN: u16 = 0x00;
const EV_KEY: u16 = 0x01;
const EV_ABS: u16 = 0x03;
const SYN_REPORT: u16 = 0;
const INPUT_PROP_ACCELEROMETER: libc::c_int = 0x06;
/// Units per g.
pub const PER_G: f64 = 1000.0;

nix::ioctl_write_int!(ui_set_evbit, b'U', 100);
nix::ioctl_write_int!(ui_set_absbit, b'U', 103);
nix::ioctl_write_int!(ui_set_keybit, b'U', 101);
nix::ioctl_write_int!(ui_set_propbit, b'U', 110);
nix::ioctl_write_ptr!(ui_dev_setup, b'U', 3, libc::uinput_setup);
nix::ioctl_write_ptr!(ui_abs_setup, b'U', 4, libc::uinput_abs_setup);
nix::ioctl_none!(ui_dev_create, b'U', 1);
nix::ioctl_none!(ui_dev_destroy, b'U', 2);

pub struct Accelerometer {
    file: File,
}

impl Accelerometer {
    /// Creates the device, named `name`.
    pub fn create(name: &str) -> Result<Accelerometer, String> {
        let file = OpenOptions::new()
            .write(true)
            .open("/dev/uinput")
            .map_err(|e| format!("/dev/uinput: {e}"))?;
        let fd = file.as_raw_fd();
        let err = |what: &str, e: nix::Error| format!("{what}: {e}");
        // SAFETY: plain ioctls on our own uinput fd; each takes an int by
        // value or a pointer to a struct that outlives the call.
        unsafe {
            ui_set_evbit(fd, EV_ABS.into()).map_err(|e| err("UI_SET_EVBIT", e))?;
            ui_set_evbit(fd, EV_SYN.into()).map_err(|e| err("UI_SET_EVBIT", e))?;
            ui_set_propbit(fd, INPUT_PROP_ACCELEROMETER as _)
                .map_err(|e| err("UI_SET_PROPBIT", e))?;
            for code in 0..3u16 {
                ui_set_absbit(fd, code.into()).map_err(|e| err("UI_SET_ABSBIT", e))?;
                let mut setup: libc::uinput_abs_setup = std::mem::zeroed();
                setup.code = code;
                setup.absinfo.minimum = -16_000;
                setup.absinfo.maximum = 16_000;
                setup.absinfo.resolution = PER_G as i32;
                ui_abs_setup(fd, &setup).map_err(|e| err("UI_ABS_SETUP", e))?;
            }
        }
        create(&file, name)?;
        Ok(Accelerometer { file })
    }

    /// Reports one sample, in g.
    pub fn sample(&mut self, g: [f64; 3]) -> Result<(), String> {
        let events: Vec<(u16, u16, i32)> = g
            .iter()
            .enumerate()
            .map(|(code, v)| (EV_ABS, code as u16, (v * PER_G).round() as i32))
            .collect();
        emit(&mut self.file, &events)
    }
}

/// Writes `events` and a `SYN_REPORT` to a uinput device.
fn emit(file: &mut File, events: &[(u16, u16, i32)]) -> Result<(), String> {
    {
        let mut bytes = Vec::with_capacity(4 * std::mem::size_of::<libc::input_event>());
        let mut put = |kind: u16, code: u16, value: i32| {
            // SAFETY: an all-zero input_event is valid; the kernel stamps
            // the time itself.
            let mut ev: libc::input_event = unsafe { std::mem::zeroed() };
            ev.type_ = kind;
            ev.code = code;
            ev.value = value;
            // SAFETY: input_event is plain integers; the slice covers it.
            bytes.extend_from_slice(unsafe {
                std::slice::from_raw_parts(
                    (&ev as *const libc::input_event).cast::<u8>(),
                    std::mem::size_of::<libc::input_event>(),
                )
            });
        };
        for &(kind, code, value) in events {
            put(kind, code, value);
        }
        put(EV_SYN, SYN_REPORT, 0);
        file.write_all(&bytes)
            .map_err(|e| format!("writing to uinput: {e}"))
    }
}

/// Names a new uinput device and creates it.
fn create(file: &File, name: &str) -> Result<(), String> {
    let fd = file.as_raw_fd();
    // SAFETY: plain ioctls on our own uinput fd, each with a pointer to a
    // struct that outlives the call.
    unsafe {
        let mut setup: libc::uinput_setup = std::mem::zeroed();
        setup.id.bustype = 0x19; // BUS_HOST
        setup.id.vendor = 0x1234;
        setup.id.product = 0x5678;
        for (d, s) in setup.name.iter_mut().zip(name.bytes().take(79)) {
            *d = s as libc::c_char;
        }
        ui_dev_setup(fd, &setup).map_err(|e| format!("UI_DEV_SETUP: {e}"))?;
        ui_dev_create(fd).map_err(|e| format!("UI_DEV_CREATE: {e}"))?;
    }
    Ok(())
}

/// The ignition line as a key.
pub struct Key {
    file: File,
    code: u16,
    /// The device's node, `/dev/input/eventN`.
    pub path: String,
}

impl Key {
    /// Creates the key `code` on a device named `name` (released: off).
    pub fn create(name: &str, code: u16) -> Result<Key, String> {
        let file = OpenOptions::new()
            .write(true)
            .open("/dev/uinput")
            .map_err(|e| format!("/dev/uinput: {e}"))?;
        let fd = file.as_raw_fd();
        // SAFETY: plain ioctls on our own uinput fd taking ints by value.
        unsafe {
            ui_set_evbit(fd, EV_KEY.into()).map_err(|e| format!("UI_SET_EVBIT: {e}"))?;
            ui_set_evbit(fd, EV_SYN.into()).map_err(|e| format!("UI_SET_EVBIT: {e}"))?;
            ui_set_keybit(fd, code.into()).map_err(|e| format!("UI_SET_KEYBIT: {e}"))?;
        }
        create(&file, name)?;
        let path = find_node(name)?;
        Ok(Key { file, code, path })
    }

    /// Turns the ignition on (key down) or off (up).
    pub fn set(&mut self, on: bool) -> Result<(), String> {
        emit(&mut self.file, &[(EV_KEY, self.code, i32::from(on))])
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        // SAFETY: a plain ioctl on our own fd.
        let _ = unsafe { ui_dev_destroy(self.file.as_raw_fd()) };
    }
}

/// The `/dev/input/eventN` of the input device called `name`, once the
/// kernel has made it.
fn find_node(name: &str) -> Result<String, String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Ok(dir) = std::fs::read_dir("/sys/class/input") {
            for e in dir.flatten() {
                let node = e.file_name().to_string_lossy().to_string();
                let named = std::fs::read_to_string(e.path().join("device/name"))
                    .is_ok_and(|n| n.trim() == name);
                let dev = format!("/dev/input/{node}");
                if node.starts_with("event") && named && std::path::Path::new(&dev).exists() {
                    return Ok(dev);
                }
            }
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("no /dev/input node for {name}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

impl Drop for Accelerometer {
    fn drop(&mut self) {
        // SAFETY: a plain ioctl on our own fd.
        let _ = unsafe { ui_dev_destroy(self.file.as_raw_fd()) };
    }
}
