//! Gradients: the im2col convolution against candle's own `conv2d`, and whole tiny networks
//! against central differences in f64.

use candle_core::{DType, Device, Module, Tensor, Var};
use facenet::{
    AlexNetConfig, BranchedEncoderConfig, Conv2d, ConvKernel, ConvSpec, DecoderConfig, ImageShape,
    KAIMING_NORMAL_FAN_OUT, Network, NetworkConfig, NetworkSize, OutputGroups, ParamStore,
    ResNetConfig,
};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::support::{max_abs_diff, uniform};

/// Gradients of `sum(conv(x) · r)` with respect to x and the weight, for one kernel.
fn conv_grads(
    kernel: ConvKernel,
    store: &ParamStore,
    spec: ConvSpec,
    x: &Var,
    r: &Tensor,
) -> (Tensor, Tensor, Tensor) {
    // Both kernels read the same weights: the second build finds them in the store.
    let vb = store.seeded_builder(7, DType::F64, &Device::Cpu);
    let conv = Conv2d::new(vb, spec, KAIMING_NORMAL_FAN_OUT, kernel).expect("conv");
    let y = conv.forward(x.as_tensor()).expect("forward");
    let loss = (&y * r).and_then(|t| t.sum_all()).expect("loss");
    let grads = loss.backward().expect("backward");
    let dx = grads.get(x.as_tensor()).expect("input gradient").clone();
    let dw = grads.get(conv.weight()).expect("weight gradient").clone();
    (y, dx, dw)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The custom op's forward and both gradients equal candle's `conv2d` and its autograd.
    #[test]
    fn im2col_convolution_matches_candle(
        batch in 1usize..3,
        c_in in 1usize..4,
        c_out in 1usize..4,
        kernel_size in prop::sample::select(vec![1usize, 3, 5, 7]),
        stride in 1usize..3,
        // Square inputs: candle's own conv2d backward takes the output padding of both axes from
        // the height and fails when height and width differ in parity (the im2col op does not).
        size in 7usize..13,
        bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut spec = ConvSpec::new(c_in, c_out, kernel_size, stride);
        if bias {
            spec = spec.with_bias();
        }
        let store = ParamStore::new();
        let (height, width) = (size, size);
        let x = Var::from_tensor(&uniform(&[batch, c_in, height, width], seed, DType::F64)).expect("var");
        let padding = kernel_size / 2;
        let out_h = (height + 2 * padding - kernel_size) / stride + 1;
        let out_w = (width + 2 * padding - kernel_size) / stride + 1;
        let r = uniform(&[batch, c_out, out_h, out_w], seed ^ 1, DType::F64);
        let (y_ref, dx_ref, dw_ref) = conv_grads(ConvKernel::Candle, &store, spec, &x, &r);
        let (y, dx, dw) = conv_grads(ConvKernel::Im2col, &store, spec, &x, &r);
        prop_assert!(max_abs_diff(&y, &y_ref) < 1e-12);
        prop_assert!(max_abs_diff(&dx, &dx_ref) < 1e-12);
        prop_assert!(max_abs_diff(&dw, &dw_ref) < 1e-12);
    }
}

/// Sets element `index` of `var` to `value`.
fn set_element(var: &Var, index: usize, value: f64) {
    let mut values = var
        .flatten_all()
        .and_then(|t| t.to_vec1::<f64>())
        .expect("values");
    values[index] = value;
    let tensor = Tensor::from_vec(values, var.shape(), &Device::Cpu).expect("tensor");
    var.set(&tensor).expect("set");
}

/// Compares the autograd gradient of `f = sum(net(x) · r)` with central differences for a few
/// random elements of every trainable tensor and of the input.
fn check_network<C: NetworkConfig>(
    config: C,
    input_dims: &[usize],
    forward: impl Fn(&Network<C>, &Tensor) -> facenet::Result<Tensor>,
    seed: u64,
) where
    C::Module: candle_core::ModuleT,
{
    let net = Network::new(config, seed, DType::F64, &Device::Cpu).expect("network");
    let x = Var::from_tensor(&uniform(input_dims, seed ^ 2, DType::F64)).expect("input");
    let y = forward(&net, x.as_tensor()).expect("forward");
    let r = uniform(y.dims(), seed ^ 3, DType::F64);
    let f = || -> f64 {
        let y = forward(&net, x.as_tensor()).expect("forward");
        (&y * &r)
            .and_then(|t| t.sum_all())
            .and_then(|t| t.to_scalar::<f64>())
            .expect("objective")
    };
    let loss = (&y * &r).and_then(|t| t.sum_all()).expect("objective");
    let grads = loss.backward().expect("backward");

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut checked: Vec<(String, Var)> = net.trainable_vars();
    checked.push(("input".into(), x.clone()));
    // Small enough that ReLU and max-pool kinks are rarely crossed, large enough for f64.
    let h = 1e-6;
    let (mut compared, mut at_kinks) = (0, 0);
    for (name, var) in checked {
        let grad = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"))
            .flatten_all()
            .and_then(|g| g.to_vec1::<f64>())
            .expect("gradient values");
        let mut matched = 0;
        while matched < 2 && at_kinks < 20 {
            let i = rng.random_range(0..var.elem_count());
            let original = var
                .flatten_all()
                .and_then(|t| t.to_vec1::<f64>())
                .expect("values")[i];
            let central = |step: f64| {
                set_element(&var, i, original + step);
                let up = f();
                set_element(&var, i, original - step);
                let down = f();
                set_element(&var, i, original);
                (up - down) / (2.0 * step)
            };
            let (numeric, finer) = (central(h), central(h / 4.0));
            let tolerance = 1e-6 * (1.0 + numeric.abs().max(grad[i].abs()));
            // Where halving the step twice changes the quotient, a kink lies within ±h: the
            // difference quotient means nothing there, so another element is drawn.
            if (numeric - finer).abs() > tolerance {
                at_kinks += 1;
                continue;
            }
            assert!(
                (numeric - grad[i]).abs() <= tolerance,
                "{name}[{i}]: autograd {} vs central difference {numeric}",
                grad[i]
            );
            matched += 1;
            compared += 1;
        }
    }
    assert!(
        at_kinks < 20,
        "{at_kinks} elements sat at kinks, {compared} compared"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3))]

    #[test]
    fn tiny_resnet_gradients_match_central_differences(seed in any::<u64>()) {
        let config: ResNetConfig = NetworkSize::Tiny.resnet(2, 3, facenet::Head::PAPER_TANH);
        check_network(config, &[3, 2, 32, 36], |net, x| net.forward_t(x, true), seed);
    }

    #[test]
    fn tiny_alexnet_gradients_match_central_differences(seed in any::<u64>()) {
        let config: AlexNetConfig = NetworkSize::Tiny.alexnet(1, 4);
        check_network(config, &[2, 1, 33, 32], |net, x| net.forward_t(x, true), seed);
    }

    #[test]
    fn tiny_decoder_gradients_match_central_differences(seed in any::<u64>()) {
        let config: DecoderConfig = NetworkSize::Tiny.decoder(3, ImageShape::new(2, 35, 32));
        check_network(config, &[3, 3], |net, p| net.forward_t(p, true), seed);
    }
}

#[test]
fn tiny_face_encoder_gradients_match_central_differences() {
    let config: BranchedEncoderConfig = NetworkSize::Tiny.face_encoder(
        1,
        OutputGroups {
            shape: 2,
            expression: 2,
            other: 2,
        },
    );
    check_network(config, &[3, 1, 32, 32], |net, x| net.forward_t(x, true), 11);
}
