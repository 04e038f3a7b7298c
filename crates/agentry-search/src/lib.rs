//! The knowledge engine's retrieval core: parsing documents into sections,
//! token-aware chunking, the embedded keyword + vector index with filters
//! applied inside each search, weighted reciprocal-rank fusion, and
//! retrieval-quality evaluation on BEIR-layout datasets; the same index API
//! on PostgreSQL (full text + pgvector) for scale-out deployments.
//!
//! Must not: touch the application's tables (the PostgreSQL index keeps its
//! own search table), embed text (callers pass vectors) or decide
//! permissions (callers pass the reader's principals).

pub mod chunk;
pub mod eval;
pub mod hybrid;
pub mod index;
pub mod parse;
