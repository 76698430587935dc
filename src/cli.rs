//! The command line: `blackbox run [flags]`. Parses flags, loads the
//! configuration, starts logging, and turns every outcome into an exit code
//! (0 done, 1 failed while running, 2 bad usage or configuration).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::app::{self, AppError};
use crate::config::{Config, Overrides};

#[derive(Parser, Debug)]
#[command(
    name = "blackbox",
    version,
    about = "Dashcam firmware: capture, encode, serve live MJPEG and record",
    long_about = "blackbox captures frames from a camera (or its built-in test pattern), \
encodes them to JPEG, and serves a live view, snapshots and status over HTTP.\n\n\
Exit codes: 0 clean shutdown, 1 runtime failure, 2 bad usage or configuration."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Capture and serve until SIGTERM or SIGINT.
    ///
    /// Values come from the defaults, then the config file, then these
    /// flags. Logging goes to stderr; set RUST_LOG (e.g. RUST_LOG=debug)
    /// for more.
    Run(Box<RunArgs>),
    /// Finish every interrupted recording (.mkv.part) in DIR, a data directory
    /// or a folder of segments: cut at the last complete frame, closed and
    /// renamed; a file with nothing to keep goes to damaged/.
    Recover {
        /// The data directory (or a recordings folder)
        dir: PathBuf,
    },
    /// Check a recording: frames, duration, gaps; exit 1 if it is damaged.
    ///
    /// A file is ok only if its structure, every frame's checksum, its cues
    /// and statistics all hold and every frame decodes.
    Verify {
        /// A .mkv (or .mkv.part) file
        file: PathBuf,
        /// Check structure and checksums but do not decode the frames
        #[arg(long)]
        quick: bool,
    },
    /// Set the password (stored as an argon2id hash in FILE).
    ///
    /// On a terminal it is asked twice, without echo; otherwise one line is
    /// read from stdin (`echo 'secret' | blackbox passwd FILE`).
    Passwd {
        /// The password file (http.password_file)
        file: PathBuf,
    },
    /// Give a new dashcam a unique password, if FILE holds none.
    ///
    /// The clear text goes to --show-in (the boot partition) and stdout
    /// (the console); the page asks the owner to change it.
    Firstboot {
        /// The password file (http.password_file); without it, only the
        /// certificate (--tls-dir) is made
        #[arg(long, value_name = "FILE", required_unless_present_any = ["tls_dir", "wifi_ap"])]
        password_file: Option<PathBuf>,
        /// Also write the clear text here (e.g. /boot/firmware/blackbox-password.txt)
        #[arg(long, value_name = "FILE")]
        show_in: Option<PathBuf>,
        /// Also make the device's HTTPS key and certificate here if there
        /// are none (cert.pem, key.pem), and show its fingerprint
        #[arg(long, value_name = "DIR")]
        tls_dir: Option<PathBuf>,
        /// A name or address the new certificate names besides the
        /// device's own (localhost, its host name, NAME.local,
        /// blackbox.local, 127.0.0.1): the access point's address
        #[arg(long, value_name = "NAME", requires = "tls_dir")]
        tls_name: Vec<String>,
        /// Also make the Wi-Fi access point's name and passphrase here if
        /// there is no such file (wifi.ap_file), and show them
        #[arg(long, value_name = "FILE")]
        wifi_ap: Option<PathBuf>,
    },
    /// Install an update bundle (signed .raucb) and reboot into it.
    ///
    /// The new version boots once on trial and is kept only after it has
    /// proved healthy; anything else boots the old one again. Needs root.
    Update {
        /// The bundle
        file: Option<PathBuf>,
        /// Allow a version older than the running one
        #[arg(long)]
        force: bool,
        /// Install, but do not reboot
        #[arg(long)]
        no_reboot: bool,
        /// Install the bundle the web page left in DIR (blackbox-update.service)
        #[arg(long, value_name = "DIR", conflicts_with = "file")]
        queued: Option<PathBuf>,
    },
    /// The appliance's update machinery (called by RAUC and systemd).
    #[command(subcommand)]
    Ota(OtaCommand),
    /// The dashcam's Wi-Fi (called by its systemd units).
    #[command(subcommand)]
    Wifi(WifiCommand),
    /// List V4L2 devices: inputs, pixel formats, sizes and frame rates.
    ///
    /// With no DEVICE, every /dev/video* node is listed, then every camera
    /// `--source auto` would use (the Pi cameras rpicam-vid lists, then the
    /// V4L2 cameras), by the ids it would give them.
    Probe {
        /// A device node, e.g. /dev/video0
        device: Option<PathBuf>,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum WifiCommand {
    /// Run the radio's supervisor (as root; blackbox-wifi.service): the
    /// access point (hostapd) or a known network (wpa_supplicant), as
    /// wifi.mode says, until SIGTERM
    Run {
        /// The service's config
        #[arg(
            long,
            value_name = "FILE",
            default_value = "/etc/blackbox/blackbox.toml"
        )]
        config: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum OtaCommand {
    /// RAUC's custom bootloader backend: get-primary, set-primary SLOT,
    /// get-state SLOT, set-state SLOT good|bad, get-current.
    Backend {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// RAUC's pre-install handler: refuse a bundle older than the system.
    PreInstall {
        /// Where the running version is (IMAGE_VERSION=)
        #[arg(long, default_value = "/etc/os-release")]
        os_release: PathBuf,
    },
    /// After an update's trial boot: commit it once healthy, else roll back.
    Gate {
        /// The service's config (for the HTTP address of /healthz)
        #[arg(
            long,
            value_name = "FILE",
            default_value = "/etc/blackbox/blackbox.toml"
        )]
        config: PathBuf,
        /// Seconds of unbroken health that commit the update
        #[arg(long, default_value_t = 30)]
        hold: u64,
        /// Seconds after which an update that never held is rolled back
        #[arg(long, default_value_t = 300)]
        deadline: u64,
        /// Mark a failed update bad but do not reboot
        #[arg(long)]
        no_reboot: bool,
    },
    /// What the firmware booted and what it will boot next.
    Status,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// TOML config file (sections [camera], [encode], [http], [tap]; see README)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Frame source: testsrc (the built-in test pattern), v4l2 (a V4L2 camera) or rpicam (the Pi camera via rpicam-vid) [default: testsrc]
    #[arg(long, value_name = "KIND")]
    source: Option<String>,
    /// V4L2 device node [default: /dev/video0]
    #[arg(long, value_name = "PATH")]
    device: Option<String>,
    /// V4L2 input index to select (see `blackbox probe`) [default: the current input]
    #[arg(long, value_name = "N")]
    input: Option<String>,
    /// Frame size, WIDTHxHEIGHT, both even [default: 1280x720]
    #[arg(long, value_name = "WxH")]
    size: Option<String>,
    /// Frames per second, 1-240 [default: 30]
    #[arg(long, value_name = "N")]
    fps: Option<String>,
    /// What the camera delivers: yuyv, nv12, yu12 (encoded here), mjpeg (passed through) or auto (MJPEG if offered) [default: auto]
    #[arg(long, value_name = "FORMAT")]
    pixel_format: Option<String>,
    /// JPEG quality, 1-100 [default: 80]
    #[arg(long, value_name = "Q")]
    quality: Option<String>,
    /// HTTP address, IP:PORT; port 0 picks a free port [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// The password file (written by `blackbox passwd`); needed to listen beyond loopback
    #[arg(long, value_name = "FILE")]
    password_file: Option<String>,
    /// Serve every frame over TCP at IP:PORT (4-byte big-endian length, then the JPEG)
    #[arg(long, value_name = "ADDR")]
    tap: Option<String>,
    /// Data directory for recordings and events [default: blackbox-data]
    #[arg(long, value_name = "DIR")]
    data: Option<String>,
    /// Run the recorder: on or off [default: on]
    #[arg(long, value_name = "on|off")]
    record: Option<String>,
    /// Read the GPS from gpsd: on or off [default: on]
    #[arg(long, value_name = "on|off")]
    gps: Option<String>,
    /// gpsd's address, IP:PORT [default: 127.0.0.1:2947]
    #[arg(long, value_name = "ADDR")]
    gps_server: Option<String>,
    /// The accelerometer: auto, off, or an input or IIO device's path [default: auto]
    #[arg(long, value_name = "DEVICE")]
    impact_sensor: Option<String>,
    /// An acceleration over this many g (gravity removed) is an impact [default: 1.5]
    #[arg(long, value_name = "G")]
    impact_threshold: Option<String>,
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    match cli.command {
        Command::Run(args) => run(*args),
        Command::Probe { device, json } => probe(device, json),
        Command::Passwd { file } => match crate::account::passwd(&file) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("blackbox: {e}");
                1
            }
        },
        Command::Firstboot {
            password_file,
            show_in,
            tls_dir,
            tls_name,
            wifi_ap,
        } => {
            match crate::account::firstboot(&crate::account::Plan {
                password_file: password_file.as_deref(),
                show_in: show_in.as_deref(),
                tls_dir: tls_dir.as_deref(),
                tls_names: &tls_name,
                wifi_ap: wifi_ap.as_deref(),
            }) {
                Ok(crate::account::FirstBoot::AlreadySet) => {
                    if password_file.is_some() {
                        eprintln!("blackbox: a password is already set; it stays as it is");
                    }
                    0
                }
                Ok(_) => 0,
                Err(e) => {
                    eprintln!("blackbox: {e}");
                    1
                }
            }
        }
        Command::Update {
            file,
            force,
            no_reboot,
            queued,
        } => crate::ota::command::update(file.as_deref(), queued.as_deref(), force, !no_reboot),
        Command::Ota(cmd) => ota(cmd),
        Command::Recover { dir } => recover(&dir),
        Command::Verify { file, quick } => verify(&file, quick),
        Command::Wifi(cmd) => wifi(cmd),
    }
}

fn wifi(cmd: WifiCommand) -> i32 {
    let WifiCommand::Run { config } = cmd;
    match Config::load(Some(&config), &Overrides::default()) {
        Ok(c) => crate::wifi::supervisor::run(&c.wifi),
        Err(e) => {
            eprintln!("blackbox: {e}");
            2
        }
    }
}

fn ota(cmd: OtaCommand) -> i32 {
    use crate::ota::command;
    match cmd {
        OtaCommand::Backend { args } => command::backend(&args),
        OtaCommand::PreInstall { os_release } => command::pre_install(&os_release),
        OtaCommand::Gate {
            config,
            hold,
            deadline,
            no_reboot,
        } => {
            // A new version whose config does not load is exactly what the
            // gate must roll back, so it watches the default address then.
            let c = match Config::load(Some(&config), &Overrides::default()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("blackbox: {e}; watching the default address");
                    match Config::load(None, &Overrides::default()) {
                        Ok(c) => c,
                        Err(e) => {
                            eprintln!("blackbox: {e}");
                            return 2;
                        }
                    }
                }
            };
            command::gate(&c, hold, deadline, !no_reboot)
        }
        OtaCommand::Status => command::status(),
    }
}

fn recover(dir: &std::path::Path) -> i32 {
    use crate::record::store::{Outcome, Store};
    if !dir.is_dir() {
        eprintln!("blackbox: {} is not a directory", dir.display());
        return 2;
    }
    // The data directory a running blackbox would hold: DIR itself, or
    // the one above a bare recordings/ or events/ folder.
    let root = if !dir.join("recordings").is_dir()
        && dir
            .file_name()
            .is_some_and(|n| n == "recordings" || n == "events")
    {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    // By hand: a holder is a running blackbox, said at once (a short wait
    // covers a child of one that just died).
    let _lock = match crate::record::lock::take_within(root, std::time::Duration::from_secs(2)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("blackbox: {e}");
            return 1;
        }
    };
    let store = if dir.join("recordings").is_dir() {
        Store::at(dir)
    } else {
        // A bare folder of segments: recover in place.
        let mut s = Store::at(dir);
        s.recordings = dir.to_path_buf();
        s.events = dir.join("events");
        s
    };
    let report = store.recover();
    if report.is_empty() {
        println!("nothing to recover in {}", dir.display());
    }
    let mut damaged = 0;
    for r in &report {
        let outcome = match r.outcome {
            Outcome::Recovered => "recovered",
            Outcome::Damaged => "damaged",
            Outcome::Deferred => "not recovered",
        };
        println!("{}: {outcome} ({} frames; {})", r.file, r.frames, r.detail);
        damaged += usize::from(r.outcome != Outcome::Recovered);
    }
    if damaged > 0 { 1 } else { 0 }
}

fn verify(file: &std::path::Path, quick: bool) -> i32 {
    match crate::record::verify::verify(file, !quick) {
        Ok(report) => {
            print!("{}", report.text());
            if report.damaged() { 1 } else { 0 }
        }
        Err(e) => {
            eprintln!("blackbox: {}: {e}", file.display());
            1
        }
    }
}

fn probe(device: Option<PathBuf>, json: bool) -> i32 {
    match crate::probe::probe(device.as_deref()) {
        Ok(reports) => {
            if json {
                match serde_json::to_string_pretty(&reports) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("blackbox: {e}");
                        return 1;
                    }
                }
            } else {
                print!("{}", crate::probe::to_text(&reports));
                if device.is_none() {
                    print!("{}", crate::probe::auto_text());
                }
            }
            0
        }
        Err(e) => {
            eprintln!("blackbox: {e}");
            1
        }
    }
}

fn run(args: RunArgs) -> i32 {
    let mut overrides = Overrides::default();
    for (key, value) in [
        ("camera.source", args.source),
        ("camera.device", args.device),
        ("camera.input", args.input),
        ("camera.size", args.size),
        ("camera.fps", args.fps),
        ("camera.pixel_format", args.pixel_format),
        ("encode.quality", args.quality),
        ("http.listen", args.listen),
        ("http.password_file", args.password_file),
        ("tap.listen", args.tap),
        ("record.dir", args.data),
        ("record.enabled", args.record),
        ("gps.enabled", args.gps),
        ("gps.server", args.gps_server),
        ("impact.sensor", args.impact_sensor),
        ("impact.threshold_g", args.impact_threshold),
    ] {
        overrides.set(key, value);
    }
    let config = match Config::load(args.config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("blackbox: {e}");
            return 2;
        }
    };
    match app::run(config) {
        Ok(()) => 0,
        Err(e @ (AppError::Bind { .. } | AppError::Data(..) | AppError::Password(_))) => {
            eprintln!("blackbox: {e}");
            2
        }
        Err(e) => {
            eprintln!("blackbox: {e}");
            1
        }
    }
}
