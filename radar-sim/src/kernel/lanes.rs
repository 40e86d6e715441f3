//! Eight f32 lanes and complex numbers of them: plain arrays with element-wise operations that
//! LLVM turns into single SIMD instructions (one AVX2 register per [`F32x8`]) inside the
//! kernel's `target_feature` functions, and into SSE pairs elsewhere.

use std::ops::{Add, AddAssign, Mul, Neg, Sub};

/// Lanes per [`F32x8`].
pub(crate) const LANES: usize = 8;

/// Eight f32 lanes, 32-byte aligned.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[repr(C, align(32))]
pub(crate) struct F32x8(pub [f32; LANES]);

impl F32x8 {
    #[inline(always)]
    pub fn splat(v: f32) -> Self {
        Self([v; LANES])
    }

    #[inline(always)]
    fn zip(self, other: Self, f: impl Fn(f32, f32) -> f32) -> Self {
        Self(std::array::from_fn(|l| f(self.0[l], other.0[l])))
    }

    #[inline(always)]
    pub fn map(self, f: impl Fn(f32) -> f32) -> Self {
        Self(self.0.map(f))
    }

    #[inline(always)]
    pub fn max(self, other: Self) -> Self {
        self.zip(other, f32::max)
    }

    #[inline(always)]
    pub fn min(self, other: Self) -> Self {
        self.zip(other, f32::min)
    }

    #[inline(always)]
    pub fn sqrt(self) -> Self {
        self.map(f32::sqrt)
    }

    #[inline(always)]
    pub fn div(self, other: Self) -> Self {
        self.zip(other, |a, b| a / b)
    }

    /// self·a + b, fused (one rounding) when `FMA`.
    #[inline(always)]
    pub fn mul_add<const FMA: bool>(self, a: Self, b: Self) -> Self {
        Self(std::array::from_fn(|l| {
            if FMA {
                self.0[l].mul_add(a.0[l], b.0[l])
            } else {
                self.0[l] * a.0[l] + b.0[l]
            }
        }))
    }

    /// The sum of the lanes, in lane order.
    #[inline(always)]
    pub fn sum(self) -> f32 {
        self.0.iter().sum()
    }
}

impl Add for F32x8 {
    type Output = Self;
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        self.zip(other, |a, b| a + b)
    }
}

impl Sub for F32x8 {
    type Output = Self;
    #[inline(always)]
    fn sub(self, other: Self) -> Self {
        self.zip(other, |a, b| a - b)
    }
}

impl Mul for F32x8 {
    type Output = Self;
    #[inline(always)]
    fn mul(self, other: Self) -> Self {
        self.zip(other, |a, b| a * b)
    }
}

impl Neg for F32x8 {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        self.map(|a| -a)
    }
}

impl AddAssign for F32x8 {
    #[inline(always)]
    fn add_assign(&mut self, other: Self) {
        *self = *self + other;
    }
}

/// Eight complex numbers, split into real and imaginary lanes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct C32x8 {
    pub re: F32x8,
    pub im: F32x8,
}

impl C32x8 {
    /// (a + jb)·(c + jd) lane-wise, with fused multiply-adds when `FMA`.
    #[inline(always)]
    pub fn mul<const FMA: bool>(self, other: Self) -> Self {
        Self {
            re: self.re.mul_add::<FMA>(other.re, -(self.im * other.im)),
            im: self.re.mul_add::<FMA>(other.im, self.im * other.re),
        }
    }

    /// Real scaling.
    #[inline(always)]
    pub fn scale(self, a: F32x8) -> Self {
        Self {
            re: self.re * a,
            im: self.im * a,
        }
    }
}

impl AddAssign for C32x8 {
    #[inline(always)]
    fn add_assign(&mut self, other: Self) {
        self.re += other.re;
        self.im += other.im;
    }
}

/// A complex multiplier c + jd kept as (c, c + d, d − c), for products with three real
/// multiplications (Gauss): (a + jb)·(c + jd) = (k − b·(c + d)) + j(k + a·(d − c)),
/// k = c·(a + b). With fused multiply-adds that is one multiply and two FMAs per product, and
/// a + b is shared by every product of the same a + jb.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Multiplier {
    c: F32x8,
    c_plus_d: F32x8,
    d_minus_c: F32x8,
}

impl Multiplier {
    #[inline(always)]
    pub fn new(p: C32x8) -> Self {
        Self {
            c: p.re,
            c_plus_d: p.re + p.im,
            d_minus_c: p.im - p.re,
        }
    }

    /// v·p, given `sum` = Re v + Im v.
    #[inline(always)]
    pub fn times<const FMA: bool>(&self, v: C32x8, sum: F32x8) -> C32x8 {
        let k = self.c * sum;
        C32x8 {
            re: (-v.im).mul_add::<FMA>(self.c_plus_d, k),
            im: v.re.mul_add::<FMA>(self.d_minus_c, k),
        }
    }
}
