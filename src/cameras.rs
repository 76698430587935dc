//! The set of cameras: each one's id, settings, bus, counters and
//! heartbeats ([`CameraUnit`]), looked up by id or walked in order by the
//! HTTP side, the recorder and supervision; and starting and stopping their
//! pipelines on one shared encoder pool ([`Running`]).
//!
//! `--source auto` is resolved here, once, at start-up: every camera
//! `rpicam-vid --list-cameras` names, then every V4L2 device that streams a
//! format blackbox uses; the test pattern when there is none.

use crate::caption::Captioner;
use crate::gps::Gps;
use std::sync::Arc;

use crate::bus::Bus;
use crate::capture;
use crate::config::{CameraConfig, Config, SourceKind};
use crate::encoders::EncoderPool;
use crate::pipeline::{Camera, Outputs, Pipeline};
use crate::stats::Stats;
use crate::supervise::{CameraBeats, Health};

/// One camera while blackbox runs.
pub struct CameraUnit {
    pub id: String,
    /// Its settings, `auto` resolved.
    pub config: CameraConfig,
    /// The JPEG quality it is encoded at.
    pub quality: u8,
    /// Where its encoded frames meet their consumers.
    pub bus: Arc<Bus>,
    pub stats: Arc<Stats>,
    pub beats: Arc<CameraBeats>,
}

/// Every camera, in configuration order (the first is the one `/video_feed`
/// shows).
pub struct Cameras {
    units: Vec<Arc<CameraUnit>>,
}

impl Cameras {
    /// The configured cameras (with `auto` resolved), each watched by
    /// `health`.
    pub fn new(config: &Config, health: &Health) -> Self {
        let list = resolve(config.cameras());
        let units = list
            .into_iter()
            .map(|c| {
                Arc::new(CameraUnit {
                    id: c.id.clone(),
                    quality: c.quality_or(&config.encode),
                    beats: health.add_camera(&c.id),
                    config: c,
                    bus: Bus::new(),
                    stats: Arc::new(Stats::default()),
                })
            })
            .collect();
        Self { units }
    }

    /// The camera named `id`.
    pub fn get(&self, id: &str) -> Option<&Arc<CameraUnit>> {
        self.units.iter().find(|u| u.id == id)
    }

    /// The first camera (there is always one).
    pub fn first(&self) -> &Arc<CameraUnit> {
        &self.units[0]
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<CameraUnit>> {
        self.units.iter()
    }

    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// Starts every camera's pipeline on one pool of `workers` encoders.
    pub fn start(
        &self,
        workers: usize,
        gps: &Arc<Gps>,
        parking: Option<&Arc<crate::parking::Parking>>,
    ) -> std::io::Result<Running> {
        let pool = EncoderPool::start(workers, self.units.len())?;
        let mut pipelines = Vec::with_capacity(self.units.len());
        for (lane, unit) in self.units.iter().enumerate() {
            let (for_open, for_presence) = (unit.config.clone(), unit.config.clone());
            let quality = unit.quality;
            let camera = Camera {
                open: Box::new(move || capture::open(&for_open, quality)),
                present: Box::new(move || capture::present(&for_presence)),
                placeholder_size: unit.config.size,
                // rpicam-vid turns its camera itself (`--rotation 180`).
                rotate: unit.config.rotation == crate::config::Rotation::Half
                    && unit.config.source != SourceKind::Rpicam,
            };
            let out = Outputs {
                bus: unit.bus.clone(),
                stats: unit.stats.clone(),
                beats: unit.beats.clone(),
                lane: pool.lane(lane),
                quality,
                caption: Captioner::new(unit.config.caption, gps.clone()).map(Arc::new),
                caption_mjpeg: unit.config.caption_mjpeg,
                parking: parking.cloned(),
            };
            pipelines.push(Pipeline::start(camera, out, &unit.id)?);
        }
        Ok(Running { pipelines, pool })
    }

    /// Ends every camera's bus: viewers, the tap and the recorder see the
    /// end of their streams.
    pub fn close(&self) {
        for u in &self.units {
            u.bus.close();
        }
    }
}

/// The cameras' pipelines and their encoder pool, running.
pub struct Running {
    pipelines: Vec<Pipeline>,
    pool: EncoderPool,
}

impl Running {
    /// Stops capture on every camera, then lets the encoders finish.
    pub fn shutdown(self) {
        for p in self.pipelines {
            p.shutdown();
        }
        self.pool.shutdown();
    }
}

/// The one `auto` camera becomes every camera found (`front`, `rear`, then
/// `camera3`…), or the test pattern; other lists are returned as they are.
fn resolve(list: Vec<CameraConfig>) -> Vec<CameraConfig> {
    if list.len() != 1 || list[0].source != SourceKind::Auto {
        return list;
    }
    let base = &list[0];
    let found = capture::discover(base);
    for (c, why) in found.iter().map(|c| (c, capture::describe_choice(c))) {
        log::info!("camera {}: chose {why}", c.id);
    }
    found
}
