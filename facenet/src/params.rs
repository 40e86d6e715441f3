//! Parameter storage: a candle `VarMap` with seeded initialisation, strict safetensors I/O and
//! frozen (detached) views.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::error::{FacenetError, Result};

/// Suffixes of the BatchNorm running statistics: stored and checkpointed with the weights, updated
/// by training-mode forward passes, never handed to the optimiser.
const RUNNING_STATISTICS: [&str; 2] = ["running_mean", "running_var"];

/// Whether the parameter `name` is a BatchNorm running statistic rather than a trained weight.
pub fn is_running_statistic(name: &str) -> bool {
    RUNNING_STATISTICS
        .iter()
        .any(|suffix| name.rsplit('.').next() == Some(suffix))
}

/// The named parameters of one network (weights, biases and BatchNorm running statistics).
///
/// Cloning shares the storage: a clone sees every update. One `ParamStore` per network is what
/// makes freezing possible: a frozen network's store is simply not handed to the optimiser.
#[derive(Clone)]
pub struct ParamStore {
    vars: VarMap,
}

impl Default for ParamStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ParamStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParamStore")
            .field("tensors", &self.len())
            .finish()
    }
}

impl ParamStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            vars: VarMap::new(),
        }
    }

    /// A builder that creates every parameter it is asked for in this store, initialised from
    /// the hint (`Init`) with values drawn from a ChaCha8 generator seeded by `seed` and the
    /// parameter's name. The same seed gives bit-identical weights whatever the build order.
    pub fn seeded_builder(&self, seed: u64, dtype: DType, device: &Device) -> VarBuilder<'static> {
        let backend = SeededBackend {
            vars: self.vars.clone(),
            seed,
        };
        VarBuilder::from_backend(Box::new(backend), dtype, device.clone())
    }

    /// A builder over the existing parameters that hands out detached tensors (sharing storage),
    /// so that a module built from it produces no gradient for its weights: the frozen view.
    /// Running statistics are handed out as the variables themselves so that they stay shared.
    pub(crate) fn frozen_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        let backend = FrozenBackend {
            vars: self.vars.clone(),
        };
        VarBuilder::from_backend(Box::new(backend), dtype, device.clone())
    }

    /// Number of stored tensors (weights, biases and running statistics).
    pub fn len(&self) -> usize {
        self.lock_len()
    }

    /// Whether the store holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock_len(&self) -> usize {
        match self.vars.data().lock() {
            Ok(map) => map.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }

    /// Every stored variable with its name, sorted by name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let map = match self.vars.data().lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut vars: Vec<(String, Var)> = map
            .iter()
            .map(|(name, var)| (name.clone(), var.clone()))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars
    }

    /// The variables an optimiser should update (everything but the running statistics),
    /// sorted by name.
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        self.named_vars()
            .into_iter()
            .filter(|(name, _)| !is_running_statistic(name))
            .collect()
    }

    /// Number of trainable scalars.
    pub fn trainable_parameter_count(&self) -> usize {
        self.trainable_vars()
            .iter()
            .map(|(_, var)| var.elem_count())
            .sum()
    }

    /// The dtype of the stored tensors (`None` for an empty store).
    pub fn dtype(&self) -> Option<DType> {
        self.named_vars().first().map(|(_, var)| var.dtype())
    }

    /// A copy of every tensor (not sharing storage with the variables), by name.
    ///
    /// # Errors
    /// A candle error if a tensor cannot be copied.
    pub fn snapshot(&self) -> Result<BTreeMap<String, Tensor>> {
        self.named_vars()
            .into_iter()
            .map(|(name, var)| Ok((name, var.as_tensor().copy()?)))
            .collect()
    }

    /// Writes every tensor to a safetensors file.
    ///
    /// # Errors
    /// [`FacenetError::Weights`] if the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tensors: BTreeMap<String, Tensor> = self
            .named_vars()
            .into_iter()
            .map(|(name, var)| (name, var.as_detached_tensor()))
            .collect();
        safetensors::tensor::serialize_to_file(&tensors, None, path)
            .map_err(|e| FacenetError::weights(path, format!("cannot write: {e}")))
    }

    /// Overwrites every stored tensor with the one of the same name in a safetensors file.
    ///
    /// The match is strict: the file must hold exactly the stored names, with the same shapes.
    /// Values are converted to the stored dtype.
    ///
    /// # Errors
    /// [`FacenetError::Io`] if the file cannot be read, [`FacenetError::Weights`] naming the first
    /// missing, unexpected, misshapen or non-finite tensor.
    pub fn load(&self, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|e| FacenetError::io(path, e))?;
        let vars = self.named_vars();
        let device = match vars.first() {
            Some((_, var)) => var.device().clone(),
            None => Device::Cpu,
        };
        let loaded = candle_core::safetensors::load_buffer(&bytes, &device).map_err(|e| {
            FacenetError::weights(path, format!("not a readable safetensors file: {e}"))
        })?;
        for name in loaded.keys() {
            if !vars.iter().any(|(n, _)| n == name) {
                return Err(FacenetError::weights(
                    path,
                    format!("tensor '{name}' is not a parameter of this network"),
                ));
            }
        }
        for (name, var) in &vars {
            let tensor = loaded
                .get(name)
                .ok_or_else(|| FacenetError::weights(path, format!("missing tensor '{name}'")))?;
            if tensor.shape() != var.shape() {
                return Err(FacenetError::weights(
                    path,
                    format!(
                        "tensor '{name}' has shape {:?}, the network expects {:?}",
                        tensor.dims(),
                        var.dims()
                    ),
                ));
            }
            // A NaN or infinite weight poisons every prediction: refuse it by name.
            let values = tensor
                .to_dtype(DType::F64)?
                .flatten_all()?
                .to_vec1::<f64>()?;
            if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(FacenetError::weights(
                    path,
                    format!("tensor '{name}' holds {v} at element {i}: weights must be finite"),
                ));
            }
            var.set(&tensor.to_dtype(var.dtype())?)?;
        }
        Ok(())
    }

    /// The dtype of the tensors in a safetensors file, which must all agree.
    ///
    /// # Errors
    /// [`FacenetError::Io`] / [`FacenetError::Weights`] if the file is unreadable, empty or mixed.
    pub fn file_dtype(path: &Path) -> Result<DType> {
        let bytes = std::fs::read(path).map_err(|e| FacenetError::io(path, e))?;
        let loaded = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| {
            FacenetError::weights(path, format!("not a readable safetensors file: {e}"))
        })?;
        let mut dtypes: Vec<DType> = loaded.values().map(Tensor::dtype).collect();
        dtypes.dedup();
        match dtypes.as_slice() {
            [dtype] => Ok(*dtype),
            [] => Err(FacenetError::weights(path, "holds no tensor")),
            _ => Err(FacenetError::weights(
                path,
                format!("tensors of several dtypes: {dtypes:?}"),
            )),
        }
    }
}

/// FNV-1a, 64 bit: a stable hash of a parameter name, used as the ChaCha stream so that every
/// parameter draws from its own stream whatever the order of construction.
fn name_stream(name: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    name.bytes().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// Draws the values of a parameter of `shape` as `init` prescribes (candle's and PyTorch's
/// formulas: Kaiming std = gain / √fan, uniform bound = √3 · std).
fn sample_init(init: Init, shape: &Shape, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let n = shape.elem_count();
    let normal = |rng: &mut ChaCha8Rng, mean: f64, std: f64| -> Vec<f64> {
        (0..n)
            .map(|_| mean + std * rng.sample::<f64, _>(StandardNormal))
            .collect()
    };
    let uniform = |rng: &mut ChaCha8Rng, lo: f64, up: f64| -> Vec<f64> {
        (0..n)
            .map(|_| lo + (up - lo) * rng.random::<f64>())
            .collect()
    };
    match init {
        Init::Const(value) => vec![value; n],
        Init::Randn { mean, stdev } => normal(rng, mean, stdev),
        Init::Uniform { lo, up } => uniform(rng, lo, up),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let fan = fan.for_shape(shape).max(1);
            let std = non_linearity.gain() / (fan as f64).sqrt();
            match dist {
                NormalOrUniform::Normal => normal(rng, 0.0, std),
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    uniform(rng, -bound, bound)
                }
            }
        }
    }
}

fn lock_map(vars: &VarMap) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Var>> {
    match vars.data().lock() {
        Ok(map) => map,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Creates missing parameters from the init hint with a per-name seeded stream.
struct SeededBackend {
    vars: VarMap,
    seed: u64,
}

impl SimpleBackend for SeededBackend {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut map = lock_map(&self.vars);
        if let Some(var) = map.get(name) {
            if var.shape() != &shape {
                candle_core::bail!(
                    "parameter '{name}' exists with shape {:?}, requested {:?}",
                    var.dims(),
                    shape.dims()
                );
            }
            return Ok(var.as_tensor().clone());
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(name_stream(name));
        let values = sample_init(init, &shape, &mut rng);
        let tensor = Tensor::from_vec(values, shape, device)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&tensor)?;
        let out = var.as_tensor().clone();
        map.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        match lock_map(&self.vars).get(name) {
            Some(var) => Ok(var.as_tensor().clone()),
            None => candle_core::bail!("no parameter named '{name}'"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        lock_map(&self.vars).contains_key(name)
    }
}

/// Hands out existing parameters detached from the autograd graph (running statistics excepted).
struct FrozenBackend {
    vars: VarMap,
}

impl FrozenBackend {
    fn lookup(&self, name: &str) -> candle_core::Result<Tensor> {
        match lock_map(&self.vars).get(name) {
            Some(var) if is_running_statistic(name) => Ok(var.as_tensor().clone()),
            Some(var) => Ok(var.as_detached_tensor()),
            None => candle_core::bail!("frozen network has no parameter named '{name}'"),
        }
    }
}

impl SimpleBackend for FrozenBackend {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _init: Init,
        _dtype: DType,
        _device: &Device,
    ) -> candle_core::Result<Tensor> {
        let tensor = self.lookup(name)?;
        if tensor.shape() != &shape {
            candle_core::bail!(
                "parameter '{name}' has shape {:?}, requested {:?}",
                tensor.dims(),
                shape.dims()
            );
        }
        Ok(tensor)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.lookup(name)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        lock_map(&self.vars).contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_statistics_are_recognised_by_their_last_name_component() {
        assert!(is_running_statistic("layer1.0.bn1.running_mean"));
        assert!(is_running_statistic("bn1.running_var"));
        assert!(!is_running_statistic("bn1.weight"));
        assert!(!is_running_statistic("my_running_mean_head.weight"));
    }

    #[test]
    fn streams_differ_between_names() {
        assert_ne!(name_stream("conv1.weight"), name_stream("conv2.weight"));
    }
}
