//! [`LocalChatModel`]: a llama-architecture GGUF served from one worker thread.
//!
//! Lifecycle: `load` reads the GGUF, builds tokenizer and template, and
//! starts the worker thread, which owns the weights (and so the KV cache).
//! `stream` renders and tokenizes the prompt on the caller's task (cheap,
//! and it lets prompt errors surface as `Err` before any event), then queues
//! a job; the worker serves jobs one at a time, sending events through a
//! bounded channel. A dropped stream is noticed before the next token and
//! ends generation; a job whose stream was dropped while queued is skipped.
//!
//! Must not: run tensor work on the async runtime, or hold the weights
//! anywhere but the worker thread.

use std::path::Path;
use std::sync::{Arc, mpsc};

use agentry_types::{FinishReason, Usage};
use async_trait::async_trait;
use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::quantized_llama::{MAX_SEQ_LEN, ModelWeights};
use futures::StreamExt;
use tokio::sync::mpsc as tokio_mpsc;

use super::stop::{StopMatcher, StopOutcome};
use super::template::ChatTemplate;
use super::tokenizer::{ChatTokenizer, IncrementalDecoder};
use super::{LocalChatOptions, local_err, thread_pool};
use crate::LlmError;
use crate::types::{ChatModel, ChatRequest, ChatResponse, ChatStream, StreamEvent};

/// Default cap on generated tokens when the request sets no `max_tokens`.
const DEFAULT_MAX_TOKENS: usize = 512;
/// Prompt tokens fed per forward pass (bounds the attention matrix's memory).
const PREFILL_CHUNK: usize = 512;
/// Events buffered between the worker and a slow reader.
const EVENT_BUFFER: usize = 64;

type EventSender = tokio_mpsc::Sender<Result<StreamEvent, LlmError>>;

/// A GGUF chat model running in-process on the CPU.
pub struct LocalChatModel {
    jobs: mpsc::Sender<Job>,
    prompter: Arc<Prompter>,
    context_window: usize,
}

/// Everything needed to turn messages into token ids.
struct Prompter {
    tokenizer: ChatTokenizer,
    template: ChatTemplate,
}

/// Generation settings resolved from a request.
#[derive(Debug, Clone)]
struct GenParams {
    sampling: Sampling,
    seed: u64,
    max_tokens: usize,
    stop: Vec<String>,
}

struct Job {
    prompt: Vec<u32>,
    params: GenParams,
    events: EventSender,
}

impl LocalChatModel {
    /// Load a llama-architecture GGUF and start its worker thread. Slow
    /// (reads the whole file): call it from `spawn_blocking`.
    pub fn load(path: &Path, options: &LocalChatOptions) -> Result<Self, LlmError> {
        let file = std::fs::File::open(path).map_err(|e| LlmError::Local(format!("cannot open chat model {}: {e}", path.display())))?;
        let mut reader = std::io::BufReader::new(file);
        let content = gguf_file::Content::read(&mut reader).map_err(|e| LlmError::Local(format!("{} is not a readable GGUF file: {e}", path.display())))?;
        let arch = content.metadata.get("general.architecture").and_then(|v| v.to_string().ok()).cloned();
        if arch.as_deref() != Some("llama") {
            return Err(LlmError::Local(format!("{}: architecture {} is not supported (only llama-architecture GGUF files)", path.display(), arch.as_deref().unwrap_or("(none)"))));
        }
        let declared = content.metadata.get("llama.context_length").and_then(|v| v.to_u32().ok()).map(|v| v as usize);
        let context_window = declared.unwrap_or(MAX_SEQ_LEN).min(MAX_SEQ_LEN).min(options.context_window.unwrap_or(usize::MAX)).max(1);

        let tokenizer = ChatTokenizer::load(&content, path)?;
        let template = ChatTemplate::from_gguf(&content, tokenizer.bos_token.as_deref(), tokenizer.eos_token.as_deref())?;
        let pool = thread_pool(options.threads, "agentry-chat")?;
        let weights = match &pool {
            Some(pool) => pool.install(|| ModelWeights::from_gguf(content, &mut reader, &Device::Cpu)),
            None => ModelWeights::from_gguf(content, &mut reader, &Device::Cpu),
        }
        .map_err(|e| LlmError::Local(format!("cannot load weights from {}: {e}", path.display())))?;
        let prompter = Arc::new(Prompter { tokenizer, template });

        let (jobs, queue) = mpsc::channel::<Job>();
        let worker = Worker { weights, prompter: prompter.clone(), context_window };
        std::thread::Builder::new()
            .name("agentry-local-chat".into())
            .spawn(move || worker.run(queue, pool))
            .map_err(|e| LlmError::Local(format!("cannot start the chat worker thread: {e}")))?;
        tracing::info!(path = %path.display(), context_window, "local chat model loaded");
        Ok(Self { jobs, prompter, context_window })
    }

    /// Tokens the model can attend to: prompt plus completion.
    pub fn context_window(&self) -> usize {
        self.context_window
    }

    fn prepare(&self, request: &ChatRequest) -> Result<(Vec<u32>, GenParams), LlmError> {
        if request.tools.is_some() || request.tool_choice.is_some() {
            return Err(LlmError::Unsupported { message: "this local model does not support tool calling".into(), param: Some("tools".into()) });
        }
        if request.response_format.is_some() {
            return Err(LlmError::Unsupported { message: "this local model does not support response_format".into(), param: Some("response_format".into()) });
        }
        if request.messages.iter().any(|m| m.content.as_ref().is_some_and(|c| c.has_image())) {
            return Err(LlmError::Unsupported { message: "this local model does not accept images".into(), param: Some("messages".into()) });
        }
        if request.messages.is_empty() {
            return Err(LlmError::InvalidRequest { message: "messages must not be empty".into(), param: Some("messages".into()) });
        }
        let prompt_text = self.prompter.template.render(&request.messages)?;
        let prompt = self.prompter.tokenizer.encode(&prompt_text)?;
        if prompt.len() >= self.context_window {
            return Err(LlmError::InvalidRequest {
                message: format!(
                    "the prompt is {} tokens but this model's context window is {} tokens (prompt and completion); shorten the messages",
                    prompt.len(),
                    self.context_window
                ),
                param: Some("messages".into()),
            });
        }
        let remaining = self.context_window - prompt.len();
        let max_tokens = match request.max_tokens {
            Some(0) => {
                return Err(LlmError::InvalidRequest { message: "max_tokens must be at least 1".into(), param: Some("max_tokens".into()) });
            }
            Some(n) => (n as usize).min(remaining),
            None => DEFAULT_MAX_TOKENS.min(remaining),
        };
        Ok((prompt, GenParams { sampling: sampling(request)?, seed: request.seed.unwrap_or_else(rand::random), max_tokens, stop: request.stop.clone() }))
    }
}

/// Temperature when the request sets none. OpenAI's default of 1.0 makes a
/// 135M-parameter model ramble; 0.2 with top-p 0.9 is what SmolLM2's authors
/// recommend and keeps small local models on topic.
const DEFAULT_TEMPERATURE: f32 = 0.2;
/// Top-p when the request sets neither temperature nor top_p.
const DEFAULT_TOP_P: f32 = 0.9;

/// OpenAI semantics (0 means greedy) with small-model defaults: see [`DEFAULT_TEMPERATURE`].
fn sampling(request: &ChatRequest) -> Result<Sampling, LlmError> {
    let default_top_p = if request.temperature.is_none() { DEFAULT_TOP_P } else { 1.0 };
    let temperature = f64::from(request.temperature.unwrap_or(DEFAULT_TEMPERATURE));
    if !(0.0..=2.0).contains(&temperature) {
        return Err(LlmError::InvalidRequest { message: "temperature must be between 0 and 2".into(), param: Some("temperature".into()) });
    }
    let top_p = f64::from(request.top_p.unwrap_or(default_top_p));
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(LlmError::InvalidRequest { message: "top_p must be greater than 0 and at most 1".into(), param: Some("top_p".into()) });
    }
    Ok(if temperature < 1e-6 {
        Sampling::ArgMax
    } else if top_p < 1.0 {
        Sampling::TopP { p: top_p, temperature }
    } else {
        Sampling::All { temperature }
    })
}

#[async_trait]
impl ChatModel for LocalChatModel {
    fn provider(&self) -> &'static str {
        "local"
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let mut stream = self.stream(request).await?;
        let mut content = String::new();
        let mut finish_reason = None;
        let mut usage = Usage::default();
        while let Some(event) = stream.next().await {
            match event? {
                StreamEvent::Delta { content: Some(piece), .. } => content.push_str(&piece),
                StreamEvent::Delta { .. } => {}
                StreamEvent::Finish(reason) => finish_reason = Some(reason),
                StreamEvent::Usage(u) => usage = u,
            }
        }
        let finish_reason = finish_reason.ok_or_else(|| LlmError::Local("generation ended without a finish reason".into()))?;
        Ok(ChatResponse { model: request.model.clone(), content: Some(content), tool_calls: None, finish_reason, usage })
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, LlmError> {
        let (prompt, params) = self.prepare(request)?;
        let (events, receiver) = tokio_mpsc::channel(EVENT_BUFFER);
        self.jobs.send(Job { prompt, params, events }).map_err(|_| LlmError::Local("the local chat worker has stopped".into()))?;
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver)))
    }
}

/// The worker thread's state: the weights and their KV cache.
struct Worker {
    weights: ModelWeights,
    prompter: Arc<Prompter>,
    context_window: usize,
}

impl Worker {
    fn run(mut self, queue: mpsc::Receiver<Job>, pool: Option<rayon::ThreadPool>) {
        while let Ok(job) = queue.recv() {
            if job.events.is_closed() {
                continue;
            }
            let events = job.events.clone();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &pool {
                Some(pool) => pool.install(|| self.generate(&job)),
                None => self.generate(&job),
            }));
            // Free the KV cache between requests (it can be hundreds of MB).
            self.weights.clear_kv_cache();
            let error = match outcome {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => error,
                Err(_) => LlmError::Local("the local chat model panicked during generation".into()),
            };
            tracing::warn!(%error, "local generation failed");
            let _ = events.blocking_send(Err(error));
        }
        tracing::debug!("local chat worker stopped");
    }

    /// Prefill the prompt, then sample token by token, streaming text.
    fn generate(&mut self, job: &Job) -> Result<(), LlmError> {
        let tokenizer = &self.prompter.tokenizer;
        let device = Device::Cpu;
        let mut sampler = LogitsProcessor::from_sampling(job.params.seed, job.params.sampling.clone());
        let mut decoder = IncrementalDecoder::new();
        let mut stops = StopMatcher::new(&job.params.stop);
        let send = |event: StreamEvent| job.events.blocking_send(Ok(event)).is_ok();
        let delta = |text: String| text.is_empty() || send(StreamEvent::Delta { content: Some(text), tool_calls: None });

        let mut position = 0;
        let mut logits = None;
        for chunk in job.prompt.chunks(PREFILL_CHUNK) {
            if job.events.is_closed() {
                return Ok(());
            }
            let input = Tensor::new(chunk, &device).and_then(|t| t.unsqueeze(0)).map_err(local_err("prompt tensor"))?;
            logits = Some(self.weights.forward(&input, position).map_err(local_err("forward pass"))?);
            position += chunk.len();
        }
        let mut logits = logits.ok_or_else(|| LlmError::Local("empty prompt".into()))?;

        let mut completion_tokens = 0usize;
        let mut stopped_by_string = false;
        let mut finish = loop {
            if job.events.is_closed() {
                return Ok(());
            }
            let row = logits.squeeze(0).map_err(local_err("logits"))?;
            let next = sampler.sample(&row).map_err(local_err("sampling"))?;
            completion_tokens += 1;
            if tokenizer.stop_ids.contains(&next) {
                break FinishReason::Stop;
            }
            if let Some(piece) = decoder.push(tokenizer, next)? {
                match stops.push(&piece) {
                    StopOutcome::Continue(text) => {
                        if !delta(text) {
                            return Ok(());
                        }
                    }
                    StopOutcome::Stop(text) => {
                        if !delta(text) {
                            return Ok(());
                        }
                        stopped_by_string = true;
                        break FinishReason::Stop;
                    }
                }
            }
            if completion_tokens >= job.params.max_tokens || position + 1 > self.context_window {
                break FinishReason::Length;
            }
            let input = Tensor::new(&[next], &device).and_then(|t| t.unsqueeze(0)).map_err(local_err("token tensor"))?;
            logits = self.weights.forward(&input, position).map_err(local_err("forward pass"))?;
            position += 1;
        };
        // Release text held back by the decoder or the stop matcher, unless a stop string ended it.
        if !stopped_by_string {
            let mut tail = String::new();
            let mut hit_stop = false;
            if let Some(rest) = decoder.flush(tokenizer)? {
                match stops.push(&rest) {
                    StopOutcome::Continue(text) => tail.push_str(&text),
                    StopOutcome::Stop(text) => {
                        tail.push_str(&text);
                        hit_stop = true;
                        finish = FinishReason::Stop;
                    }
                }
            }
            if !hit_stop {
                tail.push_str(&stops.flush());
            }
            if !delta(tail) {
                return Ok(());
            }
        }
        let prompt_tokens = u32::try_from(job.prompt.len()).unwrap_or(u32::MAX);
        let completion = u32::try_from(completion_tokens).unwrap_or(u32::MAX);
        if send(StreamEvent::Finish(finish)) {
            send(StreamEvent::Usage(Usage::new(prompt_tokens, completion)));
        }
        Ok(())
    }
}
