//! Privileges blackbox holds only until its sockets are bound. On the
//! appliance systemd hands the service `CAP_NET_BIND_SERVICE` (ports 80 and
//! 443) as an ambient capability, and an ambient capability passes to every
//! program the service starts (`rpicam-vid`). Once the listeners exist,
//! [`keep_from_children`] clears the ambient set, so no child ever binds a
//! privileged port. (The service's own copy stays: the seccomp filter,
//! rightly, forbids `capset`, and binding a port is all it allows.)

/// Clears the ambient capability set; logs (once, it runs once) if the
/// kernel refuses.
pub fn keep_from_children() {
    // SAFETY: PR_CAP_AMBIENT with PR_CAP_AMBIENT_CLEAR_ALL reads no memory;
    // the remaining arguments must be zero, and are.
    let r = unsafe {
        nix::libc::prctl(
            nix::libc::PR_CAP_AMBIENT,
            nix::libc::PR_CAP_AMBIENT_CLEAR_ALL as nix::libc::c_ulong,
            0 as nix::libc::c_ulong,
            0 as nix::libc::c_ulong,
            0 as nix::libc::c_ulong,
        )
    };
    if r != 0 {
        log::warn!(
            "could not clear the ambient capabilities, so programs blackbox starts inherit them: {}",
            std::io::Error::last_os_error()
        );
    }
}
