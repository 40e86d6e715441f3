//! Tests of the `radar-face` command line, run as a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn radar_face(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_radar-face"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("radar-face-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn simulate_writes_every_product_of_a_face() {
    let out = temp_dir("simulate-face");
    ok(&radar_face(&[
        "simulate",
        "--preset",
        "tiny",
        "--shape",
        "1,-0.5",
        "--yaw",
        "-3",
        "--out",
        s(&out),
    ]));
    for file in [
        "amplitude.png",
        "depth.png",
        "images.png",
        "mesh.ply",
        "mesh_radar.ply",
        "params.json",
        "level_db.npy",
        "depth_m.npy",
        "volume.npy",
        "signal.npy",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    // The signal is complex64 [tx, rx, frequency]: the tiny preset's 47 × 47 × 16.
    let signal = std::fs::read(out.join("signal.npy")).unwrap();
    let header = String::from_utf8_lossy(&signal[..128]);
    assert!(
        header.contains("'descr': '<c8'") && header.contains("(47, 47, 16)"),
        "{header}"
    );
}

#[test]
fn simulate_images_a_point_target_where_it_is() {
    let out = temp_dir("simulate-point");
    ok(&radar_face(&[
        "simulate",
        "--preset",
        "tiny",
        "--point",
        "0,0,0.28",
        "--out",
        s(&out),
    ]));
    // The brightest pixel's depth is the target's: read the depth at the 0 dB pixel.
    let level: Vec<f32> = npy_f32(&out.join("level_db.npy"));
    let depth: Vec<f32> = npy_f32(&out.join("depth_m.npy"));
    let brightest = (0..level.len())
        .max_by(|&a, &b| level[a].total_cmp(&level[b]))
        .unwrap();
    assert!(
        (depth[brightest] - 0.28).abs() < 0.005,
        "{}",
        depth[brightest]
    );
}

/// The f32 values of a little-endian `.npy` file (header skipped).
fn npy_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn generate_shards_merge_and_inspect() {
    let whole = temp_dir("gen-whole");
    let text = ok(&radar_face(&[
        "generate",
        "--preset",
        "tiny",
        "--samples",
        "4",
        "--chunk",
        "2",
        "--out",
        s(&whole),
    ]));
    assert!(text.contains("samples 0..4 of 4"), "{text}");
    let mut shards = Vec::new();
    for shard in ["0/2", "1/2"] {
        let dir = temp_dir(&format!("gen-shard-{}", &shard[..1]));
        ok(&radar_face(&[
            "generate",
            "--preset",
            "tiny",
            "--samples",
            "4",
            "--shard",
            shard,
            "--out",
            s(&dir),
        ]));
        shards.push(dir);
    }
    let merged = temp_dir("gen-merged");
    ok(&radar_face(&[
        "merge",
        s(&shards[0]),
        s(&shards[1]),
        "--out",
        s(&merged),
    ]));
    for file in ["manifest.json", "params.npy", "level_db.npy", "depth_m.npy"] {
        assert_eq!(
            std::fs::read(whole.join(file)).unwrap(),
            std::fs::read(merged.join(file)).unwrap(),
            "{file}"
        );
    }
    let text = ok(&radar_face(&["inspect", s(&merged), "--count", "4"]));
    assert!(
        text.contains("builtin-face-v1") && text.contains("16 × 16"),
        "{text}"
    );
    let sheet = image::open(merged.join("contact_sheet.png")).unwrap();
    assert!(sheet.width() > 4 * 16 && sheet.height() > 16);
}

#[test]
fn bad_input_is_a_clear_error() {
    let missing = radar_face(&[
        "simulate",
        "--model",
        "/no/such/model.h5",
        "--out",
        "/tmp/x",
    ]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("/no/such/model.h5"), "{err}");
    let bad_shard = radar_face(&["generate", "--shard", "3", "--out", "/tmp/x"]);
    assert!(!bad_shard.status.success());
    assert!(String::from_utf8_lossy(&bad_shard.stderr).contains("expected I/N"));
    let not_dataset = radar_face(&["inspect", "/no/such/dataset"]);
    assert!(!not_dataset.status.success());
    assert!(String::from_utf8_lossy(&not_dataset.stderr).contains("manifest.json"));
}
