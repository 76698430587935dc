//! The `blackbox ota …` and `blackbox update` commands: thin wrappers that
//! turn the module's results into output and exit codes for RAUC, systemd
//! and the owner's shell.

use std::path::Path;
use std::time::{Duration, Instant};

use super::backend::Backend;
use super::gate::{self, Timing, Verdict};
use super::{bootinfo, install, version};

/// `blackbox ota backend ARGS`: RAUC's custom bootloader backend.
pub fn backend(args: &[String]) -> i32 {
    match Backend::appliance().call(args) {
        Ok(out) => {
            print!("{out}");
            0
        }
        Err(e) => {
            eprintln!("blackbox ota backend {}: {e}", args.join(" "));
            1
        }
    }
}

/// `blackbox ota pre-install`: RAUC's pre-install handler; refuses a bundle
/// older than the running system unless `blackbox update --force` allowed it.
pub fn pre_install(os_release: &Path) -> i32 {
    let Some(mount) = std::env::var_os("RAUC_BUNDLE_MOUNT_POINT") else {
        eprintln!(
            "blackbox ota pre-install: RAUC_BUNDLE_MOUNT_POINT is not set (run by RAUC only)"
        );
        return 2;
    };
    let force = Path::new(install::FORCE_FLAG).exists();
    let check = || -> Result<String, version::VersionError> {
        let running = version::running(os_release)?;
        let bundle = version::bundle(Path::new(&mount))?;
        version::allowed(&running, &bundle, force)?;
        Ok(format!("{running} -> {bundle}"))
    };
    match check() {
        Ok(what) => {
            println!(
                "blackbox: installing {what}{}",
                if force { " (forced)" } else { "" }
            );
            0
        }
        Err(e) => {
            eprintln!("blackbox: {e}");
            1
        }
    }
}

/// How many times the gate asks RAUC to commit a healthy slot.
const COMMIT_ATTEMPTS: u32 = 3;

/// `blackbox ota gate`: commit a healthy tryboot, roll back an unhealthy one.
pub fn gate(config: &crate::config::Config, hold: u64, deadline: u64, reboot: bool) -> i32 {
    let boot = match bootinfo::read(&bootinfo::Sources::default()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("blackbox ota gate: {e}");
            return 1;
        }
    };
    let slot = boot.slot().map_or("?".into(), |s| s.to_string());
    if !boot.tryboot {
        println!("blackbox: slot {slot} is committed; nothing to decide");
        return 0;
    }
    // /healthz in plain HTTP: on the appliance the redirect listener, which
    // answers it without sending it to HTTPS.
    let Some(addr) = config.http.plain_health_addr() else {
        eprintln!(
            "blackbox ota gate: HTTPS without http.redirect_listen leaves no plain /healthz to watch; slot {slot} cannot be judged healthy"
        );
        return 1;
    };
    println!("blackbox: slot {slot} runs as a tryboot; watching its health for {hold} s");
    let timing = Timing {
        hold: Duration::from_secs(hold),
        deadline: Duration::from_secs(deadline),
        every: Duration::from_secs(1),
    };
    let verdict = gate::watch(
        timing,
        || gate::look("blackbox.service", addr),
        std::thread::sleep,
        Instant::now,
    );
    let rauc = |what: &str| {
        std::process::Command::new("rauc")
            .args(["status", what])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    match verdict {
        Verdict::Healthy(after) => {
            // `rauc status mark-good` asks the RAUC service over D-Bus; a
            // slow or busy system can time the call out while the service
            // still commits. Only autoboot.txt says whether it did: look
            // there, and ask again, a few times.
            let committed = || Backend::appliance().running_is_default().unwrap_or(false);
            for attempt in 1..=COMMIT_ATTEMPTS {
                if rauc("mark-good") || committed() {
                    println!(
                        "blackbox: slot {slot} healthy after {} s: committed",
                        after.as_secs()
                    );
                    return 0;
                }
                eprintln!(
                    "blackbox: healthy, but rauc status mark-good failed (attempt {attempt} of {COMMIT_ATTEMPTS})"
                );
                std::thread::sleep(Duration::from_secs(10 * u64::from(attempt)));
            }
            // Not committed: the next boot, whenever it comes, is the old
            // slot's; this one keeps recording until then.
            eprintln!(
                "blackbox: slot {slot} stays on trial: the next boot returns to the old slot"
            );
            1
        }
        Verdict::Unhealthy(why) => {
            eprintln!("blackbox: slot {slot} is not healthy ({why}): rolling back");
            if !rauc("mark-bad") {
                eprintln!("blackbox: rauc status mark-bad failed; the reboot rolls back anyway");
            }
            if reboot && let Err(e) = install::reboot() {
                eprintln!("blackbox: {e}");
            }
            1
        }
    }
}

/// `blackbox ota status`: the firmware's view, for people and tests.
pub fn status() -> i32 {
    let b = Backend::appliance();
    match bootinfo::read(&b.boot) {
        Ok(i) => println!(
            "booted: partition {} (slot {}){}",
            i.partition,
            i.slot().map_or("?".into(), |s| s.to_string()),
            if i.tryboot { ", tryboot" } else { "" }
        ),
        Err(e) => println!("booted: unknown ({e})"),
    }
    match b.bootcfg.read() {
        Ok(a) => println!(
            "autoboot.txt: default partition {}, tryboot partition {}",
            a.default, a.tryboot
        ),
        Err(e) => println!("autoboot.txt: {e}"),
    }
    if let Some(s) = b.armed() {
        println!("armed: a tryboot of slot {s} at the next reboot");
    }
    0
}

/// `blackbox update FILE` / `blackbox update --queued DIR`.
pub fn update(file: Option<&Path>, queued: Option<&Path>, force: bool, reboot: bool) -> i32 {
    let result = match (file, queued) {
        (Some(f), None) => install::update(f, force, reboot),
        (None, Some(dir)) => install::queued(dir, reboot),
        _ => {
            eprintln!("blackbox update: give a bundle FILE or --queued DIR");
            return 2;
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("blackbox: {e}");
            1
        }
    }
}
