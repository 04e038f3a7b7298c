//! Run events and the live-run registry. Every run writes its events to an
//! append-only log numbered from 1; any number of followers read it from
//! any point (`Last-Event-ID` resumption) and wait for more. A run's log is
//! kept for the resume window after it ends, then dropped; the run's record
//! in the database outlives it.
//!
//! The log lives in this process: a client resuming a stream must reach the
//! replica that runs it (sticky sessions by run id); the run's final state
//! is in the database for every replica.
//!
//! Must not: run agents or write to the database.

use agentry_types::ToolCallStatus;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentry_types::Usage;
use futures::Stream;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// One event of a run, as streamed (`data: {"type": …}`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    /// A piece of the answer.
    Token {
        text: String,
    },
    /// A tool call starting.
    ToolCall {
        call_id: String,
        tool: String,
        arguments: Value,
        status: ToolCallStatus,
    },
    /// A tool call's outcome.
    ToolResult {
        call_id: String,
        tool: String,
        status: ToolCallStatus,
        #[serde(skip_serializing_if = "Option::is_none")]
        output: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        duration_ms: u64,
    },
    /// A source the answer cites: `index` is its number in the answer.
    Citation(Citation),
    Usage(Usage),
    /// The run succeeded.
    Done {
        run_id: String,
        agent: String,
        total_tokens: u32,
        quality_score: Option<f64>,
    },
    /// The run failed or was cancelled; nothing follows.
    Error {
        run_id: String,
        code: String,
        message: String,
    },
}

/// A cited chunk: where it is and which span of its text supports the answer.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Citation {
    pub index: usize,
    pub chunk_id: i64,
    pub document_id: String,
    pub title: String,
    pub version: i32,
    pub heading_path: Vec<String>,
    pub page: Option<i32>,
    /// Byte range in the chunk's text.
    pub span: [usize; 2],
    pub text: String,
}

/// The event log of one run in progress (or recently ended).
pub struct LiveRun {
    pub id: String,
    pub tenant_id: String,
    pub owner: String,
    pub thread_id: Option<String>,
    events: Mutex<Vec<Arc<RunEvent>>>,
    /// (events written, ended).
    progress: watch::Sender<(usize, bool)>,
    cancel: CancellationToken,
    ended_at: Mutex<Option<Instant>>,
}

impl LiveRun {
    fn new(id: String, tenant_id: String, owner: String, thread_id: Option<String>) -> Self {
        Self {
            id,
            tenant_id,
            owner,
            thread_id,
            events: Mutex::new(Vec::new()),
            progress: watch::Sender::new((0, false)),
            cancel: CancellationToken::new(),
            ended_at: Mutex::new(None),
        }
    }

    /// Append an event; wakes every follower.
    pub fn emit(&self, event: RunEvent) {
        let count = {
            let mut events = self.events.lock();
            events.push(Arc::new(event));
            events.len()
        };
        self.progress.send_modify(|p| p.0 = count);
    }

    /// No more events will come.
    pub fn end(&self) {
        *self.ended_at.lock() = Some(Instant::now());
        self.progress.send_modify(|p| p.1 = true);
    }

    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    pub fn ended(&self) -> bool {
        self.progress.borrow().1
    }

    /// Events after number `after` (0: from the start), as (number, event),
    /// then every new one until the run ends.
    pub fn follow(self: &Arc<Self>, after: usize) -> impl Stream<Item = (usize, Arc<RunEvent>)> + Send + use<> {
        let receiver = self.progress.subscribe();
        let state = (Arc::clone(self), receiver, after, std::collections::VecDeque::new());
        futures::stream::unfold(state, |(run, mut receiver, mut cursor, mut ready)| async move {
            loop {
                if let Some(item) = ready.pop_front() {
                    return Some((item, (run, receiver, cursor, ready)));
                }
                let (count, ended) = *receiver.borrow_and_update();
                if cursor < count {
                    let events = run.events.lock();
                    ready.extend(events[cursor..count].iter().enumerate().map(|(i, e)| (cursor + i + 1, Arc::clone(e))));
                    cursor = count;
                    continue;
                }
                if ended || receiver.changed().await.is_err() {
                    return None;
                }
            }
        })
    }
}

/// Live runs by id, and the threads that have a run in progress.
#[derive(Clone)]
pub struct LiveRuns {
    inner: Arc<Mutex<Registry>>,
    window: Duration,
}

#[derive(Default)]
struct Registry {
    runs: HashMap<String, Arc<LiveRun>>,
    busy_threads: HashSet<String>,
}

impl LiveRuns {
    /// `window`: how long an ended run's events stay available for resumption.
    pub fn new(window: Duration) -> Self {
        Self { inner: Arc::default(), window }
    }

    /// Register a new run; `None` when its thread already has a run in progress.
    pub fn start(&self, id: &str, tenant_id: &str, owner: &str, thread_id: Option<&str>) -> Option<Arc<LiveRun>> {
        let mut registry = self.inner.lock();
        let window = self.window;
        registry.runs.retain(|_, run| run.ended_at.lock().is_none_or(|at| at.elapsed() < window));
        if let Some(thread) = thread_id
            && !registry.busy_threads.insert(thread.to_owned())
        {
            return None;
        }
        let run = Arc::new(LiveRun::new(id.to_owned(), tenant_id.to_owned(), owner.to_owned(), thread_id.map(str::to_owned)));
        registry.runs.insert(id.to_owned(), Arc::clone(&run));
        Some(run)
    }

    /// End a run: followers finish, its thread is free again.
    pub fn finish(&self, run: &LiveRun) {
        if let Some(thread) = &run.thread_id {
            self.inner.lock().busy_threads.remove(thread);
        }
        run.end();
    }

    pub fn get(&self, id: &str) -> Option<Arc<LiveRun>> {
        self.inner.lock().runs.get(id).cloned()
    }

    pub fn thread_busy(&self, thread_id: &str) -> bool {
        self.inner.lock().busy_threads.contains(thread_id)
    }

    /// Runs still going (for shutdown).
    pub fn in_progress(&self) -> usize {
        self.inner.lock().runs.values().filter(|r| !r.ended()).count()
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn token(text: &str) -> RunEvent {
        RunEvent::Token { text: text.into() }
    }

    #[tokio::test]
    async fn followers_replay_from_any_point_and_see_new_events_until_the_end() {
        let runs = LiveRuns::new(Duration::from_secs(60));
        let run = runs.start("r1", "t", "u", Some("th")).unwrap();
        assert!(runs.start("r2", "t", "u", Some("th")).is_none(), "one run per thread at a time");
        run.emit(token("a"));
        run.emit(token("b"));
        let late = run.follow(1);
        let all = run.follow(0);
        let writer = {
            let run = Arc::clone(&run);
            let runs = runs.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                run.emit(token("c"));
                runs.finish(&run);
            })
        };
        let late: Vec<_> = late.map(|(n, e)| (n, (*e).clone())).collect().await;
        assert_eq!(late, vec![(2, token("b")), (3, token("c"))]);
        assert_eq!(all.collect::<Vec<_>>().await.len(), 3);
        writer.await.unwrap();
        assert!(runs.start("r3", "t", "u", Some("th")).is_some(), "the thread is free once the run ended");
        assert_eq!(run.follow(3).collect::<Vec<_>>().await.len(), 0);
    }
}
