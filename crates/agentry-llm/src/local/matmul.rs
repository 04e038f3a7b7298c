//! Matrix products on strided views for the BERT encoder ([`super::bert`]),
//! through the `gemm` crate candle itself uses.
//!
//! Strided views let a product read a matrix where it already lies: one
//! attention head's queries, keys or values are a column range of the fused
//! QKV rows, and a transposed weight matrix is the same memory read with
//! the strides swapped, so nothing is copied to feed `gemm`.
//!
//! `unsafe`: `gemm` takes raw pointers and strides; [`product`] checks that
//! every view lies inside its slice and that the shapes agree before the
//! call, which is the whole of what the call needs.
//!
//! Must not: allocate, or know about layers and heads.
#![allow(unsafe_code)]

/// A matrix inside a slice: element (r, c) at `offset + r·row_stride + c·col_stride`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Strided {
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl Strided {
    /// Rows of `cols` adjacent values, `row_stride` apart.
    pub(super) fn rows(offset: usize, rows: usize, cols: usize, row_stride: usize) -> Self {
        Self { offset, rows, cols, row_stride, col_stride: 1 }
    }

    /// The same elements read as the transpose.
    pub(super) fn transposed(self) -> Self {
        Self { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }

    /// One past the last element read (views with no element read nothing).
    fn end(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            return 0;
        }
        self.offset + (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride + 1
    }
}

/// A matrix operand: a view into a slice.
#[derive(Debug, Clone, Copy)]
pub(super) struct Operand<'a> {
    pub data: &'a [f32],
    pub view: Strided,
}

/// `dst = [dst +] scale · lhs·rhs`, adding to what `dst` holds when
/// `accumulate`; `parallel` spreads one large product over the rayon pool.
pub(super) fn product(dst: &mut [f32], at: Strided, lhs: Operand<'_>, rhs: Operand<'_>, scale: f32, accumulate: bool, parallel: bool) {
    let (Operand { data: lhs, view: left }, Operand { data: rhs, view: right }) = (lhs, rhs);
    assert!(at.rows == left.rows && at.cols == right.cols && left.cols == right.rows, "shapes {at:?} = {left:?} · {right:?}");
    assert!(at.end() <= dst.len() && left.end() <= lhs.len() && right.end() <= rhs.len(), "views inside their slices");
    if at.rows == 0 || at.cols == 0 {
        return;
    }
    let threads = rayon::current_num_threads();
    let parallelism = if parallel && threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the asserts above keep every element each view addresses
    // inside its slice; `dst` is borrowed mutably, so nothing else reads or
    // writes it during the call.
    unsafe {
        gemm::gemm(
            at.rows,
            at.cols,
            left.cols,
            dst.as_mut_ptr().add(at.offset),
            at.col_stride as isize,
            at.row_stride as isize,
            accumulate,
            lhs.as_ptr().add(left.offset),
            left.col_stride as isize,
            left.row_stride as isize,
            rhs.as_ptr().add(right.offset),
            right.col_stride as isize,
            right.row_stride as isize,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_and_transposed_views_multiply_in_place() {
        // Rows of width 5 holding a 2×2 block at column 1 and another at column 3.
        let data = [0.0, 1.0, 2.0, 5.0, 6.0, 0.0, 3.0, 4.0, 7.0, 8.0];
        let a = Strided::rows(1, 2, 2, 5);
        let b = Strided::rows(3, 2, 2, 5);
        let mut out = [1.0f32; 4];
        product(&mut out, Strided::rows(0, 2, 2, 2), Operand { data: &data, view: a }, Operand { data: &data, view: b.transposed() }, 2.0, true, false);
        // a = [[1,2],[3,4]], bᵀ = [[5,7],[6,8]]: a·bᵀ = [[17,23],[39,53]].
        assert_eq!(out, [35.0, 47.0, 79.0, 107.0]);
    }

    #[test]
    #[should_panic(expected = "views inside their slices")]
    fn a_view_past_its_slice_is_refused() {
        let data = [0.0f32; 4];
        let mut out = [0.0f32; 4];
        let operand = |view| Operand { data: &data, view };
        product(&mut out, Strided::rows(0, 2, 2, 2), operand(Strided::rows(1, 2, 2, 2)), operand(Strided::rows(0, 2, 2, 2)), 1.0, false, false);
    }
}
