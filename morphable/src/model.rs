//! The [`MorphableModel`] trait and its linear (PCA) implementation.

use std::sync::{Arc, OnceLock};

use nalgebra::{DMatrix, DVector, Point3};
use rayon::prelude::*;

use crate::{Mesh, MorphableError, Result};

/// A face model: a fixed triangulation whose vertices move with shape and expression
/// coefficients. Coefficients are in units of standard deviations (α, γ ~ N(0, I)); a shorter
/// vector than the model has components is zero-padded, a longer one is an error. Vertices are
/// in millimetres, model space (y up, nose toward +z).
pub trait MorphableModel: Send + Sync {
    /// A short human-readable identity (file name, "builtin-v1", ...).
    fn name(&self) -> &str;
    /// Number of vertices of every instance.
    fn n_vertices(&self) -> usize;
    /// The triangulation shared by every instance.
    fn triangles(&self) -> &[[u32; 3]];
    /// Number of shape components.
    fn n_shape(&self) -> usize;
    /// Number of expression components.
    fn n_expression(&self) -> usize;
    /// The face for the given coefficients (mm, model space).
    fn instance(&self, shape: &[f64], expression: &[f64]) -> Result<Mesh>;
    /// The mean face: all coefficients zero.
    fn mean_mesh(&self) -> Result<Mesh> {
        self.instance(&[], &[])
    }
}

macro_rules! forward_model {
    ($($ty:ty),*) => {$(
        impl<M: MorphableModel + ?Sized> MorphableModel for $ty {
            fn name(&self) -> &str { (**self).name() }
            fn n_vertices(&self) -> usize { (**self).n_vertices() }
            fn triangles(&self) -> &[[u32; 3]] { (**self).triangles() }
            fn n_shape(&self) -> usize { (**self).n_shape() }
            fn n_expression(&self) -> usize { (**self).n_expression() }
            fn instance(&self, shape: &[f64], expression: &[f64]) -> Result<Mesh> {
                (**self).instance(shape, expression)
            }
            fn mean_mesh(&self) -> Result<Mesh> { (**self).mean_mesh() }
        }
    )*};
}
forward_model!(&M, Box<M>, Arc<M>);

/// A [`MorphableModel`] that is linear in its coefficients, x(α, γ) = μ_s + μ_e +
/// Σ α_k·S_k + Σ γ_k·E_k (docs/physics.md §5), and exposes its two blocks: what a differentiable
/// renderer needs to chain vertex gradients to the coefficients. The blocks' columns
/// ([`PcaBlock::component`]) are the displacements (mm) of one standard deviation.
pub trait LinearMorphableModel: MorphableModel {
    /// The shape block (mean μ_s and scaled basis S, mm).
    fn shape_block(&self) -> &PcaBlock;
    /// The expression block (mean μ_e and scaled basis E, mm).
    fn expression_block(&self) -> &PcaBlock;
}

macro_rules! forward_linear_model {
    ($($ty:ty),*) => {$(
        impl<M: LinearMorphableModel + ?Sized> LinearMorphableModel for $ty {
            fn shape_block(&self) -> &PcaBlock { (**self).shape_block() }
            fn expression_block(&self) -> &PcaBlock { (**self).expression_block() }
        }
    )*};
}
forward_linear_model!(&M, Box<M>, Arc<M>);

/// Checks a coefficient vector against a component count as every [`MorphableModel`] must:
/// at most `n` entries (shorter ones are zero-padded), all finite. `kind` names the vector in
/// the error ("shape", "expression"). For implementors of the trait.
pub fn check_coefficients(kind: &'static str, coeffs: &[f64], n: usize) -> Result<()> {
    if coeffs.len() > n {
        return Err(MorphableError::Coefficients {
            kind,
            reason: format!("{} given, the model has {n}", coeffs.len()),
        });
    }
    if let Some(i) = coeffs.iter().position(|c| !c.is_finite()) {
        return Err(MorphableError::Coefficients {
            kind,
            reason: format!("coefficient {i} is {}", coeffs[i]),
        });
    }
    Ok(())
}

/// One linear block of a model (shape or expression): a mean and a basis already scaled by the
/// standard deviations, x = μ + U·diag(√λ)·c.
///
/// The scaled basis is stored column-major (component k is the contiguous slice
/// `[k·3N, (k+1)·3N)`), in f32 like statismo files, so an instance touches only the columns
/// it uses.
#[derive(Debug, Clone, PartialEq)]
pub struct PcaBlock {
    mean: Vec<f32>,
    scaled_basis: Vec<f32>,
    variance: Vec<f64>,
    noise_variance: f64,
}

impl PcaBlock {
    /// The largest mean coordinate a block may hold (mm): 10 m.
    pub const MAX_COORDINATE_MM: f32 = 1e4;
    /// The largest displacement of a coordinate by one standard deviation of one component
    /// (mm): 1 m. With the mean bound, every instance within 10 σ of the mean of a K-component
    /// block lies within 10 m + K · 10 m of the origin, so a corrupted file (a bit flip that
    /// makes 2.8e36) is refused instead of yielding absurd vertices.
    pub const MAX_DISPLACEMENT_MM: f32 = 1e3;

    /// A block from its mean (3N, `x0 y0 z0 x1 …`), its basis already scaled by √λ
    /// (column-major, K columns of 3N), the variances λ (K) and the noise variance σ².
    /// Non-finite values and magnitudes beyond [`PcaBlock::MAX_COORDINATE_MM`] and
    /// [`PcaBlock::MAX_DISPLACEMENT_MM`] are refused.
    pub fn new(
        mean: Vec<f32>,
        scaled_basis: Vec<f32>,
        variance: Vec<f64>,
        noise_variance: f64,
    ) -> Result<Self> {
        let n = mean.len();
        if !n.is_multiple_of(3) {
            return Err(MorphableError::Inconsistent(format!(
                "mean has {n} entries, not a multiple of 3"
            )));
        }
        let k = variance.len();
        if scaled_basis.len() != n * k {
            return Err(MorphableError::Inconsistent(format!(
                "basis has {} entries, expected {n} coordinates × {k} components = {}",
                scaled_basis.len(),
                n * k
            )));
        }
        if let Some(i) = mean.iter().position(|v| !v.is_finite()) {
            return Err(MorphableError::Inconsistent(format!(
                "mean entry {i} is {}",
                mean[i]
            )));
        }
        if let Some(i) = scaled_basis.iter().position(|v| !v.is_finite()) {
            return Err(MorphableError::Inconsistent(format!(
                "basis entry (coordinate {}, component {}) is {}",
                i % n.max(1),
                i / n.max(1),
                scaled_basis[i]
            )));
        }
        if let Some(i) = mean.iter().position(|v| v.abs() > Self::MAX_COORDINATE_MM) {
            return Err(MorphableError::Inconsistent(format!(
                "mean entry {i} is {} mm, beyond ±{} mm: not a face in millimetres",
                mean[i],
                Self::MAX_COORDINATE_MM
            )));
        }
        if let Some(i) = scaled_basis
            .iter()
            .position(|v| v.abs() > Self::MAX_DISPLACEMENT_MM)
        {
            return Err(MorphableError::Inconsistent(format!(
                "basis entry (coordinate {}, component {}) moves a vertex by {} mm per standard \
                 deviation, beyond {} mm",
                i % n.max(1),
                i / n.max(1),
                scaled_basis[i],
                Self::MAX_DISPLACEMENT_MM
            )));
        }
        if let Some(i) = variance.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(MorphableError::Inconsistent(format!(
                "variance {i} is {}",
                variance[i]
            )));
        }
        if !(noise_variance.is_finite() && noise_variance >= 0.0) {
            return Err(MorphableError::Inconsistent(format!(
                "noise variance is {noise_variance}"
            )));
        }
        Ok(Self {
            mean,
            scaled_basis,
            variance,
            noise_variance,
        })
    }

    /// A block from an orthonormal (unscaled) column-major basis U: scales column k by √λ_k.
    pub fn from_unscaled(
        mean: Vec<f32>,
        mut basis: Vec<f32>,
        variance: Vec<f64>,
        noise_variance: f64,
    ) -> Result<Self> {
        let n = mean.len();
        if n > 0 {
            for (col, &var) in basis.chunks_mut(n).zip(&variance) {
                let s = var.max(0.0).sqrt() as f32;
                col.iter_mut().for_each(|v| *v *= s);
            }
        }
        Self::new(mean, basis, variance, noise_variance)
    }

    /// A block with no components and a zero mean.
    pub fn empty(n_vertices: usize) -> Self {
        Self {
            mean: vec![0.0; 3 * n_vertices],
            scaled_basis: Vec::new(),
            variance: Vec::new(),
            noise_variance: 0.0,
        }
    }

    /// Number of components K.
    pub fn n_components(&self) -> usize {
        self.variance.len()
    }
    /// Number of coordinates 3N.
    pub fn n_coords(&self) -> usize {
        self.mean.len()
    }
    /// The mean, `x0 y0 z0 x1 …` (mm).
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }
    /// Column k of U·diag(√λ): the displacement (mm) of one standard deviation of component k.
    pub fn component(&self, k: usize) -> &[f32] {
        let n = self.n_coords();
        &self.scaled_basis[k * n..(k + 1) * n]
    }
    /// The whole scaled basis, column-major.
    pub fn scaled_basis(&self) -> &[f32] {
        &self.scaled_basis
    }
    /// Variances λ (mm²).
    pub fn variance(&self) -> &[f64] {
        &self.variance
    }
    /// Noise variance σ² (mm²).
    pub fn noise_variance(&self) -> f64 {
        self.noise_variance
    }
    /// The block keeping only its first `k` components (all of them if `k` is larger).
    pub fn truncated(&self, k: usize) -> Self {
        let k = k.min(self.n_components());
        Self {
            mean: self.mean.clone(),
            scaled_basis: self.scaled_basis[..k * self.n_coords()].to_vec(),
            variance: self.variance[..k].to_vec(),
            noise_variance: self.noise_variance,
        }
    }
}

/// Coordinates per parallel work item of [`PcaModel::instance_flat`]: 64 KiB of accumulator,
/// which stays in L2 while every column streams through it once.
const CHUNK: usize = 16 * 1024;

/// acc += Σ_k c_k·column_k[start..start + acc.len()], eight columns per pass so the
/// accumulator is loaded and stored an eighth as often.
fn accumulate(acc: &mut [f32], start: usize, terms: &[(&[f32], f32)]) {
    let n = acc.len();
    let mut groups = terms.chunks_exact(8);
    for g in &mut groups {
        let c: [f32; 8] = std::array::from_fn(|k| g[k].1);
        let b: [&[f32]; 8] = std::array::from_fn(|k| &g[k].0[start..start + n]);
        for i in 0..n {
            let head = c[0] * b[0][i] + c[1] * b[1][i] + c[2] * b[2][i] + c[3] * b[3][i];
            let tail = c[4] * b[4][i] + c[5] * b[5][i] + c[6] * b[6][i] + c[7] * b[7][i];
            acc[i] += head + tail;
        }
    }
    for (column, c) in groups.remainder() {
        for (a, b) in acc.iter_mut().zip(&column[start..start + n]) {
            *a += c * b;
        }
    }
}

/// A linear morphable model: x(α, γ) = μ_s + μ_e + U_s·diag(√λ_s)·α + U_e·diag(√λ_e)·γ
/// (docs/physics.md §5). Statismo / BFM 2019 files load into this type, and so does the built-in
/// model.
#[derive(Debug)]
pub struct PcaModel {
    name: String,
    shape: PcaBlock,
    expression: PcaBlock,
    triangles: Vec<[u32; 3]>,
    /// μ_s + μ_e, computed once.
    mean: Vec<f32>,
    /// Cached regularised normal matrix for projection.
    projector: OnceLock<ProjectionSystem>,
}

impl Clone for PcaModel {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            shape: self.shape.clone(),
            expression: self.expression.clone(),
            triangles: self.triangles.clone(),
            mean: self.mean.clone(),
            projector: OnceLock::new(),
        }
    }
}

impl PcaModel {
    /// A model from its shape and expression blocks and its triangles. The two blocks must have
    /// the same number of coordinates, and every triangle index must be a vertex.
    pub fn new(
        name: impl Into<String>,
        shape: PcaBlock,
        expression: PcaBlock,
        triangles: Vec<[u32; 3]>,
    ) -> Result<Self> {
        if shape.n_coords() != expression.n_coords() {
            return Err(MorphableError::Inconsistent(format!(
                "shape has {} coordinates, expression {}",
                shape.n_coords(),
                expression.n_coords()
            )));
        }
        let n_vertices = shape.n_coords() / 3;
        if n_vertices == 0 {
            return Err(MorphableError::Inconsistent(
                "the model has no vertices".into(),
            ));
        }
        if let Some((t, tri)) = triangles
            .iter()
            .enumerate()
            .find(|(_, t)| t.iter().any(|&i| i as usize >= n_vertices))
        {
            return Err(MorphableError::Inconsistent(format!(
                "triangle {t} = {tri:?} indexes past the {n_vertices} vertices"
            )));
        }
        let mean = shape
            .mean()
            .iter()
            .zip(expression.mean())
            .map(|(a, b)| a + b)
            .collect();
        Ok(Self {
            name: name.into(),
            shape,
            expression,
            triangles,
            mean,
            projector: OnceLock::new(),
        })
    }

    /// The shape block.
    pub fn shape(&self) -> &PcaBlock {
        &self.shape
    }
    /// The expression block.
    pub fn expression(&self) -> &PcaBlock {
        &self.expression
    }
    /// μ_s + μ_e, `x0 y0 z0 x1 …` (mm).
    pub fn mean_coords(&self) -> &[f32] {
        &self.mean
    }

    /// The same model keeping only the first `n_shape` and `n_expression` components.
    pub fn truncated(&self, n_shape: usize, n_expression: usize) -> Self {
        Self {
            name: self.name.clone(),
            shape: self.shape.truncated(n_shape),
            expression: self.expression.truncated(n_expression),
            triangles: self.triangles.clone(),
            mean: self.mean.clone(),
            projector: OnceLock::new(),
        }
    }

    /// A renamed copy.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The instance as flat coordinates `x0 y0 z0 x1 …` (mm), computed in f32: the fast path
    /// under [`MorphableModel::instance`].
    pub fn instance_flat(&self, shape: &[f64], expression: &[f64]) -> Result<Vec<f32>> {
        check_coefficients("shape", shape, self.shape.n_components())?;
        check_coefficients("expression", expression, self.expression.n_components())?;
        let mut out = self.mean.clone();
        // Skip zero coefficients: padding and the mean face cost nothing.
        let terms: Vec<(&[f32], f32)> = shape
            .iter()
            .enumerate()
            .map(|(k, &c)| (self.shape.component(k), c as f32))
            .chain(
                expression
                    .iter()
                    .enumerate()
                    .map(|(k, &c)| (self.expression.component(k), c as f32)),
            )
            .filter(|(_, c)| *c != 0.0)
            .collect();
        if terms.is_empty() {
            return Ok(out);
        }
        out.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(chunk, acc)| accumulate(acc, chunk * CHUNK, &terms));
        Ok(out)
    }

    /// Projects a mesh (same topology, mm, model space) onto the model: the coefficients
    /// (α, γ) minimising |W·c − (x − μ)|² + σ²|c|², i.e. c = (WᵀW + σ²I)⁻¹Wᵀ(x − μ) with
    /// W = [U_s·diag(√λ_s), U_e·diag(√λ_e)] (docs/physics.md §5). Columns need not be orthogonal.
    /// σ² is the larger of the two blocks' noise variances, or a tiny ridge if both are zero.
    pub fn project(&self, mesh: &Mesh) -> Result<(Vec<f64>, Vec<f64>)> {
        if mesh.n_vertices() != self.n_vertices() {
            return Err(MorphableError::Mesh(format!(
                "has {} vertices, the model {}",
                mesh.n_vertices(),
                self.n_vertices()
            )));
        }
        let system = self.projector.get_or_init(|| ProjectionSystem::new(self));
        let residual: Vec<f64> = mesh
            .to_flat()
            .iter()
            .zip(&self.mean)
            .map(|(x, m)| x - *m as f64)
            .collect();
        let columns = self.columns();
        let rhs = DVector::from_iterator(
            columns.len(),
            columns.iter().map(|col| dot_f32_f64(col, &residual)),
        );
        let c = system.solve(&rhs);
        let ks = self.shape.n_components();
        Ok((c.as_slice()[..ks].to_vec(), c.as_slice()[ks..].to_vec()))
    }

    fn columns(&self) -> Vec<&[f32]> {
        (0..self.shape.n_components())
            .map(|k| self.shape.component(k))
            .chain((0..self.expression.n_components()).map(|k| self.expression.component(k)))
            .collect()
    }
}

fn dot_f32_f64(a: &[f32], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * y).sum()
}

/// Cholesky factor of WᵀW + σ²I, built once per model.
#[derive(Debug)]
struct ProjectionSystem {
    factor: Option<nalgebra::Cholesky<f64, nalgebra::Dyn>>,
    fallback: DMatrix<f64>,
}

impl ProjectionSystem {
    fn new(model: &PcaModel) -> Self {
        let columns = model.columns();
        let k = columns.len();
        let pairs: Vec<(usize, usize)> = (0..k).flat_map(|i| (i..k).map(move |j| (i, j))).collect();
        let values: Vec<f64> = pairs
            .par_iter()
            .map(|&(i, j)| {
                columns[i]
                    .iter()
                    .zip(columns[j])
                    .map(|(a, b)| *a as f64 * *b as f64)
                    .sum()
            })
            .collect();
        let mut gram = DMatrix::zeros(k, k);
        for (&(i, j), v) in pairs.iter().zip(values) {
            gram[(i, j)] = v;
            gram[(j, i)] = v;
        }
        let sigma2 = model
            .shape
            .noise_variance()
            .max(model.expression.noise_variance());
        let trace = gram.trace();
        let ridge = if sigma2 > 0.0 {
            sigma2
        } else {
            1e-12 * trace.max(1.0) / k.max(1) as f64
        };
        for i in 0..k {
            gram[(i, i)] += ridge;
        }
        Self {
            factor: nalgebra::Cholesky::new(gram.clone()),
            fallback: gram,
        }
    }

    fn solve(&self, rhs: &DVector<f64>) -> DVector<f64> {
        match &self.factor {
            Some(f) => f.solve(rhs),
            // Not positive definite (duplicate columns): least squares through the SVD.
            None => self
                .fallback
                .clone()
                .svd(true, true)
                .solve(rhs, 1e-12)
                .unwrap_or_else(|_| DVector::zeros(rhs.len())),
        }
    }
}

impl MorphableModel for PcaModel {
    fn name(&self) -> &str {
        &self.name
    }
    fn n_vertices(&self) -> usize {
        self.mean.len() / 3
    }
    fn triangles(&self) -> &[[u32; 3]] {
        &self.triangles
    }
    fn n_shape(&self) -> usize {
        self.shape.n_components()
    }
    fn n_expression(&self) -> usize {
        self.expression.n_components()
    }
    fn instance(&self, shape: &[f64], expression: &[f64]) -> Result<Mesh> {
        let flat = self.instance_flat(shape, expression)?;
        let vertices = flat
            .chunks_exact(3)
            .map(|c| Point3::new(c[0] as f64, c[1] as f64, c[2] as f64))
            .collect();
        Ok(Mesh {
            vertices,
            triangles: self.triangles.clone(),
        })
    }
}

impl LinearMorphableModel for PcaModel {
    fn shape_block(&self) -> &PcaBlock {
        &self.shape
    }
    fn expression_block(&self) -> &PcaBlock {
        &self.expression
    }
}

/// Any model restricted to its first `n_shape` shape and `n_expression` expression components:
/// the coefficients beyond are fixed at zero. Generic over [`MorphableModel`], so it works for
/// models that are not PCA models too.
#[derive(Debug, Clone)]
pub struct Truncated<M> {
    inner: M,
    n_shape: usize,
    n_expression: usize,
}

impl<M: MorphableModel> Truncated<M> {
    /// Keeps at most `n_shape` / `n_expression` components of `inner`.
    pub fn new(inner: M, n_shape: usize, n_expression: usize) -> Self {
        let n_shape = n_shape.min(inner.n_shape());
        let n_expression = n_expression.min(inner.n_expression());
        Self {
            inner,
            n_shape,
            n_expression,
        }
    }
    /// The wrapped model.
    pub fn inner(&self) -> &M {
        &self.inner
    }
}

impl<M: MorphableModel> MorphableModel for Truncated<M> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn n_vertices(&self) -> usize {
        self.inner.n_vertices()
    }
    fn triangles(&self) -> &[[u32; 3]] {
        self.inner.triangles()
    }
    fn n_shape(&self) -> usize {
        self.n_shape
    }
    fn n_expression(&self) -> usize {
        self.n_expression
    }
    fn instance(&self, shape: &[f64], expression: &[f64]) -> Result<Mesh> {
        check_coefficients("shape", shape, self.n_shape)?;
        check_coefficients("expression", expression, self.n_expression)?;
        self.inner.instance(shape, expression)
    }
}
