//! `backproject` benchmarks: the three back-projection methods on the QAR50 array with its
//! 128-step sweep, and the image products of a default-grid volume.
//!
//! `cargo bench -p radar-face-benches -- backproject`. Throughput is in pair-voxel updates
//! (N_t·N_r·N_v per image): the target is the range-compressed method onto the default
//! 64 × 64 × 64 grid in ≤ 1.0 s, i.e. ≥ 2.3·10⁹ updates/s on 2 cores.

use std::time::Duration;

use backproject::{
    AxisRange, BackProjector, Direct, ImageProducts, RangeCompressed, Separable, VoxelGrid,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use nalgebra::Point3;
use ndarray::Array3;
use num_complex::{Complex32, Complex64};
use radar_sim::{ArrayGeometry, FrequencySweep, Qar50, SPEED_OF_LIGHT, SignalCube};

/// Three point targets in front of the array: s(t, r, f) = Σ exp(−j2πf(d_t + d_r)/c).
fn signal(array: &dyn ArrayGeometry, sweep: &FrequencySweep) -> SignalCube {
    let targets = [
        Point3::new(0.0, 0.0, 0.25),
        Point3::new(0.03, -0.02, 0.27),
        Point3::new(-0.05, 0.04, 0.30),
    ];
    let (tx, rx) = (array.tx(), array.rx());
    SignalCube::new(Array3::from_shape_fn(
        (tx.len(), rx.len(), sweep.steps()),
        |(t, r, n)| {
            let s: Complex64 = targets
                .iter()
                .map(|p| {
                    let path = (p - tx[t]).norm() + (p - rx[r]).norm();
                    let turns = sweep.frequency(n) * path / SPEED_OF_LIGHT;
                    Complex64::from_polar(1.0, -std::f64::consts::TAU * turns.fract())
                })
                .sum();
            Complex32::new(s.re as f32, s.im as f32)
        },
    ))
}

/// `n` × `n` × `n` voxels at the default spacing around (0, 0, 0.25) m.
fn small_grid(n: usize) -> VoxelGrid {
    VoxelGrid::new(
        AxisRange::centred(0.0, 0.004, n),
        AxisRange::centred(0.0, 0.004, n),
        AxisRange::centred(0.25, 0.0025, n),
    )
    .expect("a valid grid")
}

fn back_projection(c: &mut Criterion) {
    let array = Qar50::new();
    let sweep = FrequencySweep::qar50();
    let cube = signal(&array, &sweep);
    let pairs = (array.tx().len() * array.rx().len()) as u64;
    let cases: [(&dyn BackProjector, &str, VoxelGrid); 5] = [
        (
            &RangeCompressed::default(),
            "qar50_64x64x64",
            VoxelGrid::default_face(),
        ),
        (
            &RangeCompressed::default(),
            "qar50_16x16x16",
            small_grid(16),
        ),
        (&Separable::default(), "qar50_16x16x16", small_grid(16)),
        (&Direct, "qar50_4x4x4", small_grid(4)),
        (&RangeCompressed::default(), "qar50_4x4x4", small_grid(4)),
    ];
    let mut group = c.benchmark_group("backproject");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(12));
    for (method, label, grid) in cases {
        group.throughput(Throughput::Elements(pairs * grid.n_voxels() as u64));
        group.bench_function(BenchmarkId::new(method.name(), label), |b| {
            b.iter(|| {
                method
                    .back_project(&array, &sweep, &cube, &grid)
                    .expect("back-projection")
            })
        });
    }
    group.finish();
}

fn images(c: &mut Criterion) {
    let grid = VoxelGrid::default_face();
    let volume = backproject::Volume::new(
        grid,
        Array3::from_shape_fn(grid.shape(), |(i, j, k)| {
            Complex32::new(((i * 7 + j * 3 + k) as f32 * 0.01).sin(), 0.1)
        }),
    )
    .expect("a volume on its grid");
    c.bench_function("backproject/image_products/64x64x64", |b| {
        b.iter(|| ImageProducts::from_volume(&volume).expect("products"))
    });
}

criterion_group!(benches, back_projection, images);
