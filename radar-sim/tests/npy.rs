//! `.npy` files against the NumPy format specification (version 1.0–3.0).

use ndarray::{Array, Array0, Array1, Array2, Array3, ArrayD, IxDyn, ShapeBuilder, array};
use num_complex::Complex32;
use proptest::prelude::*;
use radar_sim::RadarError;
use radar_sim::npy::{from_npy_bytes, read_npy, to_npy_bytes, write_npy};

/// A file as the spec describes it: magic, version, little-endian header length, header.
fn hand_made(major: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([major, 0]);
    if major == 1 {
        out.extend((header.len() as u16).to_le_bytes());
    } else {
        out.extend((header.len() as u32).to_le_bytes());
    }
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

#[test]
fn the_header_follows_the_format_specification() {
    let cube = Array3::<Complex32>::zeros((2, 3, 4));
    let bytes = to_npy_bytes(&cube);
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    assert_eq!(&bytes[6..8], &[1, 0]);
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let data_start = 10 + header_len;
    // The data starts on a 64-byte boundary; the header ends with a newline, padded with spaces.
    assert_eq!(data_start % 64, 0);
    assert_eq!(bytes[data_start - 1], b'\n');
    let header = std::str::from_utf8(&bytes[10..data_start]).unwrap();
    assert_eq!(
        header.trim_end(),
        "{'descr': '<c8', 'fortran_order': False, 'shape': (2, 3, 4), }"
    );
    assert!(header.trim_end_matches('\n').ends_with([' ', '}']));
    assert_eq!(bytes.len(), data_start + 2 * 3 * 4 * 8);
}

#[test]
fn dtypes_and_shapes_are_spelled_like_numpy() {
    let header = |bytes: Vec<u8>| {
        let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        String::from_utf8(bytes[10..10 + len].to_vec())
            .unwrap()
            .trim_end()
            .to_string()
    };
    assert!(header(to_npy_bytes(&Array1::<f32>::zeros(5))).contains("'descr': '<f4'"));
    assert!(header(to_npy_bytes(&Array1::<f32>::zeros(5))).contains("'shape': (5,)"));
    assert!(header(to_npy_bytes(&Array0::<f64>::zeros(()))).contains("'shape': ()"));
    assert!(header(to_npy_bytes(&Array1::<u8>::zeros(1))).contains("'descr': '|u1'"));
    assert!(header(to_npy_bytes(&Array1::<i32>::zeros(1))).contains("'descr': '<i4'"));
}

#[test]
fn data_is_little_endian_in_c_order() {
    // A transposed view is written in its logical (C) order.
    let a = array![[1.0f32, 2.0], [3.0, 4.0]];
    let bytes = to_npy_bytes(&a.t());
    let data = &bytes[bytes.len() - 16..];
    let values: Vec<f32> = data
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(values, [1.0, 3.0, 2.0, 4.0]);
    let z = array![Complex32::new(1.5, -2.0)];
    let bytes = to_npy_bytes(&z);
    assert_eq!(
        &bytes[bytes.len() - 8..bytes.len() - 4],
        &1.5f32.to_le_bytes()
    );
    assert_eq!(&bytes[bytes.len() - 4..], &(-2.0f32).to_le_bytes());
}

#[test]
fn arrays_round_trip_through_files() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let f = Array3::from_shape_fn((3, 4, 5), |(i, j, k)| (i * 100 + j * 10 + k) as f32 - 7.5);
    write_npy(dir.join("f.npy"), &f).unwrap();
    assert_eq!(read_npy::<f32, _>(dir.join("f.npy")).unwrap(), f);
    let c = Array2::from_shape_fn((4, 3), |(i, j)| Complex32::new(i as f32, -(j as f32)));
    write_npy(dir.join("c.npy"), &c).unwrap();
    assert_eq!(read_npy::<Complex32, _>(dir.join("c.npy")).unwrap(), c);
    let u = Array1::from_vec(vec![0u8, 7, 255]);
    write_npy(dir.join("u.npy"), &u).unwrap();
    assert_eq!(read_npy::<u8, _>(dir.join("u.npy")).unwrap(), u);
    let i = Array1::from_vec(vec![i32::MIN, -1, 0, i32::MAX]);
    write_npy(dir.join("i.npy"), &i).unwrap();
    let any: ArrayD<i32> = read_npy(dir.join("i.npy")).unwrap();
    assert_eq!(any.shape(), &[4]);
    let scalar = Array0::from_elem((), 2.5f64);
    write_npy(dir.join("s.npy"), &scalar).unwrap();
    assert_eq!(read_npy::<f64, _>(dir.join("s.npy")).unwrap(), scalar);
    // Writing over a file replaces it and leaves no temporary file behind.
    write_npy(dir.join("f.npy"), &f.mapv(|v| v * 2.0)).unwrap();
    assert_eq!(
        read_npy::<f32, ndarray::Ix3>(dir.join("f.npy")).unwrap()[[1, 1, 1]],
        2.0 * f[[1, 1, 1]]
    );
    let names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 5, "{names:?}");
}

#[test]
fn fortran_order_big_endian_and_version_2_files_are_read() {
    // Fortran order: the data of [[1, 2, 3], [4, 5, 6]] is 1 4 2 5 3 6.
    let data: Vec<u8> = [1.0f32, 4.0, 2.0, 5.0, 3.0, 6.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let f = hand_made(
        1,
        "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }\n",
        &data,
    );
    let a: Array2<f32> = from_npy_bytes(&f).unwrap();
    assert_eq!(a, array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    assert!(a.is_standard_layout());
    // Big-endian complex: each part swapped on its own.
    let data: Vec<u8> = [1.0f32, -1.0]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let b = hand_made(
        1,
        "{'descr': '>c8', 'fortran_order': False, 'shape': (1,), }\n",
        &data,
    );
    assert_eq!(
        from_npy_bytes::<Complex32, _>(&b).unwrap(),
        array![Complex32::new(1.0, -1.0)]
    );
    // Version 2.0 (4-byte header length), keys in another order, double quotes.
    let data: Vec<u8> = 42i32.to_le_bytes().to_vec();
    let v2 = hand_made(
        2,
        "{\"shape\": (1, 1), \"fortran_order\": False, \"descr\": \"<i4\"}\n",
        &data,
    );
    assert_eq!(from_npy_bytes::<i32, _>(&v2).unwrap(), array![[42]]);
}

#[test]
fn bad_files_are_typed_errors_that_name_the_file() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let path = dir.join("c.npy");
    write_npy(&path, &Array1::<Complex32>::zeros(3)).unwrap();
    let expect_file_error = |result: Result<(), RadarError>, what: &str| match result {
        Err(RadarError::File { path: p, reason }) => {
            assert_eq!(p, path, "{what}");
            reason
        }
        other => panic!("{what}: expected a file error, got {other:?}"),
    };
    let reason = expect_file_error(read_npy::<f32, ndarray::Ix1>(&path).map(|_| ()), "dtype");
    assert!(reason.contains("<c8") && reason.contains("<f4"), "{reason}");
    let reason = expect_file_error(
        read_npy::<Complex32, ndarray::Ix2>(&path).map(|_| ()),
        "ndim",
    );
    assert!(reason.contains("dimensions"), "{reason}");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let reason = expect_file_error(read_npy::<Complex32, IxDyn>(&path).map(|_| ()), "truncated");
    assert!(reason.contains("data bytes"), "{reason}");
    std::fs::write(&path, b"PK\x03\x04 not npy").unwrap();
    expect_file_error(read_npy::<Complex32, IxDyn>(&path).map(|_| ()), "magic");
    assert!(matches!(
        read_npy::<f32, IxDyn>(dir.join("missing.npy")),
        Err(RadarError::Io { .. })
    ));
    for header in [
        "{'descr': '<f4', 'shape': (1,), }\n",
        "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,), }\n",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (x,), }\n",
        "{'descr': '?f4', 'fortran_order': False, 'shape': (1,), }\n",
    ] {
        let bytes = hand_made(1, header, &[0; 4]);
        assert!(from_npy_bytes::<f32, IxDyn>(&bytes).is_err(), "{header}");
    }
}

proptest! {
    #[test]
    fn any_shape_round_trips(shape in proptest::collection::vec(0usize..5, 0..5), seed in any::<u32>()) {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|i| (i as f32 + seed as f32).sin()).collect();
        let a = Array::from_shape_vec(IxDyn(&shape), values).unwrap();
        let back: ArrayD<f32> = from_npy_bytes(&to_npy_bytes(&a)).unwrap();
        prop_assert_eq!(&back, &a);
        // And a Fortran-layout array writes in logical order too.
        if shape.len() == 2 {
            let f = Array::from_shape_vec((shape[0], shape[1]).f(), a.iter().copied().collect()).unwrap();
            let back: Array2<f32> = from_npy_bytes(&to_npy_bytes(&f)).unwrap();
            prop_assert_eq!(back, f);
        }
    }
}
