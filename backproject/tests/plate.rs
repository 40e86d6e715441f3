//! A tilted flat plate: the depth image recovers the plane.

use backproject::{AxisRange, DynamicRange, RangeCompressed, VoxelGrid, image_products};
use nalgebra::Point3;
use num_complex::Complex64;
use radar_sim::FrequencySweep;

use crate::common::{Scatterer, TestArray, point_signal};

#[test]
fn the_depth_image_recovers_a_tilted_plate() {
    // The plane z = z0 + a·x + b·y, tilted by 8° about y and −5° about x: small enough that
    // the specular return of every imaged point falls on the 14 cm aperture (the normal
    // through a point at ±30 mm meets the array plane within ±70 mm).
    let (z0, a, b) = (0.25, 8f64.to_radians().tan(), (-5f64).to_radians().tan());
    let plane = |x: f64, y: f64| z0 + a * x + b * y;
    // The plate as a sheet of equal scatterers every 1.5 mm (finer than λ/2, so it reflects
    // like a continuous surface), ±30 mm across.
    let pitch = 0.0015;
    let mut plate = Vec::new();
    for i in -20..=20 {
        for j in -20..=20 {
            let (x, y) = (i as f64 * pitch, j as f64 * pitch);
            plate.push(Scatterer {
                position: Point3::new(x, y, plane(x, y)),
                amplitude: Complex64::new(1.0, 0.0),
            });
        }
    }
    let array = TestArray::qar50();
    // 32 steps keep the full 10 GHz band (the depth resolution) with an unambiguous range of
    // 0.47 m, beyond the grid.
    let sweep = FrequencySweep::new(72e9, 82e9, 32).unwrap();
    let cube = point_signal(&array, &sweep, &plate);
    // The default grid's spacing, over the plate's interior.
    let grid = VoxelGrid::new(
        AxisRange::new(-0.024, 0.024, 0.004),
        AxisRange::new(-0.024, 0.024, 0.004),
        AxisRange::new(0.22, 0.28, 0.0025),
    )
    .unwrap();
    let products =
        image_products(&array, &sweep, &cube, &grid, &RangeCompressed::default()).unwrap();
    let range = DynamicRange::new(20.0).unwrap();
    let depth = products.depth_image(range);
    let (rows, cols) = grid.image_shape();
    let mut squared = Vec::new();
    for row in 0..rows {
        for col in 0..cols {
            if depth.valid()[[row, col]] {
                let (x, y) = grid.pixel_position(row, col);
                let z = products.depth_m().depth_m()[[row, col]] as f64;
                squared.push((z - plane(x, y)).powi(2));
            }
        }
    }
    let rms = (squared.iter().sum::<f64>() / squared.len() as f64).sqrt();
    eprintln!(
        "tilted plate: {} of {} pixels valid at 20 dB, depth RMS error {:.3} mm",
        squared.len(),
        rows * cols,
        rms * 1e3
    );
    assert!(
        squared.len() * 10 >= rows * cols * 9,
        "only {} valid pixels",
        squared.len()
    );
    assert!(rms < 0.001, "RMS depth error {rms} m");
}
