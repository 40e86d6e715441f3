//! The shape model: a Gaussian process of displacement fields on the template, with rigid
//! motion projected out, reduced to its leading principal components.
//!
//! # The process
//!
//! A displacement field u: template → R³ (mm) with covariance
//!
//!   cov(u(p), u(p')) = k(p, p')·I₃ + ρ·k(p, M p')·M,
//!   k(p, p') = Σ_t s_t·exp(−|p − p'|²/ℓ_t²) + σ_A²·(p − c)·(p' − c),
//!
//! where M = diag(−1, 1, 1) mirrors x, ρ ∈ [0, 1] is the symmetry weight and c the template's
//! centroid. The Gaussian terms give smooth local variation at several length scales; the
//! linear term is a random affine map A(p − c) with iid N(0, σ_A²) entries (face width, height,
//! depth and shears). Splitting fields into mirror-symmetric (u(Mp) = M u(p)) and
//! antisymmetric parts, the symmetric part has the covariance above with factor (1 + ρ), the
//! antisymmetric part (1 − ρ): ρ = 1 gives exactly symmetric faces, ρ = 0 no preference.
//!
//! # The reduction
//!
//! Every symmetric field has an x component odd in x and y, z components even in x. So the
//! scalar kernel is split into even and odd parts, k_± (p, p') = ½(k(p, p') ± k(p, M p')), each
//! approximated by Nyström on a mirror-symmetric subgrid of inducing vertices and
//! diagonalised: k_± ≈ Φ_± diag(μ_±) Φ_±ᵀ over the template vertices. The symmetric and the
//! antisymmetric subspaces are then handled separately, which keeps every component exactly
//! symmetric or antisymmetric:
//!
//! - build the factor F whose columns are coordinate-pure fields (odd features in x and even
//!   features in y and z for the symmetric subspace, the reverse for the antisymmetric one, and
//!   the affine features), scaled by √(1 ± ρ);
//! - project out the rigid motions of that parity (translation along y and z and rotation
//!   about x are symmetric; translation along x and rotation about y and z antisymmetric),
//!   P F = F − R Rᵀ F with R orthonormal;
//! - diagonalise the Gram matrix (P F)ᵀ(P F) = FᵀF − (RᵀF)ᵀ(RᵀF): its eigenvalues are the
//!   component variances λ_k and P F w_k the scaled components U·√λ.
//!
//! Components of both subspaces are merged by decreasing variance. What the kept components
//! leave out is summarised as the probabilistic-PCA noise variance σ² = (tr Σ − Σ_k λ_k)/(3N − K)
//! (Tipping & Bishop 1999), with tr Σ the trace of the rigid-projected covariance.

use nalgebra::{DMatrix, DVector, Point3, SymmetricEigen, Vector3};
use rayon::prelude::*;

use super::template::FaceTemplate;
use super::{BuiltinConfig, KernelTerm, ValidBuiltinConfig};
use crate::{MorphableError, PcaBlock, Result};

/// Eigenvalues of an inducing-point kernel matrix below this fraction of the largest are
/// dropped: their Nyström features would amplify round-off.
const INDUCING_RELATIVE_TOLERANCE: f64 = 1e-10;
/// Scalar eigenfunctions kept per parity beyond the number of requested components: the
/// rigid projection mixes a few of them, so the top components need a little headroom.
const FEATURE_HEADROOM: usize = 12;

/// Mirror image of a point in the plane x = 0.
fn mirrored(p: &Point3<f64>) -> Point3<f64> {
    Point3::new(-p.x, p.y, p.z)
}

/// The scalar stationary part of the kernel, Σ_t s_t·exp(−|p − p'|²/ℓ_t²) (mm²). Terms
/// below e⁻⁴⁰ of their variance are skipped.
fn gaussian_kernel(terms: &[KernelTerm], a: &Point3<f64>, b: &Point3<f64>) -> f64 {
    let d2 = (a - b).norm_squared();
    terms
        .iter()
        .map(|t| {
            let r2 = d2 / (t.length_mm * t.length_mm);
            if r2 < 40.0 {
                t.variance_mm2 * (-r2).exp()
            } else {
                0.0
            }
        })
        .sum()
}

/// The N × m matrix k(p_v, z_j) over the vertices and the given points, filled in parallel.
fn kernel_columns(
    terms: &[KernelTerm],
    vertices: &[Point3<f64>],
    points: &[Point3<f64>],
) -> DMatrix<f64> {
    let n = vertices.len();
    let mut k = DMatrix::<f64>::zeros(n, points.len());
    if n > 0 {
        k.as_mut_slice()
            .par_chunks_mut(n)
            .zip(points.par_iter())
            .for_each(|(column, z)| {
                for (entry, p) in column.iter_mut().zip(vertices) {
                    *entry = gaussian_kernel(terms, p, z);
                }
            });
    }
    k
}

/// Eigen-decomposition of a symmetric matrix, eigenvalues in decreasing order.
pub(crate) fn sorted_eigen(matrix: DMatrix<f64>) -> (Vec<f64>, DMatrix<f64>) {
    let eigen = SymmetricEigen::new(matrix);
    let mut order: Vec<usize> = (0..eigen.eigenvalues.len()).collect();
    order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
    let values = order.iter().map(|&i| eigen.eigenvalues[i]).collect();
    let vectors = eigen.eigenvectors.select_columns(&order);
    (values, vectors)
}

/// AᵀB through the blocked matrix product (nalgebra's `tr_mul` works column by column).
pub(crate) fn transpose_times(a: &DMatrix<f64>, b: &DMatrix<f64>) -> DMatrix<f64> {
    a.transpose() * b
}

/// Leading scaled eigenfunctions of one parity part of the kernel over the template
/// vertices: an N × T matrix whose orthogonal columns have squared norms μ_1 ≥ μ_2 ≥ … (mm²),
/// from the Nyström approximation k ≈ K_nm K_mm⁺ K_mn. `k_nm` holds the kernel between every
/// vertex and the inducing points, which are the vertices `inducing_rows`.
fn scalar_features(k_nm: DMatrix<f64>, inducing_rows: &[usize], keep: usize) -> DMatrix<f64> {
    if k_nm.ncols() == 0 {
        return DMatrix::zeros(k_nm.nrows(), 0);
    }
    let k_mm = k_nm.select_rows(inducing_rows);
    // K_mm = V Λ Vᵀ; L = K_nm V Λ^{-1/2} gives K_nm K_mm⁺ K_mn = L Lᵀ.
    let (lambda, v) = sorted_eigen(k_mm);
    let floor = INDUCING_RELATIVE_TOLERANCE * lambda.first().copied().unwrap_or(0.0);
    let rank = lambda.iter().take_while(|&&l| l > floor && l > 0.0).count();
    let mut v = v.columns(0, rank).into_owned();
    for (mut col, &l) in v.column_iter_mut().zip(&lambda) {
        col /= l.sqrt();
    }
    let l = k_nm * v;
    // L Lᵀ = (L W)(L W)ᵀ with W the eigenvectors of LᵀL: orthogonal columns.
    let (_, w) = sorted_eigen(transpose_times(&l, &l));
    l * w.columns(0, keep.min(rank))
}

/// A factor of one parity subspace: per coordinate axis, the N × q_a matrix of its
/// coordinate-pure feature columns. Column j of axis a is the field e_a·F_a[:, j].
struct SubspaceFactor {
    axes: [DMatrix<f64>; 3],
}

impl SubspaceFactor {
    fn n_columns(&self) -> usize {
        self.axes.iter().map(|a| a.ncols()).sum()
    }

    /// Column offsets of the three axis blocks.
    fn offsets(&self) -> [usize; 3] {
        let q = self.axes.each_ref().map(|a| a.ncols());
        [0, q[0], q[0] + q[1]]
    }

    /// Rᵀ F for a 3N × r matrix R of fields (interleaved x y z rows).
    fn project_onto(&self, rigid: &DMatrix<f64>) -> DMatrix<f64> {
        let mut out = DMatrix::zeros(rigid.ncols(), self.n_columns());
        for (a, (block, offset)) in self.axes.iter().zip(self.offsets()).enumerate() {
            let rows = rigid.rows_with_step(a, block.nrows(), 2);
            out.columns_mut(offset, block.ncols())
                .copy_from(&(rows.transpose() * block));
        }
        out
    }

    /// FᵀF: block-diagonal over the axes.
    fn gram(&self) -> DMatrix<f64> {
        let q = self.n_columns();
        let mut out = DMatrix::zeros(q, q);
        for (block, offset) in self.axes.iter().zip(self.offsets()) {
            out.view_mut((offset, offset), (block.ncols(), block.ncols()))
                .copy_from(&transpose_times(block, block));
        }
        out
    }

    /// The field F·w as interleaved coordinates (3N).
    fn field(&self, w: &[f64]) -> Vec<f64> {
        let n = self.axes[0].nrows();
        let mut out = vec![0.0; 3 * n];
        for (a, (block, offset)) in self.axes.iter().zip(self.offsets()).enumerate() {
            let coeffs = DVector::from_column_slice(&w[offset..offset + block.ncols()]);
            let values = block * coeffs;
            for (v, value) in values.iter().enumerate() {
                out[3 * v + a] = *value;
            }
        }
        out
    }
}

/// The N × k matrix of the centred coordinates (p − c)_a for the given axes a, times
/// `scale`: features of the random affine map.
fn affine_columns(
    vertices: &[Point3<f64>],
    centre: &Point3<f64>,
    axes: &[usize],
    scale: f64,
) -> DMatrix<f64> {
    DMatrix::from_fn(vertices.len(), axes.len(), |v, j| {
        scale * (vertices[v][axes[j]] - centre[axes[j]])
    })
}

/// Orthonormal basis (3N × r, interleaved) of the given fields by modified Gram–Schmidt,
/// applied twice for stability.
fn orthonormal_fields(fields: Vec<Vec<f64>>) -> Result<DMatrix<f64>> {
    let mut basis: Vec<DVector<f64>> = Vec::with_capacity(fields.len());
    for field in fields {
        let mut v = DVector::from_vec(field);
        for _ in 0..2 {
            for b in &basis {
                let c = b.dot(&v);
                v.axpy(-c, b, 1.0);
            }
        }
        let norm = v.norm();
        if !norm.is_finite() || norm <= 1e-9 {
            return Err(MorphableError::Inconsistent(
                "rigid motions of the template are linearly dependent".into(),
            ));
        }
        basis.push(v / norm);
    }
    Ok(DMatrix::from_columns(&basis))
}

/// Rigid motion fields of one parity about the centroid c (with c_x = 0): 3N × 3, orthonormal.
fn rigid_modes(
    vertices: &[Point3<f64>],
    centre: &Point3<f64>,
    symmetric: bool,
) -> Result<DMatrix<f64>> {
    let field = |f: &dyn Fn(Vector3<f64>) -> Vector3<f64>| -> Vec<f64> {
        vertices
            .iter()
            .flat_map(|p| {
                let d = f(p - centre);
                [d.x, d.y, d.z]
            })
            .collect()
    };
    let fields = if symmetric {
        vec![
            field(&|_| Vector3::y()),
            field(&|_| Vector3::z()),
            field(&|q| Vector3::x().cross(&q)),
        ]
    } else {
        vec![
            field(&|_| Vector3::x()),
            field(&|q| Vector3::y().cross(&q)),
            field(&|q| Vector3::z().cross(&q)),
        ]
    };
    orthonormal_fields(fields)
}

/// One principal component before merging: its variance and its scaled field (3N).
struct Component {
    variance: f64,
    field: Vec<f64>,
}

/// Components of one parity subspace, variance descending, plus ‖RᵀF‖²_F, the variance that
/// the rigid projection removed.
fn subspace_components(
    factor: &SubspaceFactor,
    rigid: &DMatrix<f64>,
    keep: usize,
) -> (Vec<Component>, f64) {
    let c = factor.project_onto(rigid);
    let gram = factor.gram() - transpose_times(&c, &c);
    let (variances, w) = sorted_eigen(gram);
    let components = variances
        .iter()
        .zip(w.column_iter())
        .take(keep)
        .filter(|(v, _)| **v > 0.0)
        .map(|(&variance, w)| {
            let mut field = factor.field(w.as_slice());
            // Subtract the rigid part R (C w).
            let rigid_coeffs = &c * w;
            for (r, coeff) in rigid.column_iter().zip(rigid_coeffs.iter()) {
                field
                    .iter_mut()
                    .zip(r.iter())
                    .for_each(|(f, r)| *f -= coeff * r);
            }
            Component { variance, field }
        })
        .collect();
    (components, c.norm_squared())
}

/// Flips a field so that its largest-magnitude entry is positive: a sign convention that
/// makes the model independent of the eigen-solver's arbitrary signs.
pub(crate) fn normalise_sign(field: &mut [f64]) {
    let largest = field
        .iter()
        .copied()
        .fold(0.0_f64, |m, v| if v.abs() > m.abs() { v } else { m });
    if largest < 0.0 {
        field.iter_mut().for_each(|v| *v = -*v);
    }
}

/// The shape block: mean = template, components of the rigid-projected Gaussian process.
pub(crate) fn shape_block(
    template: &FaceTemplate,
    config: &ValidBuiltinConfig,
) -> Result<PcaBlock> {
    let cfg = config.config();
    let vertices = &template.vertices;
    let n = vertices.len();
    let (even, odd) = parity_features(template, config);
    // Centroid on the symmetry plane.
    let mut centre = vertices
        .iter()
        .fold(Point3::origin(), |acc, p| acc + p.coords / n as f64);
    centre.x = 0.0;
    let (components, removed) = shape_components(vertices, cfg, &centre, &even, &odd)?;
    let kept: f64 = components.iter().map(|c| c.variance).sum();
    let noise_variance = residual_variance(vertices, cfg, &centre, removed, kept);

    let mut variance = Vec::with_capacity(components.len());
    let mut basis = Vec::with_capacity(components.len() * 3 * n);
    for mut c in components {
        normalise_sign(&mut c.field);
        variance.push(c.variance);
        basis.extend(c.field.iter().map(|&v| v as f32));
    }
    let mean = vertices
        .iter()
        .flat_map(|p| [p.x as f32, p.y as f32, p.z as f32])
        .collect();
    PcaBlock::new(mean, basis, variance, noise_variance)
}

/// The even and odd scalar features (n × ≤ keep) of the kernel on a mirror-symmetric inducing
/// subgrid: its half at x > 0 serves both parities, its midline only the even one (odd
/// functions vanish there).
fn parity_features(
    template: &FaceTemplate,
    config: &ValidBuiltinConfig,
) -> (DMatrix<f64>, DMatrix<f64>) {
    let cfg = config.config();
    let vertices = &template.vertices;
    let n = vertices.len();
    let keep = cfg.n_shape + FEATURE_HEADROOM;
    let stride = config.inducing_stride() as i32;
    let pick = |side: fn(i32) -> bool| -> Vec<usize> {
        (0..n)
            .filter(|&v| {
                let [i, j] = template.grid[v];
                i.rem_euclid(stride) == 0 && j.rem_euclid(stride) == 0 && side(i)
            })
            .collect()
    };
    let (half, midline) = (pick(|i| i > 0), pick(|i| i == 0));
    let points = |rows: &[usize], f: fn(&Point3<f64>) -> Point3<f64>| -> Vec<Point3<f64>> {
        rows.iter().map(|&v| f(&vertices[v])).collect()
    };
    // k(p, z) and k(p, Mz) for z in the half: the even part is their half-sum, the odd part
    // their half-difference; on the midline Mz = z and the even part is k itself.
    let direct = kernel_columns(&cfg.kernel, vertices, &points(&half, |p| *p));
    let across = kernel_columns(&cfg.kernel, vertices, &points(&half, mirrored));
    let on_midline = kernel_columns(&cfg.kernel, vertices, &points(&midline, |p| *p));
    let mut k_even = DMatrix::zeros(n, half.len() + midline.len());
    k_even
        .columns_mut(0, half.len())
        .copy_from(&((&direct + &across) * 0.5));
    k_even
        .columns_mut(half.len(), midline.len())
        .copy_from(&on_midline);
    let k_odd = (direct - across) * 0.5;
    let even_rows: Vec<usize> = half.iter().chain(&midline).copied().collect();
    rayon::join(
        || scalar_features(k_even, &even_rows, keep),
        || scalar_features(k_odd, &half, keep),
    )
}

/// The `cfg.n_shape` leading shape components (largest variance first) of the symmetric and
/// antisymmetric subspaces built from the parity features, rigid motions projected out; and the
/// variance that projection removed from each subspace.
fn shape_components(
    vertices: &[Point3<f64>],
    cfg: &BuiltinConfig,
    centre: &Point3<f64>,
    even: &DMatrix<f64>,
    odd: &DMatrix<f64>,
) -> Result<(Vec<Component>, [f64; 2])> {
    let n = vertices.len();
    // One axis block: the scalar features and the affine features of that axis, both scaled by
    // the parity weight √(1 ± ρ).
    let axis_block = |features: &DMatrix<f64>, weight: f64, affine_axes: &[usize]| {
        let linear = affine_columns(vertices, centre, affine_axes, weight * cfg.affine_std);
        let mut block = DMatrix::zeros(n, features.ncols() + linear.ncols());
        block
            .columns_mut(0, features.ncols())
            .copy_from(&(features * weight));
        block
            .columns_mut(features.ncols(), linear.ncols())
            .copy_from(&linear);
        block
    };
    let rho = cfg.symmetry;
    let (plus, minus) = ((1.0 + rho).sqrt(), (1.0 - rho).sqrt());
    // Symmetric fields: x odd, y and z even; antisymmetric fields the reverse.
    let symmetric = SubspaceFactor {
        axes: [
            axis_block(odd, plus, &[0]),
            axis_block(even, plus, &[1, 2]),
            axis_block(even, plus, &[1, 2]),
        ],
    };
    let antisymmetric = SubspaceFactor {
        axes: [
            axis_block(even, minus, &[1, 2]),
            axis_block(odd, minus, &[0]),
            axis_block(odd, minus, &[0]),
        ],
    };
    let rigid_sym = rigid_modes(vertices, centre, true)?;
    let rigid_anti = rigid_modes(vertices, centre, false)?;
    let ((mut components, removed_sym), (anti, removed_anti)) = rayon::join(
        || subspace_components(&symmetric, &rigid_sym, cfg.n_shape),
        || subspace_components(&antisymmetric, &rigid_anti, cfg.n_shape),
    );
    components.extend(anti);
    // Stable sort: ties keep the symmetric component first.
    components.sort_by(|a, b| b.variance.total_cmp(&a.variance));
    // Round-off, not variation (e.g. the antisymmetric subspace when ρ = 1).
    let floor = components.first().map_or(0.0, |c| c.variance) * 1e-12;
    components.retain(|c| c.variance > floor);
    if components.len() < cfg.n_shape {
        return Err(MorphableError::Config {
            name: "n_shape",
            reason: format!(
                "{} shape components requested, but the kernel on an inducing grid of {} mm \
                 has only {} with positive variance",
                cfg.n_shape,
                cfg.inducing_spacing_mm,
                components.len()
            ),
        });
    }
    components.truncate(cfg.n_shape);
    Ok((components, [removed_sym, removed_anti]))
}

/// The isotropic noise variance of the components not kept: the trace of the full covariance
/// (Σ_p 3k(p, p) + ρ k(p, Mp) for the Gaussian part, and the affine part's diagonal) less what
/// the rigid projection `removed` and the `kept` variances, shared by the remaining
/// 3n − n_shape directions.
fn residual_variance(
    vertices: &[Point3<f64>],
    cfg: &BuiltinConfig,
    centre: &Point3<f64>,
    removed: [f64; 2],
    kept: f64,
) -> f64 {
    let rho = cfg.symmetry;
    let diagonal: Vec<f64> = vertices
        .par_iter()
        .map(|p| {
            let g = 3.0 * gaussian_kernel(&cfg.kernel, p, p)
                + rho * gaussian_kernel(&cfg.kernel, p, &mirrored(p));
            let d = p.coords - centre.coords;
            let (x2, yz2) = (d.x * d.x, d.y * d.y + d.z * d.z);
            let a = (1.0 + rho) * (x2 + 2.0 * yz2) + (1.0 - rho) * (2.0 * x2 + yz2);
            g + cfg.affine_std * cfg.affine_std * a
        })
        .collect();
    // Summed in order, not by a parallel reduction: the model must be bit-reproducible.
    let trace = diagonal.iter().sum::<f64>() - removed[0] - removed[1];
    ((trace - kept) / (3 * vertices.len() - cfg.n_shape) as f64).max(0.0)
}
