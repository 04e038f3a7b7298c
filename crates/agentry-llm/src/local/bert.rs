//! [`Encoder`]: a BERT encoder forward pass on packed rows, for the
//! sentence-embedding model.
//!
//! Hand-written instead of candle-transformers' `BertModel` because the
//! embedding floor (≥ sentence-transformers' throughput on 2 threads) was
//! missed by ~22% with it, and the time outside the matrix products was the
//! cause: ~15 tensor ops per layer, each allocating and passing over memory,
//! scalar `erf`/`exp`, and padding rows computed like real ones. Here:
//! - rows are packed: a batch holds only real tokens, one sequence after the
//!   other (every op but attention is per row, and attention runs per
//!   sequence over its own rows, which is what the padding mask computes);
//! - each layer is four matrix products (query/key/value fused into one) on
//!   the `gemm` crate candle itself uses ([`super::matmul`]), or in bf16 on
//!   CPUs with AVX-512 BF16 ([`super::bf16`], about twice the multiply-adds
//!   per cycle), with the bias and the residual pre-loaded into the
//!   destination so they cost no extra pass;
//! - attention is two matrix products per sequence and head on strided
//!   views of the fused QKV rows (scores, then scores·values), heads in
//!   parallel; per-element dot products made it half the time of a 250-token
//!   chunk's forward pass;
//! - GELU, softmax and layer norm are the vectorised kernels of
//!   [`super::kernels`], run in parallel on the rayon pool.
//!
//! Weights load from the safetensors file through candle (any float dtype,
//! `bert.` prefix or not) and are kept as plain `f32` rows.
//!
//! Must not: tokenize, pool or normalise (the caller does), or run on the
//! async runtime.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::bert::{Config, HiddenAct};
use rayon::prelude::*;

use super::bf16::PackedWeights;
use super::kernels;
use super::matmul::{self, Operand, Strided};
use crate::LlmError;

/// Elements per parallel task in element-wise passes.
const CHUNK: usize = 16 * 1024;

struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// A dense layer `y = x·Wᵀ + b`, W stored (outputs × inputs) row-major as in PyTorch.
struct Dense {
    weights: DenseWeights,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

/// A dense layer's weights in the form its kernel reads: packed bf16 when
/// this CPU runs that kernel, else the f32 rows (never both).
enum DenseWeights {
    F32(Vec<f32>),
    Bf16(PackedWeights),
}

struct Layer {
    qkv: Dense,
    attention_out: Dense,
    attention_norm: Norm,
    intermediate: Dense,
    output: Dense,
    output_norm: Norm,
}

/// The encoder's weights and shape.
pub(super) struct Encoder {
    hidden: usize,
    heads: usize,
    eps: f32,
    activation: HiddenAct,
    max_positions: usize,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type_zero: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
}

/// Named tensors of a safetensors file.
struct Weights {
    tensors: HashMap<String, Tensor>,
    prefix: &'static str,
}

impl Weights {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, LlmError> {
        let full = format!("{}{name}", self.prefix);
        let tensor = self.tensors.remove(&full).ok_or_else(|| LlmError::Local(format!("model.safetensors has no tensor `{full}`")))?;
        if tensor.dims() != shape {
            return Err(LlmError::Local(format!("tensor `{full}` has shape {:?}, the config implies {shape:?}", tensor.dims())));
        }
        tensor.to_dtype(DType::F32).and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1::<f32>()).map_err(|e| LlmError::Local(format!("tensor `{full}`: {e}")))
    }

    fn norm(&mut self, name: &str, size: usize) -> Result<Norm, LlmError> {
        Ok(Norm { weight: self.take(&format!("{name}.weight"), &[size])?, bias: self.take(&format!("{name}.bias"), &[size])? })
    }

    fn dense(&mut self, name: &str, inputs: usize, outputs: usize) -> Result<Dense, LlmError> {
        let weight = self.take(&format!("{name}.weight"), &[outputs, inputs])?;
        let bias = self.take(&format!("{name}.bias"), &[outputs])?;
        Ok(Dense::new(weight, bias, inputs, outputs))
    }

    /// Query, key and value stacked into one (3·hidden × hidden) layer.
    fn fused_qkv(&mut self, name: &str, hidden: usize) -> Result<Dense, LlmError> {
        let (mut weight, mut bias) = (Vec::with_capacity(3 * hidden * hidden), Vec::with_capacity(3 * hidden));
        for part in ["query", "key", "value"] {
            weight.extend(self.take(&format!("{name}.{part}.weight"), &[hidden, hidden])?);
            bias.extend(self.take(&format!("{name}.{part}.bias"), &[hidden])?);
        }
        Ok(Dense::new(weight, bias, hidden, 3 * hidden))
    }
}

impl Encoder {
    /// Build from a parsed config.json and the bytes of model.safetensors.
    pub(super) fn load(config: &Config, safetensors: &[u8]) -> Result<Self, LlmError> {
        let hidden = config.hidden_size;
        let heads = config.num_attention_heads;
        if heads == 0 || !hidden.is_multiple_of(heads) {
            return Err(LlmError::Local(format!("hidden_size {hidden} is not a multiple of num_attention_heads {heads}")));
        }
        let tensors = candle_core::safetensors::load_buffer(safetensors, &Device::Cpu).map_err(|e| LlmError::Local(format!("model.safetensors: {e}")))?;
        let prefix = if tensors.contains_key("embeddings.word_embeddings.weight") { "" } else { "bert." };
        let mut weights = Weights { tensors, prefix };

        let token_types = weights.take("embeddings.token_type_embeddings.weight", &[config.type_vocab_size, hidden])?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let name = format!("encoder.layer.{i}");
            layers.push(Layer {
                qkv: weights.fused_qkv(&format!("{name}.attention.self"), hidden)?,
                attention_out: weights.dense(&format!("{name}.attention.output.dense"), hidden, hidden)?,
                attention_norm: weights.norm(&format!("{name}.attention.output.LayerNorm"), hidden)?,
                intermediate: weights.dense(&format!("{name}.intermediate.dense"), hidden, config.intermediate_size)?,
                output: weights.dense(&format!("{name}.output.dense"), config.intermediate_size, hidden)?,
                output_norm: weights.norm(&format!("{name}.output.LayerNorm"), hidden)?,
            });
        }
        Ok(Self {
            hidden,
            heads,
            eps: config.layer_norm_eps as f32,
            activation: config.hidden_act,
            max_positions: config.max_position_embeddings,
            word: weights.take("embeddings.word_embeddings.weight", &[config.vocab_size, hidden])?,
            position: weights.take("embeddings.position_embeddings.weight", &[config.max_position_embeddings, hidden])?,
            token_type_zero: token_types[..hidden].to_vec(),
            embedding_norm: weights.norm("embeddings.LayerNorm", hidden)?,
            layers,
        })
    }

    /// Width of every output row.
    pub(super) fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// Final hidden states for a batch of token-id sequences (each no longer
    /// than [`Self::max_positions`]), packed: the rows of sequence 0, then
    /// those of sequence 1, …, `hidden_size` values per row.
    pub(super) fn forward(&self, sequences: &[&[u32]]) -> Result<Vec<f32>, LlmError> {
        let hidden = self.hidden;
        let vocabulary = self.word.len() / hidden;
        let lengths: Vec<usize> = sequences.iter().map(|s| s.len()).collect();
        let rows: usize = lengths.iter().sum();
        if let Some(&too_long) = lengths.iter().find(|&&l| l > self.max_positions) {
            return Err(LlmError::Local(format!("sequence of {too_long} tokens exceeds the model's {} positions", self.max_positions)));
        }

        let mut x = Vec::with_capacity(rows * hidden);
        for sequence in sequences {
            for (position, &id) in sequence.iter().enumerate() {
                let id = id as usize;
                if id >= vocabulary {
                    return Err(LlmError::Local(format!("token id {id} is outside the vocabulary of {vocabulary}")));
                }
                let word = &self.word[id * hidden..][..hidden];
                let position = &self.position[position * hidden..][..hidden];
                x.extend(word.iter().zip(position).zip(&self.token_type_zero).map(|((w, p), t)| w + p + t));
            }
        }
        self.normalise_rows(&mut x, &self.embedding_norm);

        let mut qkv = Vec::new();
        let mut per_head = Vec::new();
        let mut context = vec![0f32; rows * hidden];
        let mut attended = Vec::new();
        let mut intermediate = Vec::new();
        for layer in &self.layers {
            layer.qkv.forward(&x, rows, None, &mut qkv);
            self.attention(&qkv, &lengths, &mut context, &mut per_head);
            layer.attention_out.forward(&context, rows, Some(&x), &mut attended);
            self.normalise_rows(&mut attended, &layer.attention_norm);

            layer.intermediate.forward(&attended, rows, None, &mut intermediate);
            self.activate(&mut intermediate);
            layer.output.forward(&intermediate, rows, Some(&attended), &mut x);
            self.normalise_rows(&mut x, &layer.output_norm);
        }
        Ok(x)
    }

    fn normalise_rows(&self, rows: &mut [f32], norm: &Norm) {
        rows.par_chunks_mut(self.hidden).with_min_len(64).for_each(|row| kernels::layer_norm(row, &norm.weight, &norm.bias, self.eps));
    }

    fn activate(&self, values: &mut [f32]) {
        let kernel = match self.activation {
            HiddenAct::Gelu => kernels::gelu_erf,
            HiddenAct::GeluApproximate => kernels::gelu_tanh,
            HiddenAct::Relu => kernels::relu,
        };
        values.par_chunks_mut(CHUNK).for_each(kernel);
    }

    /// Scaled dot-product attention of every sequence over its own rows.
    /// `qkv` rows are [query | key | value]; `context` gets one row per token.
    /// Heads run in parallel, each over every sequence: two strided matrix
    /// products per (sequence, head) into a head-major buffer, then one pass
    /// interleaves the heads into `context`'s rows.
    fn attention(&self, qkv: &[f32], lengths: &[usize], context: &mut [f32], per_head: &mut Vec<f32>) {
        let hidden = self.hidden;
        let head_size = hidden / self.heads;
        let width = 3 * hidden;
        let scale = 1.0 / (head_size as f32).sqrt();
        let rows: usize = lengths.iter().sum();
        let longest = lengths.iter().copied().max().unwrap_or(0);

        per_head.clear();
        per_head.resize(self.heads * rows * head_size, 0.0);
        per_head.par_chunks_mut(rows * head_size).enumerate().for_each(|(head, out)| {
            let column = head * head_size;
            let mut scores = vec![0f32; longest * longest];
            let mut first_row = 0;
            for &length in lengths {
                let queries = Strided::rows(first_row * width + column, length, head_size, width);
                let keys = Strided::rows(first_row * width + hidden + column, length, head_size, width);
                let values = Strided::rows(first_row * width + 2 * hidden + column, length, head_size, width);
                let scored = Strided::rows(0, length, length, length);
                let (queries, keys) = (Operand { data: qkv, view: queries }, Operand { data: qkv, view: keys.transposed() });
                matmul::product(&mut scores, scored, queries, keys, scale, false, false);
                scores[..length * length].chunks_exact_mut(length).for_each(kernels::softmax);
                let target = Strided::rows(first_row * head_size, length, head_size, head_size);
                matmul::product(out, target, Operand { data: &scores, view: scored }, Operand { data: qkv, view: values }, 1.0, false, false);
                first_row += length;
            }
        });
        context.par_chunks_mut(hidden).enumerate().with_min_len(64).for_each(|(row, target)| {
            for (head, part) in target.chunks_exact_mut(head_size).enumerate() {
                part.copy_from_slice(&per_head[(head * rows + row) * head_size..][..head_size]);
            }
        });
    }
}

impl Dense {
    fn new(weight: Vec<f32>, bias: Vec<f32>, inputs: usize, outputs: usize) -> Self {
        let weights = PackedWeights::pack(&weight, inputs, outputs).map_or(DenseWeights::F32(weight), DenseWeights::Bf16);
        Self { weights, bias, inputs, outputs }
    }

    /// `out = input·Wᵀ + bias (+ residual)` for `rows` rows.
    fn forward(&self, input: &[f32], rows: usize, residual: Option<&[f32]>, out: &mut Vec<f32>) {
        assert_eq!(input.len(), rows * self.inputs, "dense input size");
        out.clear();
        out.reserve(rows * self.outputs);
        match residual {
            Some(residual) => {
                assert_eq!(residual.len(), rows * self.outputs, "residual size");
                for row in residual.chunks_exact(self.outputs) {
                    out.extend(row.iter().zip(&self.bias).map(|(r, b)| r + b));
                }
            }
            None => (0..rows).for_each(|_| out.extend_from_slice(&self.bias)),
        }
        if rows == 0 {
            return;
        }
        match &self.weights {
            DenseWeights::Bf16(packed) => packed.forward(input, rows, out),
            DenseWeights::F32(weight) => {
                // Wᵀ is the weight rows read with the strides swapped, never materialised.
                let transposed = Strided::rows(0, self.outputs, self.inputs, self.inputs).transposed();
                let at = Strided::rows(0, rows, self.outputs, self.outputs);
                let input = Operand { data: input, view: Strided::rows(0, rows, self.inputs, self.inputs) };
                matmul::product(out, at, input, Operand { data: weight, view: transposed }, 1.0, true, true);
            }
        }
    }
}
