//! The expression model: localised facial actions with random amplitudes, reduced by PCA.
//!
//! Each [`FacialAction`] is a smooth displacement field on the template (mm) at one standard
//! deviation of its activation: jaw opening and sideways shift, smiles, brow raising and
//! lowering, pucker, cheek puff, eye closing, lip press, mouth stretch and nose wrinkle. The
//! activations a are zero-mean Gaussian with unit variances and a few correlations (the two
//! sides of a smile or a blink move together), so the displacement D·a has covariance
//! D Σ Dᵀ. Its principal components are computed exactly from that covariance: with Σ = L Lᵀ,
//! the eigenpairs (λ_k, w_k) of (D L)ᵀ(D L) give the scaled components D L w_k — the limit of
//! sampling many random expressions and running PCA on them, without the sampling noise. The
//! expression mean is zero: the template has a neutral expression.
//!
//! Left and right are the subject's: +x is the subject's left.

use nalgebra::{DMatrix, Point3, Vector3};

use super::gp::{normalise_sign, sorted_eigen, transpose_times};
use super::template::{EYE_X, EYE_Y, MOUTH_HALF_WIDTH, MOUTH_Y};
use crate::{MorphableError, PcaBlock, Result};

/// The facial actions the expression model is built from, each a displacement field at one
/// standard deviation of activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FacialAction {
    /// The jaw rotates open by 0.09 rad (5°) about a hinge 85 mm behind the face: the chin
    /// moves ~10 mm down and ~7 mm back.
    JawOpen,
    /// The jaw shifts 4 mm toward the subject's left.
    JawSideways,
    /// The left mouth corner moves up, out and back; the left cheek rises.
    SmileLeft,
    /// The mirror image of [`FacialAction::SmileLeft`].
    SmileRight,
    /// Brows and forehead move 7 mm up.
    BrowRaise,
    /// The inner brows move down and toward each other (frown).
    BrowLower,
    /// The lips push 8 mm forward and gather toward the midline.
    Pucker,
    /// Both cheeks bulge 6 mm out.
    CheekPuff,
    /// The left upper lid moves 5 mm down.
    EyeCloseLeft,
    /// The mirror image of [`FacialAction::EyeCloseLeft`].
    EyeCloseRight,
    /// The lips press together and back.
    LipPress,
    /// Both mouth corners pull outward.
    MouthStretch,
    /// The skin beside the nose wrinkles up.
    NoseWrinkle,
}

impl FacialAction {
    /// Every action, in the order of the activation vector.
    pub(crate) const ALL: [FacialAction; 13] = [
        FacialAction::JawOpen,
        FacialAction::JawSideways,
        FacialAction::SmileLeft,
        FacialAction::SmileRight,
        FacialAction::BrowRaise,
        FacialAction::BrowLower,
        FacialAction::Pucker,
        FacialAction::CheekPuff,
        FacialAction::EyeCloseLeft,
        FacialAction::EyeCloseRight,
        FacialAction::LipPress,
        FacialAction::MouthStretch,
        FacialAction::NoseWrinkle,
    ];

    /// Correlations between activations; unlisted pairs are independent.
    const CORRELATIONS: [(FacialAction, FacialAction, f64); 3] = [
        (FacialAction::SmileLeft, FacialAction::SmileRight, 0.7),
        (FacialAction::EyeCloseLeft, FacialAction::EyeCloseRight, 0.8),
        (FacialAction::JawOpen, FacialAction::MouthStretch, 0.3),
    ];

    /// Position in [`FacialAction::ALL`] (the declaration order).
    fn index(self) -> usize {
        self as usize
    }

    /// The displacement (mm) of template point `p` at one standard deviation.
    fn displacement(self, p: &Point3<f64>) -> Vector3<f64> {
        let (x, y) = (p.x, p.y);
        match self {
            FacialAction::JawOpen => {
                // Linearised rotation about the x axis through the jaw hinge.
                let (hinge_y, hinge_z, angle) = (5.0, 20.0, 0.09);
                Vector3::new(0.0, -(p.z - hinge_z), y - hinge_y) * (angle * jaw_weight(x, y))
            }
            FacialAction::JawSideways => Vector3::new(4.0, 0.0, 0.0) * jaw_weight(x, y),
            FacialAction::SmileLeft => smile_left(p),
            FacialAction::SmileRight => mirror(smile_left(&mirror_point(p))),
            FacialAction::BrowRaise => {
                let w = (-((y - 50.0) / 16.0).powi(2) - (x / 50.0).powi(4)).exp();
                Vector3::new(0.0, 7.0, 0.5) * w
            }
            FacialAction::BrowLower => {
                let w = bilateral(x, y, 18.0, 44.0, 14.0, 9.0);
                Vector3::new(-3.0 * odd_tanh(x, 8.0), -4.0, 1.5) * w
            }
            FacialAction::Pucker => {
                let w = lips_weight(x, y, 22.0, 10.0);
                Vector3::new(-0.2 * x, 0.0, 8.0) * w
            }
            FacialAction::CheekPuff => {
                let w = bilateral(x, y, 38.0, -22.0, 17.0, 17.0);
                Vector3::new(4.0 * odd_tanh(x, 10.0), 0.0, 6.0) * w
            }
            FacialAction::EyeCloseLeft => eye_close_left(p),
            FacialAction::EyeCloseRight => mirror(eye_close_left(&mirror_point(p))),
            FacialAction::LipPress => {
                let w = lips_weight(x, y, MOUTH_HALF_WIDTH, 8.0);
                Vector3::new(0.0, -0.3 * (y - MOUTH_Y), -3.0) * w
            }
            FacialAction::MouthStretch => {
                let w = bilateral(x, y, MOUTH_HALF_WIDTH, MOUTH_Y, 12.0, 10.0);
                Vector3::new(5.0 * odd_tanh(x, 12.0), -1.5, -2.0) * w
            }
            FacialAction::NoseWrinkle => {
                let w = bilateral(x, y, 13.0, 2.0, 10.0, 10.0);
                Vector3::new(0.0, 3.5, 1.5) * w
            }
        }
    }
}

fn gaussian(dx: f64, dy: f64, sx: f64, sy: f64) -> f64 {
    (-(dx / sx).powi(2) - (dy / sy).powi(2)).exp()
}

/// g(x − c) + g(x + c): a pair of mirror-image Gaussians, bit-identical under x → −x.
fn bilateral(x: f64, y: f64, cx: f64, cy: f64, sx: f64, sy: f64) -> f64 {
    gaussian(x - cx, y - cy, sx, sy) + gaussian(x + cx, y - cy, sx, sy)
}

/// sign(x)·tanh(|x|/s): odd in x, bit-exactly.
fn odd_tanh(x: f64, s: f64) -> f64 {
    (x.abs() / s).tanh().copysign(x)
}

/// A flat-topped weight over the lips, centred on the mouth line.
fn lips_weight(x: f64, y: f64, half_width: f64, half_height: f64) -> f64 {
    (-(x / half_width).powi(4) - ((y - MOUTH_Y) / half_height).powi(2)).exp()
}

fn mirror(v: Vector3<f64>) -> Vector3<f64> {
    Vector3::new(-v.x, v.y, v.z)
}

fn mirror_point(p: &Point3<f64>) -> Point3<f64> {
    Point3::new(-p.x, p.y, p.z)
}

/// How much of the jaw's motion a point follows: 1 on the lower lip and below, 0 on the
/// upper lip and above, with a transition that is sharp at the mouth and widens and drops
/// along the cheeks toward the ears.
fn jaw_weight(x: f64, y: f64) -> f64 {
    let lateral = 1.0 - (-(x / 42.0).powi(2)).exp();
    let centre = MOUTH_Y - 1.0 - 12.0 * lateral;
    let half_band = 2.5 + 10.0 * lateral;
    let u = ((centre + half_band - y) / (2.0 * half_band)).clamp(0.0, 1.0);
    let follow = u * u * (3.0 - 2.0 * u);
    // Skin near the hinge moves less.
    let v = ((x.abs() - 40.0) / 35.0).clamp(0.0, 1.0);
    follow * (1.0 - 0.5 * v * v * (3.0 - 2.0 * v))
}

fn smile_left(p: &Point3<f64>) -> Vector3<f64> {
    let corner = gaussian(p.x - MOUTH_HALF_WIDTH, p.y - MOUTH_Y, 14.0, 11.0);
    let cheek = gaussian(p.x - 36.0, p.y + 12.0, 18.0, 14.0);
    Vector3::new(5.0, 6.0, -2.5) * corner + Vector3::new(1.5, 4.0, 2.5) * cheek
}

fn eye_close_left(p: &Point3<f64>) -> Vector3<f64> {
    let lid = gaussian(p.x - EYE_X, p.y - (EYE_Y + 3.0), 11.0, 4.5);
    Vector3::new(0.0, -5.0, 1.5) * lid
}

/// The expression block: zero mean, the leading `n_components` principal components of the
/// random facial actions on the given vertices.
pub(crate) fn expression_block(vertices: &[Point3<f64>], n_components: usize) -> Result<PcaBlock> {
    let n = vertices.len();
    let actions = FacialAction::ALL;
    let j = actions.len();
    if n_components > j {
        return Err(MorphableError::Config {
            name: "n_expression",
            reason: format!("{n_components} requested, the built-in model has {j} facial actions"),
        });
    }
    // D: 3N × J, column j the field of action j.
    let d = DMatrix::from_fn(3 * n, j, |row, col| {
        actions[col].displacement(&vertices[row / 3])[row % 3]
    });
    let mut sigma = DMatrix::<f64>::identity(j, j);
    for (a, b, r) in FacialAction::CORRELATIONS {
        sigma[(a.index(), b.index())] = r;
        sigma[(b.index(), a.index())] = r;
    }
    let l = sigma
        .cholesky()
        .ok_or_else(|| {
            MorphableError::Inconsistent(
                "facial action correlations are not positive definite".into(),
            )
        })?
        .unpack();
    let dl = d * l;
    let (variances, w) = sorted_eigen(transpose_times(&dl, &dl));
    let mut variance = Vec::with_capacity(n_components);
    let mut basis = Vec::with_capacity(n_components * 3 * n);
    for (k, &v) in variances.iter().enumerate().take(n_components) {
        let mut field: Vec<f64> = (&dl * w.column(k)).iter().copied().collect();
        normalise_sign(&mut field);
        variance.push(v.max(0.0));
        basis.extend(field.iter().map(|&c| c as f32));
    }
    PcaBlock::new(vec![0.0; 3 * n], basis, variance, 0.0)
}

#[cfg(test)]
mod tests {
    use super::super::template::CHIN_Y;
    use super::*;

    #[test]
    fn paired_actions_are_mirror_images() {
        let p = Point3::new(17.0, -30.0, 110.0);
        let q = mirror_point(&p);
        for (left, right) in [
            (FacialAction::SmileLeft, FacialAction::SmileRight),
            (FacialAction::EyeCloseLeft, FacialAction::EyeCloseRight),
        ] {
            assert_eq!(left.displacement(&p), mirror(right.displacement(&q)));
        }
    }

    #[test]
    fn jaw_weight_follows_the_mouth() {
        assert!((jaw_weight(0.0, CHIN_Y) - 1.0).abs() < 1e-12);
        assert_eq!(jaw_weight(0.0, MOUTH_Y + 10.0), 0.0);
        assert_eq!(jaw_weight(0.0, EYE_Y), 0.0);
    }
}
