//! `facenet` benchmarks: training throughput (images per second) and batch-1 latency of every
//! preset's face encoder and decoder on 64 × 64 two-channel images, the convolution backward
//! of the `cpu` encoder with candle's kernel against the im2col custom op, and the graph
//! products of the mesh encoder (fused CPU op against gather / scatter).
//!
//! `cargo bench -p radar-face-benches -- facenet`

use std::hint::black_box;

use candle_core::{DType, Device, Tensor};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use facenet::{
    Adam, AdamConfig, BranchedEncoderConfig, ConvKernel, DecoderConfig, Encoder, ImageDecoder,
    ImageShape, LinearSchedule, Network, NetworkSize, OutputGroups,
};

/// Image side in pixels.
const SIZE: usize = 64;
/// Amplitude and depth.
const CHANNELS: usize = 2;
/// The paper's parameter groups: 10 shape, 7 expression, 3 + 3 pose, material, antenna size and
/// dynamic range.
const GROUPS: OutputGroups = OutputGroups {
    shape: 10,
    expression: 7,
    other: 9,
};
const PARAMS: usize = 26;

/// Training batch: the paper's 50 does not fit the paper networks' step time on 2 cores.
fn train_batch(preset: NetworkSize) -> usize {
    match preset {
        NetworkSize::Paper => 8,
        _ => 32,
    }
}

fn tensor(dims: &[usize], seed: usize) -> Tensor {
    let n: usize = dims.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|i| (((i + seed) * 7919 % 1009) as f32 / 1009.0) - 0.5)
        .collect();
    Tensor::from_vec(values, dims, &Device::Cpu).expect("benchmark tensor")
}

fn encoder(config: BranchedEncoderConfig) -> Network<BranchedEncoderConfig> {
    Network::new(config, 1, DType::F32, &Device::Cpu).expect("encoder")
}

fn decoder(config: DecoderConfig) -> Network<DecoderConfig> {
    Network::new(config, 2, DType::F32, &Device::Cpu).expect("decoder")
}

fn adam<C: facenet::NetworkConfig>(net: &Network<C>) -> Adam {
    Adam::new(
        net.trainable_vars(),
        AdamConfig::new(LinearSchedule::constant(1e-3)),
    )
    .expect("optimiser")
}

fn encoder_step(net: &Network<BranchedEncoderConfig>, opt: &mut Adam, x: &Tensor, y: &Tensor) {
    let loss = (net.encode(x, true).expect("encode") - y)
        .and_then(|d| d.sqr())
        .and_then(|d| d.mean_all())
        .expect("loss");
    opt.backward_step(&loss).expect("step");
}

fn decoder_step(net: &Network<DecoderConfig>, opt: &mut Adam, p: &Tensor, y: &Tensor) {
    let loss = (net.decode(p, true).expect("decode") - y)
        .and_then(|d| d.sqr())
        .and_then(|d| d.mean_all())
        .expect("loss");
    opt.backward_step(&loss).expect("step");
}

fn presets(c: &mut Criterion) {
    let output = ImageShape::new(CHANNELS, SIZE, SIZE);
    for preset in NetworkSize::ALL {
        let batch = train_batch(preset);
        let images = tensor(&[batch, CHANNELS, SIZE, SIZE], 1);
        let params = tensor(&[batch, PARAMS], 2);
        let image1 = images.narrow(0, 0, 1).expect("narrow");
        let params1 = params.narrow(0, 0, 1).expect("narrow");

        let mut group = c.benchmark_group("facenet/train");
        group.sample_size(10);
        group.throughput(Throughput::Elements(batch as u64));
        let enc = encoder(preset.face_encoder(CHANNELS, GROUPS));
        let mut enc_opt = adam(&enc);
        group.bench_function(BenchmarkId::new("encoder", preset), |b| {
            b.iter(|| encoder_step(&enc, &mut enc_opt, &images, &params))
        });
        let dec = decoder(preset.decoder(PARAMS, output));
        let mut dec_opt = adam(&dec);
        group.bench_function(BenchmarkId::new("decoder", preset), |b| {
            b.iter(|| decoder_step(&dec, &mut dec_opt, &params, &images))
        });
        group.finish();

        let mut group = c.benchmark_group("facenet/latency_batch1");
        if preset == NetworkSize::Paper {
            group.sample_size(20);
        }
        group.bench_function(BenchmarkId::new("encoder", preset), |b| {
            b.iter(|| black_box(enc.encode(&image1, false).expect("encode")))
        });
        group.bench_function(BenchmarkId::new("decoder", preset), |b| {
            b.iter(|| black_box(dec.decode(&params1, false).expect("decode")))
        });
        group.finish();
    }
}

/// Forward alone and forward + backward of the `cpu` face encoder at batch 32, with each
/// convolution kernel: backward ≫ forward with candle's kernel is what the im2col op fixes.
fn conv_kernels(c: &mut Criterion) {
    let batch = 32;
    let images = tensor(&[batch, CHANNELS, SIZE, SIZE], 3);
    let mut group = c.benchmark_group("facenet/cpu_encoder_b32");
    group.sample_size(10);
    group.throughput(Throughput::Elements(batch as u64));
    for (name, kernel) in [
        ("candle", ConvKernel::Candle),
        ("im2col", ConvKernel::Im2col),
    ] {
        let net = encoder(
            NetworkSize::Cpu
                .face_encoder(CHANNELS, GROUPS)
                .with_conv_kernel(kernel),
        );
        group.bench_function(BenchmarkId::new("forward", name), |b| {
            b.iter(|| black_box(net.encode(&images, true).expect("encode")))
        });
        group.bench_function(BenchmarkId::new("forward_backward", name), |b| {
            b.iter(|| {
                let loss = net
                    .encode(&images, true)
                    .and_then(|y| Ok(y.sqr()?.mean_all()?))
                    .expect("loss");
                black_box(loss.backward().expect("backward"))
            })
        });
    }
    group.finish();
}

/// The scaled Laplacians of the built-in face's two finest pyramid levels (the mesh encoder's
/// default: two matchings per level) applied to node-major features of 64 meshes × 16 channels,
/// forward and backward, by the fused CPU op and by candle's gather and scatter.
fn graph_products(c: &mut Criterion) {
    let model = morphable::builtin::builtin();
    let defaults = abs_fit::train::MeshEncoderConfig::new(16);
    let pyramid = abs_fit::train::mesh_pyramid(
        &model,
        defaults.channels.len(),
        defaults.matchings_per_level,
    )
    .expect("the built-in pyramid");
    let operators = pyramid.operators(&Device::Cpu).expect("operators");
    let features = 64 * 16;
    let mut group = c.benchmark_group("facenet/graph_product");
    group.sample_size(20);
    for (level, laplacian) in operators.laplacians.iter().take(2).enumerate() {
        let x = candle_core::Var::from_tensor(&tensor(&[laplacian.cols(), features], level))
            .expect("features");
        for (name, fused) in [("fused", true), ("gather_scatter", false)] {
            let id = BenchmarkId::new(
                format!("forward_backward_{name}"),
                format!("level{level}_{}nodes", laplacian.rows()),
            );
            group.bench_function(id, |b| {
                b.iter(|| {
                    let y = if fused {
                        laplacian.apply(&x)
                    } else {
                        laplacian.apply_gather_scatter(&x)
                    }
                    .expect("product");
                    let loss = y.sum_all().expect("sum");
                    black_box(loss.backward().expect("backward"))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, conv_kernels, presets, graph_products);
