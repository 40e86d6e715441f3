//! The basin of attraction of analysis-by-synthesis through the differentiable physics
//! renderer (docs/physics.md §3.6, §4.5), on small imaging (every sixth QAR50 element, 8
//! frequency steps, 12 × 12 amplitude-depth images; the direct sum is exact and slow).
//!
//! For each face of the `tiny` preset's distribution, the target is the physics image of the
//! true face with another surface seed than the renderer's (its own speckle). The fit starts
//! from the truth (the floor: how far the speckle alone moves the face) and from the truth
//! perturbed by 0.25, 0.5 and 1 σ on every coefficient, 1°/2°/4° on every angle and 2/5/10 mm
//! on t_x and t_y, and runs Adam on the image MSE with the default prior. It prints, per start,
//! the point distance to the truth (mm, model space, no pose) and the pose errors before and
//! after, with 95 % intervals over the faces.
//!
//! With REALISATIONS > 1 the fits render the expected image over that many realisations of
//! the diffuse field (`DifferentiablePhysicsRenderer::with_realisations`) instead of one; the
//! targets stay single realisations, like a measurement.
//!
//! With DEPTH_WEIGHT the depth channel's squared differences weigh that much against the
//! amplitude channel's 1 and are compared only where the target's depth is valid
//! (`FitConfig::channels`).
//!
//! With BASIN_CAUCHY=c in the environment the fits compare pixels with the Cauchy loss of
//! scale c (`FitConfig::cauchy_scale`).
//!
//! With BASIN_KEEP_POSE=1 in the environment the pose starts at the truth's and is not fitted
//! (only the coefficients are perturbed and fitted), as the physics fits from an encoder's
//! estimate keep its pose.
//!
//! With BASIN_REDRAW=1 the fits draw the renderer's speckle anew at every step
//! (`DifferentiablePhysicsRenderer::with_redrawn_speckle`), and with BASIN_AVERAGE=N each
//! fit ends at the mean of its last N iterates (`FitConfig::average_last`); with
//! BASIN_COSINE=1 the learning rate decays along a half cosine (`FitConfig::cosine_decay`).
//!
//! With BASIN_PAIRED=1 each step renders two independent realisations (the renderer's and
//! its `other_realisation`) and compares them with the target as (r₁ − t)·(r₂ − t)
//! (`FitConfig::paired_realisations`, `PairedRenderer`), an unbiased estimate of the squared
//! difference between the expected image and the target, at twice the cost.
//!
//! With BASIN_LEVELS=i,j,… only those starts run (0 the truth, 1 to 3 the perturbations, in
//! order); the truth's level always runs first, since every row reports its distance above it.
//! The column "above the floor" is each face's point distance after the fit minus the same
//! face's after the fit from the truth (paired), which the bar compares with 0.3 mm.
//!
//! With BASIN_LM=h the fits take Levenberg–Marquardt steps (`Solver::LevenbergMarquardt`,
//! the Jacobian by forward differences of step h in scaled units, initial damping
//! BASIN_LM_DAMPING, default 10⁻²) instead of Adam's; STEPS then counts its trials, each of
//! which costs up to one render per fitted column plus one.
//!
//! With BASIN_IMAGING=cpu the targets and fits use the `cpu` preset's imaging (every second
//! QAR50 element, 48 steps, 32 × 32 images, diffuse cells every 4 mm) instead of the small
//! imaging above: about half a second of both cores per face and step instead of 60 ms.
//!
//! `cargo run --release -p radar-face --example physics_basin [-- FACES STEPS REALISATIONS
//! LEARNING_RATE DEPTH_WEIGHT]`

use abs_fit::dataset::InputKind;
use abs_fit::fit::FitSettings;
use abs_fit::{
    ArraySpec, ChannelLoss, DifferentiablePhysicsRenderer, FaceParams, FitConfig, ImagingConfig,
    LevenbergMarquardt, NoProgress, PairedRenderer, ParamGroup, ParamLayout, Preset, Renderer,
    Solver, fit,
};
use candle_core::{Device, Tensor};
use morphable::MorphableModel;
use morphable::metrics::point_distance;
use radar_sim::{ConvergedSurface, FrequencySweep, SimulationConfig, SurfaceModel};

type Error = Box<dyn std::error::Error>;

/// Whether BASIN_IMAGING=cpu asks for the `cpu` preset's imaging.
fn cpu_imaging() -> bool {
    std::env::var("BASIN_IMAGING").is_ok_and(|v| v == "cpu")
}

fn imaging() -> Result<ImagingConfig, Error> {
    if cpu_imaging() {
        return Ok(Preset::Cpu.dataset()?.imaging);
    }
    let tiny = Preset::Tiny.dataset()?.imaging;
    Ok(ImagingConfig {
        array: ArraySpec::Qar50Decimated { factor: 6 },
        sweep: FrequencySweep::new(72e9, 82e9, 8)?,
        grid: ImagingConfig::centred_grid(24, 24, 0.008, 0.20, 12, 0.013)?,
        pool: 2,
        simulation: SimulationConfig {
            surface: SurfaceModel::Converged(ConvergedSurface {
                correlation_length_m: 0.008,
                ..ConvergedSurface::default()
            }),
            ..tiny.simulation
        },
        ..tiny
    })
}

/// Deterministic standard normals (Box-Muller on splitmix64).
fn normals(mut state: u64, n: usize) -> Vec<f64> {
    let mut uniform = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u, v) = (uniform(), uniform());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        })
        .collect()
}

/// `face` moved by `sigma` σ on every coefficient, `degrees` on every angle and `mm` on t_x
/// and t_y, each with a random sign (coefficients: a normal draw times `sigma`).
fn perturbed(face: &FaceParams, k: usize, (sigma, degrees, mm): (f64, f64, f64)) -> FaceParams {
    let z = normals(
        1000 + k as u64,
        face.shape.len() + face.expression.len() + 5,
    );
    let sign = |x: f64| if x >= 0.0 { 1.0 } else { -1.0 };
    let mut out = face.clone();
    for (c, z) in out
        .shape
        .iter_mut()
        .chain(out.expression.iter_mut())
        .zip(&z)
    {
        *c += sigma * z;
    }
    let rest = &z[z.len() - 5..];
    let angle = degrees.to_radians();
    out.pose.yaw += angle * sign(rest[0]);
    out.pose.pitch += angle * sign(rest[1]);
    out.pose.roll += angle * sign(rest[2]);
    out.pose.translation.x += mm * 1e-3 * sign(rest[3]);
    out.pose.translation.y += mm * 1e-3 * sign(rest[4]);
    out
}

/// Mean and half-width of the 95 % normal interval.
fn mean_ci(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, 1.96 * (var / n).sqrt())
}

fn main() -> Result<(), Error> {
    let arg = |i: usize, default: usize| -> Result<usize, Error> {
        Ok(match std::env::args().nth(i) {
            Some(a) => a.parse()?,
            None => default,
        })
    };
    let (n_faces, steps, realisations) = (arg(1, 8)?, arg(2, 25)?, arg(3, 1)?);
    let learning_rate: f64 = match std::env::args().nth(4) {
        Some(a) => a.parse()?,
        None => FitSettings::DEFAULT_LEARNING_RATE,
    };
    let depth_weight: Option<f64> = std::env::args().nth(5).map(|a| a.parse()).transpose()?;
    let keep_pose = std::env::var("BASIN_KEEP_POSE").is_ok_and(|v| v == "1");
    let cauchy_scale: Option<f64> = std::env::var("BASIN_CAUCHY")
        .ok()
        .map(|c| c.parse())
        .transpose()?;
    let redraw = std::env::var("BASIN_REDRAW").is_ok_and(|v| v == "1");
    let average_last: usize = match std::env::var("BASIN_AVERAGE") {
        Ok(n) => n.parse()?,
        Err(_) => 0,
    };
    let cosine_decay = std::env::var("BASIN_COSINE").is_ok_and(|v| v == "1");
    let paired = std::env::var("BASIN_PAIRED").is_ok_and(|v| v == "1");
    let solver = match std::env::var("BASIN_LM") {
        Ok(step) => Solver::LevenbergMarquardt(LevenbergMarquardt {
            difference_step: step.parse()?,
            damping: match std::env::var("BASIN_LM_DAMPING") {
                Ok(d) => d.parse()?,
                Err(_) => LevenbergMarquardt::default().damping,
            },
        }),
        Err(_) => Solver::Adam,
    };
    let levels: Vec<usize> = match std::env::var("BASIN_LEVELS") {
        Ok(list) => (list.split(','))
            .map(|i| match i.trim().parse::<usize>() {
                Ok(i) if i < 4 => Ok(i),
                _ => Err(format!("BASIN_LEVELS: {i:?} is not a level 0 to 3")),
            })
            .collect::<Result<_, _>>()?,
        Err(_) => (0..4).collect(),
    };
    let model = morphable::builtin::builtin();
    let layout = ParamLayout::default();
    let distribution = Preset::Tiny.dataset()?;
    let renderer = |seed: u64| -> Result<_, Error> {
        Ok(DifferentiablePhysicsRenderer::new(
            model,
            layout,
            imaging()?,
            InputKind::AmplitudeDepth,
        )?
        .with_seed(seed))
    };
    let truths: Vec<FaceParams> = (0..n_faces)
        .map(|k| {
            let mut face = distribution.draw(k).0;
            face.render.dynamic_range_db = 20.0;
            face
        })
        .collect();
    let rows = |faces: &[FaceParams]| -> Result<Tensor, Error> {
        let values: Vec<f64> = (faces.iter())
            .flat_map(|f| layout.to_vector(f).into_iter().map(f64::from))
            .collect();
        Ok(Tensor::from_vec(
            values,
            (faces.len(), layout.len()),
            &Device::Cpu,
        )?)
    };
    // Targets: surface seeds 10 000 + k; the fits render with seeds k.
    let target = renderer(10_000)?.render(&rows(&truths)?)?;
    let mesh = |f: &FaceParams| model.instance(&f.shape, &f.expression);
    println!(
        "{} imaging, {n_faces} faces, {steps} steps (learning rate {}, prior {}), amplitude-depth \
         images at 20 dB, fits rendering {realisations} realisation(s) of the diffuse field, \
         depth weight {depth_weight:?}, Cauchy scale {cauchy_scale:?}, pose {}, speckle \
         {}, mean of the last {average_last} iterates, cosine decay {cosine_decay}, paired \
         realisations {paired}, solver {solver:?}",
        if cpu_imaging() { "`cpu`" } else { "small" },
        learning_rate,
        FitSettings::DEFAULT_PRIOR,
        if keep_pose {
            "kept at the truth's"
        } else {
            "perturbed and fitted"
        },
        if redraw {
            "drawn anew at every step"
        } else {
            "fixed"
        }
    );
    println!(
        "| start | point distance before (mm) | after (mm) | change (mm) | faces improved | \
         above the floor (mm) | rotation before (°) | after (°) | translation before (mm) | \
         after (mm) | image loss |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let all = [
        (0.0, 0.0, 0.0),
        (0.25, 1.0, 2.0),
        (0.5, 2.0, 5.0),
        (1.0, 4.0, 10.0),
    ];
    // Each face's point distance after the fit from the truth.
    let mut floor: Option<Vec<f64>> = None;
    for level in std::iter::once(0)
        .chain(levels.into_iter().filter(|&i| i != 0))
        .map(|i| all[i])
    {
        let starts: Vec<FaceParams> = (truths.iter().enumerate())
            .map(|(k, f)| {
                let mut start = perturbed(f, k, level);
                if keep_pose {
                    start.pose = f.pose;
                }
                start
            })
            .collect();
        let config = FitConfig {
            steps,
            learning_rate,
            prior_weight: FitSettings::DEFAULT_PRIOR,
            tolerance: 0.0,
            cauchy_scale,
            average_last,
            cosine_decay,
            paired_realisations: paired,
            solver,
            optimise: if keep_pose {
                vec![ParamGroup::Shape, ParamGroup::Expression]
            } else {
                FitConfig::new(layout).optimise
            },
            channels: match depth_weight {
                Some(weight) => vec![
                    ChannelLoss {
                        weight: 1.0,
                        ignore_empty_target: false,
                    },
                    ChannelLoss {
                        weight,
                        ignore_empty_target: true,
                    },
                ],
                None => Vec::new(),
            },
            ..FitConfig::new(layout)
        };
        let time = std::time::Instant::now();
        let fitting = renderer(0)?
            .with_realisations(realisations)?
            .with_redrawn_speckle(redraw);
        let fitting: Box<dyn Renderer> = if paired {
            let other = fitting.other_realisation();
            Box::new(PairedRenderer::new(fitting, other)?)
        } else {
            Box::new(fitting)
        };
        let result = fit(&fitting, &target, &rows(&starts)?, &config, &mut NoProgress)?;
        let fitted: Vec<Vec<f64>> = result.params.to_vec2()?;
        let mut rows_out = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((truth, start), row) in truths.iter().zip(&starts).zip(&fitted) {
            let row: Vec<f32> = row.iter().map(|&v| v as f32).collect();
            let end = layout.from_vector(&row)?;
            let truth_mesh = mesh(truth)?;
            let before = point_distance(&mesh(start)?, &truth_mesh)?;
            let after = point_distance(&mesh(&end)?, &truth_mesh)?;
            let angles = |f: &FaceParams| {
                let d = [
                    f.pose.yaw - truth.pose.yaw,
                    f.pose.pitch - truth.pose.pitch,
                    f.pose.roll - truth.pose.roll,
                ];
                d.iter().map(|x| x * x).sum::<f64>().sqrt().to_degrees()
            };
            let shift = |f: &FaceParams| (f.pose.translation - truth.pose.translation).norm() * 1e3;
            rows_out.0.push(before);
            rows_out.1.push(after);
            rows_out.2.push(after - before);
            rows_out.3.push((angles(start), angles(&end)));
            rows_out.4.push((shift(start), shift(&end)));
        }
        let floor = floor.get_or_insert_with(|| rows_out.1.clone());
        let above: Vec<f64> = (rows_out.1.iter().zip(floor.iter()))
            .map(|(a, f)| a - f)
            .collect();
        let improved = rows_out.2.iter().filter(|d| **d < 0.0).count();
        let fmt = |v: &[f64]| {
            let (m, h) = mean_ci(v);
            format!("{m:.3} ± {h:.3}")
        };
        let firsts = |v: &[(f64, f64)]| v.iter().map(|p| p.0).collect::<Vec<_>>();
        let seconds = |v: &[(f64, f64)]| v.iter().map(|p| p.1).collect::<Vec<_>>();
        println!(
            "| {}σ, {}°, {} mm | {} | {} | {} | {improved}/{n_faces} | {} | {} | {} | {} | {} | {:.4} → {:.4} |",
            level.0,
            level.1,
            level.2,
            fmt(&rows_out.0),
            fmt(&rows_out.1),
            fmt(&rows_out.2),
            fmt(&above),
            fmt(&firsts(&rows_out.3)),
            fmt(&seconds(&rows_out.3)),
            fmt(&firsts(&rows_out.4)),
            fmt(&seconds(&rows_out.4)),
            result.losses.first().copied().unwrap_or(f32::NAN),
            result.losses.last().copied().unwrap_or(f32::NAN),
        );
        eprintln!("  ({:.0} s)", time.elapsed().as_secs_f64());
    }
    Ok(())
}
