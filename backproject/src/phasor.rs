//! Unit phasors exp(j·2π·u) of a phase `u` given in turns (cycles).
//!
//! Two flavours: the simulator's `f64` one ([`radar_sim::cis_turns`]) for the exact methods
//! (direct, separable) and the sparse projection, and a branch-free `f32` polynomial one that
//! vectorises, for the tables of the range-compressed method where tens of millions of phasors
//! are needed per image.

pub(crate) use radar_sim::cis_turns as cis_turns_f64;

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
    use std::f64::consts::TAU;

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
    }
}
