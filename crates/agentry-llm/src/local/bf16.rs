//! bf16 matrix products for the BERT encoder's dense layers on CPUs with
//! AVX-512 BF16 (`vdpbf16ps`: 32 multiply-adds per instruction, twice an
//! f32 FMA's), accumulating in f32.
//!
//! Why hand-written: the embedder's throughput decides ingestion speed, and
//! on the f32 `gemm` crate it was bound by the multiply-adds themselves; no
//! maintained crate offers a bf16 dot-product GEMM on stable Rust (`gemm`'s
//! f16 path converts to f32 first). The kernel is the textbook one: weights
//! packed once at load into panels of 16 outputs × one pair of inputs per
//! 512-bit vector; activations rounded to bf16 per call (round to nearest
//! even, as the weights); an 8-row × 32-output register tile per step with
//! the input pair broadcast to all lanes. Column blocks run in parallel on
//! the rayon pool; each adds into the destination, which the caller has
//! filled with the bias (and residual).
//!
//! Accuracy: inputs and weights keep 8 significant bits, sums keep f32. On
//! all-MiniLM-L6-v2 the pooled, normalised vectors stay within cosine
//! 0.9999 of sentence-transformers' f32 ones (pinned by the local-model
//! tests).
//!
//! `unsafe`: the intrinsics need it, and the tile works on raw pointers so
//! that column blocks of one destination can be written from several
//! threads; every pointer offset is derived from sizes asserted in
//! [`PackedWeights::forward`].
//!
//! Must not: be used where [`PackedWeights::pack`] said no (no AVX-512 BF16,
//! or a shape the tile does not cover): the caller falls back to f32.
#![allow(unsafe_code)]

use rayon::prelude::*;

/// Rows per register tile.
const ROWS: usize = 8;
/// Outputs per register tile (two 16-lane vectors).
const COLUMNS: usize = 32;
/// Rows whose inputs every column block reads before the next rows (a
/// band of 1536-wide inputs is 768 KiB as bf16, within L2).
const BAND_ROWS: usize = 256;

/// A dense layer's weights (outputs × inputs, PyTorch layout) rounded to
/// bf16 and packed for the kernel.
pub(super) struct PackedWeights {
    /// Per block of 16 outputs, per input pair, 16 lanes × 2 bf16 (as bits).
    panels: Vec<u16>,
    inputs: usize,
    outputs: usize,
}

/// f32 → bf16 bits, rounding to nearest even (what `vcvtne2ps2bf16` does for finite values).
fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounding = 0x7FFF + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

/// Whether this CPU runs the kernel.
pub(super) fn available() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
}

/// A destination shared by tasks that write disjoint column ranges of it.
#[derive(Clone, Copy)]
struct Destination(*mut f32);
// SAFETY: tasks write disjoint columns (one column block each) and the
// owning slice outlives the parallel loop that uses this.
unsafe impl Send for Destination {}
unsafe impl Sync for Destination {}

impl PackedWeights {
    /// Pack `weight` (outputs × inputs, row-major); `None` when this CPU
    /// lacks AVX-512 BF16 or the shape does not fit the tile.
    pub(super) fn pack(weight: &[f32], inputs: usize, outputs: usize) -> Option<Self> {
        if !available() || inputs == 0 || !inputs.is_multiple_of(2) || !outputs.is_multiple_of(COLUMNS) || weight.len() != inputs * outputs {
            return None;
        }
        let pairs = inputs / 2;
        let mut panels = vec![0u16; inputs * outputs];
        for block in 0..outputs / 16 {
            for pair in 0..pairs {
                for lane in 0..16 {
                    let row = &weight[(block * 16 + lane) * inputs..][..inputs];
                    let at = (block * pairs + pair) * 32 + lane * 2;
                    panels[at] = to_bf16(row[2 * pair]);
                    panels[at + 1] = to_bf16(row[2 * pair + 1]);
                }
            }
        }
        Some(Self { panels, inputs, outputs })
    }

    /// `out += input·Wᵀ` for `rows` rows (`out` already holds the bias and any residual).
    pub(super) fn forward(&self, input: &[f32], rows: usize, out: &mut [f32]) {
        assert_eq!(input.len(), rows * self.inputs, "dense input size");
        assert_eq!(out.len(), rows * self.outputs, "dense output size");
        if rows == 0 {
            return;
        }
        let pairs = self.inputs / 2;
        // Input pairs as u32 (two bf16), rows padded to a whole tile with zeros.
        let padded_rows = rows.div_ceil(ROWS) * ROWS;
        let mut packed_input = vec![0u32; padded_rows * pairs];
        packed_input[..rows * pairs].par_chunks_mut(pairs).zip(input.par_chunks(self.inputs)).for_each(|(to, from)| round_pairs(from, to));

        let destination = Destination(out.as_mut_ptr());
        let (outputs, panels, packed_input) = (self.outputs, &self.panels, &packed_input);
        // Row bands small enough that a band's inputs stay in cache while every column block reads them.
        for band in (0..padded_rows).step_by(BAND_ROWS) {
            (0..outputs / COLUMNS).into_par_iter().for_each(move |block| {
                let destination = destination;
                let weights = &panels[block * 2 * pairs * 32..][..2 * pairs * 32];
                for first_row in (band..padded_rows.min(band + BAND_ROWS)).step_by(ROWS) {
                    let tile_input = &packed_input[first_row * pairs..][..ROWS * pairs];
                    let valid_rows = (rows - first_row.min(rows)).min(ROWS);
                    // SAFETY: the CPU has AVX-512 BF16 (`pack` checked); `tile_input`
                    // holds ROWS rows of `pairs` values and `weights` two panels of
                    // `pairs` × 32 bf16 (sliced above, so in bounds); the destination
                    // rows first_row..first_row+valid_rows are < rows and columns
                    // block*32..+32 are < outputs, inside `out` (asserted above), and
                    // no other task writes these columns.
                    unsafe {
                        tile(tile_input.as_ptr(), pairs, weights.as_ptr(), destination.0.add(first_row * outputs + block * COLUMNS), outputs, valid_rows);
                    }
                }
            });
        }
    }
}

/// Round one row to bf16 pairs.
fn round_pairs(from: &[f32], to: &mut [u32]) {
    for (pair, value) in from.chunks_exact(2).zip(to) {
        *value = u32::from(to_bf16(pair[0])) | (u32::from(to_bf16(pair[1])) << 16);
    }
}

/// One 8 × 32 tile: `c[r][0..32] += Σ_p a[r][p] · b[p]` over all input pairs.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tile(a: *const u32, pairs: usize, b: *const u16, c: *mut f32, ldc: usize, valid_rows: usize) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
    let second = unsafe { b.add(pairs * 32) };
    for p in 0..pairs {
        // SAFETY (this block): offsets stay within the slices `forward` passed.
        unsafe {
            let w0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(p * 32).cast()));
            let w1: __m512bh = std::mem::transmute(_mm512_loadu_si512(second.add(p * 32).cast()));
            for (r, row_acc) in acc.iter_mut().enumerate() {
                let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(r * pairs + p) as i32));
                row_acc[0] = _mm512_dpbf16_ps(row_acc[0], x, w0);
                row_acc[1] = _mm512_dpbf16_ps(row_acc[1], x, w1);
            }
        }
    }
    for (r, row_acc) in acc.iter().enumerate().take(valid_rows) {
        // SAFETY: row r < valid_rows of the destination tile, 32 columns wide.
        unsafe {
            let row = c.add(r * ldc);
            _mm512_storeu_ps(row, _mm512_add_ps(_mm512_loadu_ps(row), row_acc[0]));
            _mm512_storeu_ps(row.add(16), _mm512_add_ps(_mm512_loadu_ps(row.add(16)), row_acc[1]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3F80);
        // 1 + 2^-8 is halfway between two bf16 values: ties go to the even one (1.0).
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3F80);
        assert_eq!(to_bf16(1.0 + 3.0 / 256.0), 0x3F82);
        assert_eq!(to_bf16(-2.5), 0xC020);
    }

    #[test]
    fn products_match_f32_within_bf16_precision() {
        let Some(probe) = PackedWeights::pack(&[0.0; 64], 2, 32) else {
            assert!(!available(), "pack refused a fitting shape on a CPU that has the instructions");
            return;
        };
        drop(probe);
        let (rows, inputs, outputs) = (13, 70, 64);
        let value = |i: usize, salt: usize| (((i * 7919 + salt * 104_729) % 2003) as f32 / 1001.0) - 1.0;
        let weight: Vec<f32> = (0..inputs * outputs).map(|i| value(i, 1)).collect();
        let input: Vec<f32> = (0..rows * inputs).map(|i| value(i, 2)).collect();
        let packed = PackedWeights::pack(&weight, inputs, outputs).unwrap_or_else(|| panic!("fits"));
        let mut out = vec![0.5f32; rows * outputs];
        packed.forward(&input, rows, &mut out);
        for r in 0..rows {
            for o in 0..outputs {
                let exact: f32 = 0.5 + (0..inputs).map(|k| input[r * inputs + k] * weight[o * inputs + k]).sum::<f32>();
                let magnitude: f32 = (0..inputs).map(|k| (input[r * inputs + k] * weight[o * inputs + k]).abs()).sum();
                let got = out[r * outputs + o];
                assert!((got - exact).abs() <= 0.01 * magnitude + 1e-6, "row {r} output {o}: {got} vs {exact}");
            }
        }
        assert!(PackedWeights::pack(&weight[..inputs * 48], inputs, 48).is_none(), "48 outputs do not fill whole tiles");
    }
}
