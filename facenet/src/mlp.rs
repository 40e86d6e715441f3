//! A small fully connected network with smooth activations, for maps between short vectors
//! (e.g. a distilled surrogate of a frozen network restricted to a low-dimensional input).

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::config::{NetworkConfig, ValidConfig, Validate};
use crate::error::{FacenetError, Result};
use crate::layers::linear;

/// Configuration of an [`Mlp`]: `inputs` → `hidden[0]` → … → `outputs`, each hidden layer
/// linear then SiLU (smooth, so the map's gradients are smooth too), the output layer linear.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Length of an input row.
    pub inputs: usize,
    /// Width of each hidden layer, first to last (may be empty: one linear layer).
    pub hidden: Vec<usize>,
    /// Length of an output row.
    pub outputs: usize,
}

impl Validate for MlpConfig {
    fn validate(&self) -> Result<()> {
        let err = |field, reason: String| Err(FacenetError::config("MlpConfig", field, reason));
        if self.inputs == 0 || self.outputs == 0 {
            return err(
                "inputs",
                format!(
                    "inputs {} and outputs {}: both at least 1",
                    self.inputs, self.outputs
                ),
            );
        }
        if self.hidden.contains(&0) {
            return err(
                "hidden",
                format!("every hidden layer needs a width, got {:?}", self.hidden),
            );
        }
        Ok(())
    }
}

impl NetworkConfig for MlpConfig {
    type Module = Mlp;
    const KIND: &'static str = "mlp";

    fn build(config: &ValidConfig<Self>, vb: VarBuilder) -> Result<Mlp> {
        let mut layers = Vec::with_capacity(config.hidden.len() + 1);
        let mut width = config.inputs;
        for (k, &next) in config.hidden.iter().chain([&config.outputs]).enumerate() {
            layers.push(linear(vb.pp(format!("fc{k}")), width, next)?);
            width = next;
        }
        Ok(Mlp { layers })
    }
}

/// The network of an [`MlpConfig`]: rows (B, inputs) → rows (B, outputs).
#[derive(Debug, Clone)]
pub struct Mlp {
    layers: Vec<candle_nn::Linear>,
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let last = self.layers.len() - 1;
        let mut h = x.clone();
        for (k, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h)?;
            if k < last {
                h = candle_nn::ops::silu(&h)?;
            }
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};

    use super::*;
    use crate::Network;

    #[test]
    fn shapes_and_a_zero_width_is_refused() {
        let config = MlpConfig {
            inputs: 3,
            hidden: vec![8, 5],
            outputs: 2,
        };
        let net = Network::new(config.clone(), 7, DType::F32, &Device::Cpu).unwrap();
        let x = Tensor::zeros((4, 3), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(net.forward_t(&x, false).unwrap().dims(), &[4, 2]);
        assert_eq!(net.params().len(), 6);
        let bad = MlpConfig {
            hidden: vec![8, 0],
            ..config
        };
        assert!(bad.check().is_err());
    }
}
