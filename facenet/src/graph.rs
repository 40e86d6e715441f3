//! Spectral graph convolutions on a fixed graph and a pyramid of coarsened graphs, after
//! Defferrard et al. (ChebNet) and Ranjan et al. (COMA, "Generating 3D faces using convolutional
//! mesh autoencoders"): the mesh autoencoder behind the 3D identity loss of
//! Xu et al.'s 3D-ID paper (docs/physics.md §9). The crate sees a graph (nodes, edges, clusters),
//! never a face: the caller builds the graph from its mesh.
//!
//! Node features are kept node-major, (N, M) with M = batch × channels, so that a sparse
//! product combines whole rows. On the CPU it is one fused pass over compressed rows whose
//! backward is the same pass over the transpose (`SparseProduct`); elsewhere a row gather
//! (`index_select` on dim 0) and a row scatter (`index_add` on dim 0), both differentiable in
//! candle 0.11 (each is the other's backward pass).

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor, WithDType};
use candle_nn::{Module, VarBuilder};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{NetworkConfig, ValidConfig, Validate};
use crate::error::{FacenetError, Result};
use crate::layers::cpu_ops::{contiguous_slice, dispatch_float, with_cpu_slice};
use crate::layers::linear;

/// A sparse (rows × cols) matrix in coordinate form, applied to node-major features.
///
/// Graph operators are stored factored, A = diag(r) P diag(c) with P the 0/1 pattern of the
/// entries ([`SparseMatrix::scaled_pattern`]), so that a product scales N rows instead of
/// multiplying every one of the E gathered rows; a pattern with exactly one entry per row, in
/// row order, is a plain gather (unpooling).
#[derive(Debug, Clone)]
pub struct SparseMatrix {
    rows: usize,
    cols: usize,
    row_idx: Tensor,
    col_idx: Tensor,
    form: Form,
    entries: Vec<(u32, u32, f32)>,
    /// The fused CPU product and its adjoint.
    product: SparseProduct,
}

/// How a [`SparseMatrix`]'s values are applied.
#[derive(Debug, Clone)]
enum Form {
    /// A value per entry, (E, 1).
    Weighted(Tensor),
    /// diag(row) P diag(col), each scale (n, 1) or absent (ones); `gather`: P has one entry
    /// per row, in row order.
    Scaled {
        row: Option<Tensor>,
        col: Option<Tensor>,
        gather: bool,
    },
}

impl SparseMatrix {
    /// The matrix with `entries` (row, column, value) on `device` (values in f32; duplicate
    /// positions add up).
    ///
    /// # Errors
    /// [`FacenetError::Config`] if an index is out of range or a value is not finite.
    pub fn new(
        rows: usize,
        cols: usize,
        entries: Vec<(u32, u32, f32)>,
        device: &Device,
    ) -> Result<Self> {
        check_entries(rows, cols, &entries)?;
        let values: Vec<f32> = entries.iter().map(|e| e.2).collect();
        let n = entries.len();
        let form = Form::Weighted(Tensor::from_vec(values, (n, 1), device)?);
        Self::with_form(rows, cols, entries, form, device)
    }

    /// diag(`row_scale`) P diag(`col_scale`) with P the 0/1 matrix of `pattern`'s (row, column)
    /// positions (no duplicates); a missing scale is all ones.
    ///
    /// # Errors
    /// [`FacenetError::Config`] if an index is out of range, a scale has the wrong length or a
    /// non-finite value.
    pub fn scaled_pattern(
        rows: usize,
        cols: usize,
        pattern: &[(u32, u32)],
        row_scale: Option<Vec<f32>>,
        col_scale: Option<Vec<f32>>,
        device: &Device,
    ) -> Result<Self> {
        for (scale, n, what) in [(&row_scale, rows, "row"), (&col_scale, cols, "column")] {
            if let Some(v) = scale
                && (v.len() != n || v.iter().any(|x| !x.is_finite()))
            {
                return Err(FacenetError::config(
                    "SparseMatrix",
                    "scale",
                    format!("the {what} scale needs {n} finite values, got {}", v.len()),
                ));
            }
        }
        let scale_at =
            |scale: &Option<Vec<f32>>, i: u32| scale.as_ref().map_or(1.0, |v| v[i as usize]);
        let entries: Vec<(u32, u32, f32)> = pattern
            .iter()
            .map(|&(r, c)| {
                let (r_ok, c_ok) = ((r as usize) < rows, (c as usize) < cols);
                let value = if r_ok && c_ok {
                    scale_at(&row_scale, r) * scale_at(&col_scale, c)
                } else {
                    0.0
                };
                (r, c, value)
            })
            .collect();
        check_entries(rows, cols, &entries)?;
        let gather = pattern.len() == rows
            && row_scale.is_none()
            && col_scale.is_none()
            && pattern
                .iter()
                .enumerate()
                .all(|(i, &(r, _))| r as usize == i);
        let column = |v: Option<Vec<f32>>| -> Result<Option<Tensor>> {
            v.map(|v| {
                let n = v.len();
                Tensor::from_vec(v, (n, 1), device)
            })
            .transpose()
            .map_err(Into::into)
        };
        let form = Form::Scaled {
            row: column(row_scale)?,
            col: column(col_scale)?,
            gather,
        };
        Self::with_form(rows, cols, entries, form, device)
    }

    fn with_form(
        rows: usize,
        cols: usize,
        entries: Vec<(u32, u32, f32)>,
        form: Form,
        device: &Device,
    ) -> Result<Self> {
        let row_idx: Vec<u32> = entries.iter().map(|e| e.0).collect();
        let col_idx: Vec<u32> = entries.iter().map(|e| e.1).collect();
        let n = entries.len();
        let csr = Csr::new(rows, cols, &entries);
        let product = SparseProduct {
            adjoint: Arc::new(csr.transpose()),
            matrix: Arc::new(csr),
        };
        Ok(Self {
            rows,
            cols,
            row_idx: Tensor::from_vec(row_idx, n, device)?,
            col_idx: Tensor::from_vec(col_idx, n, device)?,
            form,
            entries,
            product,
        })
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The (row, column, value) entries.
    pub fn entries(&self) -> &[(u32, u32, f32)] {
        &self.entries
    }

    /// The product A x for node-major `x` of shape (cols, M): (rows, M), differentiable in `x`.
    ///
    /// # Errors
    /// [`FacenetError::Input`] if `x` is not (cols, M); a candle error otherwise.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let m = self.features(x)?;
        if fused_on_cpu(x) {
            Ok(x.contiguous()?.apply_op1(self.product.clone())?)
        } else {
            self.gather_scatter(x, m)
        }
    }

    /// The same product as [`SparseMatrix::apply`] by a row gather (`index_select`) and a row
    /// scatter (`index_add`): the path `apply` takes off the CPU, kept public to compare
    /// against the fused CPU op.
    ///
    /// # Errors
    /// As [`SparseMatrix::apply`].
    pub fn apply_gather_scatter(&self, x: &Tensor) -> Result<Tensor> {
        let m = self.features(x)?;
        self.gather_scatter(x, m)
    }

    /// M, the features per node of `x` (cols, M).
    fn features(&self, x: &Tensor) -> Result<usize> {
        match x.dims() {
            [n, m] if *n == self.cols => Ok(*m),
            dims => Err(FacenetError::Input {
                network: "SparseMatrix",
                what: "shape",
                expected: format!("({}, M)", self.cols),
                actual: format!("{dims:?}"),
            }),
        }
    }

    fn gather_scatter(&self, x: &Tensor, m: usize) -> Result<Tensor> {
        let (device, dtype) = (x.device(), x.dtype());
        let on = |t: &Tensor| -> Result<Tensor> { Ok(t.to_dtype(dtype)?.to_device(device)?) };
        let col_idx = self.col_idx.to_device(device)?;
        let scatter = |gathered: &Tensor| -> Result<Tensor> {
            let zeros = Tensor::zeros((self.rows, m), dtype, device)?;
            Ok(zeros.index_add(&self.row_idx.to_device(device)?, gathered, 0)?)
        };
        match &self.form {
            Form::Weighted(values) => {
                scatter(&x.index_select(&col_idx, 0)?.broadcast_mul(&on(values)?)?)
            }
            Form::Scaled { row, col, gather } => {
                let x = match col {
                    Some(c) => x.broadcast_mul(&on(c)?)?,
                    None => x.clone(),
                };
                let gathered = x.index_select(&col_idx, 0)?;
                let y = if *gather {
                    gathered
                } else {
                    scatter(&gathered)?
                };
                match row {
                    Some(r) => Ok(y.broadcast_mul(&on(r)?)?),
                    None => Ok(y),
                }
            }
        }
    }
}

/// Whether `x` takes the fused CPU ops of this module (f32 or f64 on the CPU) rather than
/// candle's composites.
fn fused_on_cpu(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// A sparse matrix in compressed rows: each row's (column, value) entries in the order they
/// were given, so that a row's sum is always taken in the same order (deterministic).
struct Csr {
    rows: usize,
    cols: usize,
    starts: Vec<usize>,
    columns: Vec<u32>,
    values: Vec<f64>,
}

impl std::fmt::Debug for Csr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Csr({}×{}, {} entries)",
            self.rows,
            self.cols,
            self.columns.len()
        )
    }
}

impl Csr {
    /// The rows of checked `entries` (a stable counting sort by row; duplicates stay
    /// separate entries and add up in the product).
    fn new(rows: usize, cols: usize, entries: &[(u32, u32, f32)]) -> Self {
        let mut starts = vec![0usize; rows + 1];
        for &(r, _, _) in entries {
            starts[r as usize + 1] += 1;
        }
        for i in 0..rows {
            starts[i + 1] += starts[i];
        }
        let mut next = starts.clone();
        let mut columns = vec![0u32; entries.len()];
        let mut values = vec![0.0f64; entries.len()];
        for &(r, c, v) in entries {
            let at = &mut next[r as usize];
            columns[*at] = c;
            values[*at] = f64::from(v);
            *at += 1;
        }
        Self {
            rows,
            cols,
            starts,
            columns,
            values,
        }
    }

    /// Aᵀ, its rows in the order of A's rows.
    fn transpose(&self) -> Self {
        let entries: Vec<(u32, u32, f32)> = (0..self.rows)
            .flat_map(|r| {
                (self.starts[r]..self.starts[r + 1])
                    .map(move |e| (self.columns[e], r as u32, self.values[e] as f32))
            })
            .collect();
        Self::new(self.cols, self.rows, &entries)
    }

    /// A x for node-major `x` (cols × m, row-major): (rows × m), one parallel pass over the
    /// output rows.
    fn product<T: WithDType>(&self, x: &[T], m: usize) -> Vec<T> {
        self.product_plus(x, m, T::one(), None)
    }

    /// α A x + β z (z of the output's shape, absent: 0), in the same single pass.
    fn product_plus<T: WithDType>(
        &self,
        x: &[T],
        m: usize,
        alpha: T,
        z: Option<(T, &[T])>,
    ) -> Vec<T> {
        let values: Vec<T> = self
            .values
            .iter()
            .map(|&v| alpha * T::from_f64(v))
            .collect();
        let mut y = vec![T::zero(); self.rows * m];
        if m == 0 {
            return y;
        }
        y.par_chunks_mut(m)
            .with_min_len((4096 / m).max(1))
            .enumerate()
            .for_each(|(i, row)| {
                if let Some((beta, z)) = z {
                    for (out, &z) in row.iter_mut().zip(&z[i * m..(i + 1) * m]) {
                        *out = beta * z;
                    }
                }
                let entries = self.starts[i]..self.starts[i + 1];
                for (&c, &v) in self.columns[entries.clone()].iter().zip(&values[entries]) {
                    let c = c as usize;
                    for (out, &x) in row.iter_mut().zip(&x[c * m..(c + 1) * m]) {
                        *out += v * x;
                    }
                }
            });
        y
    }
}

/// The Chebyshev features of a [`ChebConv`] as one fused CPU op: node-major `x` (N, B · C) →
/// (N, B, K, C), the K terms T_k(L̃) x side by side per node and example, the rows the layer's
/// linear map mixes. Forward runs the recursion with each step one pass
/// (T_k = 2 L̃ T_{k−1} − T_{k−2}); backward runs its adjoint from the last term down
/// (a_{k−1} += 2 L̃ᵀ a_k, a_{k−2} −= a_k, then a_0 += L̃ᵀ a_1). First order only: its
/// gradient is not itself differentiable.
#[derive(Debug, Clone)]
struct ChebyshevFeatures {
    laplacian: SparseProduct,
    order: usize,
    channels: usize,
}

impl ChebyshevFeatures {
    /// The terms T_1 x … T_{K−1} x, each (N × M) (T_0 x is x itself).
    fn higher_terms<T: WithDType>(&self, x: &[T], m: usize) -> Vec<Vec<T>> {
        let l = &self.laplacian.matrix;
        let mut terms: Vec<Vec<T>> = Vec::with_capacity(self.order.saturating_sub(1));
        if self.order > 1 {
            terms.push(l.product(x, m));
        }
        for k in 2..self.order {
            let before = if k == 2 { x } else { &terms[k - 3] };
            let next = l.product_plus(
                &terms[k - 2],
                m,
                T::from_f64(2.0),
                Some((T::from_f64(-1.0), before)),
            );
            terms.push(next);
        }
        terms
    }

    /// The gradient with respect to x of features whose gradient is `grad` (N, B, K, C).
    fn backward<T: WithDType>(&self, grad: &[T], n: usize, m: usize) -> Vec<T> {
        if m == 0 {
            return Vec::new();
        }
        let (k_len, c) = (self.order, self.channels);
        let b = m / c;
        let lt = &self.laplacian.adjoint;
        // De-interleave: a_k (N × M) from (N, B, K, C).
        let mut a: Vec<Vec<T>> = (0..k_len)
            .map(|k| {
                let mut a_k = vec![T::zero(); n * m];
                a_k.par_chunks_mut(m).enumerate().for_each(|(i, row)| {
                    for (j, out) in row.chunks_exact_mut(c).enumerate() {
                        let at = ((i * b + j) * k_len + k) * c;
                        out.copy_from_slice(&grad[at..at + c]);
                    }
                });
                a_k
            })
            .collect();
        for k in (2..k_len).rev() {
            let a_k = std::mem::take(&mut a[k]);
            let two = T::from_f64(2.0);
            a[k - 1] = lt.product_plus(&a_k, m, two, Some((T::one(), &a[k - 1])));
            a[k - 2]
                .par_iter_mut()
                .zip(a_k.par_iter())
                .for_each(|(x, &g)| *x -= g);
        }
        if k_len > 1 {
            let a_1 = std::mem::take(&mut a[1]);
            a[0] = lt.product_plus(&a_1, m, T::one(), Some((T::one(), &a[0])));
        }
        a.swap_remove(0)
    }
}

impl CustomOp1 for ChebyshevFeatures {
    fn name(&self) -> &'static str {
        "facenet-chebyshev-features"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, m) = match *layout.dims() {
            [n, m] if n == self.laplacian.matrix.cols && m % self.channels == 0 => (n, m),
            ref other => candle_core::bail!(
                "{}: expected ({}, B·{}), got {other:?}",
                self.name(),
                self.laplacian.matrix.cols,
                self.channels
            ),
        };
        let (k_len, c) = (self.order, self.channels);
        let b = m / c;
        dispatch_float!(storage.dtype(), self.name(), T => {
            let x = contiguous_slice::<T>(storage, layout)?;
            let higher = self.higher_terms(x, m);
            let terms: Vec<&[T]> = std::iter::once(x).chain(higher.iter().map(Vec::as_slice)).collect();
            let mut out = vec![T::from_f64(0.0); n * m * k_len];
            if m > 0 {
                out.par_chunks_mut(m * k_len).enumerate().for_each(|(i, node)| {
                    for (j, example) in node.chunks_exact_mut(k_len * c).enumerate() {
                        for (k, term) in terms.iter().enumerate() {
                            let from = i * m + j * c;
                            example[k * c..(k + 1) * c].copy_from_slice(&term[from..from + c]);
                        }
                    }
                });
            }
            Ok((T::to_cpu_storage_owned(out), Shape::from((n, b, k_len, c))))
        })
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (n, m) = arg.dims2()?;
        let dx = dispatch_float!(arg.dtype(), self.name(), T => {
            let dx = with_cpu_slice::<T, _>(grad, |g| Ok(self.backward(g, n, m)))?;
            Tensor::from_vec(dx, (n, m), &Device::Cpu)?
        });
        Ok(Some(dx))
    }
}

/// The product of a sparse matrix with node-major features, as one fused CPU op whose backward
/// is the same op with the transpose (so it is differentiable to any order).
#[derive(Debug, Clone)]
struct SparseProduct {
    matrix: Arc<Csr>,
    adjoint: Arc<Csr>,
}

impl CustomOp1 for SparseProduct {
    fn name(&self) -> &'static str {
        "facenet-sparse-product"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let m = match *layout.dims() {
            [n, m] if n == self.matrix.cols => m,
            ref other => candle_core::bail!(
                "{}: expected ({}, M), got {other:?}",
                self.name(),
                self.matrix.cols
            ),
        };
        dispatch_float!(storage.dtype(), self.name(), T => {
            let y = self.matrix.product::<T>(contiguous_slice(storage, layout)?, m);
            Ok((T::to_cpu_storage_owned(y), Shape::from((self.matrix.rows, m))))
        })
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let adjoint = Self {
            matrix: self.adjoint.clone(),
            adjoint: self.matrix.clone(),
        };
        Ok(Some(grad.contiguous()?.apply_op1(adjoint)?))
    }
}

/// ELU with α = 1 (COMA's activation): on the CPU one fused pass forward and one backward
/// (dy/dx = 1 for x > 0, else e^x = y + 1, read from the output); elsewhere candle's `elu`,
/// whose backward is a dozen passes over the features.
fn elu(x: &Tensor) -> Result<Tensor> {
    if fused_on_cpu(x) {
        Ok(x.contiguous()?.apply_op1(Elu)?)
    } else {
        Ok(x.elu(1.0)?)
    }
}

/// The fused CPU ELU of [`elu`].
struct Elu;

impl CustomOp1 for Elu {
    fn name(&self) -> &'static str {
        "facenet-elu"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        dispatch_float!(storage.dtype(), self.name(), T => {
            let x = contiguous_slice::<T>(storage, layout)?;
            let y: Vec<T> = x
                .par_iter()
                .with_min_len(4096)
                .map(|&v| if v > 0.0 { v } else { v.exp() - 1.0 })
                .collect();
            Ok((T::to_cpu_storage_owned(y), layout.shape().clone()))
        })
    }

    fn bwd(
        &self,
        arg: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let dx = dispatch_float!(arg.dtype(), self.name(), T => {
            let dx = with_cpu_slice::<T, _>(arg, |x| {
                with_cpu_slice::<T, _>(res, |y| {
                    with_cpu_slice::<T, _>(grad, |g| {
                        Ok(x.par_iter()
                            .with_min_len(4096)
                            .zip(y.par_iter())
                            .zip(g.par_iter())
                            .map(|((&x, &y), &g)| if x > 0.0 { g } else { g * (y + 1.0) })
                            .collect::<Vec<T>>())
                    })
                })
            })?;
            Tensor::from_vec(dx, arg.shape(), &Device::Cpu)?
        });
        Ok(Some(dx))
    }
}

/// Fails unless every entry lies inside the matrix and is finite.
fn check_entries(rows: usize, cols: usize, entries: &[(u32, u32, f32)]) -> Result<()> {
    match entries
        .iter()
        .find(|(r, c, v)| *r as usize >= rows || *c as usize >= cols || !v.is_finite())
    {
        Some((r, c, v)) => Err(FacenetError::config(
            "SparseMatrix",
            "entries",
            format!("entry ({r}, {c}) = {v} in a {rows} × {cols} matrix"),
        )),
        None => Ok(()),
    }
}

/// A graph and its coarsenings: the undirected `edges` of the finest graph over `n_nodes`
/// nodes, and for each coarser level the cluster (a node of the next level) of every node of
/// the level before. A coarse graph links two clusters when any of their members are linked.
///
/// Pooling averages the members of each cluster; unpooling copies a cluster's value to each of
/// its members (COMA's down- and up-sampling with the vertex maps kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphPyramid {
    /// Nodes of the finest graph.
    pub n_nodes: usize,
    /// Undirected edges of the finest graph (each pair once, either order).
    pub edges: Vec<[u32; 2]>,
    /// `clusters[l][i]`: the node of level l + 1 that node i of level l pools into. Every level's
    /// cluster ids are 0..n_{l+1} with none unused.
    pub clusters: Vec<Vec<u32>>,
}

impl GraphPyramid {
    /// The number of nodes of every level, finest first (levels = clusters + 1).
    pub fn level_sizes(&self) -> Vec<usize> {
        let mut sizes = vec![self.n_nodes];
        for c in &self.clusters {
            sizes.push(c.iter().map(|&k| k as usize + 1).max().unwrap_or(0));
        }
        sizes
    }

    /// Checks indices, cluster coverage and sizes.
    ///
    /// # Errors
    /// [`FacenetError::Config`] naming what is wrong.
    pub fn validate(&self) -> Result<()> {
        let err = |field, reason: String| Err(FacenetError::config("GraphPyramid", field, reason));
        if self.n_nodes == 0 {
            return err("n_nodes", "must be at least 1".into());
        }
        if let Some(e) = self
            .edges
            .iter()
            .find(|[a, b]| a.max(b) >= &(self.n_nodes as u32))
        {
            return err(
                "edges",
                format!("edge {e:?} outside the {} nodes", self.n_nodes),
            );
        }
        let sizes = self.level_sizes();
        for (l, c) in self.clusters.iter().enumerate() {
            if c.len() != sizes[l] {
                return err(
                    "clusters",
                    format!(
                        "level {l} has {} nodes but {} cluster ids",
                        sizes[l],
                        c.len()
                    ),
                );
            }
            let mut used = vec![false; sizes[l + 1]];
            for &k in c {
                used[k as usize] = true;
            }
            if let Some(k) = used.iter().position(|u| !u) {
                return err(
                    "clusters",
                    format!("level {} cluster {k} has no member", l + 1),
                );
            }
        }
        Ok(())
    }

    /// The edges of every level, finest first: each undirected pair once, sorted, without
    /// self-loops.
    pub fn level_edges(&self) -> Vec<Vec<[u32; 2]>> {
        let normalise = |edges: &mut Vec<[u32; 2]>| {
            for e in edges.iter_mut() {
                if e[0] > e[1] {
                    e.swap(0, 1);
                }
            }
            edges.retain(|e| e[0] != e[1]);
            edges.sort_unstable();
            edges.dedup();
        };
        let mut finest = self.edges.clone();
        normalise(&mut finest);
        let mut levels = vec![finest];
        for c in &self.clusters {
            let mut coarse: Vec<[u32; 2]> = levels[levels.len() - 1]
                .iter()
                .map(|&[a, b]| [c[a as usize], c[b as usize]])
                .collect();
            normalise(&mut coarse);
            levels.push(coarse);
        }
        levels
    }

    /// The sparse operators on `device`: per level the scaled Laplacian, and between levels
    /// the pooling and unpooling matrices.
    ///
    /// # Errors
    /// As [`GraphPyramid::validate`].
    pub fn operators(&self, device: &Device) -> Result<GraphOperators> {
        self.validate()?;
        let sizes = self.level_sizes();
        let laplacians = self
            .level_edges()
            .iter()
            .zip(&sizes)
            .map(|(edges, &n)| scaled_laplacian(n, edges, device))
            .collect::<Result<Vec<_>>>()?;
        let mut pool = Vec::new();
        let mut unpool = Vec::new();
        for (l, c) in self.clusters.iter().enumerate() {
            let mut members = vec![0u32; sizes[l + 1]];
            for &k in c {
                members[k as usize] += 1;
            }
            let down: Vec<(u32, u32)> = c.iter().enumerate().map(|(i, &k)| (k, i as u32)).collect();
            let up: Vec<(u32, u32)> = c.iter().enumerate().map(|(i, &k)| (i as u32, k)).collect();
            let mean = members.iter().map(|&m| 1.0 / m as f32).collect();
            pool.push(SparseMatrix::scaled_pattern(
                sizes[l + 1],
                sizes[l],
                &down,
                Some(mean),
                None,
                device,
            )?);
            unpool.push(SparseMatrix::scaled_pattern(
                sizes[l],
                sizes[l + 1],
                &up,
                None,
                None,
                device,
            )?);
        }
        Ok(GraphOperators {
            laplacians,
            pool,
            unpool,
        })
    }
}

/// The sparse operators of a [`GraphPyramid`].
#[derive(Debug, Clone)]
pub struct GraphOperators {
    /// L̃ of every level, finest first.
    pub laplacians: Vec<SparseMatrix>,
    /// Level l → l + 1: the mean of each cluster's members.
    pub pool: Vec<SparseMatrix>,
    /// Level l + 1 → l: each member takes its cluster's value.
    pub unpool: Vec<SparseMatrix>,
}

/// The scaled Laplacian L̃ = 2L/λ_max − I of the graph of `n` nodes and undirected `edges`,
/// with L = I − D^{-1/2} A D^{-1/2} the normalised Laplacian and λ_max taken as 2 (its upper
/// bound, as ChebNet and PyTorch Geometric's `ChebConv` do): L̃ = −D^{-1/2} A D^{-1/2}, whose
/// spectrum lies in [−1, 1] where the Chebyshev polynomials are bounded. Isolated nodes get no
/// entries.
///
/// # Errors
/// [`FacenetError::Config`] if an edge is out of range.
pub fn scaled_laplacian(n: usize, edges: &[[u32; 2]], device: &Device) -> Result<SparseMatrix> {
    let mut degree = vec![0u32; n];
    for &[a, b] in edges {
        if a.max(b) as usize >= n {
            return Err(FacenetError::config(
                "scaled Laplacian",
                "edges",
                format!("edge ({a}, {b}) outside the {n} nodes"),
            ));
        }
        if a != b {
            degree[a as usize] += 1;
            degree[b as usize] += 1;
        }
    }
    let pattern: Vec<(u32, u32)> = edges
        .iter()
        .filter(|[a, b]| a != b)
        .flat_map(|&[a, b]| [(a, b), (b, a)])
        .collect();
    let scale: Vec<f32> = degree
        .iter()
        .map(|&d| {
            if d == 0 {
                0.0
            } else {
                (1.0 / (d as f64).sqrt()) as f32
            }
        })
        .collect();
    let negated = scale.iter().map(|s| -s).collect();
    SparseMatrix::scaled_pattern(n, n, &pattern, Some(negated), Some(scale), device)
}

/// A Chebyshev spectral graph convolution of order K (`order` polynomials T_0 … T_{K−1}):
/// y = Σ_k T_k(L̃) x Θ_k + b, with T_0 x = x, T_1 x = L̃ x, T_k x = 2 L̃ T_{k−1} x − T_{k−2} x.
/// The K feature blocks are concatenated and mixed by one linear layer (`weight` of shape
/// (out, K · in), PyTorch's default initialisation).
#[derive(Debug, Clone)]
pub struct ChebConv {
    linear: candle_nn::Linear,
    order: usize,
    in_channels: usize,
    out_channels: usize,
}

impl ChebConv {
    /// The layer's parameters under `vb` (`weight`, `bias`).
    ///
    /// # Errors
    /// [`FacenetError::Config`] if `order` or a channel count is 0; a candle error if a
    /// parameter exists with another shape.
    pub fn new(
        vb: VarBuilder,
        order: usize,
        in_channels: usize,
        out_channels: usize,
    ) -> Result<Self> {
        if order == 0 || in_channels == 0 || out_channels == 0 {
            return Err(FacenetError::config(
                "ChebConv",
                "order / channels",
                format!("order {order}, {in_channels} → {out_channels} channels: all must be ≥ 1"),
            ));
        }
        Ok(Self {
            linear: linear(vb, order * in_channels, out_channels)?,
            order,
            in_channels,
            out_channels,
        })
    }

    /// The convolution of node-major features `x` (N, B, in) on the graph of `laplacian`:
    /// (N, B, out).
    ///
    /// # Errors
    /// [`FacenetError::Input`] if `x` is not (N, B, in) with N the Laplacian's size.
    pub fn forward(&self, laplacian: &SparseMatrix, x: &Tensor) -> Result<Tensor> {
        let (n, b) = match x.dims() {
            [n, b, c] if *n == laplacian.rows() && *c == self.in_channels => (*n, *b),
            dims => {
                return Err(FacenetError::Input {
                    network: "ChebConv",
                    what: "shape",
                    expected: format!("({}, B, {})", laplacian.rows(), self.in_channels),
                    actual: format!("{dims:?}"),
                });
            }
        };
        let flat = x.reshape((n, b * self.in_channels))?;
        let features = if fused_on_cpu(&flat) {
            let op = ChebyshevFeatures {
                laplacian: laplacian.product.clone(),
                order: self.order,
                channels: self.in_channels,
            };
            flat.contiguous()?.apply_op1(op)?
        } else {
            self.features_generic(laplacian, &flat)?
        };
        let features = features.reshape((n * b, self.order * self.in_channels))?;
        Ok(self
            .linear
            .forward(&features)?
            .reshape((n, b, self.out_channels))?)
    }

    /// The features (N, B, K, in) of node-major `flat` (N, B · in) from candle's operations:
    /// the path [`ChebConv::forward`] takes off the CPU.
    fn features_generic(&self, laplacian: &SparseMatrix, flat: &Tensor) -> Result<Tensor> {
        let n = flat.dim(0)?;
        let b = flat.dim(1)? / self.in_channels;
        let mut terms = vec![flat.clone()];
        if self.order > 1 {
            terms.push(laplacian.apply(flat)?);
        }
        for k in 2..self.order {
            let next = ((laplacian.apply(&terms[k - 1])? * 2.0)? - &terms[k - 2])?;
            terms.push(next);
        }
        let stacked = Tensor::stack(&terms, 2)?; // (N, B·in, K)
        Ok(stacked
            .reshape((n, b, self.in_channels, self.order))?
            .transpose(2, 3)?
            .contiguous()?)
    }
}

/// Configuration of a [`MeshAutoencoder`]: COMA's architecture on the levels of `graph`.
///
/// Encoder: at each level l, a Chebyshev convolution to `channels[l]` channels, ELU, pooling
/// to level l + 1; then a linear layer from the coarsest features to the `code`. Decoder: a
/// linear layer back to the coarsest features, then at each level from the coarsest, unpooling,
/// a Chebyshev convolution to the channels of the level below (`channels[l − 1]`, or
/// `channels[0]` at the finest) and ELU; last a Chebyshev convolution to `in_channels` with a
/// linear output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeshAutoencoderConfig {
    /// The graph and its coarsenings.
    pub graph: GraphPyramid,
    /// Features per node of the input and the output (3 for vertex coordinates).
    pub in_channels: usize,
    /// The encoder's output channels at each level (one per coarsening).
    pub channels: Vec<usize>,
    /// Chebyshev polynomials per convolution (COMA and the 3D-ID paper: 6).
    pub order: usize,
    /// Length of the code.
    pub code: usize,
}

impl Validate for MeshAutoencoderConfig {
    fn validate(&self) -> Result<()> {
        let err = |field, reason: String| {
            Err(FacenetError::config("MeshAutoencoderConfig", field, reason))
        };
        self.graph.validate()?;
        if self.channels.len() != self.graph.clusters.len() || self.channels.is_empty() {
            return err(
                "channels",
                format!(
                    "{} entries for {} coarsenings: one per coarsening, at least one",
                    self.channels.len(),
                    self.graph.clusters.len()
                ),
            );
        }
        if self.channels.contains(&0) {
            return err("channels", "every entry must be at least 1".into());
        }
        if self.in_channels == 0 {
            return err("in_channels", "must be at least 1".into());
        }
        if self.order == 0 {
            return err("order", "must be at least 1".into());
        }
        if self.code == 0 {
            return err("code", "must be at least 1".into());
        }
        Ok(())
    }
}

impl NetworkConfig for MeshAutoencoderConfig {
    type Module = MeshAutoencoder;
    const KIND: &'static str = "mesh-autoencoder";

    fn build(config: &ValidConfig<Self>, vb: VarBuilder) -> Result<MeshAutoencoder> {
        MeshAutoencoder::new(config, vb)
    }
}

/// COMA's mesh autoencoder ([`MeshAutoencoderConfig`]): node features (B, N, C) → code (B, Z)
/// → node features.
#[derive(Debug, Clone)]
pub struct MeshAutoencoder {
    operators: GraphOperators,
    encoder: Vec<ChebConv>,
    to_code: candle_nn::Linear,
    from_code: candle_nn::Linear,
    decoder: Vec<ChebConv>,
    output: ChebConv,
    coarsest: (usize, usize),
    n_nodes: usize,
    in_channels: usize,
    code: usize,
    dtype: DType,
}

impl MeshAutoencoder {
    fn new(config: &MeshAutoencoderConfig, vb: VarBuilder) -> Result<Self> {
        let operators = config.graph.operators(vb.device())?;
        let sizes = config.graph.level_sizes();
        let levels = config.channels.len();
        let mut encoder = Vec::with_capacity(levels);
        let mut c_in = config.in_channels;
        for (l, &c) in config.channels.iter().enumerate() {
            encoder.push(ChebConv::new(
                vb.pp(format!("enc{l}")),
                config.order,
                c_in,
                c,
            )?);
            c_in = c;
        }
        let coarsest = (sizes[levels], config.channels[levels - 1]);
        let flat = coarsest.0 * coarsest.1;
        let to_code = linear(vb.pp("to_code"), flat, config.code)?;
        let from_code = linear(vb.pp("from_code"), config.code, flat)?;
        let mut decoder = Vec::with_capacity(levels);
        for l in (0..levels).rev() {
            let c_out = config.channels[l.saturating_sub(1)];
            decoder.push(ChebConv::new(
                vb.pp(format!("dec{l}")),
                config.order,
                config.channels[l],
                c_out,
            )?);
        }
        let output = ChebConv::new(
            vb.pp("out"),
            config.order,
            config.channels[0],
            config.in_channels,
        )?;
        Ok(Self {
            operators,
            encoder,
            to_code,
            from_code,
            decoder,
            output,
            coarsest,
            n_nodes: config.graph.n_nodes,
            in_channels: config.in_channels,
            code: config.code,
            dtype: vb.dtype(),
        })
    }

    /// Nodes of the finest graph.
    pub fn n_nodes(&self) -> usize {
        self.n_nodes
    }

    /// Length of the code.
    pub fn code_len(&self) -> usize {
        self.code
    }

    /// The codes (B, Z) of node features `x` (B, N, C).
    ///
    /// # Errors
    /// [`FacenetError::Input`] if `x` is not (B, N, C) in the network's dtype.
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        self.encode_from_first(&self.first_convolution(x)?)
    }

    /// The finest level's convolution of node features `x` (B, N, C) before its activation:
    /// (N, B, channels\[0\]), node-major. It is affine in `x`, so a caller whose inputs are
    /// affine in a few coefficients can tabulate it once and skip the finest level's sparse
    /// products ([`MeshAutoencoder::encode_from_first`]).
    ///
    /// # Errors
    /// [`FacenetError::Input`] if `x` is not (B, N, C) in the network's dtype.
    pub fn first_convolution(&self, x: &Tensor) -> Result<Tensor> {
        match x.dims() {
            [_, n, c]
                if *n == self.n_nodes && *c == self.in_channels && x.dtype() == self.dtype =>
            {
                let h = x.transpose(0, 1)?.contiguous()?; // (N, B, C)
                self.encoder[0].forward(&self.operators.laplacians[0], &h)
            }
            dims => Err(FacenetError::Input {
                network: "MeshAutoencoder",
                what: "shape and dtype",
                expected: format!(
                    "(B, {}, {}) in {:?}",
                    self.n_nodes, self.in_channels, self.dtype
                ),
                actual: format!("{dims:?} in {:?}", x.dtype()),
            }),
        }
    }

    /// The codes (B, Z) from the finest level's convolution `first` (N, B, channels\[0\]) of
    /// [`MeshAutoencoder::first_convolution`]: the rest of [`MeshAutoencoder::encode`].
    ///
    /// # Errors
    /// [`FacenetError::Input`] if `first` is not (N, B, channels\[0\]) in the network's dtype.
    pub fn encode_from_first(&self, first: &Tensor) -> Result<Tensor> {
        let c0 = self.encoder[0].out_channels;
        let b = match first.dims() {
            [n, b, c] if *n == self.n_nodes && *c == c0 && first.dtype() == self.dtype => *b,
            dims => {
                return Err(FacenetError::Input {
                    network: "MeshAutoencoder",
                    what: "first convolution's shape and dtype",
                    expected: format!("({}, B, {c0}) in {:?}", self.n_nodes, self.dtype),
                    actual: format!("{dims:?} in {:?}", first.dtype()),
                });
            }
        };
        let mut h = first.clone();
        for (l, conv) in self.encoder.iter().enumerate() {
            if l > 0 {
                h = conv.forward(&self.operators.laplacians[l], &h)?;
            }
            h = elu(&h)?;
            let c = h.dim(2)?;
            let pooled = self.operators.pool[l].apply(&h.reshape((h.dim(0)?, b * c))?)?;
            h = pooled.reshape((pooled.dim(0)?, b, c))?;
        }
        let flat = h
            .transpose(0, 1)?
            .contiguous()?
            .reshape((b, self.coarsest.0 * self.coarsest.1))?;
        Ok(self.to_code.forward(&flat)?)
    }

    /// Node features (B, N, C) decoded from codes `z` (B, Z).
    ///
    /// # Errors
    /// [`FacenetError::Input`] if `z` is not (B, Z) in the network's dtype.
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let b = match z.dims() {
            [b, c] if *c == self.code && z.dtype() == self.dtype => *b,
            dims => {
                return Err(FacenetError::Input {
                    network: "MeshAutoencoder",
                    what: "code shape and dtype",
                    expected: format!("(B, {}) in {:?}", self.code, self.dtype),
                    actual: format!("{dims:?} in {:?}", z.dtype()),
                });
            }
        };
        let (n_c, c_c) = self.coarsest;
        let mut h = self
            .from_code
            .forward(z)?
            .reshape((b, n_c, c_c))?
            .transpose(0, 1)?
            .contiguous()?; // (N_L, B, C_L)
        let levels = self.encoder.len();
        for (i, conv) in self.decoder.iter().enumerate() {
            let l = levels - 1 - i;
            let c = h.dim(2)?;
            let up = self.operators.unpool[l].apply(&h.reshape((h.dim(0)?, b * c))?)?;
            h = elu(&conv.forward(
                &self.operators.laplacians[l],
                &up.reshape((up.dim(0)?, b, c))?,
            )?)?;
        }
        let out = self.output.forward(&self.operators.laplacians[0], &h)?;
        Ok(out.transpose(0, 1)?.contiguous()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::Network;

    /// A ring of `n` nodes.
    fn ring(n: u32) -> Vec<[u32; 2]> {
        (0..n).map(|i| [i, (i + 1) % n]).collect()
    }

    fn dense(m: &SparseMatrix) -> Vec<Vec<f64>> {
        let mut d = vec![vec![0.0; m.cols()]; m.rows()];
        for &(r, c, v) in m.entries() {
            d[r as usize][c as usize] += v as f64;
        }
        d
    }

    #[test]
    fn sparse_product_equals_the_dense_one() -> Result<()> {
        let entries = vec![(0, 1, 2.0), (2, 0, -1.0), (2, 0, 0.5), (1, 2, 3.0)];
        let m = SparseMatrix::new(3, 3, entries, &Device::Cpu)?;
        let x = Tensor::new(&[[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0]], &Device::Cpu)?;
        let y = m.apply(&x)?.to_vec2::<f32>()?;
        let d = dense(&m);
        let xs = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]];
        for (r, row) in y.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let expected: f64 = (0..3).map(|c| d[r][c] * xs[c][j]).sum();
                assert!(
                    (v as f64 - expected).abs() < 1e-6,
                    "({r}, {j}): {v} vs {expected}"
                );
            }
        }
        assert!(m.apply(&x.narrow(0, 0, 2)?).is_err());
        assert!(SparseMatrix::new(2, 2, vec![(2, 0, 1.0)], &Device::Cpu).is_err());
        Ok(())
    }

    #[test]
    fn the_fused_cpu_product_and_its_backward_equal_the_indexed_ones() -> Result<()> {
        let weighted = SparseMatrix::new(
            3,
            4,
            vec![
                (0, 1, 2.0),
                (2, 0, -1.0),
                (2, 0, 0.5),
                (1, 3, 3.0),
                (0, 3, -0.25),
            ],
            &Device::Cpu,
        )?;
        let laplacian = scaled_laplacian(4, &[[0, 1], [0, 2], [0, 3], [1, 2]], &Device::Cpu)?;
        let clusters = [0u32, 0, 1, 1];
        let pool = SparseMatrix::scaled_pattern(
            2,
            4,
            &[(0, 0), (0, 1), (1, 2), (1, 3)],
            Some(vec![0.5, 0.5]),
            None,
            &Device::Cpu,
        )?;
        let up: Vec<(u32, u32)> = (0..4u32).map(|i| (i, clusters[i as usize])).collect();
        let unpool = SparseMatrix::scaled_pattern(4, 2, &up, None, None, &Device::Cpu)?;
        for matrix in [&weighted, &laplacian, &pool, &unpool] {
            let n = matrix.cols() * 3;
            let values: Vec<f64> = (0..n).map(|i| ((i * 37 % 11) as f64 - 5.0) / 3.0).collect();
            let x = candle_core::Var::from_vec(values, (matrix.cols(), 3), &Device::Cpu)?;
            let weights: Vec<f64> = (0..matrix.rows() * 3).map(|i| 1.0 + i as f64).collect();
            let weights = Tensor::from_vec(weights, (matrix.rows(), 3), &Device::Cpu)?;
            let run = |fused: bool| -> Result<(Vec<f64>, Vec<f64>)> {
                let y = if fused {
                    matrix.apply(&x)?
                } else {
                    matrix.apply_gather_scatter(&x)?
                };
                let grads = (&y * &weights)?.sum_all()?.backward()?;
                let grad = grads.get(&x).expect("a gradient reaches x");
                Ok((y.flatten_all()?.to_vec1()?, grad.flatten_all()?.to_vec1()?))
            };
            // The fused product uses the f32 entries r_i·c_j of a factored matrix, the indexed
            // one applies its f32 scales one after the other: they agree to f32 rounding.
            let (fused, indexed) = (run(true)?, run(false)?);
            for (a, b) in fused.0.iter().zip(&indexed.0) {
                assert!(
                    (a - b).abs() < 1e-6 * b.abs().max(1.0),
                    "product {a} vs {b}"
                );
            }
            for (a, b) in fused.1.iter().zip(&indexed.1) {
                assert!(
                    (a - b).abs() < 1e-6 * b.abs().max(1.0),
                    "gradient {a} vs {b}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn fused_chebyshev_features_and_their_backward_equal_the_recursion_of_products() -> Result<()> {
        let laplacian =
            scaled_laplacian(5, &[[0, 1], [0, 2], [0, 3], [1, 2], [3, 4]], &Device::Cpu)?;
        let (b, c) = (2, 3);
        for order in [1, 2, 3, 6] {
            let conv = ChebConv::new(VarBuilder::zeros(DType::F64, &Device::Cpu), order, c, 1)?;
            let values: Vec<f64> = (0..5 * b * c)
                .map(|i| ((i * 29 % 13) as f64 - 6.0) / 4.0)
                .collect();
            let x = candle_core::Var::from_vec(values, (5, b * c), &Device::Cpu)?;
            let weights: Vec<f64> = (0..5 * b * order * c)
                .map(|i| 0.5 + (i % 7) as f64)
                .collect();
            let weights = Tensor::from_vec(weights, (5, b, order, c), &Device::Cpu)?;
            let run = |fused: bool| -> Result<(Vec<f64>, Vec<f64>)> {
                let features = if fused {
                    let op = ChebyshevFeatures {
                        laplacian: laplacian.product.clone(),
                        order,
                        channels: c,
                    };
                    x.as_tensor().apply_op1(op)?
                } else {
                    conv.features_generic(&laplacian, x.as_tensor())?
                };
                let grads = (&features * &weights)?.sum_all()?.backward()?;
                let grad = grads.get(&x).expect("a gradient reaches x");
                Ok((
                    features.flatten_all()?.to_vec1()?,
                    grad.flatten_all()?.to_vec1()?,
                ))
            };
            let (fused, generic) = (run(true)?, run(false)?);
            for (a, b) in fused.0.iter().zip(&generic.0) {
                assert!((a - b).abs() < 1e-12, "order {order}: feature {a} vs {b}");
            }
            for (a, b) in fused.1.iter().zip(&generic.1) {
                assert!((a - b).abs() < 1e-12, "order {order}: gradient {a} vs {b}");
            }
            // An empty batch has empty features and an empty gradient.
            let empty = candle_core::Var::zeros((5, 0), DType::F64, &Device::Cpu)?;
            let op = ChebyshevFeatures {
                laplacian: laplacian.product.clone(),
                order,
                channels: c,
            };
            let features = empty.as_tensor().apply_op1(op)?;
            assert_eq!(features.dims(), &[5, 0, order, c]);
            let grads = features.sum_all()?.backward()?;
            assert_eq!(
                grads.get(&empty).map(|g| g.dims().to_vec()),
                Some(vec![5, 0])
            );
        }
        Ok(())
    }

    #[test]
    fn fused_elu_and_its_backward_equal_candles() -> Result<()> {
        let values: Vec<f64> = (0..40).map(|i| (i as f64 - 20.0) / 7.0).collect();
        let x = candle_core::Var::from_vec(values, (5, 8), &Device::Cpu)?;
        let weights: Vec<f64> = (0..40).map(|i| 1.0 + (i % 5) as f64).collect();
        let weights = Tensor::from_vec(weights, (5, 8), &Device::Cpu)?;
        let run = |fused: bool| -> Result<(Vec<f64>, Vec<f64>)> {
            let y = if fused {
                elu(x.as_tensor())?
            } else {
                x.as_tensor().elu(1.0)?
            };
            let grads = (&y * &weights)?.sum_all()?.backward()?;
            let grad = grads.get(&x).expect("a gradient reaches x");
            Ok((y.flatten_all()?.to_vec1()?, grad.flatten_all()?.to_vec1()?))
        };
        let (fused, candle) = (run(true)?, run(false)?);
        for (a, b) in fused
            .0
            .iter()
            .zip(&candle.0)
            .chain(fused.1.iter().zip(&candle.1))
        {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        Ok(())
    }

    #[test]
    fn factored_products_equal_the_dense_product_of_their_entries() -> Result<()> {
        // A graph with unequal degrees: the Laplacian's entries are −1/√(d_i d_j), and its
        // factored product (scale, gather, scatter, scale) equals the dense one.
        let edges = [[0, 1], [0, 2], [0, 3], [1, 2], [3, 4]];
        let lap = scaled_laplacian(5, &edges, &Device::Cpu)?;
        let degree = [3.0f64, 2.0, 2.0, 2.0, 1.0];
        for &(r, c, v) in lap.entries() {
            let expected = -1.0 / (degree[r as usize] * degree[c as usize]).sqrt();
            assert!((v as f64 - expected).abs() < 1e-6, "({r}, {c}): {v}");
        }
        let x = Tensor::new(
            &[
                [1.0f32, -2.0],
                [0.5, 3.0],
                [-1.0, 0.0],
                [2.0, 1.0],
                [4.0, -4.0],
            ],
            &Device::Cpu,
        )?;
        let y = lap.apply(&x)?.to_vec2::<f32>()?;
        let (d, xs) = (dense(&lap), x.to_vec2::<f32>()?);
        for (r, row) in y.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let expected: f64 = (0..5).map(|c| d[r][c] * xs[c][j] as f64).sum();
                assert!(
                    (v as f64 - expected).abs() < 1e-5,
                    "({r}, {j}): {v} vs {expected}"
                );
            }
        }
        assert!(
            SparseMatrix::scaled_pattern(2, 2, &[(0, 1)], Some(vec![1.0]), None, &Device::Cpu)
                .is_err()
        );
        Ok(())
    }

    #[test]
    fn scaled_laplacian_of_a_ring_has_its_known_spectrum_bounds() -> Result<()> {
        // On a ring every degree is 2: L̃ = −A/2, whose rows sum to −1 (the constant vector is
        // the eigenvector of eigenvalue −1, i.e. λ = 0 of L).
        let l = scaled_laplacian(6, &ring(6), &Device::Cpu)?;
        let x = Tensor::ones((6, 1), DType::F32, &Device::Cpu)?;
        for v in l.apply(&x)?.flatten_all()?.to_vec1::<f32>()? {
            assert!((v + 1.0).abs() < 1e-6);
        }
        assert!(scaled_laplacian(3, &[[0, 3]], &Device::Cpu).is_err());
        Ok(())
    }

    #[test]
    fn chebyshev_terms_follow_the_recurrence_of_the_dense_operator() -> Result<()> {
        // With one input channel, the identity-free check: a layer whose weight picks T_k alone
        // must return T_k(L̃) x computed densely with the cosine form T_k(cos θ) = cos kθ on
        // the eigenvectors of a ring (L̃ = −A/2 has eigenvalues −cos(2πj/n)).
        let n = 8usize;
        let lap = scaled_laplacian(n, &ring(n as u32), &Device::Cpu)?;
        let order = 4;
        let varmap = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let conv = ChebConv::new(vb, order, 1, order)?;
        // Weight = identity: output channel k is T_k(L̃) x.
        for (name, var) in varmap.data().lock().expect("var map").iter() {
            if name == "weight" {
                var.set(&Tensor::eye(order, DType::F32, &Device::Cpu)?)?;
            } else {
                var.set(&var.zeros_like()?)?;
            }
        }
        // x = the eigenvector cos(2π j i / n) of eigenvalue μ = −cos(2π j / n).
        let j = 1.0;
        let theta = 2.0 * std::f64::consts::PI * j / n as f64;
        let x: Vec<f32> = (0..n).map(|i| (theta * i as f64).cos() as f32).collect();
        let x = Tensor::from_vec(x, (n, 1, 1), &Device::Cpu)?;
        let y = conv
            .forward(&lap, &x)?
            .reshape((n, order))?
            .to_vec2::<f32>()?;
        let mu = -theta.cos();
        let acos = mu.acos();
        for (i, row) in y.iter().enumerate() {
            for (k, &v) in row.iter().enumerate() {
                let expected = (k as f64 * acos).cos() * (theta * i as f64).cos();
                assert!(
                    (v as f64 - expected).abs() < 1e-5,
                    "node {i}, T_{k}: {v} vs {expected}"
                );
            }
        }
        Ok(())
    }

    fn small_pyramid() -> GraphPyramid {
        GraphPyramid {
            n_nodes: 8,
            edges: ring(8),
            clusters: vec![vec![0, 0, 1, 1, 2, 2, 3, 3], vec![0, 0, 1, 1]],
        }
    }

    #[test]
    fn pyramid_levels_pool_and_unpool() -> Result<()> {
        let p = small_pyramid();
        assert_eq!(p.level_sizes(), vec![8, 4, 2]);
        assert_eq!(p.level_edges()[1], vec![[0, 1], [0, 3], [1, 2], [2, 3]]);
        assert_eq!(p.level_edges()[2], vec![[0, 1]]);
        let ops = p.operators(&Device::Cpu)?;
        let x = Tensor::arange(0f32, 8.0, &Device::Cpu)?.reshape((8, 1))?;
        let pooled = ops.pool[0].apply(&x)?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(pooled, vec![0.5, 2.5, 4.5, 6.5]);
        let back = ops.unpool[0]
            .apply(&Tensor::new(&[[1f32], [2.], [3.], [4.]], &Device::Cpu)?)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        assert_eq!(back, vec![1., 1., 2., 2., 3., 3., 4., 4.]);
        let mut bad = small_pyramid();
        bad.clusters[0][0] = 1; // cluster 0 keeps member 1 only: still valid
        assert!(bad.validate().is_ok());
        bad.clusters[0][1] = 1; // cluster 0 now empty
        assert!(bad.validate().is_err());
        let mut bad = small_pyramid();
        bad.clusters[1].pop();
        assert!(bad.validate().is_err());
        Ok(())
    }

    fn tiny_config() -> MeshAutoencoderConfig {
        MeshAutoencoderConfig {
            graph: small_pyramid(),
            in_channels: 3,
            channels: vec![4, 5],
            order: 3,
            code: 2,
        }
    }

    #[test]
    fn mesh_autoencoder_shapes_and_refusals() -> Result<()> {
        let net = Network::new(tiny_config(), 3, DType::F32, &Device::Cpu)?;
        let x = Tensor::randn(0f32, 1.0, (5, 8, 3), &Device::Cpu)?;
        let z = net.module().encode(&x)?;
        assert_eq!(z.dims(), &[5, 2]);
        assert_eq!(net.module().decode(&z)?.dims(), &[5, 8, 3]);
        assert!(net.module().encode(&x.narrow(1, 0, 7)?).is_err());
        assert!(net.module().decode(&x).is_err());
        let bad = MeshAutoencoderConfig {
            channels: vec![4],
            ..tiny_config()
        };
        assert!(Network::new(bad, 0, DType::F32, &Device::Cpu).is_err());
        Ok(())
    }

    #[test]
    fn first_convolution_is_affine_and_encode_is_its_continuation() -> Result<()> {
        // f64: conv(a x + (1 − a) y) = a conv(x) + (1 − a) conv(y) for any a, and the codes of
        // the split path equal encode's.
        let net = Network::new(tiny_config(), 5, DType::F64, &Device::Cpu)?;
        let m = net.module();
        let x = Tensor::randn(0f64, 1.0, (3, 8, 3), &Device::Cpu)?;
        let y = Tensor::randn(0f64, 1.0, (3, 8, 3), &Device::Cpu)?;
        let a = 2.7;
        let mixed = m.first_convolution(&((&x * a)? + (&y * (1.0 - a))?)?)?;
        let combined = ((m.first_convolution(&x)? * a)? + (m.first_convolution(&y)? * (1.0 - a))?)?;
        let gap = (mixed - combined)?.abs()?.max_all()?.to_scalar::<f64>()?;
        assert!(gap < 1e-12, "not affine: {gap}");
        assert_eq!(m.first_convolution(&x)?.dims(), &[8, 3, 4]);
        let split = m.encode_from_first(&m.first_convolution(&x)?)?;
        let whole = m.encode(&x)?;
        let gap = (split - whole)?.abs()?.max_all()?.to_scalar::<f64>()?;
        assert!(gap < 1e-12, "split path differs by {gap}");
        assert!(m.encode_from_first(&x).is_err());
        Ok(())
    }

    #[test]
    fn mesh_autoencoder_gradients_match_central_differences() -> Result<()> {
        // f64 network: the loss Σ decode(encode(x))² · w against finite differences in x and in
        // one weight of the finest convolution.
        let net = Network::new(tiny_config(), 11, DType::F64, &Device::Cpu)?;
        let x0 = Tensor::randn(0f64, 1.0, (2, 8, 3), &Device::Cpu)?;
        let w = Tensor::randn(0f64, 1.0, (2, 8, 3), &Device::Cpu)?;
        let loss = |x: &Tensor| -> Result<Tensor> {
            let y = net.module().decode(&net.module().encode(x)?)?;
            Ok((y.sqr()? * &w)?.sum_all()?)
        };
        let x = candle_core::Var::from_tensor(&x0)?;
        let grads = loss(x.as_tensor())?.backward()?;
        let gx = grads
            .get(x.as_tensor())
            .expect("input gradient")
            .flatten_all()?
            .to_vec1::<f64>()?;
        let flat = x0.flatten_all()?.to_vec1::<f64>()?;
        let h = 1e-6;
        for i in [0usize, 7, 20, 33, 47] {
            let shifted = |d: f64| -> Result<f64> {
                let mut v = flat.clone();
                v[i] += d;
                let t = Tensor::from_vec(v, (2, 8, 3), &Device::Cpu)?;
                Ok(loss(&t)?.to_scalar::<f64>()?)
            };
            let numeric = (shifted(h)? - shifted(-h)?) / (2.0 * h);
            assert!(
                (gx[i] - numeric).abs() < 1e-5 * (1.0 + numeric.abs()),
                "x[{i}]: {} vs {numeric}",
                gx[i]
            );
        }
        // One weight of the finest encoder convolution.
        let (name, var) = net
            .trainable_vars()
            .into_iter()
            .find(|(n, _)| n == "enc0.weight")
            .expect("enc0.weight");
        let grads = loss(&x0)?.backward()?;
        let gw = grads
            .get(var.as_tensor())
            .expect("weight gradient")
            .flatten_all()?
            .to_vec1::<f64>()?;
        let w0 = var.as_tensor().copy()?;
        let shape = w0.dims().to_vec();
        let wflat = w0.flatten_all()?.to_vec1::<f64>()?;
        for i in [0usize, 5, 17] {
            let shifted = |d: f64| -> Result<f64> {
                let mut v = wflat.clone();
                v[i] += d;
                var.set(&Tensor::from_vec(v, shape.as_slice(), &Device::Cpu)?)?;
                Ok(loss(&x0)?.to_scalar::<f64>()?)
            };
            let numeric = (shifted(h)? - shifted(-h)?) / (2.0 * h);
            assert!(
                (gw[i] - numeric).abs() < 1e-5 * (1.0 + numeric.abs()),
                "{name}[{i}]: {} vs {numeric}",
                gw[i]
            );
        }
        var.set(&w0)?;
        Ok(())
    }
}
