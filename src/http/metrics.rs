//! `/metrics`: every counter of `/api/status` in Prometheus' text exposition
//! format (version 0.0.4), one family per quantity with its `# HELP` and
//! `# TYPE`, labels escaped as the format requires. The README's list of
//! metric names is checked against this output by a test.

use std::fmt::Write as _;

use super::status::{CameraStatus, Status};

/// A sample's label beyond `camera` (an empty name for none) and value.
type Sample = (&'static str, &'static str, f64);
/// Labels of one sample, and how many of them are used.
type Labels<'a> = ([(&'a str, &'a str); 2], usize);

/// The exposition being written.
struct Exposition(String);

impl Exposition {
    /// One metric family and its samples: (labels, value); labels as
    /// (name, value) pairs.
    fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[(&[(&str, &str)], f64)]) {
        let out = &mut self.0;
        let _ = writeln!(out, "# HELP blackbox_{name} {help}");
        let _ = writeln!(out, "# TYPE blackbox_{name} {kind}");
        for (labels, value) in samples {
            let _ = write!(out, "blackbox_{name}");
            if !labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let escaped = v
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n");
                    let _ = write!(out, "{k}=\"{escaped}\"");
                }
                out.push('}');
            }
            let _ = writeln!(out, " {value}");
        }
    }

    /// A family whose samples are per camera: (camera, label, value of the
    /// label, sample); an empty label name is none beyond `camera`.
    fn camera_family(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        samples: &[(&str, &str, &str, f64)],
    ) {
        let labelled: Vec<(Labels<'_>, f64)> = samples
            .iter()
            .map(|(cam, k, v, x)| {
                let used = if k.is_empty() { 1 } else { 2 };
                (([("camera", *cam), (*k, *v)], used), *x)
            })
            .collect();
        let rows: Vec<(&[(&str, &str)], f64)> = labelled
            .iter()
            .map(|((labels, n), x)| (&labels[..*n], *x))
            .collect();
        self.family(name, kind, help, &rows);
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help, &[(&[], value)]);
    }
}

fn flag(b: bool) -> f64 {
    f64::from(u8::from(b))
}

/// The text for `/metrics`.
pub fn exposition(st: &Status) -> String {
    let mut m = Exposition(String::new());
    // Per camera: every sample carries the camera's id.
    let cams = &st.cameras;
    let per = |pick: &dyn Fn(&CameraStatus) -> Vec<Sample>| {
        cams.iter()
            .flat_map(|c| {
                pick(c)
                    .into_iter()
                    .map(move |(k, v, x)| (c.id.as_str(), k, v, x))
            })
            .collect::<Vec<_>>()
    };
    m.camera_family(
        "frames_total",
        "counter",
        "Frames through each stage, per camera.",
        &per(&|c| {
            let f = &c.frames;
            vec![
                ("stage", "captured", f.captured as f64),
                ("stage", "encoded", f.encoded as f64),
                ("stage", "passed_through", f.passed_through as f64),
                ("stage", "published", f.published as f64),
                ("stage", "idle", f.idle as f64),
                ("stage", "placeholder", f.placeholders as f64),
            ]
        }),
    );
    m.camera_family(
        "frames_dropped_total",
        "counter",
        "Frames dropped, per camera, by reason.",
        &per(&|c| {
            let d = &c.drops;
            vec![
                ("reason", "source", d.source as f64),
                ("reason", "encoder_busy", d.encoder_busy as f64),
                ("reason", "encode_error", d.encode_error as f64),
                ("reason", "convert", d.convert as f64),
                ("reason", "corrupt", d.corrupt as f64),
                ("reason", "bad_frame", d.bad_frame as f64),
                ("reason", "viewer_skipped", d.viewer_skipped as f64),
                ("reason", "ordered_overflow", d.ordered_overflow as f64),
            ]
        }),
    );
    m.camera_family(
        "capture_errors_total",
        "counter",
        "Source errors that closed and reopened the camera.",
        &per(&|c| vec![("", "", c.drops.capture_errors as f64)]),
    );
    m.camera_family(
        "fps",
        "gauge",
        "Frames per second, per camera: target, measured capture, measured output.",
        &per(&|c| {
            vec![
                ("kind", "target", f64::from(c.fps.target)),
                ("kind", "capture", c.fps.capture),
                ("kind", "output", c.fps.output),
            ]
        }),
    );
    m.camera_family(
        "encode_mean_milliseconds",
        "gauge",
        "Mean JPEG encode time per frame, per camera.",
        &per(&|c| vec![("", "", c.encode.mean_ms)]),
    );
    m.camera_family(
        "capture_streaming",
        "gauge",
        "1 while frames flow from the camera.",
        &per(&|c| vec![("", "", flag(c.source.state == "streaming"))]),
    );
    m.camera_family(
        "viewers",
        "gauge",
        "Live MJPEG viewers, per camera.",
        &per(&|c| vec![("", "", c.viewers as f64)]),
    );
    m.one(
        "tap_clients",
        "gauge",
        "Connected frame-tap clients.",
        st.tap_clients as f64,
    );
    m.one(
        "http_connections",
        "gauge",
        "Open HTTP connections.",
        st.http_connections as f64,
    );
    m.one(
        "http_refused_total",
        "counter",
        "Connections turned away because every one allowed was busy.",
        st.http_refused as f64,
    );
    m.one(
        "uptime_seconds",
        "gauge",
        "Seconds since start.",
        st.uptime_seconds,
    );
    gps(&mut m, &st.gps);
    impact(&mut m, &st.impact);
    parking(&mut m, &st.parking);
    let Some(r) = &st.recorder else {
        m.one("recording", "gauge", "1 while recording is on.", 0.0);
        return m.0;
    };
    let rs = &r.status;
    m.one(
        "recording",
        "gauge",
        "1 while recording is on.",
        flag(rs.recording),
    );
    m.one(
        "recorder_failing",
        "gauge",
        "1 while recording is on but frames cannot be written.",
        flag(rs.state == "failing"),
    );
    m.family(
        "recorder_frames_total",
        "counter",
        "Frames the recorder wrote, lost to a failing or full card, or dropped because the disk fell behind.",
        &[
            (&[("result", "written")], rs.frames_written as f64),
            (&[("result", "lost")], rs.frames_lost as f64),
            (&[("result", "dropped")], r.dropped as f64),
        ],
    );
    m.family(
        "recorder_segments_total",
        "counter",
        "Segments finished, ended early and recovered after a failed sync, and deleted by loop recording.",
        &[
            (&[("event", "finished")], rs.segments_finished as f64),
            (&[("event", "recovered")], rs.segments_recovered as f64),
            (&[("event", "deleted")], rs.segments_deleted as f64),
        ],
    );
    m.one(
        "recorder_write_errors_total",
        "counter",
        "Failed writes, segment creations, finishes and deletions.",
        rs.write_errors as f64,
    );
    m.one(
        "recorder_sync_errors_total",
        "counter",
        "Failed fdatasyncs of segments and fsyncs of their directory.",
        rs.sync_errors as f64,
    );
    m.one(
        "recorder_last_sync_age_seconds",
        "gauge",
        "Seconds since the last fdatasync (-1: none yet).",
        rs.last_sync_age_ms.map_or(-1.0, |ms| ms as f64 / 1000.0),
    );
    m.one(
        "recorder_max_sync_seconds",
        "gauge",
        "The longest fdatasync so far.",
        rs.max_sync_ms / 1000.0,
    );
    m.one(
        "recorder_max_command_seconds",
        "gauge",
        "The longest the recorder thread spent on one command or event.",
        rs.max_command_ms / 1000.0,
    );
    m.one(
        "recorder_segments_stored",
        "gauge",
        "Finished segments on the card (recordings and events).",
        rs.segments_stored as f64,
    );
    m.family(
        "storage_bytes",
        "gauge",
        "Bytes: used by recordings (with the open segment's data) and by events; the card's total, used and free.",
        &[
            (&[("kind", "recordings")], rs.recordings_bytes as f64),
            (&[("kind", "events")], rs.events_bytes as f64),
            (&[("kind", "disk_total")], rs.disk.total as f64),
            (&[("kind", "disk_used")], rs.disk.used as f64),
            (&[("kind", "disk_free")], rs.disk.free as f64),
        ],
    );
    m.0
}

/// The accelerometer's families: whether it reads, its samples, impacts.
fn impact(m: &mut Exposition, i: &crate::impact::ImpactStatus) {
    m.one(
        "impact_sensor_up",
        "gauge",
        "1 while an accelerometer is being read.",
        flag(i.state == "reading"),
    );
    m.one(
        "impact_samples_total",
        "counter",
        "Accelerometer samples read.",
        i.samples as f64,
    );
    m.one(
        "impact_acceleration_g",
        "gauge",
        "The last sample's acceleration without gravity, in g (NaN: none).",
        i.magnitude_g.unwrap_or(f64::NAN),
    );
    m.one(
        "impact_events_total",
        "counter",
        "Impacts detected (each an event).",
        i.impacts as f64,
    );
    m.one(
        "impact_last_peak_g",
        "gauge",
        "The last impact's peak acceleration, in g (NaN: none yet).",
        i.last_impact.map_or(f64::NAN, |l| l.peak_g),
    );
    m.one(
        "impact_sensor_failures_total",
        "counter",
        "Times the accelerometer could not be opened or read.",
        i.failures as f64,
    );
}

/// Parking mode's families: the phase, the line, what was recorded.
fn parking(m: &mut Exposition, p: &crate::parking::ParkingStatus) {
    m.family(
        "parking_phase",
        "gauge",
        "1 for the phase the car is in: driving, parked, or cut-off (parked past parking.cutoff_hours).",
        &[
            (&[("phase", "driving")], flag(p.phase == "driving")),
            (&[("phase", "parked")], flag(p.phase == "parked")),
            (&[("phase", "cut-off")], flag(p.phase == "cut-off")),
        ],
    );
    m.one(
        "parking_ignition_on",
        "gauge",
        "The ignition line: 1 on, 0 off, NaN when there is none or it cannot be read.",
        p.ignition.on.map_or(f64::NAN, flag),
    );
    m.one(
        "parking_motion_clips_total",
        "counter",
        "Clips recorded while parked because something moved.",
        p.motion_clips as f64,
    );
    m.one(
        "parking_timelapse_frames_total",
        "counter",
        "Time-lapse frames recorded while parked.",
        p.timelapse_frames as f64,
    );
    m.one(
        "parking_lighting_changes_total",
        "counter",
        "Frames the motion detector judged a change of light, not motion.",
        p.lighting_changes as f64,
    );
}

/// The GPS families: the fix, where, how fast, how old, and the link.
fn gps(m: &mut Exposition, g: &crate::gps::GpsStatus) {
    m.one(
        "gps_up",
        "gauge",
        "1 while blackbox is connected to gpsd.",
        flag(matches!(g.state, "fix" | "no-fix")),
    );
    m.one(
        "gps_fix",
        "gauge",
        "The current fix: 0 none, 2 2D, 3 3D.",
        match g.fix {
            "3d" => 3.0,
            "2d" => 2.0,
            _ => 0.0,
        },
    );
    // Unknown (no current fix) is NaN, so every family is always there.
    m.family(
        "gps_position_degrees",
        "gauge",
        "The current fix's position, WGS84 (NaN without a fix).",
        &[
            (&[("axis", "lat")], g.lat.unwrap_or(f64::NAN)),
            (&[("axis", "lon")], g.lon.unwrap_or(f64::NAN)),
        ],
    );
    m.one(
        "gps_speed_meters_per_second",
        "gauge",
        "Speed over ground of the current fix (NaN without one).",
        g.speed.unwrap_or(f64::NAN),
    );
    m.one(
        "gps_satellites_used",
        "gauge",
        "Satellites used in the fix, from gpsd's last SKY report (NaN: none yet).",
        g.sats_used.map_or(f64::NAN, f64::from),
    );
    m.one(
        "gps_fix_age_seconds",
        "gauge",
        "Seconds since the last fix arrived (-1: none yet).",
        g.age_seconds.unwrap_or(-1.0),
    );
    m.family(
        "gps_reports_total",
        "counter",
        "Lines from gpsd: reports read, and lines that were not valid reports.",
        &[
            (&[("result", "read")], g.reports as f64),
            (&[("result", "malformed")], g.malformed as f64),
        ],
    );
    m.one(
        "gps_connects_total",
        "counter",
        "Connections made to gpsd.",
        g.connects as f64,
    );
}
