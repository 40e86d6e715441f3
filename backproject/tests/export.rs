//! PNG and `.npy` export, read back.

use backproject::{AxisRange, ColourMap, DynamicRange, ImageProducts, Volume, VoxelGrid};
use image::DynamicImage;
use ndarray::{Array2, Array3};
use num_complex::Complex32;
use radar_sim::npy::read_npy;

/// A 3 × 4 × 5 volume whose columns peak at different depths and levels.
fn volume() -> Volume {
    let grid = VoxelGrid::new(
        AxisRange::from_count(0.0, 0.004, 3),
        AxisRange::from_count(0.0, 0.004, 4),
        AxisRange::from_count(0.2, 0.0025, 5),
    )
    .unwrap();
    let data = Array3::from_shape_fn(grid.shape(), |(i, j, k)| {
        let peak = (i + j) % 5;
        let level = 10f32.powf(-((i * 4 + j) as f32) * 2.5 / 20.0);
        Complex32::new(if k == peak { level } else { level * 0.1 }, 0.0)
    });
    Volume::new(grid, data).unwrap()
}

#[test]
fn amplitude_pngs_are_8_bit_and_depth_pngs_16_bit() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let products = ImageProducts::from_volume(&volume()).unwrap();
    let range = DynamicRange::new(20.0).unwrap();
    let amplitude = products.amplitude(range);
    let depth = products.depth_image(range);

    let path = dir.join("amplitude.png");
    amplitude.save_png(&path, ColourMap::Gray).unwrap();
    let DynamicImage::ImageLuma8(read) = image::open(&path).unwrap() else {
        panic!("not 8-bit grey")
    };
    assert_eq!(read.dimensions(), (3, 4));
    for ((row, col), &a) in amplitude.values().indexed_iter() {
        assert_eq!(
            read.get_pixel(col as u32, row as u32)[0],
            (a * 255.0).round() as u8
        );
    }

    let path = dir.join("depth.png");
    depth.save_png(&path, ColourMap::Gray).unwrap();
    let DynamicImage::ImageLuma16(read) = image::open(&path).unwrap() else {
        panic!("not 16-bit grey")
    };
    for ((row, col), &v) in depth.values().indexed_iter() {
        let pixel = read.get_pixel(col as u32, row as u32)[0];
        if depth.valid()[[row, col]] {
            assert_eq!(pixel, (v * 65535.0).round().max(1.0) as u16);
        } else {
            assert_eq!(pixel, 0);
        }
    }
    assert!(
        depth.valid().iter().any(|v| !v),
        "the fixture has invalid pixels"
    );

    for map in [ColourMap::Viridis, ColourMap::Turbo] {
        let path = dir.join(format!("depth-{map:?}.png"));
        depth.save_png(&path, map).unwrap();
        let DynamicImage::ImageRgb8(read) = image::open(&path).unwrap() else {
            panic!("not 8-bit RGB")
        };
        for ((row, col), &valid) in depth.valid().indexed_iter() {
            let pixel = read.get_pixel(col as u32, row as u32).0;
            assert_eq!(valid, pixel != [0, 0, 0], "{map:?} at ({row}, {col})");
        }
        amplitude
            .save_png(dir.join("amplitude-colour.png"), map)
            .unwrap();
    }
}

#[test]
fn colour_maps_span_their_published_ends() {
    // viridis runs from dark purple to yellow; Turbo from near black through green to red.
    let viridis = (ColourMap::Viridis.rgb(0.0), ColourMap::Viridis.rgb(1.0));
    assert_eq!(viridis.0, [0.267004, 0.004874, 0.329415]);
    assert_eq!(viridis.1, [0.993248, 0.906157, 0.143936]);
    let [low, middle, high] = [0.0, 0.5, 1.0].map(|x| ColourMap::Turbo.rgb(x));
    assert!(low.iter().all(|&c| c < 0.2), "{low:?}");
    assert!(middle[1] > middle[0] && middle[1] > middle[2], "{middle:?}");
    assert!(high[0] > high[1] && high[0] > high[2], "{high:?}");
    for x in [0.0, 0.25, 0.5, 0.75, 1.0, -3.0, 7.0, f32::NAN] {
        for map in [ColourMap::Gray, ColourMap::Viridis, ColourMap::Turbo] {
            assert!(map.rgb(x).iter().all(|c| (0.0..=1.0).contains(c)));
        }
    }
}

#[test]
fn volumes_and_images_round_trip_through_npy() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let volume = volume();
    let path = dir.join("volume.npy");
    volume.save_npy(&path).unwrap();
    let read: Array3<Complex32> = read_npy(&path).unwrap();
    assert_eq!(&read, volume.data());

    let products = ImageProducts::from_volume(&volume).unwrap();
    let range = DynamicRange::new(15.0).unwrap();
    let path = dir.join("level.npy");
    products.level_db().save_npy(&path).unwrap();
    let read: Array2<f32> = read_npy(&path).unwrap();
    assert_eq!(&read, products.level_db().db());
    let path = dir.join("depth.npy");
    products.depth_m().save_npy(&path).unwrap();
    let read: Array2<f32> = read_npy(&path).unwrap();
    assert_eq!(&read, products.depth_m().depth_m());
    let path = dir.join("amplitude.npy");
    products.amplitude(range).save_npy(&path).unwrap();
    let read: Array2<f32> = read_npy(&path).unwrap();
    assert_eq!(&read, products.amplitude(range).values());
    let path = dir.join("depth-image.npy");
    products.depth_image(range).save_npy(&path).unwrap();
    let read: Array2<f32> = read_npy(&path).unwrap();
    assert_eq!(&read, products.depth_image(range).values());
}

#[test]
fn an_unwritable_path_is_a_typed_error() {
    let products = ImageProducts::from_volume(&volume()).unwrap();
    let amplitude = products.amplitude(DynamicRange::new(20.0).unwrap());
    let scratch = tempfile::tempdir().unwrap();
    let missing = scratch.path().join("no-such-dir").join("a.png");
    let message = amplitude
        .save_png(&missing, ColourMap::Gray)
        .unwrap_err()
        .to_string();
    assert!(message.contains("a.png"), "{message}");
    assert!(volume().save_npy(missing.with_extension("npy")).is_err());
}
