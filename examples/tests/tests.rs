//! Tests of the `radar-face` command line, run as a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn radar_face(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_radar-face"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// A path `name` that does not exist yet (the command under test creates it) inside a fresh
/// temporary directory (the `tempfile` crate's, removed on drop). It dereferences to the path.
struct TempDir {
    _root: tempfile::TempDir,
    path: PathBuf,
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<std::ffi::OsStr> for TempDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.path.as_os_str()
    }
}

fn temp_dir(name: &str) -> TempDir {
    let root = tempfile::Builder::new()
        .prefix("radar-face-cli-")
        .tempdir()
        .expect("a temporary directory");
    let path = root.path().join(name);
    TempDir { _root: root, path }
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
    // The dataset says how its pose columns are scaled: the paper's protocol by default.
    assert!(
        text.contains("pose scaling t_x, t_y, t_z / 5 cm; yaw / 5°"),
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

/// Generates a tiny dataset, trains an encoder and a decoder on depth images, evaluates the
/// encoder (Table 1) and fits two validation faces through both differentiable renderers.
#[test]
fn train_evaluate_and_fit_a_tiny_dataset() {
    let root = temp_dir("pipeline");
    let (dataset, encoder, decoder) = (root.join("ds"), root.join("enc"), root.join("dec"));
    ok(&radar_face(&[
        "generate",
        "--preset",
        "tiny",
        "--samples",
        "24",
        "--out",
        s(&dataset),
    ]));
    let train = |stage: &str, out: &Path| {
        radar_face(&[
            "train",
            "--dataset",
            s(&dataset),
            "--stage",
            stage,
            "--input",
            "depth",
            "--preset",
            "tiny",
            "--epochs",
            "2",
            "--batch",
            "8",
            "--out",
            s(out),
        ])
    };
    let text = ok(&train("encoder", &encoder));
    assert!(text.contains("encoder (depth images, 16 × 16"), "{text}");
    let text = ok(&train("iterative", &root.join("iterative")));
    assert!(
        text.contains("iterative (depth images, 16 × 16")
            && text.contains("reading feedback depth,residual"),
        "{text}"
    );
    // Started from the one-pass encoder: the card records the start.
    let warm = root.join("iterative-warm");
    ok(&radar_face(&[
        "train",
        "--dataset",
        s(&dataset),
        "--stage",
        "iterative",
        "--input",
        "depth",
        "--preset",
        "tiny",
        "--epochs",
        "1",
        "--batch",
        "8",
        "--encoder",
        s(&encoder),
        "--out",
        s(&warm),
    ]));
    let card = std::fs::read_to_string(warm.join("model.json")).expect("the card");
    assert!(card.contains("\"start\""), "{card}");
    ok(&train("decoder", &decoder));
    // The mesh encoder of the built-in face (no dataset), then an encoder trained with the
    // learned identity loss through it.
    let mesh = root.join("mesh");
    let text = ok(&radar_face(&[
        "train",
        "--stage",
        "mesh-encoder",
        "--code",
        "4",
        "--epochs",
        "1",
        "--meshes-per-epoch",
        "8",
        "--validation-meshes",
        "4",
        "--batch",
        "4",
        "--out",
        s(&mesh),
    ]));
    assert!(
        text.contains("mesh encoder of 'builtin-face-v1' (code 4")
            && text.contains("held-out reconstruction (4 meshes)"),
        "{text}"
    );
    let mut args = vec![
        "train",
        "--dataset",
        s(&dataset),
        "--stage",
        "encoder",
        "--input",
        "depth",
        "--preset",
        "tiny",
        "--epochs",
        "1",
        "--batch",
        "8",
        "--out",
    ];
    let id_encoder = root.join("enc-id");
    let learned = format!("learned:{}", s(&mesh));
    args.extend([s(&id_encoder), "--id-loss", &learned, "--id-weight", "0.3"]);
    ok(&radar_face(&args));
    let card = std::fs::read_to_string(id_encoder.join("model.json")).unwrap();
    assert!(
        card.contains("\"id_loss\"") && card.contains("learned"),
        "{card}"
    );
    // A second run on the same directory resumes: every step is already done.
    let again = train("encoder", &encoder);
    ok(&again);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("6 of 6 steps already done"), "{err}");

    let autoencoder = root.join("ae");
    ok(&radar_face(&[
        "train",
        "--dataset",
        s(&dataset),
        "--stage",
        "autoencoder",
        "--encoder",
        s(&encoder),
        "--decoder",
        s(&decoder),
        "--epochs",
        "1",
        "--batch",
        "8",
        "--out",
        s(&autoencoder),
    ]));
    // The same through the physics itself, on one batch of faces.
    let text = ok(&radar_face(&[
        "train",
        "--dataset",
        s(&dataset),
        "--stage",
        "autoencoder",
        "--encoder",
        s(&encoder),
        "--decoder",
        "physics",
        "--train-faces",
        "8",
        "--epochs",
        "1",
        "--batch",
        "8",
        "--out",
        s(&root.join("ae-physics")),
    ]));
    assert!(
        text.contains("through the physics, each face with its own speckle"),
        "{text}"
    );

    let table_dir = root.join("table");
    // A small cosine study: 3 shapes × 2 expressions, 2 of each class compared.
    let cosine_flags = [
        "--cosine-shapes",
        "3",
        "--cosine-expressions",
        "2",
        "--cosine-subset",
        "2",
    ];
    let iterative = root.join("iterative");
    let text = ok(&radar_face(
        &[
            &[
                "evaluate",
                "--dataset",
                s(&dataset),
                "--encoder",
                s(&encoder),
                "--encoder",
                s(&autoencoder),
                "--encoder",
                s(&iterative),
                "--iterations",
                "2",
                "--out",
                s(&table_dir),
            ][..],
            &cosine_flags,
        ]
        .concat(),
    ));
    // The cosine study of the one-pass encoders: the first is the reference, the second is
    // paired against it, the iterative one is left out.
    let cosine = std::fs::read_to_string(table_dir.join("cosine.md")).unwrap();
    assert!(cosine.contains("3 shapes × 2 expressions"), "{cosine}");
    let row = |name: &str| {
        cosine
            .lines()
            .find(|l| l.starts_with(&format!("| {name} |")))
            .unwrap_or_else(|| panic!("no {name} row: {cosine}"))
            .to_string()
    };
    assert!(row("Encoder (Depth)").ends_with("| — | — |"));
    assert!(row("Autoencoder (Depth)").contains("| ["));
    assert!(!cosine.contains("Iterative"), "{cosine}");
    assert!(text.contains("is iterative, left out"), "{text}");
    // Iterative encoders started from a one-pass encoder's estimate.
    let started_dir = root.join("started");
    let started = ok(&radar_face(&[
        "evaluate",
        "--dataset",
        s(&dataset),
        "--encoder",
        s(&iterative),
        "--iterations",
        "1",
        "--iterative-start",
        s(&encoder),
        "--out",
        s(&started_dir),
    ]));
    assert!(
        started.contains("iteration 1, from the Encoder (Depth) estimate"),
        "{started}"
    );
    // An encoder given twice: its second row is named by its directory, as in Table 1.
    let twice_dir = root.join("twice");
    ok(&radar_face(
        &[
            &[
                "evaluate",
                "--dataset",
                s(&dataset),
                "--encoder",
                s(&encoder),
                "--encoder",
                s(&encoder),
                "--out",
                s(&twice_dir),
            ][..],
            &cosine_flags,
        ]
        .concat(),
    ));
    let twice = std::fs::read_to_string(twice_dir.join("cosine.md")).unwrap();
    let repeated = format!("| Encoder (Depth) [{}] |", encoder.display());
    assert!(twice.contains(&repeated), "{twice}");
    let refused = radar_face(&[
        "evaluate",
        "--dataset",
        s(&dataset),
        "--encoder",
        s(&encoder),
        "--cosine-shapes",
        "1",
        "--out",
        s(&root.join("refused")),
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--cosine-shapes 1"),
        "{refused:?}"
    );
    for name in [
        abs_fit::evaluate::MEAN_BASELINE,
        abs_fit::evaluate::RANDOM_BASELINE,
        "Encoder (Depth)",
        "Autoencoder (Depth)",
        "Iterative encoder (Depth), iteration 1",
        "Iterative encoder (Depth), iteration 2",
    ] {
        assert!(text.contains(name), "{text}");
        for file in ["table1.md", "table1.csv"] {
            let table = std::fs::read_to_string(table_dir.join(file)).unwrap();
            assert!(table.contains(name), "{file}: {table}");
        }
    }
    // The Mean baseline is its own reference: its point-distance ratio is exactly 1.
    let mean_row = text
        .lines()
        .find(|line| line.starts_with("| Baseline (Mean) | measured |"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(mean_row.ends_with("| 1.000 |"), "{mean_row}");
    // Every later encoder row against the first encoder's, paired.
    let findings = std::fs::read_to_string(table_dir.join("findings.md")).unwrap();
    for a in [
        "| Autoencoder (Depth) |",
        "| Iterative encoder (Depth), iteration 2 |",
    ] {
        assert!(
            findings.contains(&format!(
                "| against the first encoder (Encoder (Depth)) {a} Encoder (Depth) | point distance"
            )),
            "{findings}"
        );
    }

    for (renderer, dir) in [
        ("depth-raster".to_string(), root.join("fit-raster")),
        (format!("learned:{}", s(&decoder)), root.join("fit-learned")),
    ] {
        let text = ok(&radar_face(&[
            "fit",
            "--dataset",
            s(&dataset),
            "--encoder",
            s(&encoder),
            "--renderer",
            &renderer,
            "--rows",
            "0..2",
            "--steps",
            "10",
            "--out",
            s(&dir),
        ]));
        assert!(text.contains("point distance before"), "{text}");
        // Validation samples are the last 15 %: 20 and 21 of 24.
        for sample in [20, 21] {
            let ply = std::fs::read(dir.join(format!("face_{sample:05}_fitted.ply"))).unwrap();
            assert!(ply.starts_with(b"ply"), "{renderer}");
            let png = image::open(dir.join(format!("face_{sample:05}_images.png"))).unwrap();
            // Two 16 × 16 images enlarged 8 times with a 2-pixel gutter.
            assert_eq!(
                (png.width(), png.height()),
                (2 * 128 + 2, 128),
                "{renderer}"
            );
            // True face, start and fit side by side, 200 pixels wide each, 4-pixel gutters: the
            // true face is shaded grey, the fit coloured by its error.
            let meshes = image::open(dir.join(format!("face_{sample:05}_meshes.png")))
                .unwrap()
                .to_rgb8();
            assert_eq!(meshes.width(), 3 * 200 + 4 * 4, "{renderer}");
            let panel = |k: u32| {
                meshes
                    .enumerate_pixels()
                    .filter(move |(x, _, _)| (4 + k * 204..4 + k * 204 + 200).contains(x))
                    .map(|(_, _, p)| p.0)
                    .filter(|&[r, g, b]| r.max(g).max(b) > 0)
                    .collect::<Vec<_>>()
            };
            let (truth, fit) = (panel(0), panel(2));
            assert!(!truth.is_empty() && truth.iter().all(|&[r, g, b]| r == g && g == b));
            assert!(fit.iter().any(|&[r, g, b]| r != g || g != b), "{renderer}");
        }
    }
}

#[test]
fn training_and_fitting_refuse_bad_arguments() {
    let run = |args: &[&str]| {
        let output = radar_face(args);
        assert!(!output.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let err = run(&[
        "train",
        "--dataset",
        "/no/such/ds",
        "--stage",
        "encoder",
        "--out",
        "/tmp/x",
    ]);
    assert!(err.contains("/no/such/ds"), "{err}");
    let err = run(&[
        "train",
        "--dataset",
        "/no/such/ds",
        "--stage",
        "encoder",
        "--input",
        "radar",
        "--out",
        "/tmp/x",
    ]);
    assert!(err.contains("amplitude-depth"), "{err}");
    // `fit` with a renderer and more arguments, refused before anything is opened.
    let fit = |renderer: &str, more: &[&str]| {
        let mut args = vec![
            "fit",
            "--dataset",
            "/d",
            "--encoder",
            "/e",
            "--renderer",
            renderer,
            "--out",
            "/tmp/x",
        ];
        args.extend_from_slice(more);
        run(&args)
    };
    let err = fit("raytracer", &[]);
    assert!(
        err.contains("learned:DIR, depth-raster or physics"),
        "{err}"
    );
    let err = fit("depth-raster", &["--rows", "3..1"]);
    assert!(err.contains("empty"), "{err}");
    for physics_only in ["--redraw-speckle", "--paired-realisations"] {
        let err = fit("depth-raster", &[physics_only]);
        assert!(
            err.contains("--renderer physics only"),
            "{physics_only}: {err}"
        );
    }
}

/// The whole reproduction at the tiny preset: Table 1 with baselines, autoencoders and fitting
/// rows, the cosine heatmaps, the run times and fitted faces; a second run resumes every stage.
#[test]
fn reproduce_tiny_writes_every_result() {
    let out = temp_dir("reproduce");
    let args = [
        "reproduce",
        "--preset",
        "tiny",
        "--samples",
        "24",
        "--epochs",
        "1",
        "--fit-steps",
        "5",
        "--faces",
        "2",
        "--study-shapes",
        "3",
        "--study-expressions",
        "2",
        "--physics-fit-steps",
        "3",
        "--out",
        s(&out),
    ];
    ok(&radar_face(&args));
    let results = out.join("results");
    // tiny fits its first two validation faces through the physics, in a table of their own.
    let physics = std::fs::read_to_string(results.join("table1-physics-fit.md")).unwrap();
    for name in [
        abs_fit::evaluate::MEAN_BASELINE,
        "Encoder (Amp.-Depth)",
        "Autoencoder (Amp.-Depth)",
        "Autoencoder (Amp.-Depth) + fitting (physics)",
    ] {
        assert!(
            physics.contains(&format!("| {name} | measured |")),
            "{physics}"
        );
    }
    let physics = std::fs::read_to_string(results.join("findings-physics-fit.md")).unwrap();
    assert!(
        physics.contains("fitting through the physics helps"),
        "{physics}"
    );
    let table = std::fs::read_to_string(results.join("table1.md")).unwrap();
    for name in [
        abs_fit::evaluate::MEAN_BASELINE,
        abs_fit::evaluate::RANDOM_BASELINE,
        "Encoder (Amp.-Depth)",
        "Autoencoder (Depth)",
        "Autoencoder (Amplitude) + fitting (learned renderer)",
        "Autoencoder (Depth) + fitting (depth raster)",
        "Iterative encoder (Amplitude)",
        "Iterative encoder (Depth)",
        "Iterative encoder (Amp.-Depth)",
        "Encoder (Depth) + 3D-ID loss (linear)",
        "Encoder (Amp.-Depth) + 3D-ID loss (learned)",
        // tiny trains the amplitude-depth autoencoder through the physics on 8 faces, beside
        // the same through its learned decoder.
        "Autoencoder with physics decoder (Amp.-Depth, 8 faces)",
        "Autoencoder (Amp.-Depth, 8 faces)",
    ] {
        assert!(table.contains(&format!("| {name} | measured |")), "{table}");
    }
    // tiny trains the identity-loss encoders and compares them in the cosine study.
    let id_study = std::fs::read_to_string(results.join("cosine-id-loss.md")).unwrap();
    for name in [
        "| Encoder (Depth) | ",
        "| Encoder (Depth) + 3D-ID loss (learned) | ",
        "| Encoder (Amp.-Depth) + 3D-ID loss (linear) | ",
    ] {
        assert!(id_study.contains(name), "{id_study}");
    }
    assert!(out.join("networks/mesh-encoder/mesh-encoder.json").exists());
    // The iterative encoders after each of their four iterations.
    let iterations = std::fs::read_to_string(results.join("table1-iterations.md")).unwrap();
    for k in 1..=4 {
        let name = format!("Iterative encoder (Depth), iteration {k}");
        assert!(
            iterations.contains(&format!("| {name} | measured |")),
            "{iterations}"
        );
    }
    // The paper's rows are beside ours, each with its ratio to its own Mean baseline.
    assert!(
        table.contains("| Baseline (Mean) | paper (BFM 2019) |"),
        "{table}"
    );
    // The note on the paper's protocol, with its like-for-like comparison.
    assert!(table.contains("Read exchanged, like for like"), "{table}");
    let csv = std::fs::read_to_string(results.join("table1.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(
        header.contains(",point_distance_mm_low,point_distance_mm_high,"),
        "{header}"
    );
    // Every measured row has the ends of its intervals, in order.
    let column = |name: &str| header.split(',').position(|c| c == name).unwrap();
    let (low, high) = (column("l2_total_low"), column("l2_total_high"));
    for line in csv.lines().skip(1).filter(|l| l.contains(",measured,")) {
        let fields: Vec<&str> = line.split(',').collect();
        let (a, b): (f64, f64) = (fields[low].parse().unwrap(), fields[high].parse().unwrap());
        assert!(a <= b, "{line}");
    }
    let findings = std::fs::read_to_string(results.join("findings.md")).unwrap();
    assert!(
        findings.contains("| depth input helps shape |")
            && findings.contains("| the iterative encoder beats the one-pass encoder |")
            && findings.contains("| iterating lowers point distance |")
            && findings.contains("| the learned 3D-ID loss changes the encoder |")
            && findings.contains("| the physics decoder beats the learned one |"),
        "{findings}"
    );
    let cosine = std::fs::read_to_string(results.join("cosine.md")).unwrap();
    assert!(cosine.contains("| sampled | shape | 7/10 |"), "{cosine}");
    for (label, classes, large) in [("shape", 3u32, 10u32), ("expression", 2, 2)] {
        for pose in ["sampled", "neutral"] {
            let stem = format!("cosine_{label}_{pose}_pose");
            // The larger study (tiny: 10 shapes) beside the figure.
            let csv = std::fs::read_to_string(results.join(format!("{stem}_large.csv"))).unwrap();
            assert_eq!(csv.lines().count(), 1 + large as usize, "{stem}");
            let png = image::open(results.join(format!("{stem}.png"))).unwrap();
            // One square cell per pair of classes.
            assert_eq!(png.width(), png.height(), "{stem}");
            assert_eq!(png.width() % classes, 0, "{stem}");
            let csv = std::fs::read_to_string(results.join(format!("{stem}.csv"))).unwrap();
            assert_eq!(csv.lines().count(), 1 + classes as usize, "{stem}");
        }
    }
    let runtimes = std::fs::read_to_string(results.join("runtimes.md")).unwrap();
    assert!(
        runtimes.contains("physics renderer") && runtimes.contains("learned renderer"),
        "{runtimes}"
    );
    // Validation samples are the last 15 %: 20 and 21 of 24.
    for sample in [20, 21] {
        let dir = results.join("faces/autoencoder-depth-raster");
        let ply = std::fs::read(dir.join(format!("face_{sample:05}_fitted.ply"))).unwrap();
        assert!(ply.starts_with(b"ply"));
        assert!(dir.join(format!("face_{sample:05}_images.png")).is_file());
    }
    // A second run resumes: the dataset and every network are already complete.
    let again = radar_face(&args);
    ok(&again);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("24 of 24 samples already done"), "{err}");
    assert!(err.contains("3 of 3 steps already done"), "{err}");
    // A run compared with itself, face by face: every paired difference is exactly 0.
    let compared = out.join("compare");
    ok(&radar_face(&[
        "compare",
        "--a",
        s(&out),
        "--b",
        s(&out),
        "--out",
        s(&compared),
    ]));
    let md = std::fs::read_to_string(compared.join("compare.md")).unwrap();
    assert!(md.contains("| decoder-depth | image correlation |"), "{md}");
    for network in [
        "Mean baseline",
        "encoder-depth",
        "autoencoder-amplitude-depth",
    ] {
        assert!(
            md.contains(&format!("| {network} | point distance (mm) |")),
            "{md}"
        );
    }
    let rows: Vec<&str> = md
        .lines()
        .filter(|l| l.contains(" L2 |") || l.contains("(mm) |") || l.contains("| image "))
        .collect();
    assert!(!rows.is_empty());
    for row in rows {
        assert!(row.contains("| +0.0000 | [+0.0000, +0.0000] |"), "{row}");
    }
    // Other faces (another seed) are refused: a paired comparison needs the same faces.
    let other = temp_dir("compare-other");
    ok(&radar_face(&[
        "generate",
        "--preset",
        "tiny",
        "--samples",
        "24",
        "--seed",
        "7",
        "--out",
        s(&other.join("dataset")),
    ]));
    let refused = radar_face(&[
        "compare",
        "--a",
        s(&out),
        "--b",
        s(&other),
        "--out",
        s(&compared),
    ]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("validation faces differ"), "{err}");
}

/// A closed standard output (`radar-face … | head -1`) ends the program quietly: no panic
/// message, no partial work reported as a crash (on Unix the default SIGPIPE action).
#[cfg(unix)]
#[test]
fn a_closed_stdout_ends_the_program_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let out = temp_dir("closed-stdout");
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let output = Command::new(env!("CARGO_BIN_EXE_radar-face"))
        .args(["simulate", "--preset", "tiny", "--out", s(&out)])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}",
        output.status
    );
}

/// Nonsense sizes are refused up front with a sentence, before any work: an empty shard, more
/// samples than a dataset may hold, a cosine study of 2⁶⁴ faces (epochs: the library's
/// `absurd_sizes_are_typed_errors`).
#[test]
fn absurd_sizes_are_refused_before_any_work() {
    let out = temp_dir("absurd");
    let huge = u64::MAX.to_string();
    for (args, expected) in [
        (
            vec![
                "generate",
                "--preset",
                "tiny",
                "--shard",
                "30/100",
                "--out",
                s(&out),
            ],
            "would be empty",
        ),
        (
            vec![
                "generate",
                "--preset",
                "tiny",
                "--samples",
                &huge,
                "--out",
                s(&out),
            ],
            "more than",
        ),
        (
            vec![
                "reproduce",
                "--preset",
                "tiny",
                "--study-shapes",
                &huge,
                "--out",
                s(&out),
            ],
            "at most",
        ),
    ] {
        let output = radar_face(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    assert!(!out.exists(), "nothing was written");
}

/// Nonsense physical arguments, ignored options and conflicting options are refused with a
/// sentence naming the value, before anything is written (issue 18, item 8). The ranges live
/// in the libraries (`FaceParams::validate`, `Pose::validate`, `LearningRate::validate`,
/// `ImagingConfig::check_in_view`, `PhysicsRenderer::placed_mesh`); these are their faces on the
/// command line.
#[test]
fn nonsense_physical_arguments_are_refused() {
    let out = temp_dir("nonsense");
    // The train cases need a dataset to get past opening it.
    let dataset = out.join("dataset");
    ok(&radar_face(&[
        "generate",
        "--preset",
        "tiny",
        "--samples",
        "4",
        "--out",
        s(&dataset),
    ]));
    let never = "/nonexistent/never-written";
    // Refused runs must not even create their output directory.
    let sim_out = out.join("simulated");
    let sim = |extra: &[&'static str]| {
        let mut args = vec!["simulate", "--preset", "tiny", "--out", s(&sim_out)];
        args.extend_from_slice(extra);
        args
    };
    let train = |extra: &[&'static str]| {
        let mut args = vec!["train", "--dataset", s(&dataset), "--input", "depth"];
        args.extend_from_slice(extra);
        args.extend(["--out", never]);
        args
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (sim(&["--material", "2"]), "material = 2 must lie in [0, 1]"),
        (sim(&["--material=-1"]), "material = -1"),
        (sim(&["--antenna-cm", "0"]), "antenna size (cm) = 0"),
        (sim(&["--antenna-cm=-1"]), "antenna size (cm) = -1"),
        (
            sim(&["--antenna-cm", "1e9"]),
            "antenna size (cm) = 1000000000",
        ),
        (sim(&["--yaw", "1e10"]), "yaw"),
        (sim(&["--pitch", "180"]), "pitch"),
        (sim(&["--shape", "100"]), "shape coefficient 0 = 100"),
        (sim(&["--translation-cm=0,0,-24.9"]), "from the array plane"),
        (sim(&["--point", "0,0,100"]), "outside the imaged box"),
        (
            sim(&["--point", "0,0,0.28", "--shape", "1"]),
            "cannot be used with",
        ),
        (sim(&["--range-db", "0"]), "dynamic range (dB) = 0"),
        (
            train(&["--stage", "decoder", "--encoder", "/tmp"]),
            "--encoder does not apply to --stage decoder",
        ),
        (
            train(&["--stage", "encoder", "--learning-rate", "1e30"]),
            "must lie in (0, 1]",
        ),
        (
            train(&["--stage", "encoder", "--feedback", "pncc"]),
            "--feedback does not apply to --stage encoder",
        ),
        (
            train(&["--stage", "iterative", "--feedback", "pncc,shading"]),
            "'shading' in 'pncc,shading'",
        ),
        (
            train(&["--stage", "iterative", "--mean-start-fraction", "1.5"]),
            "mean_start_fraction = 1.5",
        ),
        (
            train(&["--stage", "iterative", "--own-estimate-fraction", "2"]),
            "own_estimate_fraction = 2 must lie in [0, 1]",
        ),
        (
            train(&["--stage", "decoder", "--id-loss", "linear"]),
            "--id-loss does not apply to --stage decoder",
        ),
        (
            train(&["--stage", "encoder", "--id-loss", "cosine"]),
            "choose linear, learned:DIR, distilled:DIR or",
        ),
        (
            train(&[
                "--stage",
                "encoder",
                "--id-loss",
                "linear",
                "--id-weight=-1",
            ]),
            "weight = -1 must be finite and positive",
        ),
        (
            train(&["--stage", "mesh-encoder"]),
            "--dataset does not apply to --stage mesh-encoder",
        ),
        (vec!["inspect", s(&dataset), "--count", "0"], "--count 0"),
        // An output that cannot be written is named.
        (
            vec![
                "inspect",
                s(&dataset),
                "--sheet",
                "/nonexistent/dir/sheet.png",
            ],
            "/nonexistent/dir/sheet.png",
        ),
    ];
    let before = std::fs::read_dir(&out).unwrap().count();
    for (args, expected) in cases {
        let output = radar_face(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_ne!(output.status.code(), Some(0), "{args:?} was accepted");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // No refused run wrote anything: only the dataset is there.
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), before);
    assert!(!sim_out.exists());
    assert!(!Path::new(never).exists());
}
