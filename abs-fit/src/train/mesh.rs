//! The mesh-encoder stage (issue 17, docs/physics.md §9): COMA's spectral graph-convolution
//! autoencoder trained on meshes of the face model, drawn afresh for every batch over all of the
//! model's shape and expression components, with the L1 vertex loss of COMA and optionally a
//! term that keeps the identity vector of two meshes of one shape with different expressions
//! the same.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use facenet::{GraphPyramid, MeshAutoencoderConfig, Network};
use morphable::{LinearMorphableModel, MorphableModel};
use nalgebra::DMatrix;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::schedule::{LearningRate, TrainSchedule};
use super::stage::{StageCard, Start, run_stage};
use crate::dataset::ModelIdentity;
use crate::identity::{
    MESH_CARD_FORMAT, MeshEncoderCard, MeshIdentityEncoder, MeshValidation, cosine_similarity,
};
use crate::{AbsFitError, Progress, Result};

/// Mixed into the schedule's seed to draw the held-out meshes.
const VALIDATION_SEED: u64 = 0x3D1D_7E57_0000_0017;

/// Settings of [`train_mesh_encoder`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeshEncoderConfig {
    /// Length of the code (the 3D-ID paper: 8; issue 17 asks for 16).
    pub code: usize,
    /// The leading code entries that make the identity vector (at most `code`).
    pub identity: usize,
    /// The encoder's channels at each pyramid level (COMA: 16, 16, 16, 32); one level per entry.
    pub channels: Vec<usize>,
    /// Chebyshev polynomials per convolution (COMA and the 3D-ID paper: K = 6).
    pub order: usize,
    /// Pairwise matchings per pyramid level, each of which at most halves the nodes (2: about
    /// COMA's factor 4).
    pub matchings_per_level: usize,
    /// Meshes per epoch, drawn afresh for every batch.
    pub meshes_per_epoch: usize,
    /// Held-out meshes whose reconstruction error is reported.
    pub validation_meshes: usize,
    /// Standard deviation of the expression coefficients drawn (1: the model's own spread).
    pub expression_scale: f64,
    /// Weight of the expression-invariance term, mean(1 − cos) of the identity vectors of two
    /// meshes with one shape and two expressions (each batch's second half repeats its first
    /// half's shapes); 0 turns it off.
    pub invariance_weight: f64,
    /// Epochs, batch size, learning rate, seed.
    pub schedule: TrainSchedule,
}

impl MeshEncoderConfig {
    /// COMA's architecture (channels 16, 16, 16, 32, K = 6, 4× coarsening) with a code of
    /// `code` entries, all of them the identity vector; 10 epochs of 2 048 meshes in batches of
    /// 16 at a constant rate of 0.001; 256 held-out meshes; no invariance term.
    pub fn new(code: usize) -> Self {
        Self {
            code,
            identity: code,
            channels: vec![16, 16, 16, 32],
            order: 6,
            matchings_per_level: 2,
            meshes_per_epoch: 2048,
            validation_meshes: 256,
            expression_scale: 1.0,
            invariance_weight: 0.0,
            schedule: TrainSchedule::new(10, 16, LearningRate::constant(1e-3)),
        }
    }

    /// Checks every count and weight.
    pub fn validate(&self) -> Result<()> {
        let err = |reason: String| Err(AbsFitError::config("mesh encoder", reason));
        self.schedule.validate()?;
        if self.code == 0 || self.identity == 0 || self.identity > self.code {
            return err(format!(
                "code {} and identity {}: need 1 ≤ identity ≤ code",
                self.code, self.identity
            ));
        }
        if self.channels.is_empty() || self.channels.contains(&0) {
            return err(format!(
                "channels {:?}: at least one level, each at least 1",
                self.channels
            ));
        }
        if self.order == 0 || self.matchings_per_level == 0 {
            return err(format!(
                "order {} and matchings per level {}: both at least 1",
                self.order, self.matchings_per_level
            ));
        }
        if self.meshes_per_epoch == 0 || self.validation_meshes == 0 {
            return err(format!(
                "{} meshes per epoch and {} held out: both at least 1",
                self.meshes_per_epoch, self.validation_meshes
            ));
        }
        if !(self.expression_scale.is_finite() && self.expression_scale >= 0.0) {
            return err(format!(
                "expression scale {} must be finite and ≥ 0",
                self.expression_scale
            ));
        }
        if !(self.invariance_weight.is_finite() && self.invariance_weight >= 0.0) {
            return err(format!(
                "invariance weight {} must be finite and ≥ 0",
                self.invariance_weight
            ));
        }
        if self.invariance_weight > 0.0 && !self.schedule.batch_size.is_multiple_of(2) {
            return err(format!(
                "the invariance term pairs the meshes of a batch: batch size {} must be even",
                self.schedule.batch_size
            ));
        }
        Ok(())
    }
}

/// The undirected edges of a triangle mesh, each once (smaller index first), sorted.
pub fn mesh_edges(triangles: &[[u32; 3]]) -> Vec<[u32; 2]> {
    let mut edges: Vec<[u32; 2]> = triangles
        .iter()
        .flat_map(|&[a, b, c]| [[a, b], [b, c], [c, a]])
        .filter(|[a, b]| a != b)
        .map(|[a, b]| [a.min(b), a.max(b)])
        .collect();
    edges.sort_unstable();
    edges.dedup();
    edges
}

/// The graph pyramid of `model`'s mesh: its edge graph, coarsened `levels` times, each time by
/// `matchings` rounds of greedy pairwise matching (Graclus-style, the coarsening of ChebNet):
/// nodes are visited in index order and each unmatched node pairs with its nearest unmatched
/// neighbour on the mean face (ties to the lower index), so every cluster is connected on the
/// surface and its members are kept in the cluster map. A coarse node sits at its members'
/// centroid.
///
/// # Errors
/// [`AbsFitError::Config`] if the mesh has no edges or a level would shrink to one node.
pub fn mesh_pyramid(
    model: &dyn MorphableModel,
    levels: usize,
    matchings: usize,
) -> Result<GraphPyramid> {
    let mean = model.mean_mesh()?;
    let edges = mesh_edges(model.triangles());
    if edges.is_empty() {
        return Err(AbsFitError::config(
            "mesh pyramid",
            format!("model '{}' has no edges", model.name()),
        ));
    }
    let mut points: Vec<([f64; 3], f64)> = mean
        .vertices
        .iter()
        .map(|p| ([p.x, p.y, p.z], 1.0))
        .collect();
    let mut level_edges = edges.clone();
    let mut clusters = Vec::with_capacity(levels);
    for level in 0..levels {
        let mut map: Vec<u32> = (0..points.len() as u32).collect();
        for _ in 0..matchings {
            let (matching, n) = greedy_matching(&points, &level_edges);
            for m in map.iter_mut() {
                *m = matching[*m as usize];
            }
            let mut merged = vec![([0.0; 3], 0.0); n];
            for (&(p, w), &k) in points.iter().zip(&matching) {
                let (q, total) = &mut merged[k as usize];
                for (qi, pi) in q.iter_mut().zip(p) {
                    *qi += w * pi;
                }
                *total += w;
            }
            points = merged
                .into_iter()
                .map(|(q, w)| (q.map(|c| c / w), w))
                .collect();
            level_edges = level_edges
                .iter()
                .map(|&[a, b]| {
                    let (a, b) = (matching[a as usize], matching[b as usize]);
                    [a.min(b), a.max(b)]
                })
                .filter(|[a, b]| a != b)
                .collect();
            level_edges.sort_unstable();
            level_edges.dedup();
        }
        if points.len() < 2 {
            return Err(AbsFitError::config(
                "mesh pyramid",
                format!(
                    "level {} of {levels} has {} node(s): use fewer levels",
                    level + 1,
                    points.len()
                ),
            ));
        }
        clusters.push(map);
    }
    let pyramid = GraphPyramid {
        n_nodes: mean.vertices.len(),
        edges,
        clusters,
    };
    pyramid.validate()?;
    Ok(pyramid)
}

/// One round of greedy matching of `points` (position, weight) over `edges`: the cluster id of
/// every node (ids in order of each cluster's lowest member) and the number of clusters.
fn greedy_matching(points: &[([f64; 3], f64)], edges: &[[u32; 2]]) -> (Vec<u32>, usize) {
    let n = points.len();
    let mut neighbours = vec![Vec::new(); n];
    for &[a, b] in edges {
        neighbours[a as usize].push(b as usize);
        neighbours[b as usize].push(a as usize);
    }
    let distance = |i: usize, j: usize| -> f64 {
        let (p, q) = (points[i].0, points[j].0);
        (0..3).map(|k| (p[k] - q[k]).powi(2)).sum()
    };
    let mut id = vec![u32::MAX; n];
    let mut next = 0u32;
    for i in 0..n {
        if id[i] != u32::MAX {
            continue;
        }
        id[i] = next;
        let partner = neighbours[i]
            .iter()
            .copied()
            .filter(|&j| id[j] == u32::MAX)
            .min_by(|&a, &b| distance(i, a).total_cmp(&distance(i, b)).then(a.cmp(&b)));
        if let Some(j) = partner {
            id[j] = next;
        }
        next += 1;
    }
    (id, next as usize)
}

/// Draws meshes of a linear model: coefficients N(0, 1) over every shape component and
/// N(0, s²) over every expression component, as displacements from the mean face.
struct MeshSampler {
    /// The scaled basis, (K_s + K_e, 3N) f32 on the CPU.
    basis: Tensor,
    n_shape: usize,
    n_expression: usize,
    n_vertices: usize,
    expression_scale: f64,
}

impl MeshSampler {
    fn new(model: &dyn LinearMorphableModel, expression_scale: f64) -> Result<Self> {
        let (shape, expression) = (model.shape_block(), model.expression_block());
        let n_vertices = model.n_vertices();
        let mut basis = shape.scaled_basis().to_vec();
        basis.extend_from_slice(expression.scaled_basis());
        let k = shape.n_components() + expression.n_components();
        if k == 0 || n_vertices == 0 {
            return Err(AbsFitError::config(
                "mesh encoder",
                format!("model '{}' has no components or no vertices", model.name()),
            ));
        }
        Ok(Self {
            basis: Tensor::from_vec(basis, (k, 3 * n_vertices), &Device::Cpu)?,
            n_shape: shape.n_components(),
            n_expression: expression.n_components(),
            n_vertices,
            expression_scale,
        })
    }

    /// The per-component standard deviations of the drawn coefficients.
    fn spreads(&self) -> Vec<f64> {
        let mut s = vec![1.0; self.n_shape];
        s.extend(std::iter::repeat_n(
            self.expression_scale,
            self.n_expression,
        ));
        s
    }

    /// The root mean square displacement of a coordinate (mm) over the drawn meshes, and the
    /// expected root mean square Euclidean vertex error of the best linear code of `code`
    /// entries: with Σ the displacements' covariance, √(Σ_{i>code} λ_i(Σ) / N), from the
    /// eigenvalues of S Wᵀ W S (S the spreads), which Σ = W S² Wᵀ shares.
    fn spread_and_linear_bound(&self, code: usize) -> Result<(f64, f64)> {
        let k = self.n_shape + self.n_expression;
        let basis: Vec<f32> = self.basis.flatten_all()?.to_vec1()?;
        let spreads = self.spreads();
        let columns: Vec<&[f32]> = basis.chunks_exact(3 * self.n_vertices).collect();
        let mut gram: DMatrix<f64> = DMatrix::zeros(k, k);
        for i in 0..k {
            for j in i..k {
                let dot: f64 = columns[i]
                    .iter()
                    .zip(columns[j])
                    .map(|(&a, &b)| a as f64 * b as f64)
                    .sum();
                gram[(i, j)] = dot * spreads[i] * spreads[j];
                gram[(j, i)] = gram[(i, j)];
            }
        }
        let n = self.n_vertices as f64;
        let total = gram.trace();
        let mut eigen: Vec<f64> = gram.symmetric_eigenvalues().iter().copied().collect();
        eigen.sort_by(|a, b| b.total_cmp(a));
        let rest: f64 = eigen.iter().skip(code).map(|l| l.max(0.0)).sum();
        Ok(((total / (3.0 * n)).sqrt(), (rest / n).sqrt()))
    }

    /// Coefficients (B, K) of `b` meshes drawn from `seed`; with `paired`, the second half
    /// repeats the first half's shape coefficients (with their own expressions).
    fn coefficients(&self, b: usize, paired: bool, seed: u64, device: &Device) -> Result<Tensor> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let spreads = self.spreads();
        let k = spreads.len();
        let mut c: Vec<f32> = (0..b * k)
            .map(|i| {
                let z: f64 = StandardNormal.sample(&mut rng);
                (z * spreads[i % k]) as f32
            })
            .collect();
        if paired {
            let half = b / 2;
            for i in 0..half {
                let (first, second) = c.split_at_mut((half + i) * k);
                second[..self.n_shape].copy_from_slice(&first[i * k..i * k + self.n_shape]);
            }
        }
        Ok(Tensor::from_vec(c, (b, k), device)?)
    }

    /// Displacements (B, N, 3) mm from the mean face of coefficients (B, K).
    fn displacements(&self, coefficients: &Tensor) -> Result<Tensor> {
        let b = coefficients.dim(0)?;
        let basis = self.basis.to_device(coefficients.device())?;
        Ok(coefficients
            .matmul(&basis)?
            .reshape((b, self.n_vertices, 3))?)
    }
}

impl StageCard for MeshEncoderCard {
    fn task(&self) -> &'static str {
        "train mesh encoder"
    }

    fn write_card(&self, dir: &Path) -> Result<()> {
        self.write(dir)
    }

    fn check_saved(&self, dir: &Path) -> Result<()> {
        // The results and the run's length, interruption and device may differ.
        let comparable = |c: &MeshEncoderCard| -> Result<MeshEncoderCard> {
            let mut config: MeshEncoderConfig = serde_json::from_value(c.training.clone())
                .map_err(|e| AbsFitError::ModelDir {
                    dir: dir.to_path_buf(),
                    reason: format!("the mesh encoder's training settings cannot be read: {e}"),
                })?;
            config.schedule = TrainSchedule {
                epochs: 0,
                stop_after_epochs: None,
                device: Default::default(),
                ..config.schedule
            };
            Ok(MeshEncoderCard {
                validation: None,
                training: training_json(&config)?,
                ..c.clone()
            })
        };
        if comparable(&MeshEncoderCard::read(dir)?)? == comparable(self)? {
            Ok(())
        } else {
            Err(AbsFitError::ModelDir {
                dir: dir.to_path_buf(),
                reason: "holds a mesh encoder trained with other settings or another face \
                         model: resume it with the same settings or use a new directory"
                    .into(),
            })
        }
    }
}

/// A mesh encoder's training settings as the card's JSON.
fn training_json(config: &MeshEncoderConfig) -> Result<serde_json::Value> {
    serde_json::to_value(config).map_err(|e| {
        AbsFitError::config(
            "mesh encoder",
            format!("settings cannot be serialised: {e}"),
        )
    })
}

/// Trains (or resumes) the mesh encoder of `model` in `dir` ([`MeshEncoderConfig`]), then
/// measures its reconstruction of held-out meshes into the card, and returns it frozen.
///
/// The network sees (vertices − mean face) / s with s the root mean square coordinate
/// displacement, and minimises the mean absolute coordinate error (COMA's L1), plus
/// `invariance_weight` · mean(1 − cos) of paired identity vectors when that weight is positive.
pub fn train_mesh_encoder(
    model: &dyn LinearMorphableModel,
    config: &MeshEncoderConfig,
    dir: &Path,
    progress: &mut dyn Progress,
) -> Result<MeshIdentityEncoder> {
    config.validate()?;
    let sampler = MeshSampler::new(model, config.expression_scale)?;
    let (scale_mm, best_linear_rms_mm) = sampler.spread_and_linear_bound(config.code)?;
    let pyramid = mesh_pyramid(model, config.channels.len(), config.matchings_per_level)?;
    let mut card = MeshEncoderCard {
        format: MESH_CARD_FORMAT.into(),
        model: ModelIdentity::of(model)?,
        scale_mm,
        pyramid: pyramid.level_sizes(),
        code: config.code,
        identity: config.identity,
        training: training_json(config)?,
        validation: None,
    };
    let network_config = MeshAutoencoderConfig {
        graph: pyramid,
        in_channels: 3,
        channels: config.channels.clone(),
        order: config.order,
        code: config.code,
    };
    let paired = config.invariance_weight > 0.0;
    let network = run_stage(
        dir,
        &card,
        Start::Fresh(network_config),
        &config.schedule,
        config.meshes_per_epoch,
        |network, indices, seed| {
            let b = indices.len();
            let pairs = paired && b >= 2 && b.is_multiple_of(2);
            let coefficients = sampler.coefficients(b, pairs, seed, network.device())?;
            let x = (sampler.displacements(&coefficients)? / scale_mm)?;
            let module = network.module();
            let code = module.encode(&x)?;
            let l1 = (module.decode(&code)? - &x)?.abs()?.mean_all()?;
            if !pairs {
                return Ok(l1);
            }
            let identity = code.narrow(1, 0, config.identity)?;
            let h = b / 2;
            let cos = cosine_similarity(&identity.narrow(0, 0, h)?, &identity.narrow(0, h, h)?)?;
            let invariance = (cos.neg()? + 1.0)?.mean_all()?;
            Ok((l1 + (invariance * config.invariance_weight)?)?)
        },
        progress,
    )?;
    card.validation = Some(validate_reconstruction(
        &network,
        &sampler,
        scale_mm,
        config,
        best_linear_rms_mm,
    )?);
    card.write(dir)?;
    MeshIdentityEncoder::from_parts(network, card, model)
}

/// The reconstruction errors of `config.validation_meshes` held-out meshes.
fn validate_reconstruction(
    network: &Network<MeshAutoencoderConfig>,
    sampler: &MeshSampler,
    scale_mm: f64,
    config: &MeshEncoderConfig,
    best_linear_rms_mm: f64,
) -> Result<MeshValidation> {
    let device = network.device();
    let total = config.validation_meshes;
    let batch = config.schedule.batch_size.max(1);
    let (mut sum, mut sum_sq, mut from_mean, mut count) = (0.0f64, 0.0f64, 0.0f64, 0usize);
    let mut done = 0;
    while done < total {
        let b = batch.min(total - done);
        let seed = config.schedule.seed ^ VALIDATION_SEED ^ (done as u64);
        let coefficients = sampler.coefficients(b, false, seed, device)?;
        let x = sampler.displacements(&coefficients)?;
        let module = network.module();
        let decoded = (module.decode(&module.encode(&(&x / scale_mm)?)?)? * scale_mm)?;
        let error = vertex_distances(&(decoded - &x)?)?;
        let offset = vertex_distances(&x)?;
        sum += error.iter().sum::<f64>();
        sum_sq += error.iter().map(|e| e * e).sum::<f64>();
        from_mean += offset.iter().sum::<f64>();
        count += error.len();
        done += b;
    }
    let n = count.max(1) as f64;
    Ok(MeshValidation {
        meshes: total,
        mean_error_mm: sum / n,
        rms_error_mm: (sum_sq / n).sqrt(),
        mean_face_error_mm: from_mean / n,
        best_linear_rms_mm,
    })
}

/// The Euclidean length of every vertex of (B, N, 3) offsets, flattened.
fn vertex_distances(offsets: &Tensor) -> Result<Vec<f64>> {
    Ok(offsets
        .to_dtype(DType::F64)?
        .sqr()?
        .sum(2)?
        .sqrt()?
        .flatten_all()?
        .to_vec1()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesh_edges_are_unique_and_ordered() {
        let edges = mesh_edges(&[[0, 1, 2], [2, 1, 3]]);
        assert_eq!(edges, vec![[0, 1], [0, 2], [1, 2], [1, 3], [2, 3]]);
    }

    #[test]
    fn greedy_matching_pairs_nearest_unmatched_neighbours() {
        // A path 0 — 1 — 2 — 3 with 1 nearer to 2 than to 0: 0 pairs with 1 (its only
        // neighbour), 2 with 3.
        let points = [0.0, 1.0, 1.1, 5.0].map(|x| ([x, 0.0, 0.0], 1.0));
        let (id, n) = greedy_matching(&points, &[[0, 1], [1, 2], [2, 3]]);
        assert_eq!((id, n), (vec![0, 0, 1, 1], 2));
        // A star: the centre 0 pairs with its nearest leaf, the others stay alone.
        let points = [0.0, 3.0, -1.0, 2.0].map(|x| ([x, 0.0, 0.0], 1.0));
        let (id, n) = greedy_matching(&points, &[[0, 1], [0, 2], [0, 3]]);
        assert_eq!((id, n), (vec![0, 1, 0, 2], 3));
    }
}
