//! Adam (Kingma & Ba 2015, no weight decay) with the paper's linear learning-rate schedule, and
//! an optimiser state that is saved next to the weights so that a resumed run continues exactly.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::config::{ValidConfig, Validate};
use crate::error::{FacenetError, Result};

/// A learning rate that moves linearly from `start_lr` to `end_lr` over the first `ramp_steps`
/// optimiser steps and stays at `end_lr` afterwards.
///
/// The paper (§3.5) trains the encoder with rates "linearly scheduled in [0.01, 0.001] over the
/// initial 150 epochs … and over 200 epochs in total", and the decoder and autoencoder with a
/// constant 0.001.
///
/// ```
/// use facenet::LinearSchedule;
/// let schedule = LinearSchedule::linear(0.01, 0.001, 100);
/// assert_eq!(schedule.learning_rate(0), 0.01);
/// assert!((schedule.learning_rate(50) - 0.0055).abs() < 1e-15);
/// assert_eq!(schedule.learning_rate(100), 0.001);
/// assert_eq!(schedule.learning_rate(1_000), 0.001);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinearSchedule {
    /// Learning rate of the first step.
    pub start_lr: f64,
    /// Learning rate from step `ramp_steps` on.
    pub end_lr: f64,
    /// Number of steps of the linear ramp (0: constant `end_lr`).
    pub ramp_steps: u64,
}

impl LinearSchedule {
    /// A constant learning rate.
    pub fn constant(lr: f64) -> Self {
        Self {
            start_lr: lr,
            end_lr: lr,
            ramp_steps: 0,
        }
    }

    /// A ramp from `start_lr` to `end_lr` over `ramp_steps` steps.
    pub fn linear(start_lr: f64, end_lr: f64, ramp_steps: u64) -> Self {
        Self {
            start_lr,
            end_lr,
            ramp_steps,
        }
    }

    /// The paper's encoder schedule: 0.01 → 0.001 over 150 epochs of `steps_per_epoch` steps.
    pub fn paper_encoder(steps_per_epoch: u64) -> Self {
        Self::linear(0.01, 0.001, 150 * steps_per_epoch)
    }

    /// The paper's decoder and autoencoder rate: a constant 0.001.
    pub fn paper_decoder() -> Self {
        Self::constant(0.001)
    }

    /// The learning rate of the step with 0-based index `step`.
    pub fn learning_rate(&self, step: u64) -> f64 {
        if step >= self.ramp_steps {
            self.end_lr
        } else {
            let t = step as f64 / self.ramp_steps as f64;
            self.start_lr + (self.end_lr - self.start_lr) * t
        }
    }
}

impl Validate for LinearSchedule {
    fn validate(&self) -> Result<()> {
        for (field, lr) in [("start_lr", self.start_lr), ("end_lr", self.end_lr)] {
            if !(lr.is_finite() && lr > 0.0) {
                return Err(FacenetError::config(
                    "LinearSchedule",
                    field,
                    format!("must be finite and positive, got {lr}"),
                ));
            }
        }
        Ok(())
    }
}

/// Adam's hyper-parameters (PyTorch's defaults: β₁ = 0.9, β₂ = 0.999, ε = 1e-8).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Learning rate per step.
    pub schedule: LinearSchedule,
}

impl AdamConfig {
    /// PyTorch's defaults with the given schedule.
    pub fn new(schedule: LinearSchedule) -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            schedule,
        }
    }
}

impl Validate for AdamConfig {
    fn validate(&self) -> Result<()> {
        for (field, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(FacenetError::config(
                    "AdamConfig",
                    field,
                    format!("must lie in [0, 1), got {beta}"),
                ));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(FacenetError::config(
                "AdamConfig",
                "eps",
                format!("must be finite and positive, got {}", self.eps),
            ));
        }
        self.schedule.validate()
    }
}

/// Everything Adam needs to continue exactly: its config, the number of steps taken and the two
/// moment estimates of every parameter (by name).
#[derive(Debug, Clone)]
pub struct AdamState {
    /// The hyper-parameters and schedule.
    pub config: AdamConfig,
    /// Steps taken so far.
    pub step: u64,
    /// (first moment, second moment) by parameter name.
    pub moments: BTreeMap<String, (Tensor, Tensor)>,
}

struct AdamParam {
    name: String,
    var: Var,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

/// Adam without weight decay, updating a fixed set of named variables.
///
/// The update of step t (1-based) with gradient g, as PyTorch's `Adam`:
/// m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², θ ← θ − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε),
/// with lr from the schedule at step t − 1.
pub struct Adam {
    config: ValidConfig<AdamConfig>,
    params: Vec<AdamParam>,
    step: u64,
}

impl std::fmt::Debug for Adam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adam")
            .field("config", &*self.config)
            .field("parameters", &self.params.len())
            .field("step", &self.step)
            .finish()
    }
}

/// Tensor names in `optimizer.safetensors` (PyTorch's names for Adam's state).
const FIRST_MOMENT: &str = "exp_avg";
const SECOND_MOMENT: &str = "exp_avg_sq";

impl Adam {
    /// An optimiser for `vars` (as [`crate::Network::trainable_vars`] gives them), moments zero.
    ///
    /// # Errors
    /// [`FacenetError::Config`] if the config is invalid, [`FacenetError::Training`] if there is
    /// no variable or a name appears twice.
    pub fn new(vars: Vec<(String, Var)>, config: AdamConfig) -> Result<Self> {
        let config = config.check()?;
        if vars.is_empty() {
            return Err(FacenetError::Training(
                "no trainable variables (is the network frozen?)".into(),
            ));
        }
        let mut params: Vec<AdamParam> = Vec::with_capacity(vars.len());
        for (name, var) in vars {
            if params.iter().any(|p| p.name == name) {
                return Err(FacenetError::Training(format!(
                    "variable '{name}' given twice"
                )));
            }
            let zeros = var.as_tensor().zeros_like()?;
            params.push(AdamParam {
                name,
                var,
                exp_avg: zeros.clone(),
                exp_avg_sq: zeros,
            });
        }
        Ok(Self {
            config,
            params,
            step: 0,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// Steps taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// The learning rate the next step will use.
    pub fn learning_rate(&self) -> f64 {
        self.config.schedule.learning_rate(self.step)
    }

    /// Names of the updated variables, in order.
    pub fn var_names(&self) -> impl Iterator<Item = &str> {
        self.params.iter().map(|p| p.name.as_str())
    }

    /// One update with the gradients of `grads`; variables without a gradient are left alone
    /// (their moments too), as in PyTorch.
    ///
    /// # Errors
    /// A candle error from the update arithmetic.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let lr = self.learning_rate();
        let t = self.step + 1;
        let AdamConfig {
            beta1, beta2, eps, ..
        } = *self.config;
        let bias1 = 1.0 - beta1.powf(t as f64);
        let bias2 = 1.0 - beta2.powf(t as f64);
        for p in &mut self.params {
            let Some(grad) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            // Detached: the gradient may still reference the graph it came from.
            let grad = grad.detach();
            let exp_avg = (p.exp_avg.affine(beta1, 0.0)? + grad.affine(1.0 - beta1, 0.0)?)?;
            let exp_avg_sq =
                (p.exp_avg_sq.affine(beta2, 0.0)? + grad.sqr()?.affine(1.0 - beta2, 0.0)?)?;
            let denom = exp_avg_sq.sqrt()?.affine(1.0 / bias2.sqrt(), eps)?;
            let update = exp_avg.div(&denom)?.affine(lr / bias1, 0.0)?;
            p.var.set(&(p.var.as_detached_tensor() - update)?)?;
            p.exp_avg = exp_avg;
            p.exp_avg_sq = exp_avg_sq;
        }
        self.step = t;
        Ok(())
    }

    /// Back-propagates `loss` (a scalar) and takes one step.
    ///
    /// # Errors
    /// [`FacenetError::Training`] if the loss is not a finite scalar; a candle error from
    /// back-propagation or the update.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        if loss.rank() != 0 {
            return Err(FacenetError::Training(format!(
                "the loss must be a scalar, got shape {:?}",
                loss.dims()
            )));
        }
        let grads = loss.backward()?;
        self.step(&grads)
    }

    /// A copy of the state (the moments are immutable tensors, so this is cheap).
    pub fn state(&self) -> AdamState {
        AdamState {
            config: *self.config,
            step: self.step,
            moments: self
                .params
                .iter()
                .map(|p| (p.name.clone(), (p.exp_avg.clone(), p.exp_avg_sq.clone())))
                .collect(),
        }
    }

    /// Restores a state taken from an optimiser over the same variables.
    ///
    /// # Errors
    /// [`FacenetError::OptimizerState`] if a name is missing or extra or a shape differs,
    /// [`FacenetError::Config`] if the state's config is invalid.
    pub fn load_state(&mut self, state: AdamState) -> Result<()> {
        let config = state.config.check()?;
        let mut moments = state.moments;
        if moments.len() != self.params.len() {
            return Err(FacenetError::OptimizerState(format!(
                "holds moments of {} variables, the optimiser updates {}",
                moments.len(),
                self.params.len()
            )));
        }
        let mut restored = Vec::with_capacity(self.params.len());
        for p in &self.params {
            let (m, v) = moments.remove(&p.name).ok_or_else(|| {
                FacenetError::OptimizerState(format!("no moments for variable '{}'", p.name))
            })?;
            for (what, t) in [("first", &m), ("second", &v)] {
                if t.shape() != p.var.shape() {
                    return Err(FacenetError::OptimizerState(format!(
                        "{what} moment of '{}' has shape {:?}, the variable {:?}",
                        p.name,
                        t.dims(),
                        p.var.dims()
                    )));
                }
            }
            let convert = |t: Tensor| -> Result<Tensor> {
                Ok(t.to_dtype(p.var.dtype())?.to_device(p.var.device())?)
            };
            restored.push((convert(m)?, convert(v)?));
        }
        for (p, (m, v)) in self.params.iter_mut().zip(restored) {
            p.exp_avg = m;
            p.exp_avg_sq = v;
        }
        self.config = config;
        self.step = state.step;
        Ok(())
    }

    /// Writes the state to a safetensors file: tensors `exp_avg.{name}` and `exp_avg_sq.{name}`,
    /// the step count and the config (JSON) in the file's metadata.
    ///
    /// # Errors
    /// [`FacenetError::Weights`] if the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors: BTreeMap<String, Tensor> = BTreeMap::new();
        for p in &self.params {
            tensors.insert(format!("{FIRST_MOMENT}.{}", p.name), p.exp_avg.clone());
            tensors.insert(format!("{SECOND_MOMENT}.{}", p.name), p.exp_avg_sq.clone());
        }
        let config =
            serde_json::to_string(&*self.config).map_err(|e| FacenetError::json(path, e))?;
        let metadata = BTreeMap::from([
            ("format".to_string(), "facenet-adam-1".to_string()),
            ("step".to_string(), self.step.to_string()),
            ("config".to_string(), config),
        ]);
        let cannot =
            |e: &dyn std::fmt::Display| FacenetError::weights(path, format!("cannot write: {e}"));
        let unordered = HashMap::from_iter(metadata.clone());
        let mut bytes =
            safetensors::tensor::serialize(&tensors, Some(unordered)).map_err(|e| cannot(&e))?;
        sort_metadata(&mut bytes, &metadata).map_err(|e| cannot(&e))?;
        std::fs::write(path, bytes).map_err(|e| FacenetError::io(path, e))
    }

    /// Reads a state written by [`Adam::save`] (onto `device`) without applying it.
    ///
    /// # Errors
    /// [`FacenetError::Io`] / [`FacenetError::Weights`] if the file is unreadable or not an
    /// optimiser state.
    pub fn read_state(path: &Path, device: &Device) -> Result<AdamState> {
        let bytes = std::fs::read(path).map_err(|e| FacenetError::io(path, e))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| {
            FacenetError::weights(path, format!("not a readable safetensors file: {e}"))
        })?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let field = |key: &str| {
            metadata.get(key).ok_or_else(|| {
                FacenetError::weights(
                    path,
                    format!("no '{key}' in the metadata: not an optimiser state"),
                )
            })
        };
        let step: u64 = field("step")?
            .parse()
            .map_err(|e| FacenetError::weights(path, format!("metadata 'step': {e}")))?;
        let config: AdamConfig =
            serde_json::from_str(field("config")?).map_err(|e| FacenetError::json(path, e))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| {
            FacenetError::weights(path, format!("not a readable safetensors file: {e}"))
        })?;
        let mut firsts = BTreeMap::new();
        let mut seconds = BTreeMap::new();
        for (name, tensor) in tensors {
            if let Some(var) = name.strip_prefix(&format!("{SECOND_MOMENT}.")) {
                seconds.insert(var.to_string(), tensor);
            } else if let Some(var) = name.strip_prefix(&format!("{FIRST_MOMENT}.")) {
                firsts.insert(var.to_string(), tensor);
            } else {
                return Err(FacenetError::weights(
                    path,
                    format!("unexpected tensor '{name}'"),
                ));
            }
        }
        let mut moments = BTreeMap::new();
        for (name, m) in firsts {
            let v = seconds.remove(&name).ok_or_else(|| {
                FacenetError::weights(path, format!("'{name}' has a first moment but no second"))
            })?;
            moments.insert(name, (m, v));
        }
        if let Some(name) = seconds.keys().next() {
            return Err(FacenetError::weights(
                path,
                format!("'{name}' has a second moment but no first"),
            ));
        }
        Ok(AdamState {
            config,
            step,
            moments,
        })
    }

    /// Reads a state written by [`Adam::save`] and applies it.
    ///
    /// # Errors
    /// As [`Adam::read_state`] and [`Adam::load_state`].
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let device = match self.params.first() {
            Some(p) => p.var.device().clone(),
            None => Device::Cpu,
        };
        let state = Self::read_state(path, &device)?;
        self.load_state(state)
    }
}

/// Rewrites the `__metadata__` object of a serialised safetensors file with its keys in
/// sorted order. safetensors takes the metadata as a `HashMap`, whose order changes from one
/// process to the next; the sorted object has the same length, so no offset moves and the
/// same state always gives the same bytes.
fn sort_metadata(
    bytes: &mut [u8],
    metadata: &BTreeMap<String, String>,
) -> std::result::Result<(), String> {
    const KEY: &[u8] = b"\"__metadata__\":";
    let header_len = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or("no safetensors header")? as usize;
    let header = bytes
        .get_mut(8..8 + header_len)
        .ok_or("a truncated header")?;
    let start = header
        .windows(KEY.len())
        .position(|w| w == KEY)
        .ok_or("no metadata in the header")?
        + KEY.len();
    let sorted = serde_json::to_vec(metadata).map_err(|e| e.to_string())?;
    let slot = header
        .get_mut(start..start + sorted.len())
        .ok_or("a metadata object shorter than expected")?;
    let written: HashMap<String, String> =
        serde_json::from_slice(slot).map_err(|e| format!("unexpected metadata layout: {e}"))?;
    if written.len() != metadata.len() || written.iter().any(|(k, v)| metadata.get(k) != Some(v)) {
        return Err("unexpected metadata layout".into());
    }
    slot.copy_from_slice(&sorted);
    Ok(())
}
