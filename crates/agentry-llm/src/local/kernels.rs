//! Element-wise and per-row kernels for the BERT encoder ([`super::bert`]):
//! GELU, softmax, layer norm.
//!
//! Hand-written because the library versions are scalar: `f32::exp` and
//! libm's `erf` are calls the compiler cannot vectorise, and in the MiniLM
//! forward pass they took ~25% of the time (exact GELU's `erf` ~15%, the
//! softmax `exp` ~8%). The replacements here are branch-free polynomial
//! evaluations that LLVM vectorises under `target-cpu=x86-64-v3`:
//! - `erf`: the odd rational approximation on [-4, 4] used by Eigen and XLA
//!   (|error| < 5e-7, pinned by a test against an f64 series);
//! - `exp`: Cephes' `expf` range reduction (x = n·ln2 + r, degree-5
//!   polynomial for e^r, 2^n through the exponent bits), relative error
//!   < 2e-7 (pinned by a test).
//!
//! Sums use eight independent accumulators so they vectorise too (a single
//! float accumulator forbids reordering).
//!
//! Must not: allocate (callers own every buffer) or know the model layout.

const LANES: usize = 8;

/// erf(x), |error| < 5e-7.
#[inline(always)]
pub(super) fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2.mul_add(-2.726_142_3e-10, 2.770_681_4e-8);
    p = x2.mul_add(p, -2.101_024e-6);
    p = x2.mul_add(p, -5.692_506_4e-5);
    p = x2.mul_add(p, -7.349_906e-4);
    p = x2.mul_add(p, -2.954_6e-3);
    p = x2.mul_add(p, -1.609_603_3e-2);
    let mut q = x2.mul_add(-1.456_607_2e-5, -2.133_740_6e-4);
    q = x2.mul_add(q, -1.682_827e-3);
    q = x2.mul_add(q, -7.373_329e-3);
    q = x2.mul_add(q, -1.426_474e-2);
    x * p / q
}

/// e^x, relative error < 2e-7; 0 below -87.3 (so masked scores vanish).
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so n·ln2 is exact for the n that occur.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let clamped = x.clamp(-87.3, 88.3);
    let n = clamped.mul_add(LOG2E, 0.5).floor();
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, clamped));
    let mut p = r.mul_add(1.987_569_1e-4, 1.398_199_9e-3);
    p = r.mul_add(p, 8.333_452e-3);
    p = r.mul_add(p, 4.166_579_6e-2);
    p = r.mul_add(p, 1.666_666_5e-1);
    p = r.mul_add(p, 5e-1);
    let e_r = (p * r).mul_add(r, r) + 1.0;
    let two_n = f32::from_bits(((n as i32 + 127) as u32) << 23);
    let value = e_r * two_n;
    if x < -87.3 { 0.0 } else { value }
}

/// tanh(x) through `exp`, for the tanh-approximated GELU some BERTs use.
#[inline(always)]
fn tanh(x: f32) -> f32 {
    let e = exp(2.0 * x.clamp(-15.0, 15.0));
    (e - 1.0) / (e + 1.0)
}

/// Exact GELU in place: x · Φ(x) = ½x(1 + erf(x/√2)).
pub(super) fn gelu_erf(values: &mut [f32]) {
    for v in values {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// GELU with the tanh approximation in place.
pub(super) fn gelu_tanh(values: &mut [f32]) {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    for v in values {
        let x = *v;
        *v = 0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (0.044_715 * x * x * x + x)));
    }
}

/// ReLU in place.
pub(super) fn relu(values: &mut [f32]) {
    for v in values {
        *v = v.max(0.0);
    }
}

/// Σ values.
#[inline(always)]
fn sum(values: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (body, tail) = values.split_at(values.len() - values.len() % LANES);
    for chunk in body.chunks_exact(LANES) {
        for l in 0..LANES {
            acc[l] += chunk[l];
        }
    }
    acc.iter().sum::<f32>() + tail.iter().sum::<f32>()
}

/// The largest value (−∞ for none), in independent lanes so it vectorises.
#[inline(always)]
fn max(values: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let (body, tail) = values.split_at(values.len() - values.len() % LANES);
    for chunk in body.chunks_exact(LANES) {
        for l in 0..LANES {
            acc[l] = if chunk[l] > acc[l] { chunk[l] } else { acc[l] };
        }
    }
    acc.iter().chain(tail).copied().fold(f32::NEG_INFINITY, f32::max)
}

/// Softmax in place.
pub(super) fn softmax(values: &mut [f32]) {
    let max = max(values);
    for v in values.iter_mut() {
        *v = exp(*v - max);
    }
    let inverse = 1.0 / sum(values);
    for v in values {
        *v *= inverse;
    }
}

/// Layer norm of one row in place: (x − mean) / √(var + eps) · weight + bias,
/// with the biased variance as PyTorch computes it.
pub(super) fn layer_norm(row: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = sum(row) / n;
    let mut acc = [0f32; LANES];
    let (body, tail) = row.split_at(row.len() - row.len() % LANES);
    for chunk in body.chunks_exact(LANES) {
        for l in 0..LANES {
            let d = chunk[l] - mean;
            acc[l] = d.mul_add(d, acc[l]);
        }
    }
    let variance = (acc.iter().sum::<f32>() + tail.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>()) / n;
    let inverse = 1.0 / (variance + eps).sqrt();
    for ((x, w), b) in row.iter_mut().zip(weight).zip(bias) {
        *x = ((*x - mean) * inverse).mul_add(*w, *b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(from: f64, to: f64, steps: usize) -> impl Iterator<Item = f64> {
        (0..=steps).map(move |i| from + (to - from) * i as f64 / steps as f64)
    }

    /// erf by its Maclaurin series (converges well for |x| ≤ 3) or through
    /// erfc's continued fraction beyond, in f64: the reference.
    fn erf_reference(x: f64) -> f64 {
        if x.abs() > 3.0 {
            let z = x.abs();
            let mut fraction = 0.0;
            for k in (1..=60).rev() {
                fraction = (k as f64 / 2.0) / (z + fraction);
            }
            let erfc = (-z * z).exp() / std::f64::consts::PI.sqrt() / (z + fraction);
            return (1.0 - erfc).copysign(x);
        }
        let mut term = x;
        let mut total = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            total += term / (2 * n + 1) as f64;
        }
        total * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_is_within_5e_7() {
        let worst = grid(-6.0, 6.0, 120_000).map(|x| (f64::from(erf(x as f32)) - erf_reference(f64::from(x as f32))).abs()).fold(0.0, f64::max);
        assert!(worst < 5e-7, "max |erf error| {worst}");
    }

    #[test]
    fn exp_is_within_2e_7_relative_and_zero_far_below() {
        let worst = grid(-87.0, 88.0, 200_000)
            .map(|x| {
                let x = x as f32;
                let reference = f64::from(x).exp();
                ((f64::from(exp(x)) - reference) / reference).abs()
            })
            .fold(0.0, f64::max);
        assert!(worst < 2e-7, "max relative exp error {worst}");
        assert_eq!(exp(-1e30), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn softmax_and_layer_norm_match_the_definitions() {
        let mut values: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin() * 5.0).collect();
        let original = values.clone();
        softmax(&mut values);
        let denominator: f64 = original.iter().map(|x| f64::from(*x).exp()).sum();
        for (got, x) in values.iter().zip(&original) {
            assert!((f64::from(*got) - f64::from(*x).exp() / denominator).abs() < 1e-7);
        }

        let mut row: Vec<f32> = (0..19).map(|i| i as f32 * 1.5 - 4.0).collect();
        let weight: Vec<f32> = (0..19).map(|i| 1.0 + i as f32 * 0.1).collect();
        let bias: Vec<f32> = (0..19).map(|i| i as f32 * -0.2).collect();
        let input = row.clone();
        layer_norm(&mut row, &weight, &bias, 1e-12);
        let mean = input.iter().map(|x| f64::from(*x)).sum::<f64>() / 19.0;
        let variance = input.iter().map(|x| (f64::from(*x) - mean).powi(2)).sum::<f64>() / 19.0;
        for i in 0..19 {
            let expected = (f64::from(input[i]) - mean) / variance.sqrt() * f64::from(weight[i]) + f64::from(bias[i]);
            assert!((f64::from(row[i]) - expected).abs() < 1e-5, "{i}: {} vs {expected}", row[i]);
        }
    }

    #[test]
    fn gelu_variants_match_their_formulas() {
        for x in grid(-8.0, 8.0, 1600) {
            let exact = 0.5 * x * (1.0 + erf_reference(x / std::f64::consts::SQRT_2));
            let mut v = [x as f32];
            gelu_erf(&mut v);
            assert!((f64::from(v[0]) - exact).abs() < 1e-6, "gelu_erf({x})");
            let approximate = 0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh());
            let mut v = [x as f32];
            gelu_tanh(&mut v);
            assert!((f64::from(v[0]) - approximate).abs() < 1e-6, "gelu_tanh({x})");
        }
    }
}
