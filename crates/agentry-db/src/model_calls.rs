//! The model-call log: one row per gateway call (model, provider, status,
//! tokens, cost, latency), written in batches off the request path by
//! [`CallLogWriter`].
//!
//! The writer never blocks a request: `record` is a non-blocking channel send;
//! when the channel is full the record is dropped and counted
//! (`model_call_log_dropped_total`) rather than slowing the gateway.

use std::time::Duration;

use sqlx::{Postgres, QueryBuilder, Sqlite};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{Db, DbError};

/// One served model call.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ModelCallRecord {
    pub id: String,
    pub request_id: String,
    pub endpoint: String,
    pub model: String,
    pub provider: String,
    pub status: String,
    pub stream: bool,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub created_at_ms: i64,
}

const COLUMNS: &str = "INSERT INTO model_calls (id, request_id, endpoint, model, provider, status, stream, input_tokens, output_tokens, cost_usd, latency_ms, ttft_ms, created_at_ms) ";

macro_rules! push_records {
    ($builder:expr, $records:expr) => {
        $builder.push_values($records, |mut row, r| {
            row.push_bind(&r.id)
                .push_bind(&r.request_id)
                .push_bind(&r.endpoint)
                .push_bind(&r.model)
                .push_bind(&r.provider)
                .push_bind(&r.status)
                .push_bind(r.stream)
                .push_bind(r.input_tokens)
                .push_bind(r.output_tokens)
                .push_bind(r.cost_usd)
                .push_bind(r.latency_ms)
                .push_bind(r.ttft_ms)
                .push_bind(r.created_at_ms);
        });
    };
}

impl Db {
    /// Insert records in one statement; duplicates (same id) are ignored so a
    /// retried flush never double-counts.
    pub async fn insert_model_calls(&self, records: &[ModelCallRecord]) -> Result<(), DbError> {
        if records.is_empty() {
            return Ok(());
        }
        match self {
            Self::Sqlite(pool) => {
                let mut builder = QueryBuilder::<Sqlite>::new(COLUMNS);
                push_records!(builder, records);
                builder.push(" ON CONFLICT (id) DO NOTHING");
                builder.build().execute(pool).await.map(drop)
            }
            Self::Postgres(pool) => {
                let mut builder = QueryBuilder::<Postgres>::new(COLUMNS);
                push_records!(builder, records);
                builder.push(" ON CONFLICT (id) DO NOTHING");
                builder.build().execute(pool).await.map(drop)
            }
        }
        .map_err(DbError::query("insert model calls"))
    }

    /// The most recent calls, newest first.
    pub async fn recent_model_calls(&self, limit: i64) -> Result<Vec<ModelCallRecord>, DbError> {
        let sql = "SELECT id, request_id, endpoint, model, provider, status, stream, input_tokens, output_tokens, cost_usd, latency_ms, ttft_ms, created_at_ms \
                   FROM model_calls ORDER BY created_at_ms DESC, id DESC LIMIT $1";
        match self {
            Self::Sqlite(pool) => sqlx::query_as(sql).bind(limit).fetch_all(pool).await,
            Self::Postgres(pool) => sqlx::query_as(sql).bind(limit).fetch_all(pool).await,
        }
        .map_err(DbError::query("list model calls"))
    }
}

/// Batches [`ModelCallRecord`]s and writes them from a background task.
#[derive(Clone)]
pub struct CallLogWriter {
    sender: mpsc::Sender<ModelCallRecord>,
}

/// Tuning of the writer.
#[derive(Debug, Clone, Copy)]
pub struct CallLogConfig {
    /// Records buffered before new ones are dropped.
    pub capacity: usize,
    /// Largest batch per INSERT.
    pub batch_size: usize,
    /// Longest a record waits before its batch is flushed: the loss window on a crash.
    pub flush_interval: Duration,
}

impl Default for CallLogConfig {
    fn default() -> Self {
        Self { capacity: 10_000, batch_size: 500, flush_interval: Duration::from_millis(500) }
    }
}

impl CallLogWriter {
    /// Start the writer task. It ends after a final flush when `stop` is
    /// cancelled or every clone of the writer is dropped; await the handle to
    /// know everything queued so far is written.
    pub fn start(db: Db, config: CallLogConfig, stop: CancellationToken) -> (Self, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(config.capacity);
        let handle = tokio::spawn(run_writer(db, receiver, config, stop));
        (Self { sender }, handle)
    }

    /// Queue a record without waiting.
    pub fn record(&self, record: ModelCallRecord) {
        if self.sender.try_send(record).is_err() {
            metrics::counter!("model_call_log_dropped_total").increment(1);
        }
    }
}

async fn run_writer(db: Db, mut receiver: mpsc::Receiver<ModelCallRecord>, config: CallLogConfig, stop: CancellationToken) {
    let mut batch = Vec::with_capacity(config.batch_size);
    loop {
        let first = tokio::select! {
            biased;
            () = stop.cancelled() => None,
            record = receiver.recv() => record,
        };
        let Some(first) = first else { break };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + config.flush_interval;
        while batch.len() < config.batch_size {
            let next = tokio::select! {
                biased;
                () = stop.cancelled() => None,
                record = tokio::time::timeout_at(deadline, receiver.recv()) => record.ok().flatten(),
            };
            match next {
                Some(record) => batch.push(record),
                None => break,
            }
        }
        flush(&db, &mut batch).await;
    }
    while let Ok(record) = receiver.try_recv() {
        batch.push(record);
        if batch.len() >= config.batch_size {
            flush(&db, &mut batch).await;
        }
    }
    flush(&db, &mut batch).await;
}

async fn flush(db: &Db, batch: &mut Vec<ModelCallRecord>) {
    if batch.is_empty() {
        return;
    }
    if let Err(error) = db.insert_model_calls(batch).await {
        tracing::error!(%error, records = batch.len(), "could not write model-call log batch");
        metrics::counter!("model_call_log_dropped_total").increment(batch.len() as u64);
    }
    batch.clear();
}
