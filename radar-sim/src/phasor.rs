//! The unit phasor exp(j·2π·u) of a phase u given in turns (cycles), in `f64`, for the
//! kernels' per-element tables and the back-projection's exact methods.

use std::f64::consts::TAU;

use num_complex::Complex64;

/// exp(j·2π·turns) in `f64`. The whole turns are removed first, so large phases (hundreds of
/// turns for a path of a metre at 77 GHz) keep full precision. The rest u is split into the
/// nearest k/1024 turn, read from a table, and a remainder of at most π/1024 rad, where Taylor
/// polynomials of degree 5 (sine) and 6 (cosine) truncate below 10⁻²¹: within a few units of
/// rounding of the library's sine and cosine, with a short chain of dependent operations.
#[inline]
pub fn cis_turns(turns: f64) -> Complex64 {
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

/// Entries of the table of [`cis_turns`]: exp(j·2π·i/1024).
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The polynomial `f64` phasor agrees with the library's sine and cosine to 1e-15.
        #[test]
        fn f64_phasor_matches_the_library(u in -300.0f64..300.0) {
            let z = cis_turns(u);
            let (sin, cos) = (TAU * (u - u.round())).sin_cos();
            prop_assert!((z.re - cos).abs() < 1e-15 && (z.im - sin).abs() < 1e-15, "{u}: {z} vs {cos} {sin}");
        }

        /// Removing whole turns changes nothing.
        #[test]
        fn f64_phasor_is_periodic(u in -0.5f64..0.5, k in -1000i32..1000) {
            let a = cis_turns(u);
            let b = cis_turns(u + k as f64);
            prop_assert!((a - b).norm() < 1e-9);
            prop_assert!((a.norm() - 1.0).abs() < 1e-12);
        }
    }
}
