//! A network together with its own parameters: the unit that is built, trained, frozen and saved.

use std::path::Path;

use candle_core::{DType, Device, ModuleT, Tensor, Var};

use crate::config::{ImageShape, NetworkConfig, ValidConfig};
use crate::error::Result;
use crate::params::ParamStore;
use crate::traits::{Encoder, ImageDecoder};

/// A module built from a validated config, owning its [`ParamStore`].
///
/// Each network has its own store, so networks are trained, frozen and checkpointed
/// independently. A frozen network runs with `train = false` whatever its caller asks (BatchNorm
/// uses and keeps its running statistics), its weights enter the graph detached (no gradient is
/// computed for them, gradients still flow through to its input), and it offers no trainable
/// variables to an optimiser.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use facenet::{Encoder, Network, NetworkSize};
///
/// let config = NetworkSize::Tiny.resnet(1, 5, facenet::Head::PAPER_TANH);
/// let net = Network::new(config, 7, DType::F32, &Device::Cpu)?;
/// let images = Tensor::zeros((2, 1, 32, 32), DType::F32, &Device::Cpu)?;
/// let params = net.encode(&images, false)?;
/// assert_eq!(params.dims(), &[2, 5]);
/// // The same seed gives the same weights.
/// let again = Network::new(net.config().clone(), 7, DType::F32, &Device::Cpu)?;
/// let diff = (again.encode(&images, false)? - params)?.abs()?.max_all()?.to_scalar::<f32>()?;
/// assert_eq!(diff, 0.0);
/// # Ok::<(), facenet::FacenetError>(())
/// ```
pub struct Network<C: NetworkConfig> {
    config: ValidConfig<C>,
    params: ParamStore,
    module: C::Module,
    frozen: bool,
    dtype: DType,
    device: Device,
}

impl<C: NetworkConfig> std::fmt::Debug for Network<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("kind", &C::KIND)
            .field("config", &*self.config)
            .field("parameters", &self.params.trainable_parameter_count())
            .field("frozen", &self.frozen)
            .field("dtype", &self.dtype)
            .field("device", &self.device)
            .finish()
    }
}

impl<C: NetworkConfig> Network<C> {
    /// Validates `config` and builds the network with weights drawn from `seed` (the same seed
    /// gives bit-identical weights) in `dtype` on `device`.
    ///
    /// # Errors
    /// [`crate::FacenetError::Config`] if the config is invalid; a candle error if a tensor
    /// cannot be created on `device`.
    pub fn new(config: C, seed: u64, dtype: DType, device: &Device) -> Result<Self> {
        let config = config.check()?;
        let params = ParamStore::new();
        let module = C::build(&config, params.seeded_builder(seed, dtype, device))?;
        Ok(Self {
            config,
            params,
            module,
            frozen: false,
            dtype,
            device: device.clone(),
        })
    }

    /// Builds the network described by `config` and fills it with the weights of a safetensors
    /// file, in the file's dtype.
    ///
    /// # Errors
    /// As [`Network::new`] and [`ParamStore::load`].
    pub fn from_weights(config: C, weights: &Path, device: &Device) -> Result<Self> {
        let dtype = ParamStore::file_dtype(weights)?;
        let network = Self::new(config, 0, dtype, device)?;
        network.params.load(weights)?;
        Ok(network)
    }

    /// A copy of this network on `device`: the same config, dtype, weights, running statistics
    /// and frozen state.
    ///
    /// # Errors
    /// A candle error if a tensor cannot be created on or copied to `device`.
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        let mut copy = Self::new(C::clone(&self.config), 0, self.dtype, device)?;
        let target: std::collections::BTreeMap<String, Var> =
            copy.params.named_vars().into_iter().collect();
        for (name, var) in self.params.named_vars() {
            if let Some(to) = target.get(&name) {
                to.set(&var.as_tensor().to_device(device)?)?;
            }
        }
        if self.frozen {
            copy.freeze()?;
        }
        Ok(copy)
    }

    /// A trainable network of `config`, which describes this network reading more input
    /// channels, that computes on any input what this network computes on its leading
    /// channels: every parameter is copied, except that a weight whose second dimension grew
    /// (the input layers, `(out, in, …)`) gets this network's weights on its leading inputs
    /// and zeros on the new ones. Training then starts from this network and learns what the
    /// new channels add (the iterative encoder starts from a one-pass encoder this way).
    ///
    /// # Errors
    /// [`crate::FacenetError::Config`] if `config` is invalid, or if a parameter is missing from
    /// either network or differs in shape other than by a larger second dimension (`config`
    /// changes more than the input channels); a candle error from the copies.
    pub fn widen_input(&self, config: C) -> Result<Self> {
        let wide = Self::new(config, 0, self.dtype, &self.device)?;
        let source: std::collections::BTreeMap<String, Var> =
            self.params.named_vars().into_iter().collect();
        let target = wide.params.named_vars();
        let mismatch = |name: &str, detail: String| {
            crate::FacenetError::config(
                C::KIND,
                "in_channels",
                format!(
                    "widening the input: parameter {name}: {detail}; the configs must differ \
                     only in their input channels"
                ),
            )
        };
        if target.len() != source.len() {
            return Err(mismatch(
                "count",
                format!("{} parameters against {}", target.len(), source.len()),
            ));
        }
        for (name, var) in target {
            let from = source
                .get(&name)
                .ok_or_else(|| mismatch(&name, "absent from the narrower network".into()))?;
            let (old, new) = (from.dims(), var.dims());
            let tensor = if old == new {
                from.as_tensor().clone()
            } else if old.len() >= 2
                && old.len() == new.len()
                && new[1] > old[1]
                && old
                    .iter()
                    .zip(new)
                    .enumerate()
                    .all(|(d, (a, b))| d == 1 || a == b)
            {
                let mut zeros = new.to_vec();
                zeros[1] -= old[1];
                let zeros = Tensor::zeros(zeros, from.dtype(), from.device())?;
                Tensor::cat(&[from.as_tensor(), &zeros], 1)?
            } else {
                return Err(mismatch(&name, format!("shape {new:?} against {old:?}")));
            };
            var.set(&tensor)?;
        }
        Ok(wide)
    }

    /// The validated config.
    pub fn config(&self) -> &C {
        &self.config
    }

    /// The candle module.
    pub fn module(&self) -> &C::Module {
        &self.module
    }

    /// The parameters (weights, biases, BatchNorm running statistics).
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// The dtype of the weights; inputs must have it too.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device holding the weights.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Whether the network is frozen.
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Freezes the network: evaluation mode, detached weights, no trainable variables.
    ///
    /// # Errors
    /// A candle error if the module cannot be rebuilt over the existing parameters.
    pub fn freeze(&mut self) -> Result<()> {
        if !self.frozen {
            self.module = C::build(
                &self.config,
                self.params.frozen_builder(self.dtype, &self.device),
            )?;
            self.frozen = true;
        }
        Ok(())
    }

    /// Makes a frozen network trainable again.
    ///
    /// # Errors
    /// A candle error if the module cannot be rebuilt over the existing parameters.
    pub fn unfreeze(&mut self) -> Result<()> {
        if self.frozen {
            // The seeded builder returns existing parameters untouched; the seed is never used.
            self.module = C::build(
                &self.config,
                self.params.seeded_builder(0, self.dtype, &self.device),
            )?;
            self.frozen = false;
        }
        Ok(())
    }

    /// The named variables an optimiser should update: none when frozen, otherwise every
    /// parameter except the BatchNorm running statistics, sorted by name.
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        if self.frozen {
            Vec::new()
        } else {
            self.params.trainable_vars()
        }
    }

    /// The `train` flag the module actually runs with: `false` when frozen.
    pub fn effective_train(&self, train: bool) -> bool {
        train && !self.frozen
    }

    /// Writes the weights and running statistics to a safetensors file.
    ///
    /// # Errors
    /// As [`ParamStore::save`].
    pub fn save_weights(&self, path: &Path) -> Result<()> {
        self.params.save(path)
    }

    /// Overwrites the weights and running statistics from a safetensors file written for the same
    /// config.
    ///
    /// # Errors
    /// As [`ParamStore::load`].
    pub fn load_weights(&self, path: &Path) -> Result<()> {
        self.params.load(path)
    }
}

impl<C: NetworkConfig> Network<C>
where
    C::Module: ModuleT,
{
    /// Runs the module on `x` (train mode only if asked and not frozen).
    ///
    /// # Errors
    /// A candle error from the forward pass.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.module.forward_t(x, self.effective_train(train))?)
    }
}

impl<C: NetworkConfig> Encoder for Network<C>
where
    C::Module: Encoder,
{
    fn encode(&self, images: &Tensor, train: bool) -> Result<Tensor> {
        self.module.encode(images, self.effective_train(train))
    }

    fn output_dim(&self) -> usize {
        self.module.output_dim()
    }

    fn input_channels(&self) -> usize {
        self.module.input_channels()
    }
}

impl<C: NetworkConfig> ImageDecoder for Network<C>
where
    C::Module: ImageDecoder,
{
    fn decode(&self, params: &Tensor, train: bool) -> Result<Tensor> {
        self.module.decode(params, self.effective_train(train))
    }

    fn input_dim(&self) -> usize {
        self.module.input_dim()
    }

    fn output_shape(&self) -> ImageShape {
        self.module.output_shape()
    }
}
