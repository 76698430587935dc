//! A virtual accelerometer made with the kernel's uinput: an input device
//! with `INPUT_PROP_ACCELEROMETER` and the axes X, Y and Z in thousandths
//! of a g (resolution 1000 units per g, as the input ABI defines it for
//! accelerometers), whose samples the test writes. Dropping it removes the
//! device, as unplugging a sensor would.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;

use nix::libc;

const EV_SYN: u16 = 0x00;
const EV_ABS: u16 = 0x03;
const SYN_REPORT: u16 = 0;
const INPUT_PROP_ACCELEROMETER: libc::c_int = 0x06;
/// Units per g.
pub const PER_G: f64 = 1000.0;

nix::ioctl_write_int!(ui_set_evbit, b'U', 100);
nix::ioctl_write_int!(ui_set_absbit, b'U', 103);
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
            let mut setup: libc::uinput_setup = std::mem::zeroed();
            setup.id.bustype = 0x18; // BUS_I2C, like a board's sensor
            setup.id.vendor = 0x1234;
            setup.id.product = 0x5678;
            for (d, s) in setup.name.iter_mut().zip(name.bytes().take(79)) {
                *d = s as libc::c_char;
            }
            ui_dev_setup(fd, &setup).map_err(|e| err("UI_DEV_SETUP", e))?;
            ui_dev_create(fd).map_err(|e| err("UI_DEV_CREATE", e))?;
        }
        Ok(Accelerometer { file })
    }

    /// Reports one sample, in g.
    pub fn sample(&mut self, g: [f64; 3]) -> Result<(), String> {
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
        for (code, v) in g.iter().enumerate() {
            put(EV_ABS, code as u16, (v * PER_G).round() as i32);
        }
        put(EV_SYN, SYN_REPORT, 0);
        self.file
            .write_all(&bytes)
            .map_err(|e| format!("writing to uinput: {e}"))
    }
}

impl Drop for Accelerometer {
    fn drop(&mut self) {
        // SAFETY: a plain ioctl on our own fd.
        let _ = unsafe { ui_dev_destroy(self.file.as_raw_fd()) };
    }
}
