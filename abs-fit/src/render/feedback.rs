//! Feedback channels: pictures of a current estimate r_t on the radar image grid, which an
//! iterative encoder reads beside the radar image to correct r_t (the coarse-to-fine paper's
//! CoarseNet, Richardson et al., "Learning Detailed Face Reconstruction from a Single Image",
//! §3.2; docs/physics.md §8).
//!
//! Every channel but the learned renderer's comes from the depth raster's z-buffer of the posed
//! face r_t ([`DepthRasterRenderer`](super::DepthRasterRenderer)): an orthographic view along
//! the radar's line of sight (+z) whose pixel centres are the dataset's pooled image pixels. A
//! pixel whose centre the face does not cover is 0 in every raster channel. No gradient is needed: the channels are
//! inputs, not outputs.
//!
//! - **PNCC** (3 channels, Zhu et al.'s projected normalised coordinate code): each pixel is
//!   painted with the model-space x, y, z of the *mean face's* point that corresponds (same
//!   triangle, same barycentric weights) to the surface point under it, normalised to [0, 1] over
//!   the mean face's bounding box. A part of the face has the same colour whatever r_t's shape,
//!   expression and pose, so the channel says where each part of the face lands in the image.
//! - **normals** (3): the unit normal of the posed face in radar space, interpolated from its
//!   vertex normals. Outward normals of a placed face point toward the array, so n_z < 0.
//! - **depth** (1): the normalised depth (z_far − z)/(z_far − z_near) of r_t, the depth
//!   raster's image (the radar depth channel's normalisation).
//! - **residual** (1): radar depth − rendered depth where both are valid (the input's depth
//!   channel is positive and the face covers the pixel), else 0: positive where r_t lies behind
//!   the radar's surface, times a gain ([`FeedbackRenderer::with_residual_gain`], 1 by
//!   default). It needs an input with a depth channel.
//! - **learned** (2 × C, the input's C channels): a trained learned renderer's
//!   ([`LearnedRenderer`]) radar image of r_t at its own dynamic range, then the input minus that
//!   image: the radar-domain residual of every channel, amplitude included. It needs a learned
//!   renderer of the input's kind on the same grid and layout ([`FeedbackRenderer::with_learned`]).

use morphable::raster::Fragment;
use morphable::{LinearMorphableModel, Mesh};
use nalgebra::Vector3;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::Renderer;
use super::depth_raster::RasterCore;
use super::learned::LearnedRenderer;
use crate::dataset::InputKind;
use crate::{AbsFitError, ImagingConfig, ParamLayout, Result};
use candle_core::{DType, Device, Tensor};

/// Which feedback channels an iterative encoder reads, in this order: PNCC (3), normals (3),
/// depth (1), residual (1), learned image and learned difference (C each, the input's channels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FeedbackSet {
    /// The projected normalised coordinate code of the mean face (3 channels).
    pub pncc: bool,
    /// The posed face's unit normals (3 channels).
    pub normals: bool,
    /// The rendered, normalised depth (1 channel).
    pub depth: bool,
    /// Radar depth − rendered depth where both are valid (1 channel; depth input only).
    pub residual: bool,
    /// A learned renderer's image of the estimate and the input minus it (2 × C channels).
    #[serde(default)]
    pub learned: bool,
}

impl FeedbackSet {
    /// Every channel of the depth raster (8): all but the learned renderer's.
    pub const ALL: Self = Self {
        pncc: true,
        normals: true,
        depth: true,
        residual: true,
        learned: false,
    };
    /// The coarse-to-fine paper's set: PNCC and normals (6 channels).
    pub const PAPER: Self = Self {
        pncc: true,
        normals: true,
        depth: false,
        residual: false,
        learned: false,
    };
    /// No channel: an iterative encoder that reads nothing of r_t is a one-pass encoder.
    pub const NONE: Self = Self {
        pncc: false,
        normals: false,
        depth: false,
        residual: false,
        learned: false,
    };

    /// The default set of an input kind: the rendered depth and, where the input has a depth
    /// channel, the residual. Measured on the `cpu` run's 8 000 faces (depth input, `cpu`
    /// networks, 10 epochs, 1 200 validation faces, point distance after iterations 1–4):
    /// depth and residual 5.32, 5.14, 5.13, 5.12 mm; every channel 5.65, 5.34, 5.34, 5.35;
    /// PNCC, normals and depth 6.20 to 6.25; PNCC and normals 5.95 to 6.00 (one-pass encoder
    /// 5.29–5.34). PNCC and normals describe the estimate's own shape, which the network then
    /// leans on. For amplitude input (depth only) the set is not measured.
    pub fn default_for(input: InputKind) -> Self {
        Self {
            depth: true,
            residual: depth_channel(input).is_some(),
            ..Self::NONE
        }
    }

    /// The number of channels beside `input` images.
    pub fn channels(&self, input: InputKind) -> usize {
        self.raster_channels()
            + if self.learned {
                2 * input.channels()
            } else {
                0
            }
    }

    /// The number of channels the depth raster paints: all but the learned ones.
    fn raster_channels(&self) -> usize {
        3 * usize::from(self.pncc)
            + 3 * usize::from(self.normals)
            + usize::from(self.depth)
            + usize::from(self.residual)
    }

    /// The channels' names beside `input` images, in order.
    pub fn names(&self, input: InputKind) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        if self.pncc {
            names.extend(["pncc-x", "pncc-y", "pncc-z"].map(String::from));
        }
        if self.normals {
            names.extend(["normal-x", "normal-y", "normal-z"].map(String::from));
        }
        if self.depth {
            names.push("depth".into());
        }
        if self.residual {
            names.push("residual".into());
        }
        if self.learned {
            let kinds = input_channel_names(input);
            names.extend(kinds.iter().map(|k| format!("learned-{k}")));
            names.extend(kinds.iter().map(|k| format!("difference-{k}")));
        }
        names
    }

    /// Fails if the set asks for the residual of an input without a depth channel.
    pub fn check_input(&self, input: InputKind) -> Result<()> {
        if self.residual && depth_channel(input).is_none() {
            return Err(AbsFitError::config(
                "feedback channels",
                format!(
                    "the residual compares with the radar depth, but {} input has no depth \
                     channel: drop the residual or read depth or amplitude-depth images",
                    input.name()
                ),
            ));
        }
        Ok(())
    }
}

/// The set's groups as the command line names them: `pncc,normals,depth,residual`, or `none`.
impl std::fmt::Display for FeedbackSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let groups: Vec<&str> = [
            (self.pncc, "pncc"),
            (self.normals, "normals"),
            (self.depth, "depth"),
            (self.residual, "residual"),
            (self.learned, "learned"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        if groups.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&groups.join(","))
        }
    }
}

impl std::str::FromStr for FeedbackSet {
    type Err = AbsFitError;

    /// A comma-separated list of `pncc`, `normals`, `depth`, `residual` and `learned`, or
    /// `none`.
    fn from_str(s: &str) -> Result<Self> {
        let mut set = Self::NONE;
        if s.trim() == "none" {
            return Ok(set);
        }
        for group in s.split(',').map(str::trim) {
            let flag = match group {
                "pncc" => &mut set.pncc,
                "normals" => &mut set.normals,
                "depth" => &mut set.depth,
                "residual" => &mut set.residual,
                "learned" => &mut set.learned,
                other => {
                    return Err(AbsFitError::config(
                        "feedback channels",
                        format!(
                            "'{other}' in '{s}': choose among pncc, normals, depth, residual \
                             and learned (comma-separated), or none"
                        ),
                    ));
                }
            };
            *flag = true;
        }
        Ok(set)
    }
}

/// The depth channel of an input kind's images, if it has one.
fn depth_channel(input: InputKind) -> Option<usize> {
    match input {
        InputKind::Amplitude => None,
        InputKind::Depth => Some(0),
        InputKind::AmplitudeDepth => Some(1),
    }
}

/// The names of an input kind's channels.
fn input_channel_names(input: InputKind) -> &'static [&'static str] {
    match input {
        InputKind::Amplitude => &["amplitude"],
        InputKind::Depth => &["depth"],
        InputKind::AmplitudeDepth => &["amplitude", "depth"],
    }
}

/// Renders the feedback channels of parameter rows (see the module documentation).
#[derive(Debug)]
pub struct FeedbackRenderer {
    core: RasterCore,
    /// The normalised coordinates of the mean face's vertices, in [0, 1]³.
    ncc: Vec<Vector3<f64>>,
    set: FeedbackSet,
    /// The learned renderer of the `learned` channels.
    learned: Option<LearnedRenderer>,
    /// The factor the residual channel is multiplied by.
    residual_gain: f64,
}

impl FeedbackRenderer {
    /// The feedback `set` of `model`'s faces described by `layout`, on the (pooled) image grid
    /// of `imaging`. Fails if the layout or imaging config is invalid, if the layout asks for
    /// more components than the model has, if the mean face is flat along an axis, or if the
    /// set asks for the learned channels (they need [`FeedbackRenderer::with_learned`]).
    pub fn new<M: LinearMorphableModel>(
        model: &M,
        layout: ParamLayout,
        imaging: &ImagingConfig,
        set: FeedbackSet,
    ) -> Result<Self> {
        Self::with_learned(model, layout, imaging, set, None)
    }

    /// As [`FeedbackRenderer::new`], with the learned renderer whose images the `learned`
    /// channels show. Fails as `new` does, and if the set's `learned` flag and `learned`
    /// disagree, or if the renderer reads another parameter layout or draws another image grid.
    pub fn with_learned<M: LinearMorphableModel>(
        model: &M,
        layout: ParamLayout,
        imaging: &ImagingConfig,
        set: FeedbackSet,
        learned: Option<LearnedRenderer>,
    ) -> Result<Self> {
        layout.validate()?;
        imaging.validate()?;
        let core = RasterCore::new(model, layout, imaging, "feedback channels")?;
        match (&learned, set.learned) {
            (None, false) => {}
            (Some(r), true) => {
                let (_, h, w) = r.image_shape();
                if *r.layout() != layout || (h, w) != (core.height, core.width) {
                    return Err(AbsFitError::config(
                        "feedback channels",
                        format!(
                            "the learned renderer draws {h}×{w} images of {} parameters, but \
                             the feedback grid is {}×{} and the layout has {} parameters: use a \
                             renderer trained on the same dataset",
                            r.layout().len(),
                            core.height,
                            core.width,
                            layout.len()
                        ),
                    ));
                }
            }
            (Some(_), false) => {
                return Err(AbsFitError::config(
                    "feedback channels",
                    format!(
                        "a learned renderer was given, but the set {set} has no learned channels"
                    ),
                ));
            }
            (None, true) => {
                return Err(AbsFitError::config(
                    "feedback channels",
                    "the learned channels need a learned renderer: give one (the command \
                     line's --decoder DIR)",
                ));
            }
        }
        let mean = core.geometry.model_mesh(&[]);
        Ok(Self {
            ncc: normalised_coordinates(&mean)?,
            core,
            set,
            learned,
            residual_gain: 1.0,
        })
    }

    /// The same renderer with the residual channel multiplied by `gain` (default 1). The
    /// residual of a shape error of a few millimetres is a few hundredths of the normalised
    /// depth, small beside the image channels; a gain brings it to their scale. Fails unless
    /// `gain` is finite and positive.
    pub fn with_residual_gain(mut self, gain: f64) -> Result<Self> {
        if !(gain.is_finite() && gain > 0.0) {
            return Err(AbsFitError::config(
                "feedback residual gain",
                format!("{gain} must be finite and positive"),
            ));
        }
        self.residual_gain = gain;
        Ok(self)
    }

    /// The factor the residual channel is multiplied by.
    pub fn residual_gain(&self) -> f64 {
        self.residual_gain
    }

    /// The channels it renders.
    pub fn set(&self) -> FeedbackSet {
        self.set
    }

    /// The learned renderer of the `learned` channels, if the set has them.
    pub fn learned(&self) -> Option<&LearnedRenderer> {
        self.learned.as_ref()
    }

    /// (F, H, W) of the depth raster's channels of one row: every channel but the learned ones.
    fn raster_shape(&self) -> (usize, usize, usize) {
        (
            self.set.raster_channels(),
            self.core.height,
            self.core.width,
        )
    }

    /// The depth raster's feedback channels (F × H × W, row-major: every channel of the set but
    /// the learned ones) of one scaled parameter row (P columns), written into `out`.
    /// `radar_depth` is the input's normalised depth image (H × W), which the residual needs. Errors: a row of the wrong length or with a non-finite value, a
    /// buffer of the wrong size, a residual without a radar depth image.
    pub fn render_row(
        &self,
        row: &[f64],
        radar_depth: Option<&[f32]>,
        out: &mut [f32],
    ) -> Result<()> {
        let geometry = &self.core.geometry;
        let placed = geometry.placed(&geometry.decode(row)?);
        self.paint(&placed, radar_depth, out)
    }

    /// `images` (B, C, H, W) of kind `input` with the feedback channels of `params` (B, P)
    /// appended: (B, C + F, H, W) f32, on the images' device. The residual reads the images'
    /// depth channel. The learned channels render the rows with their dynamic-range column at
    /// the learned renderer's own range (the only one it was trained at), in evaluation mode.
    pub fn append(&self, images: &Tensor, input: InputKind, params: &Tensor) -> Result<Tensor> {
        self.set.check_input(input)?;
        if let Some(learned) = &self.learned
            && learned.output() != input
        {
            return Err(AbsFitError::config(
                "feedback channels",
                format!(
                    "the learned renderer draws {} images, but the input is {}: use a \
                     renderer of the input's kind",
                    learned.output().name(),
                    input.name()
                ),
            ));
        }
        let (b, c, h, w) = images.dims4().map_err(|_| AbsFitError::Shape {
            what: "images to append feedback to",
            expected: "(B, C, H, W)".into(),
            actual: format!("{:?}", images.dims()),
        })?;
        let (f, height, width) = self.raster_shape();
        if (c, h, w) != (input.channels(), height, width)
            || params.dims() != [b, self.core.geometry.layout.len()]
        {
            return Err(AbsFitError::Shape {
                what: "images and parameters to append feedback to",
                expected: format!(
                    "({b}, {}, {height}, {width}) {} images and ({b}, {}) parameters",
                    input.channels(),
                    input.name(),
                    self.core.geometry.layout.len()
                ),
                actual: format!("{:?} and {:?}", images.dims(), params.dims()),
            });
        }
        let device = images.device().clone();
        let cpu_images = images.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
        let pixels: Vec<f32> = cpu_images.flatten_all()?.to_vec1()?;
        let rows: Vec<f64> = params
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1()?;
        let hw = h * w;
        let (chw, fhw) = (c * hw, f * hw);
        let mut out = vec![0.0f32; b * (chw + fhw)];
        let depth = depth_channel(input);
        out.par_chunks_mut(chw + fhw)
            .zip(pixels.par_chunks(chw))
            .zip(rows.par_chunks(self.core.geometry.layout.len()))
            .try_for_each(|((example, image), row)| {
                let (head, feedback) = example.split_at_mut(chw);
                head.copy_from_slice(image);
                let radar_depth = depth.map(|d| &image[d * hw..(d + 1) * hw]);
                self.render_row(row, radar_depth, feedback)
            })?;
        let out = Tensor::from_vec(out, (b, c + f, h, w), &Device::Cpu)?;
        let out = match &self.learned {
            None => out,
            Some(learned) => {
                let layout = &self.core.geometry.layout;
                let mut at_range: Vec<f32> = rows.iter().map(|&v| v as f32).collect();
                for row in at_range.chunks_exact_mut(layout.len()) {
                    layout.set_dynamic_range(row, f64::from(learned.dynamic_range_db()));
                }
                let at_range = Tensor::from_vec(at_range, (b, layout.len()), &Device::Cpu)?;
                let rendered = learned
                    .render(&at_range)?
                    .to_device(&Device::Cpu)?
                    .to_dtype(DType::F32)?;
                let difference = (cpu_images - &rendered)?;
                Tensor::cat(&[out, rendered, difference], 1)?
            }
        };
        Ok(out.to_device(&device)?)
    }

    /// The feedback channels of a placed mesh with the model's vertices and triangles.
    fn paint(&self, placed: &Mesh, radar_depth: Option<&[f32]>, out: &mut [f32]) -> Result<()> {
        let core = &self.core;
        let hw = core.height * core.width;
        let channels = self.set.raster_channels();
        if out.len() != channels * hw {
            return Err(AbsFitError::Shape {
                what: "feedback buffer",
                expected: format!("{} values", channels * hw),
                actual: format!("{} values", out.len()),
            });
        }
        let radar_depth = match (self.set.residual, radar_depth) {
            (false, _) => None,
            (true, Some(d)) if d.len() == hw => Some(d),
            (true, other) => {
                return Err(AbsFitError::Shape {
                    what: "radar depth image of the feedback residual",
                    expected: format!("{hw} values"),
                    actual: other.map_or("none".into(), |d| format!("{} values", d.len())),
                });
            }
        };
        let fragments = core.fragments(placed)?;
        let normals = if self.set.normals {
            placed.vertex_normals()
        } else {
            Vec::new()
        };
        let blend = |values: &[Vector3<f64>], f: &Fragment| -> Vector3<f64> {
            let tri = placed.triangles[f.triangle as usize];
            (0..3)
                .map(|k| values[tri[k] as usize] * f.barycentric[k])
                .sum()
        };
        out.fill(0.0);
        for (i, f) in fragments.iter().enumerate() {
            let Some(f) = f else { continue };
            // Channel by channel, in the set's order.
            let mut k = 0;
            let mut put = |v: f64| {
                out[k * hw + i] = v as f32;
                k += 1;
            };
            if self.set.pncc {
                blend(&self.ncc, f).iter().for_each(|&v| put(v));
            }
            if self.set.normals {
                let n = blend(&normals, f).try_normalize(0.0);
                n.unwrap_or_else(Vector3::zeros)
                    .iter()
                    .for_each(|&v| put(v));
            }
            let depth = core.normalised_depth(f.depth);
            if self.set.depth {
                put(depth);
            }
            if let Some(radar) = radar_depth {
                let r = f64::from(radar[i]);
                put(if r > 0.0 {
                    self.residual_gain * (r - depth)
                } else {
                    0.0
                });
            }
        }
        Ok(())
    }
}

/// Each vertex of `mean` normalised to [0, 1]³ over its bounding box.
fn normalised_coordinates(mean: &Mesh) -> Result<Vec<Vector3<f64>>> {
    let (lo, hi) = mean
        .bounding_box()
        .ok_or_else(|| AbsFitError::config("feedback channels", "the mean face has no vertices"))?;
    let size = hi - lo;
    if size.iter().any(|&s| s.is_nan() || s <= 0.0) {
        return Err(AbsFitError::config(
            "feedback channels",
            format!("the mean face's bounding box {size:?} is flat: no coordinate code"),
        ));
    }
    Ok(mean
        .vertices
        .iter()
        .map(|p| (p - lo).component_div(&size))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LearnedRenderer, Preset, Renderer};
    use morphable::Pose;
    use morphable::builtin::builtin;
    use nalgebra::Point3;

    fn renderer(set: FeedbackSet) -> (FeedbackRenderer, ParamLayout) {
        let config = Preset::Tiny.dataset().expect("preset configs are valid");
        let renderer = FeedbackRenderer::new(&builtin(), config.layout, &config.imaging, set)
            .expect("the tiny preset renders feedback");
        (renderer, config.layout)
    }

    /// A plane z = z₀ + a·x + b·y over the whole image, wound so that its normals face the
    /// array: its normal channels are the constant unit vector (a, b, −1)/‖·‖ and its depth
    /// channel the plane's normalised depth at each pixel centre.
    #[test]
    fn a_tilted_plane_has_a_constant_normal_and_its_own_depth() {
        let set = FeedbackSet {
            normals: true,
            depth: true,
            ..FeedbackSet::NONE
        };
        let (renderer, _) = renderer(set);
        let core = &renderer.core;
        let (z0, a, b) = (0.3, 0.2, -0.1);
        let plane = |x: f64, y: f64| z0 + a * x + b * y;
        let n = 11;
        let vertices: Vec<Point3<f64>> = (0..n * n)
            .map(|k| {
                let (x, y) = (-0.2 + 0.04 * (k % n) as f64, -0.2 + 0.04 * (k / n) as f64);
                Point3::new(x, y, plane(x, y))
            })
            .collect();
        let mut triangles = Vec::new();
        for j in 0..n - 1 {
            for i in 0..n - 1 {
                let v = |i: usize, j: usize| (j * n + i) as u32;
                triangles.push([v(i, j), v(i, j + 1), v(i + 1, j)]);
                triangles.push([v(i + 1, j), v(i, j + 1), v(i + 1, j + 1)]);
            }
        }
        let mesh = Mesh::new(vertices, triangles).unwrap();
        let (f, h, w) = renderer.raster_shape();
        assert_eq!(f, 4);
        let mut out = vec![0.0f32; f * h * w];
        renderer.paint(&mesh, None, &mut out).unwrap();
        let normal = Vector3::new(a, b, -1.0).normalize();
        for r in 0..h {
            for c in 0..w {
                let i = r * w + c;
                for (k, expected) in normal.iter().enumerate() {
                    assert!((f64::from(out[k * h * w + i]) - expected).abs() < 1e-6);
                }
                let (x, y) = core.pixel_centre(r, c);
                let depth = core.normalised_depth(plane(x, y));
                assert!(
                    (f64::from(out[3 * h * w + i]) - depth).abs() < 1e-6,
                    "pixel ({r}, {c})"
                );
            }
        }
    }

    /// The mean face at zero pose: wherever it covers a pixel, the PNCC is the normalised
    /// model-space position of the surface point under the pixel centre, found independently
    /// by taking the pixel centre and the rendered depth back through the placement.
    #[test]
    fn pncc_of_the_mean_face_is_its_own_normalised_coordinates() {
        let (renderer, layout) = renderer(FeedbackSet {
            depth: true,
            ..FeedbackSet::PAPER
        });
        let core = &renderer.core;
        let (f, h, w) = renderer.raster_shape();
        let mut out = vec![0.0f32; f * h * w];
        renderer
            .render_row(&vec![0.0; layout.len()], None, &mut out)
            .unwrap();
        let mean = core.geometry.model_mesh(&[]);
        let (lo, hi) = mean.bounding_box().unwrap();
        let (z_near, z_far) = core.z_range;
        let mut covered = 0;
        for r in 0..h {
            for c in 0..w {
                let i = r * w + c;
                let depth = f64::from(out[6 * h * w + i]);
                if depth == 0.0 {
                    assert!((0..6).all(|k| out[k * h * w + i] == 0.0));
                    continue;
                }
                covered += 1;
                let (x, y) = core.pixel_centre(r, c);
                let z = z_far - depth * (z_far - z_near);
                let p = core
                    .geometry
                    .placement
                    .to_model(&Point3::new(x, y, z), &Pose::default());
                let ncc = (p - lo).component_div(&(hi - lo));
                for k in 0..3 {
                    let got = f64::from(out[k * h * w + i]);
                    assert!(
                        (got - ncc[k]).abs() < 1e-4,
                        "pixel ({r}, {c}) axis {k}: {got} vs {}",
                        ncc[k]
                    );
                    assert!((-1e-6..=1.0 + 1e-6).contains(&got));
                }
                // Unit normals facing the array.
                let n = Vector3::new(out[3 * h * w + i], out[4 * h * w + i], out[5 * h * w + i]);
                assert!((n.norm() - 1.0).abs() < 1e-5 && n.z < 0.0);
            }
        }
        assert!(
            covered > h * w / 10,
            "the mean face covers {covered} of {} pixels",
            h * w
        );
    }

    /// The residual is radar − rendered depth where the radar depth is valid and the face
    /// covers the pixel, 0 elsewhere; the depth channel is the depth raster's image.
    #[test]
    fn residual_compares_with_valid_radar_depth_only() {
        let (renderer, layout) = renderer(FeedbackSet::ALL);
        let (f, h, w) = renderer.raster_shape();
        assert_eq!(f, 8);
        let row: Vec<f64> = (0..layout.len())
            .map(|k| 0.1 * ((k % 5) as f64 - 2.0))
            .collect();
        let mut plain = vec![0.0f32; f * h * w];
        let zeros = vec![0.0f32; h * w];
        renderer.render_row(&row, Some(&zeros), &mut plain).unwrap();
        let rendered = &plain[6 * h * w..7 * h * w];
        assert!(
            plain[7 * h * w..].iter().all(|&v| v == 0.0),
            "no valid radar depth, no residual"
        );
        // Radar depth 0.05 behind the rendering on even pixels, invalid on odd ones.
        let radar: Vec<f32> = (0..h * w)
            .map(|i| if i % 2 == 0 { rendered[i] + 0.05 } else { 0.0 })
            .map(|v| v.max(0.0))
            .collect();
        let mut out = vec![0.0f32; f * h * w];
        renderer.render_row(&row, Some(&radar), &mut out).unwrap();
        assert_eq!(out[..7 * h * w], plain[..7 * h * w]);
        for i in 0..h * w {
            let expected = if i % 2 == 0 && rendered[i] != 0.0 {
                0.05
            } else {
                0.0
            };
            assert!((out[7 * h * w + i] - expected).abs() < 1e-6, "pixel {i}");
        }
        // A gain multiplies the residual and nothing else; it must be finite and positive.
        let (gained, _) = self::renderer(FeedbackSet::ALL);
        let gained = gained.with_residual_gain(10.0).unwrap();
        let mut times_ten = vec![0.0f32; f * h * w];
        gained
            .render_row(&row, Some(&radar), &mut times_ten)
            .unwrap();
        assert_eq!(times_ten[..7 * h * w], out[..7 * h * w]);
        for (a, b) in times_ten[7 * h * w..].iter().zip(&out[7 * h * w..]) {
            assert!((a - 10.0 * b).abs() < 1e-6);
        }
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let (r, _) = self::renderer(FeedbackSet::ALL);
            assert!(r.with_residual_gain(bad).is_err(), "gain {bad}");
        }
        // The depth channel is the depth raster's image of the same row.
        let imaging = Preset::Tiny.dataset().unwrap().imaging;
        let raster = crate::DepthRasterRenderer::new(builtin(), layout, &imaging).unwrap();
        let params = Tensor::from_vec(row.clone(), (1, layout.len()), &Device::Cpu).unwrap();
        let image: Vec<f64> = raster
            .render(&params)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (a, b) in rendered.iter().zip(image) {
            assert!((f64::from(*a) - b).abs() < 1e-6);
        }
    }

    /// With the learned channels, `append` adds the learned renderer's image of each row (its
    /// dynamic-range column set to the renderer's 15 dB) and the input minus it after the
    /// raster's channels; a renderer of another kind, layout or grid, a renderer without the
    /// flag and the flag without a renderer are refused.
    #[test]
    fn learned_channels_are_the_renderers_image_and_the_input_minus_it() {
        let config = Preset::Tiny.dataset().unwrap();
        let manifest = config.manifest(builtin(), (0, config.n_samples)).unwrap();
        let learned = |kind| {
            LearnedRenderer::untrained(facenet::NetworkSize::Tiny, &manifest, kind, 3).unwrap()
        };
        let set: FeedbackSet = "depth,residual,learned".parse().unwrap();
        assert_eq!(set.to_string(), "depth,residual,learned");
        for input in InputKind::ALL {
            for set in [set, FeedbackSet::ALL, FeedbackSet::PAPER, FeedbackSet::NONE] {
                assert_eq!(
                    set.channels(input),
                    set.names(input).len(),
                    "{set} {input:?}"
                );
            }
        }
        assert_eq!(
            set.names(InputKind::AmplitudeDepth),
            [
                "depth",
                "residual",
                "learned-amplitude",
                "learned-depth",
                "difference-amplitude",
                "difference-depth"
            ]
        );
        let new = |set, renderer| {
            FeedbackRenderer::with_learned(
                &builtin(),
                config.layout,
                &config.imaging,
                set,
                renderer,
            )
        };
        let renderer = new(set, Some(learned(InputKind::Depth))).unwrap();
        let (f, h, w) = renderer.raster_shape();
        assert_eq!((f, set.channels(InputKind::Depth)), (2, 4));
        let p = config.layout.len();
        let rows = [vec![0.0; p], vec![0.3; p]];
        let params = Tensor::from_vec(rows.concat(), (2, p), &Device::Cpu).unwrap();
        let images = Tensor::rand(0.1f32, 1.0, (2, 1, h, w), &Device::Cpu).unwrap();
        let out = renderer.append(&images, InputKind::Depth, &params).unwrap();
        assert_eq!(out.dims(), [2, 5, h, w]);
        let raster = crate::FeedbackRenderer::new(
            &builtin(),
            config.layout,
            &config.imaging,
            FeedbackSet::default_for(InputKind::Depth),
        )
        .unwrap()
        .append(&images, InputKind::Depth, &params)
        .unwrap();
        let got = |t: &Tensor, from, n| -> Vec<f32> {
            t.narrow(1, from, n)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        assert_eq!(got(&out, 0, 3), got(&raster, 0, 3));
        let mut at_15 = rows.concat();
        for row in at_15.chunks_exact_mut(p) {
            let mut r: Vec<f32> = row.iter().map(|&v| v as f32).collect();
            config.layout.set_dynamic_range(&mut r, 15.0);
            row.iter_mut().zip(r).for_each(|(v, r)| *v = f64::from(r));
        }
        let expected = learned(InputKind::Depth)
            .render(&Tensor::from_vec(at_15, (2, p), &Device::Cpu).unwrap())
            .unwrap();
        assert_eq!(got(&out, 3, 1), got(&expected, 0, 1));
        let difference = (&images - &expected).unwrap();
        assert_eq!(got(&out, 4, 1), got(&difference, 0, 1));
        // The estimate's dynamic-range column does not matter: it is set to 15 dB.
        let other_range = Tensor::from_vec(
            rows.iter()
                .flat_map(|r| {
                    let mut r: Vec<f32> = r.iter().map(|&v| v as f32).collect();
                    config.layout.set_dynamic_range(&mut r, 25.0);
                    r
                })
                .collect::<Vec<f32>>(),
            (2, p),
            &Device::Cpu,
        )
        .unwrap();
        let again = renderer
            .append(&images, InputKind::Depth, &other_range)
            .unwrap();
        assert_eq!(got(&again, 3, 2), got(&out, 3, 2));

        let amplitude = new(
            "depth,learned".parse().unwrap(),
            Some(learned(InputKind::Amplitude)),
        )
        .unwrap();
        let err = amplitude
            .append(&images, InputKind::Depth, &params)
            .unwrap_err();
        assert!(err.to_string().contains("draws amplitude images"), "{err}");
        let err = new(set, None).unwrap_err();
        assert!(err.to_string().contains("need a learned renderer"), "{err}");
        let err = new(FeedbackSet::ALL, Some(learned(InputKind::Depth))).unwrap_err();
        assert!(err.to_string().contains("has no learned channels"), "{err}");
        let mut small = config.clone();
        small.imaging.pool = 2 * config.imaging.pool;
        let other_grid = FeedbackRenderer::with_learned(
            &builtin(),
            config.layout,
            &small.imaging,
            set,
            Some(learned(InputKind::Depth)),
        )
        .unwrap_err();
        assert!(
            other_grid.to_string().contains("feedback grid"),
            "{other_grid}"
        );
    }

    /// `append` keeps the images and adds each row's feedback; a residual without a depth
    /// channel and mismatched shapes are refused.
    #[test]
    fn append_adds_each_rows_feedback_after_the_images() {
        let (renderer, layout) = renderer(FeedbackSet::default_for(InputKind::AmplitudeDepth));
        let (f, h, w) = renderer.raster_shape();
        let images = Tensor::rand(0.1f32, 1.0, (2, 2, h, w), &Device::Cpu).unwrap();
        let rows = [vec![0.0; layout.len()], vec![0.3; layout.len()]];
        let params = Tensor::from_vec(rows.concat(), (2, layout.len()), &Device::Cpu).unwrap();
        let out = renderer
            .append(&images, InputKind::AmplitudeDepth, &params)
            .unwrap();
        assert_eq!(out.dims(), [2, 2 + f, h, w]);
        let pixels: Vec<f32> = images.flatten_all().unwrap().to_vec1().unwrap();
        let got: Vec<f32> = out.flatten_all().unwrap().to_vec1().unwrap();
        let (chw, fhw) = (2 * h * w, f * h * w);
        for (b, row) in rows.iter().enumerate() {
            let example = &got[b * (chw + fhw)..(b + 1) * (chw + fhw)];
            assert_eq!(example[..chw], pixels[b * chw..(b + 1) * chw]);
            let mut expected = vec![0.0f32; fhw];
            let depth = &pixels[b * chw + h * w..(b + 1) * chw];
            renderer
                .render_row(row, Some(depth), &mut expected)
                .unwrap();
            assert_eq!(example[chw..], expected[..]);
        }
        assert!(
            renderer
                .append(&images, InputKind::Amplitude, &params)
                .is_err()
        );
        let one = images.narrow(1, 0, 1).unwrap();
        assert!(
            renderer
                .append(&one, InputKind::AmplitudeDepth, &params)
                .is_err()
        );
        assert!(FeedbackSet::ALL.check_input(InputKind::Amplitude).is_err());
        for set in [FeedbackSet::ALL, FeedbackSet::PAPER, FeedbackSet::NONE] {
            assert_eq!(set.to_string().parse::<FeedbackSet>().unwrap(), set);
        }
        assert_eq!(
            "normals, depth"
                .parse::<FeedbackSet>()
                .unwrap()
                .channels(InputKind::Depth),
            4
        );
        assert!("pncc,shading".parse::<FeedbackSet>().is_err());
        assert!(
            FeedbackSet::default_for(InputKind::Amplitude)
                .check_input(InputKind::Amplitude)
                .is_ok()
        );
    }
}
