//! NumPy `.npy` files (format versions 1.0, 2.0 and 3.0), for arrays of any dimension.
//!
//! Written files are format 1.0 (2.0 when the header would not fit), little-endian, C order,
//! with the header padded by spaces and ended by a newline so that the data starts at a
//! multiple of 64 bytes, as the format specification asks. Writes are atomic: a temporary file
//! in the same directory, renamed over the target when complete.
//!
//! Reading accepts C or Fortran order, little- or big-endian data, and versions 1.0–3.0, and
//! returns a standard-layout (C order) array.
//!
//! ```
//! use ndarray::{array, Array2};
//! use radar_sim::npy::{read_npy, write_npy};
//!
//! let dir = std::env::temp_dir().join(format!("radar-sim-npy-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("a.npy");
//! let a = array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]];
//! write_npy(&path, &a)?;
//! let b: Array2<f32> = read_npy(&path)?;
//! assert_eq!(a, b);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), radar_sim::RadarError>(())
//! ```

use std::io::Write;
use std::path::Path;

use ndarray::{Array, ArrayBase, Data, Dimension, IxDyn, ShapeBuilder};
use num_complex::{Complex32, Complex64};

use crate::{RadarError, Result};

/// The magic string that opens every `.npy` file.
const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// The data of a written file starts at a multiple of this many bytes.
const ALIGNMENT: usize = 64;

/// An element type with a NumPy dtype.
pub trait NpyElement: Copy + Send + Sync + 'static {
    /// The dtype without its byte-order character, e.g. `f4`, `c8`, `u1`.
    const TYPE: &'static str;
    /// Size of one element (bytes).
    const SIZE: usize;
    /// Size of one scalar component (bytes): the unit of byte swapping (half of a complex).
    const COMPONENT: usize;
    /// Appends the element, little-endian.
    fn write_le(&self, out: &mut Vec<u8>);
    /// Reads an element from exactly [`Self::SIZE`] little-endian bytes.
    fn read_le(bytes: &[u8]) -> Self;
}

macro_rules! npy_scalar {
    ($t:ty, $code:literal) => {
        impl NpyElement for $t {
            const TYPE: &'static str = $code;
            const SIZE: usize = std::mem::size_of::<$t>();
            const COMPONENT: usize = std::mem::size_of::<$t>();
            fn write_le(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn read_le(bytes: &[u8]) -> Self {
                let mut b = [0u8; std::mem::size_of::<$t>()];
                b.copy_from_slice(bytes);
                <$t>::from_le_bytes(b)
            }
        }
    };
}

npy_scalar!(u8, "u1");
npy_scalar!(i8, "i1");
npy_scalar!(u16, "u2");
npy_scalar!(i16, "i2");
npy_scalar!(u32, "u4");
npy_scalar!(i32, "i4");
npy_scalar!(u64, "u8");
npy_scalar!(i64, "i8");
npy_scalar!(f32, "f4");
npy_scalar!(f64, "f8");

macro_rules! npy_complex {
    ($t:ty, $part:ty, $code:literal) => {
        impl NpyElement for $t {
            const TYPE: &'static str = $code;
            const SIZE: usize = 2 * std::mem::size_of::<$part>();
            const COMPONENT: usize = std::mem::size_of::<$part>();
            fn write_le(&self, out: &mut Vec<u8>) {
                self.re.write_le(out);
                self.im.write_le(out);
            }
            fn read_le(bytes: &[u8]) -> Self {
                let half = Self::COMPONENT;
                <$t>::new(
                    <$part>::read_le(&bytes[..half]),
                    <$part>::read_le(&bytes[half..]),
                )
            }
        }
    };
}

npy_complex!(Complex32, f32, "c8");
npy_complex!(Complex64, f64, "c16");

/// The full dtype string written for `T`: `|` for one-byte types, `<` otherwise.
fn descr<T: NpyElement>() -> String {
    let order = if T::SIZE == 1 { '|' } else { '<' };
    format!("{order}{}", T::TYPE)
}

/// The bytes of a `.npy` file holding `array` (C order, little-endian).
pub fn to_npy_bytes<T, S, D>(array: &ArrayBase<S, D>) -> Vec<u8>
where
    T: NpyElement,
    S: Data<Elem = T>,
    D: Dimension,
{
    let shape = match array.shape() {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        descr::<T>()
    );
    // Version 1.0 has a 2-byte header length; 2.0 a 4-byte one.
    let (version, len_bytes) = if dict.len() + 1 + 10 + ALIGNMENT <= u16::MAX as usize {
        (1u8, 2)
    } else {
        (2u8, 4)
    };
    let preamble = MAGIC.len() + 2 + len_bytes;
    let header_len = (preamble + dict.len() + 1).div_ceil(ALIGNMENT) * ALIGNMENT - preamble;
    let mut out = Vec::with_capacity(preamble + header_len + array.len() * T::SIZE);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(header_len as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header_len as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(preamble + header_len - 1, b' ');
    out.push(b'\n');
    // `iter` walks in logical (C) order whatever the memory layout.
    for x in array.iter() {
        x.write_le(&mut out);
    }
    out
}

/// Writes `array` to `path` as a `.npy` file, atomically (temporary file, then rename).
pub fn write_npy<T, S, D>(path: impl AsRef<Path>, array: &ArrayBase<S, D>) -> Result<()>
where
    T: NpyElement,
    S: Data<Elem = T>,
    D: Dimension,
{
    write_atomically(path.as_ref(), &to_npy_bytes(array))
}

/// Writes `bytes` to a temporary file beside `path` (the `tempfile` crate's, removed on
/// failure), syncs it, renames it over `path` and syncs the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| RadarError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .suffix(".npy.tmp")
        .tempfile_in(dir)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.as_file().sync_all().map_err(io)?;
    file.persist(path).map_err(|e| io(e.error))?;
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Reads a `.npy` file of element type `T` and dimension `D` (use [`IxDyn`](type@IxDyn) for any).
pub fn read_npy<T, D>(path: impl AsRef<Path>) -> Result<Array<T, D>>
where
    T: NpyElement,
    D: Dimension,
{
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| RadarError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    from_npy_bytes(&bytes).map_err(|reason| RadarError::file(path, reason))
}

/// Parses the bytes of a `.npy` file; the error says what is wrong with them.
pub fn from_npy_bytes<T, D>(bytes: &[u8]) -> std::result::Result<Array<T, D>, String>
where
    T: NpyElement,
    D: Dimension,
{
    let header = Header::parse(bytes)?;
    let (order, code) = header.descr.split_at(1.min(header.descr.len()));
    let big_endian = match order {
        "<" | "=" => false,
        ">" => true,
        "|" if T::SIZE == 1 => false,
        _ => {
            return Err(format!(
                "dtype '{}' has an unknown byte order (expected '{}')",
                header.descr,
                descr::<T>()
            ));
        }
    };
    if code != T::TYPE {
        return Err(format!(
            "dtype '{}' does not match the requested '{}'",
            header.descr,
            descr::<T>()
        ));
    }
    if let Some(ndim) = D::NDIM
        && ndim != header.shape.len()
    {
        return Err(format!(
            "the array has {} dimensions {:?}, {ndim} were requested",
            header.shape.len(),
            header.shape
        ));
    }
    let count = (header.shape.iter())
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("shape {:?} overflows", header.shape))?;
    let data = &bytes[header.data_offset..];
    let needed = count
        .checked_mul(T::SIZE)
        .ok_or_else(|| format!("shape {:?} overflows", header.shape))?;
    if data.len() != needed {
        return Err(format!(
            "shape {:?} of '{}' needs {needed} data bytes, the file has {}",
            header.shape,
            header.descr,
            data.len()
        ));
    }
    let mut element = vec![0u8; T::SIZE];
    let values: Vec<T> = data
        .chunks_exact(T::SIZE)
        .map(|chunk| {
            if big_endian {
                for (dst, src) in element
                    .chunks_exact_mut(T::COMPONENT)
                    .zip(chunk.chunks_exact(T::COMPONENT))
                {
                    dst.copy_from_slice(src);
                    dst.reverse();
                }
                T::read_le(&element)
            } else {
                T::read_le(chunk)
            }
        })
        .collect();
    let shape = IxDyn(&header.shape);
    let array = if header.fortran_order {
        Array::from_shape_vec(shape.f(), values).map(|a| a.as_standard_layout().into_owned())
    } else {
        Array::from_shape_vec(shape, values)
    }
    .map_err(|e| format!("shape {:?}: {e}", header.shape))?;
    array
        .into_dimensionality::<D>()
        .map_err(|e| format!("shape {:?}: {e}", header.shape))
}

/// The parsed header of a `.npy` file.
#[derive(Debug)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
    data_offset: usize,
}

impl Header {
    fn parse(bytes: &[u8]) -> std::result::Result<Self, String> {
        if bytes.len() < 10 || &bytes[..6] != MAGIC {
            return Err("not a .npy file (no \\x93NUMPY magic string)".into());
        }
        let (major, minor) = (bytes[6], bytes[7]);
        let (len, start): (usize, usize) = match major {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            2 | 3 if bytes.len() >= 12 => (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            ),
            _ => return Err(format!("unsupported .npy format version {major}.{minor}")),
        };
        let end = start
            .checked_add(len)
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| format!("header of {len} bytes runs past the end of the file"))?;
        let text = std::str::from_utf8(&bytes[start..end])
            .map_err(|_| "the header is not text".to_string())?;
        let mut descr = None;
        let mut fortran_order = None;
        let mut shape = None;
        let mut parser = Literal::new(text);
        parser.expect('{')?;
        while !parser.eat('}') {
            let key = parser.string()?;
            parser.expect(':')?;
            match key.as_str() {
                "descr" => descr = Some(parser.string()?),
                "fortran_order" => fortran_order = Some(parser.boolean()?),
                "shape" => shape = Some(parser.tuple()?),
                other => return Err(format!("unexpected header key '{other}'")),
            }
            if !parser.eat(',') {
                parser.expect('}')?;
                break;
            }
        }
        let missing = |k: &str| format!("the header has no '{k}'");
        Ok(Self {
            descr: descr.ok_or_else(|| missing("descr"))?,
            fortran_order: fortran_order.ok_or_else(|| missing("fortran_order"))?,
            shape: shape.ok_or_else(|| missing("shape"))?,
            data_offset: end,
        })
    }
}

/// A reader of the small Python literal subset a `.npy` header uses.
struct Literal<'a> {
    rest: &'a str,
}

impl<'a> Literal<'a> {
    fn new(text: &'a str) -> Self {
        Self { rest: text }
    }

    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start();
    }

    /// Consumes `c` if it comes next.
    fn eat(&mut self, c: char) -> bool {
        self.skip_space();
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn expect(&mut self, c: char) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("header: expected '{c}' at \"{}\"", self.excerpt()))
        }
    }

    fn excerpt(&self) -> String {
        self.rest.chars().take(20).collect()
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        self.skip_space();
        let quote = match self.rest.chars().next() {
            Some(q @ ('\'' | '"')) => q,
            _ => {
                return Err(format!(
                    "header: expected a string at \"{}\"",
                    self.excerpt()
                ));
            }
        };
        let body = &self.rest[1..];
        let end = body
            .find(quote)
            .ok_or_else(|| "header: unterminated string".to_string())?;
        self.rest = &body[end + 1..];
        Ok(body[..end].to_string())
    }

    fn boolean(&mut self) -> std::result::Result<bool, String> {
        self.skip_space();
        for (word, value) in [("True", true), ("False", false)] {
            if let Some(rest) = self.rest.strip_prefix(word) {
                self.rest = rest;
                return Ok(value);
            }
        }
        Err(format!(
            "header: expected True or False at \"{}\"",
            self.excerpt()
        ))
    }

    fn tuple(&mut self) -> std::result::Result<Vec<usize>, String> {
        self.expect('(')?;
        let mut dims = Vec::new();
        while !self.eat(')') {
            self.skip_space();
            let digits = self.rest.len()
                - self
                    .rest
                    .trim_start_matches(|c: char| c.is_ascii_digit())
                    .len();
            let dim = self.rest[..digits]
                .parse()
                .map_err(|_| format!("header: expected a dimension at \"{}\"", self.excerpt()))?;
            self.rest = &self.rest[digits..];
            dims.push(dim);
            if !self.eat(',') {
                self.expect(')')?;
                break;
            }
        }
        Ok(dims)
    }
}
