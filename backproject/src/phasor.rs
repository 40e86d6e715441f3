//! Unit phasors exp(j·2π·u) of a phase `u` given in turns (cycles).
//!
//! Two flavours: an `f64` one for the exact methods (direct, separable), and a branch-free
//! `f32` polynomial one that vectorises, for the tables of the range-compressed method where
//! tens of millions of phasors are needed per image.

use std::f64::consts::TAU;

use num_complex::Complex64;

/// exp(j·2π·turns) in `f64`. The whole turns are removed first, so large phases (hundreds of
/// turns for a path of a metre at 77 GHz) keep full precision. The rest u is split into the
/// nearest k/1024 turn, read from a table, and a remainder of at most π/1024 rad, where Taylor
/// polynomials of degree 5 (sine) and 6 (cosine) truncate below 10⁻²¹: within a few units of
/// rounding of the library's sine and cosine, with a short chain of dependent operations.
#[inline]
pub(crate) fn cis_turns_f64(turns: f64) -> Complex64 {
    let scaled = (turns - round(turns)) * TABLE_LEN as f64;
    let k = round(scaled);
    let theta = (scaled - k) * (TAU / TABLE_LEN as f64);
    let t2 = theta * theta;
    let sin = theta * (1.0 + t2 * (-1.0 / 6.0 + t2 / 120.0));
    let cos = 1.0 + t2 * (-0.5 + t2 * (1.0 / 24.0 - t2 / 720.0));
    let table = CIS_TABLE.get_or_init(|| {
        (0..TABLE_LEN)
            .map(|i| {
                let (sin, cos) = (TAU * i as f64 / TABLE_LEN as f64).sin_cos();
                Complex64::new(cos, sin)
            })
            .collect()
    });
    table[(k as i64 & (TABLE_LEN as i64 - 1)) as usize] * Complex64::new(cos, sin)
}

/// Entries of the table of [`cis_turns_f64`]: exp(j·2π·i/1024).
const TABLE_LEN: usize = 1024;
static CIS_TABLE: std::sync::OnceLock<Vec<Complex64>> = std::sync::OnceLock::new();

/// x rounded to the nearest whole number (ties to even) for |x| < 2^51, without a call to
/// the library's `round` (which the baseline x86-64 target cannot inline).
#[inline(always)]
fn round(x: f64) -> f64 {
    const SHIFT: f64 = 6_755_399_441_055_744.0; // 1.5·2^52
    if x.abs() < 2_251_799_813_685_248.0 {
        (x + SHIFT) - SHIFT
    } else {
        x.round()
    }
}

/// `(cos 2πu, sin 2πu)` in `f32` for `|u| ≤ 2^20` turns, absolute error below 3·10⁻⁷ for
/// `|u| ≤ 1` (the callers pass the fractional part of an `f64` phase).
///
/// The phase is reduced to the nearest quarter turn `q/4` and a remainder `|s| ≤ 1/8` turn
/// (|θ| ≤ π/4), where Taylor polynomials of degree 9 (sine) and 10 (cosine) are exact to
/// float precision (truncation below 2·10⁻⁹); the quadrant then rotates the result by `q`
/// quarter turns. No branches, so loops over it vectorise.
#[inline(always)]
pub(crate) fn cis_turns_f32(u: f32) -> (f32, f32) {
    const TAU32: f32 = std::f32::consts::TAU;
    let q = (u * 4.0).round_ties_even();
    let theta = (u - q * 0.25) * TAU32;
    let t2 = theta * theta;
    let sin = theta
        * (1.0 + t2 * (-1.0 / 6.0 + t2 * (1.0 / 120.0 + t2 * (-1.0 / 5040.0 + t2 / 362_880.0))));
    let cos = 1.0
        + t2 * (-0.5
            + t2 * (1.0 / 24.0 + t2 * (-1.0 / 720.0 + t2 * (1.0 / 40_320.0 - t2 / 3_628_800.0))));
    // Rotate (cos, sin) by q quarter turns: q = 1 → (−sin, cos), 2 → (−cos, −sin),
    // 3 → (sin, −cos).
    let quadrant = (q as i32) & 3;
    let swap = quadrant & 1 != 0;
    let (c, s) = if swap { (sin, cos) } else { (cos, sin) };
    let negate_cos = quadrant == 1 || quadrant == 2;
    let negate_sin = quadrant >= 2;
    (
        if negate_cos { -c } else { c },
        if negate_sin { -s } else { s },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The polynomial phasor agrees with the library's `f64` sine and cosine.
        #[test]
        fn f32_phasor_matches_f64(u in -1.0f64..1.0) {
            let (c, s) = cis_turns_f32(u as f32);
            let exact = (TAU * (u as f32) as f64).sin_cos();
            prop_assert!((c as f64 - exact.1).abs() < 3e-7, "cos at {u}: {c} vs {}", exact.1);
            prop_assert!((s as f64 - exact.0).abs() < 3e-7, "sin at {u}: {s} vs {}", exact.0);
        }

        /// The polynomial `f64` phasor agrees with the library's sine and cosine to 1e-15.
        #[test]
        fn f64_phasor_matches_the_library(u in -300.0f64..300.0) {
            let z = cis_turns_f64(u);
            let (sin, cos) = (TAU * (u - u.round())).sin_cos();
            prop_assert!((z.re - cos).abs() < 1e-15 && (z.im - sin).abs() < 1e-15, "{u}: {z} vs {cos} {sin}");
        }

        /// Removing whole turns changes nothing.
        #[test]
        fn f64_phasor_is_periodic(u in -0.5f64..0.5, k in -1000i32..1000) {
            let a = cis_turns_f64(u);
            let b = cis_turns_f64(u + k as f64);
            prop_assert!((a - b).norm() < 1e-9);
            prop_assert!((a.norm() - 1.0).abs() < 1e-12);
        }
    }
}
