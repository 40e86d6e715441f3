//! A downstream user's own array and own face model, through the public API only.
//!
//! This file is written as a crate outside the workspace would write it: it implements
//! [`radar_sim::ArrayGeometry`] for a Mills-cross MIMO array ([`MillsCross`]: transmitters in a
//! row along x, receivers in a column along y, whose virtual aperture is a uniform rectangular
//! array) and [`morphable::MorphableModel`] for a parametric face-like surface
//! ([`EllipsoidFace`]: a triangulated ellipsoid cap with a nose, whose shape coefficients scale
//! its width, height and depth and whose expression coefficient bulges the mouth). It then
//! places one face in front of the array ([`morphable::Placement`]), simulates the radar signal
//! ([`radar_sim::Simulator`]), back-projects it onto a voxel grid
//! ([`backproject::image_products`]) and writes amplitude and depth PNGs.
//!
//! ```sh
//! cargo run --release -p radar-face --example downstream -- out/downstream
//! ```
//!
//! Units: the face model works in millimetres (model space: y up, nose toward +z); radar space
//! is in metres (array plane z = 0, boresight +z), as everywhere in radar-face.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use backproject::{
    AxisRange, BackprojectError, ColourMap, DynamicRange, ImageProducts, RangeCompressed,
    VoxelGrid, image_products,
};
use morphable::{Mesh, MorphableError, MorphableModel, Placement, Pose};
use nalgebra::Point3;
use radar_sim::{
    ArrayGeometry, FrequencySweep, Material, RadarError, Scene, SimulationConfig, SimulationStats,
    Simulator, Surface, validate_array,
};

/// A Mills-cross MIMO array: `n_tx` transmitters in a row along x (y = 0) and `n_rx`
/// receivers in a column along y (x = 0), both centred on the origin at the same pitch, in the
/// array plane z = 0 (m).
///
/// The midpoint of channel (t, r) is (x_t/2, y_r/2, 0), so the virtual aperture is a uniform
/// rectangular array of `n_tx × n_rx` points at half the pitch: a 2-D aperture from
/// `n_tx + n_rx` elements. With a pitch below one wavelength the virtual pitch is below λ/2,
/// so the round-trip phase (2k per metre of virtual aperture) has no grating lobes.
#[derive(Debug, Clone, PartialEq)]
pub struct MillsCross {
    tx: Vec<Point3<f64>>,
    rx: Vec<Point3<f64>>,
    pitch_m: f64,
}

impl MillsCross {
    /// `n_tx` transmitters and `n_rx` receivers at `pitch_m` metres. Errors if a count is zero
    /// or the pitch is not finite and positive; the result passes
    /// [`radar_sim::validate_array`].
    pub fn new(n_tx: usize, n_rx: usize, pitch_m: f64) -> Result<Self, RadarError> {
        if n_tx == 0 || n_rx == 0 {
            return Err(RadarError::config(
                "Mills cross",
                format!("{n_tx} TX and {n_rx} RX elements: both counts must be at least 1"),
            ));
        }
        if !(pitch_m.is_finite() && pitch_m > 0.0) {
            return Err(RadarError::config(
                "Mills cross",
                format!("pitch {pitch_m} m must be finite and positive"),
            ));
        }
        let array = Self {
            tx: centred_line(n_tx, pitch_m)
                .map(|x| Point3::new(x, 0.0, 0.0))
                .collect(),
            rx: centred_line(n_rx, pitch_m)
                .map(|y| Point3::new(0.0, y, 0.0))
                .collect(),
            pitch_m,
        };
        validate_array(&array)?;
        Ok(array)
    }

    /// The element pitch (m).
    pub fn pitch_m(&self) -> f64 {
        self.pitch_m
    }
}

/// `n` coordinates `(i − (n − 1)/2)·pitch` (m), i = 0..n: a line centred on 0.
fn centred_line(n: usize, pitch_m: f64) -> impl Iterator<Item = f64> {
    (0..n).map(move |i| (i as f64 - (n as f64 - 1.0) / 2.0) * pitch_m)
}

impl ArrayGeometry for MillsCross {
    fn tx(&self) -> &[Point3<f64>] {
        &self.tx
    }
    fn rx(&self) -> &[Point3<f64>] {
        &self.rx
    }
}

/// A parametric face-like surface: the front of an ellipsoid over an elliptic footprint, with a
/// Gaussian nose, triangulated on a `resolution × resolution` grid. Millimetres, model space
/// (y up, nose toward +z).
///
/// The grid point (u, v) ∈ [−1, 1]² maps to the disc by p = ρ·u·√(1 − v²/2),
/// q = ρ·v·√(1 − u²/2) (ρ = [`RIM`](Self::RIM) keeps the rim off the ellipsoid's vertical
/// edge), and the vertex is
///
/// x = a·p, y = b·q, z = c·(√(1 − p² − q²) + n(p, q)) + γ·m(p, q)
///
/// with semi-axes (a, b, c) = (75, 100, 60) mm·exp(σ_k·α_k) for the three shape coefficients
/// α (σ = [`SHAPE_LOG_SD`](Self::SHAPE_LOG_SD): one standard deviation scales an axis by
/// e^σ), n a Gaussian nose (relative height [`NOSE`](Self::NOSE)) and m a Gaussian "mouth"
/// bump of [`MOUTH_MM`](Self::MOUTH_MM) per unit of the one expression coefficient γ
/// (positive pouts, negative purses). The mean face is about 142 × 190 mm and 60 mm deep.
#[derive(Debug, Clone, PartialEq)]
pub struct EllipsoidFace {
    resolution: usize,
    triangles: Vec<[u32; 3]>,
}

impl EllipsoidFace {
    /// Semi-axes (a, b, c) of the mean face (mm): half width, half height, depth of the cap.
    pub const SEMI_AXES_MM: [f64; 3] = [75.0, 100.0, 60.0];
    /// Log standard deviations of the three shape coefficients (width, height, depth).
    pub const SHAPE_LOG_SD: [f64; 3] = [0.08, 0.08, 0.15];
    /// Footprint radius ρ where the cap ends, as a fraction of the ellipse (its rim is at
    /// height c·√(1 − ρ²)).
    pub const RIM: f64 = 0.95;
    /// Nose height as a fraction of the depth c (18 mm on the mean face).
    pub const NOSE: f64 = 0.3;
    /// Nose centre and standard deviations (footprint units): (p, q, σ_p, σ_q).
    pub const NOSE_SHAPE: [f64; 4] = [0.0, 0.05, 0.1, 0.25];
    /// Mouth forward displacement per unit of the expression coefficient (mm).
    pub const MOUTH_MM: f64 = 6.0;
    /// Mouth centre and standard deviations (footprint units): (p, q, σ_p, σ_q).
    pub const MOUTH_SHAPE: [f64; 4] = [0.0, -0.55, 0.25, 0.08];

    /// A face triangulated on `resolution × resolution` vertices (2·(resolution − 1)²
    /// triangles). Errors unless 3 ≤ `resolution` ≤ 4096.
    pub fn new(resolution: usize) -> Result<Self, MorphableError> {
        if !(3..=4096).contains(&resolution) {
            return Err(MorphableError::Config {
                name: "ellipsoid face resolution",
                reason: format!("{resolution} vertices per side, expected 3 to 4096"),
            });
        }
        let n = resolution as u32;
        let triangles = (0..n - 1)
            .flat_map(|j| (0..n - 1).map(move |i| (i, j)))
            .flat_map(|(i, j)| {
                let v00 = j * n + i;
                let (v10, v01, v11) = (v00 + 1, v00 + n, v00 + n + 1);
                // Counter-clockwise seen from +z: outward normals toward the nose side.
                [[v00, v10, v11], [v00, v11, v01]]
            })
            .collect();
        Ok(Self {
            resolution,
            triangles,
        })
    }

    /// The footprint point (p, q) of grid vertex (i, j): the square-to-disc map scaled by ρ.
    fn footprint(&self, i: usize, j: usize) -> (f64, f64) {
        let step = 2.0 / (self.resolution - 1) as f64;
        let (u, v) = (i as f64 * step - 1.0, j as f64 * step - 1.0);
        (
            Self::RIM * u * (1.0 - v * v / 2.0).sqrt(),
            Self::RIM * v * (1.0 - u * u / 2.0).sqrt(),
        )
    }
}

/// exp(−½((p − p₀)²/σ_p² + (q − q₀)²/σ_q²)) for `[p₀, q₀, σ_p, σ_q]`.
fn gaussian(p: f64, q: f64, [p0, q0, sp, sq]: [f64; 4]) -> f64 {
    (-0.5 * (((p - p0) / sp).powi(2) + ((q - q0) / sq).powi(2))).exp()
}

impl MorphableModel for EllipsoidFace {
    fn name(&self) -> &str {
        "ellipsoid-face"
    }
    fn n_vertices(&self) -> usize {
        self.resolution * self.resolution
    }
    fn triangles(&self) -> &[[u32; 3]] {
        &self.triangles
    }
    fn n_shape(&self) -> usize {
        Self::SEMI_AXES_MM.len()
    }
    fn n_expression(&self) -> usize {
        1
    }
    fn instance(&self, shape: &[f64], expression: &[f64]) -> morphable::Result<Mesh> {
        morphable::check_coefficients("shape", shape, self.n_shape())?;
        morphable::check_coefficients("expression", expression, self.n_expression())?;
        // Missing coefficients are zero (the trait's convention).
        let [a, b, c]: [f64; 3] = std::array::from_fn(|k| {
            Self::SEMI_AXES_MM[k] * (Self::SHAPE_LOG_SD[k] * shape.get(k).unwrap_or(&0.0)).exp()
        });
        let mouth = Self::MOUTH_MM * expression.first().unwrap_or(&0.0);
        let n = self.resolution;
        let vertices = (0..n)
            .flat_map(|j| (0..n).map(move |i| (i, j)))
            .map(|(i, j)| {
                let (p, q) = self.footprint(i, j);
                let cap = (1.0 - p * p - q * q).max(0.0).sqrt();
                let nose = Self::NOSE * gaussian(p, q, Self::NOSE_SHAPE);
                Point3::new(
                    a * p,
                    b * q,
                    c * (cap + nose) + mouth * gaussian(p, q, Self::MOUTH_SHAPE),
                )
            })
            .collect();
        Mesh::new(vertices, self.triangles.clone())
    }
}

/// What can go wrong in this example: the library errors it meets, and its own.
#[derive(Debug)]
pub enum DownstreamError {
    /// From radar-sim (array, sweep, simulation).
    Radar(RadarError),
    /// From morphable (face model, placement).
    Morphable(MorphableError),
    /// From backproject (grid, imaging, PNG export).
    Backproject(BackprojectError),
    /// The output directory could not be created.
    Io {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The command line is not `downstream [OUT_DIR]`.
    Usage(String),
}

impl fmt::Display for DownstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Radar(e) => write!(f, "radar simulation: {e}"),
            Self::Morphable(e) => write!(f, "face model: {e}"),
            Self::Backproject(e) => write!(f, "imaging: {e}"),
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::Usage(reason) => write!(f, "{reason}; usage: downstream [OUT_DIR]"),
        }
    }
}

impl std::error::Error for DownstreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Radar(e) => Some(e),
            Self::Morphable(e) => Some(e),
            Self::Backproject(e) => Some(e),
            Self::Io { source, .. } => Some(source),
            Self::Usage(_) => None,
        }
    }
}

impl From<RadarError> for DownstreamError {
    fn from(e: RadarError) -> Self {
        Self::Radar(e)
    }
}
impl From<MorphableError> for DownstreamError {
    fn from(e: MorphableError) -> Self {
        Self::Morphable(e)
    }
}
impl From<BackprojectError> for DownstreamError {
    fn from(e: BackprojectError) -> Self {
        Self::Backproject(e)
    }
}

/// One face imaged: where it was, what the simulator did and the images.
#[derive(Debug, Clone)]
pub struct FaceImaging {
    /// The face placed in radar space (m).
    pub placed: Mesh,
    /// Hits, powers and counts of the simulation.
    pub stats: SimulationStats,
    /// dB level and depth (m) images, before any dynamic range.
    pub products: ImageProducts,
}

/// Places `model`'s face for `shape` / `expression` 25 cm in front of `array` (the mean face's
/// closest point at [`morphable::DEFAULT_DISTANCE_M`]), simulates it with `config` over
/// `sweep` and back-projects onto `grid` with the range-compressed projector.
pub fn image_face(
    array: &dyn ArrayGeometry,
    model: &dyn MorphableModel,
    (shape, expression): (&[f64], &[f64]),
    sweep: FrequencySweep,
    config: SimulationConfig,
    grid: &VoxelGrid,
) -> Result<FaceImaging, DownstreamError> {
    let placement = Placement::for_model(model)?;
    let placed = placement.place(&model.instance(shape, expression)?, &Pose::identity());
    let scene = Scene::from_surface(Surface::new(
        placed.vertices.clone(),
        placed.triangles.clone(),
    )?);
    let report = Simulator::new(array, sweep, config)?.simulate(&scene)?;
    let products = image_products(
        array,
        &sweep,
        &report.cube,
        grid,
        &RangeCompressed::default(),
    )?;
    Ok(FaceImaging {
        placed,
        stats: report.stats,
        products,
    })
}

/// Writes `amplitude.png` (viridis) and `depth.png` (turbo, pixels below the dynamic range
/// black) into `out`, creating it if needed; returns the two paths.
pub fn write_images(
    products: &ImageProducts,
    range: DynamicRange,
    out: &Path,
) -> Result<[PathBuf; 2], DownstreamError> {
    std::fs::create_dir_all(out).map_err(|source| DownstreamError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let paths = [out.join("amplitude.png"), out.join("depth.png")];
    products
        .amplitude(range)
        .save_png(&paths[0], ColourMap::Viridis)?;
    products
        .depth_image(range)
        .save_png(&paths[1], ColourMap::Turbo)?;
    Ok(paths)
}

/// The imaging grid: 48 × 64 pixels of 4 mm (±96 mm across, ±128 mm up), 40 depths of
/// 2.5 mm from 24 cm: the whole face with a margin.
fn face_grid() -> Result<VoxelGrid, BackprojectError> {
    VoxelGrid::new(
        AxisRange::centred(0.0, 0.004, 48),
        AxisRange::centred(0.0, 0.004, 64),
        AxisRange::from_count(0.24, 0.0025, 40),
    )
}

fn run() -> Result<(), DownstreamError> {
    let mut args = std::env::args_os().skip(1);
    let out = args
        .next()
        .map_or_else(|| PathBuf::from("out/downstream"), PathBuf::from);
    if let Some(extra) = args.next() {
        return Err(DownstreamError::Usage(format!(
            "unexpected argument {extra:?}"
        )));
    }

    let started = Instant::now();
    // 72–82 GHz in 32 steps: 15 mm range resolution, 46 cm unambiguous range.
    let sweep = FrequencySweep::new(72e9, 82e9, 32)?;
    // 96 + 96 elements at 3 mm (0.77 λ at 77 GHz): a 142 mm square virtual aperture at 1.5 mm,
    // about the QAR50's, which sees the face's sides as well as its front.
    let array = MillsCross::new(96, 96, 0.003)?;
    let model = EllipsoidFace::new(41)?;
    let (shape, expression) = ([0.5, -0.3, 0.2], [1.5]);
    let config = SimulationConfig {
        seed: 7,
        // Mostly diffuse (m = 0.2): the oblique cheeks and brow return some signal too.
        material: Material::new(0.2)?,
        ..SimulationConfig::default()
    };
    let grid = face_grid()?;
    let imaging = image_face(&array, &model, (&shape, &expression), sweep, config, &grid)?;
    let range = DynamicRange::new(25.0)?;
    let written = write_images(&imaging.products, range, &out)?;

    let (lo, hi) = imaging
        .placed
        .bounding_box()
        .ok_or_else(|| MorphableError::Mesh("the placed face has no vertices".into()))?;
    println!(
        "array: Mills cross, {} TX along x and {} RX along y at {:.2} mm pitch \
         ({} channels, virtual aperture {:.1} × {:.1} mm at {:.2} mm)",
        array.tx().len(),
        array.rx().len(),
        array.pitch_m() * 1e3,
        array.n_channels(),
        (array.tx().len() - 1) as f64 * array.pitch_m() * 0.5e3,
        (array.rx().len() - 1) as f64 * array.pitch_m() * 0.5e3,
        array.pitch_m() * 0.5e3,
    );
    println!(
        "face: {} (shape {shape:?}, expression {expression:?}), {} vertices, {} triangles, \
         {:.0} × {:.0} × {:.0} mm, z from {:.3} to {:.3} m",
        model.name(),
        model.n_vertices(),
        model.triangles().len(),
        (hi.x - lo.x) * 1e3,
        (hi.y - lo.y) * 1e3,
        (hi.z - lo.z) * 1e3,
        lo.z,
        hi.z,
    );
    let stats = &imaging.stats;
    println!(
        "simulated: {} steps {:.0}–{:.0} GHz, {} hits used ({} hidden) on {:.0} cm², \
         SNR 30 dB",
        sweep.steps(),
        sweep.start_hz() * 1e-9,
        sweep.stop_hz() * 1e-9,
        stats.hits_used,
        stats.hits_hidden,
        stats.surface_area_m2 * 1e4,
    );
    let (nx, ny, nz) = grid.shape();
    println!(
        "imaged: {nx} × {ny} × {nz} voxels, range-compressed back-projection, {} dB dynamic range",
        range.db()
    );
    for path in &written {
        println!("wrote {}", path.display());
    }
    println!("done in {:.2} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("downstream: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use radar_sim::{SPEED_OF_LIGHT, virtual_aperture};

    #[test]
    fn mills_cross_virtual_aperture_is_a_uniform_rectangular_grid() -> Result<(), RadarError> {
        let (n_tx, n_rx, pitch) = (5, 4, 0.003);
        let array = MillsCross::new(n_tx, n_rx, pitch)?;
        let virtual_points = virtual_aperture(&array);
        assert_eq!(virtual_points.len(), n_tx * n_rx);
        // Channel (t, r) sits at ((t − 2)·1.5 mm, (r − 1.5)·1.5 mm, 0): half the pitch.
        for (k, p) in virtual_points.iter().enumerate() {
            let (t, r) = (k / n_rx, k % n_rx);
            assert!((p.x - (t as f64 - 2.0) * pitch / 2.0).abs() < 1e-12);
            assert!((p.y - (r as f64 - 1.5) * pitch / 2.0).abs() < 1e-12);
            assert_eq!(p.z, 0.0);
        }
        // Both lines are centred on the origin, so is the array.
        assert!(array.centre().coords.norm() < 1e-15);
        Ok(())
    }

    #[test]
    fn mills_cross_rejects_empty_rows_and_bad_pitch() {
        assert!(MillsCross::new(0, 4, 0.003).is_err());
        assert!(MillsCross::new(4, 0, 0.003).is_err());
        assert!(MillsCross::new(4, 4, 0.0).is_err());
        assert!(MillsCross::new(4, 4, f64::NAN).is_err());
    }

    fn extent(mesh: &Mesh, axis: usize) -> f64 {
        let values = mesh.vertices.iter().map(|v| v[axis]);
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        hi - lo
    }

    #[test]
    fn mean_face_spans_the_rim_of_its_ellipse() -> morphable::Result<()> {
        let model = EllipsoidFace::new(21)?;
        let mean = model.mean_mesh()?;
        assert_eq!(mean.n_vertices(), 21 * 21);
        assert_eq!(mean.triangles.len(), 2 * 20 * 20);
        // The grid holds u = ±1 at v = 0 (and the reverse): the footprint reaches ρ·a, ρ·b.
        let [a, b, _] = EllipsoidFace::SEMI_AXES_MM;
        assert!((extent(&mean, 0) - 2.0 * EllipsoidFace::RIM * a).abs() < 1e-9);
        assert!((extent(&mean, 1) - 2.0 * EllipsoidFace::RIM * b).abs() < 1e-9);
        // Outward normals face +z (toward the nose side) everywhere.
        assert!(mean.triangle_normals().iter().all(|n| n.z > 0.0));
        Ok(())
    }

    #[test]
    fn shape_coefficients_scale_the_axes_by_exp_sigma() -> morphable::Result<()> {
        let model = EllipsoidFace::new(21)?;
        let mean = model.mean_mesh()?;
        for k in 0..3 {
            let mut shape = [0.0; 3];
            shape[k] = 1.0;
            let face = model.instance(&shape, &[])?;
            let expected = EllipsoidFace::SHAPE_LOG_SD[k].exp();
            let ratio = extent(&face, k) / extent(&mean, k);
            // x and y extents scale exactly; z is c·(cap + nose) with the mouth at rest.
            assert!(
                (ratio - expected).abs() < 1e-9,
                "axis {k}: {ratio} vs {expected}"
            );
        }
        Ok(())
    }

    #[test]
    fn expression_moves_the_mouth_and_not_the_brow() -> morphable::Result<()> {
        let model = EllipsoidFace::new(41)?;
        let (mean, pout) = (model.mean_mesh()?, model.instance(&[], &[1.0])?);
        let n = 41;
        // Vertex (i, j) = (20, j) lies on the midline; its footprint q is ρ·v.
        let dz = |j: usize| pout.vertices[j * n + 20].z - mean.vertices[j * n + 20].z;
        // v = −0.55/ρ is not on the grid: the nearest midline vertex moves by most of 6 mm.
        let mouth_row = (0..n).max_by(|&x, &y| dz(x).total_cmp(&dz(y))).unwrap_or(0);
        let (_, q) = model.footprint(20, mouth_row);
        assert!((q - EllipsoidFace::MOUTH_SHAPE[1]).abs() < 0.05 * EllipsoidFace::RIM);
        assert!(dz(mouth_row) > 0.8 * EllipsoidFace::MOUTH_MM);
        // The brow (top row) is more than 13 σ_q away: it does not move.
        assert!(dz(n - 1).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn too_many_or_non_finite_coefficients_are_refused() -> morphable::Result<()> {
        let model = EllipsoidFace::new(5)?;
        assert!(matches!(
            model.instance(&[0.0; 4], &[]),
            Err(MorphableError::Coefficients { kind: "shape", .. })
        ));
        assert!(matches!(
            model.instance(&[], &[0.0, 1.0]),
            Err(MorphableError::Coefficients {
                kind: "expression",
                ..
            })
        ));
        assert!(matches!(
            model.instance(&[f64::NAN], &[]),
            Err(MorphableError::Coefficients { kind: "shape", .. })
        ));
        assert!(EllipsoidFace::new(2).is_err());
        Ok(())
    }

    #[test]
    fn a_small_cross_images_the_face_within_its_depth_span() -> Result<(), DownstreamError> {
        let sweep = FrequencySweep::new(72e9, 82e9, 32)?;
        let array = MillsCross::new(24, 24, 0.006)?;
        let model = EllipsoidFace::new(21)?;
        let config = SimulationConfig {
            snr_db: None,
            ..SimulationConfig::default()
        };
        let imaging = image_face(&array, &model, (&[], &[]), sweep, config, &face_grid()?)?;
        let (lo, hi) = imaging
            .placed
            .bounding_box()
            .ok_or_else(|| DownstreamError::Usage("the placed face has no vertices".into()))?;
        // The brightest pixel (0 dB) shows a depth on the face, within one range cell c/(2B).
        let level = imaging.products.level_db().db();
        let depth = imaging.products.depth_m().depth_m();
        let peak = level
            .indexed_iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(index, _)| index)
            .unwrap_or((0, 0));
        let cell = SPEED_OF_LIGHT / (2.0 * sweep.bandwidth_hz());
        let z = depth[peak] as f64;
        assert!(z > lo.z - cell && z < hi.z + cell, "{z} m outside the face");

        let scratch = tempfile::tempdir().map_err(|source| DownstreamError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        let out = scratch.path().join("images");
        let written = write_images(&imaging.products, DynamicRange::new(25.0)?, &out)?;
        assert!(written.iter().all(|p| p.is_file()));
        Ok(())
    }
}
