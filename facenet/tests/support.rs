//! Helpers shared by the integration tests.

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A tensor of uniform values in [-1, 1) drawn from `seed`.
pub fn uniform(dims: &[usize], seed: u64, dtype: DType) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = dims.iter().product();
    let values: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_vec(values, dims, &Device::Cpu)
        .and_then(|t| t.to_dtype(dtype))
        .expect("a tensor of test values")
}

/// Largest absolute difference between two tensors of the same shape.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.to_dtype(DType::F64))
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_scalar::<f64>())
        .expect("comparable tensors")
}

/// Mean squared difference, a scalar tensor.
pub fn mse(a: &Tensor, b: &Tensor) -> facenet::Result<Tensor> {
    Ok((a - b)?.sqr()?.mean_all()?)
}
