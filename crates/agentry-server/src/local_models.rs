//! Start-up wiring of the in-process models: find (or pull) the files, load
//! them off the async runtime, and describe them as the built-in registry
//! entries `local-chat` and `local-embed`.

use std::sync::Arc;

use agentry_llm::local::{LocalChatModel, LocalChatOptions, LocalEmbedder};
use agentry_llm::model_files::{LocalModelPaths, PullOptions, ensure_default_models};
use agentry_llm::pricing::Price;
use agentry_llm::registry::Backend;
use agentry_llm::{ModelEntry, ModelKind};

use crate::configuration::Settings;

pub const LOCAL_CHAT: &str = "local-chat";
pub const LOCAL_EMBED: &str = "local-embed";

/// Resolve model paths: configured paths win; otherwise the pulled defaults
/// (pulled now when missing, unless offline).
pub async fn resolve_paths(settings: &Settings, show_progress: bool) -> anyhow::Result<LocalModelPaths> {
    if let (Some(chat_gguf), Some(embed_dir)) = (&settings.local.chat_model, &settings.local.embedding_model) {
        return Ok(LocalModelPaths { chat_gguf: chat_gguf.clone(), embed_dir: embed_dir.clone() });
    }
    let options = PullOptions { offline: settings.offline, show_progress };
    let mut paths = ensure_default_models(&settings.models_dir(), &options).await?;
    if let Some(chat) = &settings.local.chat_model {
        paths.chat_gguf = chat.clone();
    }
    if let Some(embed) = &settings.local.embedding_model {
        paths.embed_dir = embed.clone();
    }
    Ok(paths)
}

/// The local models' registry entries and the embedding model's tokenizer file.
pub struct Loaded {
    pub entries: Vec<ModelEntry>,
    pub embedding_tokenizer: Option<std::path::PathBuf>,
}

/// Load the local models (nothing when disabled).
pub async fn load(settings: &Settings, show_progress: bool) -> anyhow::Result<Loaded> {
    if !settings.local.enabled {
        return Ok(Loaded { entries: Vec::new(), embedding_tokenizer: None });
    }
    let paths = resolve_paths(settings, show_progress).await?;
    let embedding_tokenizer = Some(paths.embed_dir.join("tokenizer.json"));
    let options = LocalChatOptions { threads: settings.local.threads, context_window: None };
    let started = std::time::Instant::now();
    let (chat, embedder) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let chat = LocalChatModel::load(&paths.chat_gguf, &options).map_err(|e| anyhow::anyhow!("cannot load chat model {}: {e}", paths.chat_gguf.display()))?;
        let embedder = LocalEmbedder::load(&paths.embed_dir).map_err(|e| anyhow::anyhow!("cannot load embedding model {}: {e}", paths.embed_dir.display()))?;
        Ok((chat, embedder))
    })
    .await??;
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "local models loaded");
    let context_window = u32::try_from(chat.context_window()).ok();
    let entries = vec![
        ModelEntry {
            name: LOCAL_CHAT.into(),
            upstream: "local".into(),
            upstream_model: LOCAL_CHAT.into(),
            kind: ModelKind::Chat,
            context_window,
            price: Price::FREE,
            fallbacks: settings.local.chat_fallbacks.clone(),
            vision: false,
            backend: Backend::Chat(Arc::new(chat)),
        },
        ModelEntry {
            name: LOCAL_EMBED.into(),
            upstream: "local".into(),
            upstream_model: LOCAL_EMBED.into(),
            kind: ModelKind::Embedding,
            context_window: Some(256),
            price: Price::FREE,
            fallbacks: Vec::new(),
            vision: false,
            backend: Backend::Embedding(Arc::new(embedder)),
        },
    ];
    Ok(Loaded { entries, embedding_tokenizer })
}
