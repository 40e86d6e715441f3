//! Mesh export: binary PLY (optionally with per-vertex colours) and Wavefront OBJ.
//! Every write is atomic: the file appears whole under its name or not at all.

use std::io::Write;
use std::path::Path;

use crate::{Mesh, MorphableError, Result};

/// Writes `bytes` to `path` atomically: see [`atomic_write_with`].
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_with(path, |file| {
        file.write_all(bytes)
            .map_err(|e| MorphableError::io(path, e))
    })
}

/// Writes `path` atomically with `write`: into a fresh temporary file beside it (the
/// `tempfile` crate's, removed if anything fails), synced, renamed over `path`, and the
/// directory synced so that the rename survives a crash. `path` holds its old content or the
/// new one, never a part.
pub fn atomic_write_with<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut std::fs::File) -> Result<()>,
{
    let io = |e| MorphableError::io(path, e);
    let name = path
        .file_name()
        .ok_or_else(|| io(std::io::Error::other("the path names no file")))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.to_string_lossy()))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io)?;
    write(tmp.as_file_mut())?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    // Persist the rename itself where directories can be synced (Unix); elsewhere opening
    // the directory fails and there is nothing more to do.
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// A colour per vertex from a scalar per vertex (such as the per-vertex error in mm): values
/// map linearly from `range.0` (blue) through green and yellow to `range.1` (red), clamped.
/// A non-finite value is grey. Pass `None` to use the values' own min and max.
pub fn scalar_colours(values: &[f64], range: Option<(f64, f64)>) -> Vec<[u8; 3]> {
    let (lo, hi) = range.unwrap_or_else(|| {
        values
            .iter()
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            })
    });
    let span = if hi > lo { hi - lo } else { 1.0 };
    values
        .iter()
        .map(|&v| {
            if v.is_finite() {
                heat_colour(((v - lo) / span).clamp(0.0, 1.0))
            } else {
                [128, 128, 128]
            }
        })
        .collect()
}

/// The colour of u ∈ [0, 1] on a blue–cyan–green–yellow–red ramp.
pub fn heat_colour(u: f64) -> [u8; 3] {
    const STOPS: [[f64; 3]; 5] = [
        [0.0, 0.0, 1.0],
        [0.0, 1.0, 1.0],
        [0.0, 1.0, 0.0],
        [1.0, 1.0, 0.0],
        [1.0, 0.0, 0.0],
    ];
    let x = u.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let c = |k: usize| ((STOPS[i][k] * (1.0 - f) + STOPS[i + 1][k] * f) * 255.0).round() as u8;
    [c(0), c(1), c(2)]
}

/// The PLY file of a mesh: binary little-endian, float32 vertices, optional uchar RGB per
/// vertex, int32 triangle lists.
pub fn ply_bytes(mesh: &Mesh, colours: Option<&[[u8; 3]]>) -> Result<Vec<u8>> {
    if let Some(c) = colours
        && c.len() != mesh.n_vertices()
    {
        return Err(MorphableError::Mesh(format!(
            "{} colours for {} vertices",
            c.len(),
            mesh.n_vertices()
        )));
    }
    let mut header = format!(
        "ply\nformat binary_little_endian 1.0\ncomment radar-face\nelement vertex {}\n\
         property float x\nproperty float y\nproperty float z\n",
        mesh.n_vertices()
    );
    if colours.is_some() {
        header.push_str("property uchar red\nproperty uchar green\nproperty uchar blue\n");
    }
    header.push_str(&format!(
        "element face {}\nproperty list uchar int vertex_indices\nend_header\n",
        mesh.triangles.len()
    ));
    let vertex_bytes = 12 + if colours.is_some() { 3 } else { 0 };
    let mut out = Vec::with_capacity(
        header.len() + mesh.n_vertices() * vertex_bytes + mesh.triangles.len() * 13,
    );
    out.extend_from_slice(header.as_bytes());
    for (i, v) in mesh.vertices.iter().enumerate() {
        for c in [v.x, v.y, v.z] {
            out.extend_from_slice(&(c as f32).to_le_bytes());
        }
        if let Some(c) = colours {
            out.extend_from_slice(&c[i]);
        }
    }
    for t in &mesh.triangles {
        out.push(3);
        for &i in t {
            out.extend_from_slice(&(i as i32).to_le_bytes());
        }
    }
    Ok(out)
}

/// Writes a binary PLY file (see [`ply_bytes`]) atomically.
pub fn write_ply(path: &Path, mesh: &Mesh, colours: Option<&[[u8; 3]]>) -> Result<()> {
    atomic_write(path, &ply_bytes(mesh, colours)?)
}

/// The Wavefront OBJ text of a mesh (1-based indices, with vertex normals).
pub fn obj_string(mesh: &Mesh) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(mesh.n_vertices() * 60 + mesh.triangles.len() * 40);
    s.push_str("# radar-face mesh\n");
    for v in &mesh.vertices {
        let _ = writeln!(s, "v {} {} {}", v.x, v.y, v.z);
    }
    for n in mesh.vertex_normals() {
        let _ = writeln!(s, "vn {} {} {}", n.x, n.y, n.z);
    }
    for [a, b, c] in &mesh.triangles {
        let (a, b, c) = (a + 1, b + 1, c + 1);
        let _ = writeln!(s, "f {a}//{a} {b}//{b} {c}//{c}");
    }
    s
}

/// Writes a Wavefront OBJ file atomically.
pub fn write_obj(path: &Path, mesh: &Mesh) -> Result<()> {
    atomic_write(path, obj_string(mesh).as_bytes())
}
