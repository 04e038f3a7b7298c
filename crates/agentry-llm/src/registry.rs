//! The model registry: public model names → the provider that serves them,
//! the upstream model id, context window, price and fallbacks. Built once at
//! start-up from configuration; read-only afterwards.
//!
//! Must not call models; the router does that.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::pricing::{Price, builtin_price};
use crate::providers::{ProviderConfig, ProviderHandle};
use crate::{ChatModel, Embedder};

/// What a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    #[default]
    Chat,
    Embedding,
}

/// One `[[models]]` entry of the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The public name clients send as `model`.
    pub name: String,
    /// Name of a `[[providers]]` entry.
    pub provider: String,
    /// The model id sent upstream; defaults to `name`.
    #[serde(default)]
    pub upstream_model: Option<String>,
    #[serde(default)]
    pub kind: ModelKind,
    #[serde(default)]
    pub context_window: Option<u32>,
    /// USD per 1K input tokens; defaults to the built-in price of `upstream_model`, else 0.
    #[serde(default)]
    pub input_price_per_1k: Option<f64>,
    #[serde(default)]
    pub output_price_per_1k: Option<f64>,
    /// Public names tried in order when this model fails.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// Whether the model accepts image parts (`None`: ask the provider).
    #[serde(default)]
    pub vision: Option<bool>,
}

/// The backend a registry entry calls.
#[derive(Clone)]
pub enum Backend {
    Chat(Arc<dyn ChatModel>),
    Embedding(Arc<dyn Embedder>),
}

/// One resolved model.
#[derive(Clone)]
pub struct ModelEntry {
    pub name: String,
    /// Name of the provider instance; also the circuit-breaker key.
    pub upstream: String,
    pub upstream_model: String,
    pub kind: ModelKind,
    pub context_window: Option<u32>,
    pub price: Price,
    pub fallbacks: Vec<String>,
    pub vision: bool,
    pub backend: Backend,
}

impl ModelEntry {
    /// The provider kind for metrics labels.
    pub fn provider_kind(&self) -> &'static str {
        match &self.backend {
            Backend::Chat(model) => model.provider(),
            Backend::Embedding(model) => model.provider(),
        }
    }
}

impl std::fmt::Debug for ModelEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelEntry")
            .field("name", &self.name)
            .field("upstream", &self.upstream)
            .field("upstream_model", &self.upstream_model)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Why the configuration does not make a valid registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("models[{index}] ('{model}'): provider '{provider}' is not defined in [[providers]]")]
    UnknownProvider { index: usize, model: String, provider: String },
    #[error("models[{index}]: model name '{model}' is defined twice")]
    DuplicateModel { index: usize, model: String },
    #[error("models '{model}': fallback '{fallback}' is not a defined model of the same kind")]
    BadFallback { model: String, fallback: String },
    #[error("providers[{index}]: provider name '{name}' is defined twice")]
    DuplicateProvider { index: usize, name: String },
    #[error("providers '{name}': {message}")]
    Provider { name: String, message: String },
}

/// Public name → entry.
#[derive(Debug, Default, Clone)]
pub struct ModelRegistry {
    entries: BTreeMap<String, ModelEntry>,
}

impl ModelRegistry {
    /// Build the registry from configuration plus already-loaded built-in entries
    /// (the local models), which configuration may override by name.
    pub fn build(providers: &[ProviderConfig], models: &[ModelConfig], builtins: Vec<ModelEntry>) -> Result<Self, RegistryError> {
        let mut handles: BTreeMap<&str, ProviderHandle> = BTreeMap::new();
        for (index, provider) in providers.iter().enumerate() {
            let name = provider.name();
            let handle = provider.connect().map_err(|message| RegistryError::Provider { name: name.to_owned(), message })?;
            if handles.insert(name, handle).is_some() {
                return Err(RegistryError::DuplicateProvider { index, name: name.to_owned() });
            }
        }
        let mut entries: BTreeMap<String, ModelEntry> = builtins.into_iter().map(|e| (e.name.clone(), e)).collect();
        let mut configured = std::collections::BTreeSet::new();
        for (index, model) in models.iter().enumerate() {
            if !configured.insert(model.name.clone()) {
                return Err(RegistryError::DuplicateModel { index, model: model.name.clone() });
            }
            let handle =
                handles.get(model.provider.as_str()).ok_or_else(|| RegistryError::UnknownProvider { index, model: model.name.clone(), provider: model.provider.clone() })?;
            let upstream_model = model.upstream_model.clone().unwrap_or_else(|| model.name.clone());
            let builtin = builtin_price(&model.name).or_else(|| builtin_price(&upstream_model)).unwrap_or(Price::FREE);
            let price = Price { input_per_1k: model.input_price_per_1k.unwrap_or(builtin.input_per_1k), output_per_1k: model.output_price_per_1k.unwrap_or(builtin.output_per_1k) };
            let backend = match model.kind {
                ModelKind::Chat => handle.chat().map(Backend::Chat),
                ModelKind::Embedding => handle.embedder().map(Backend::Embedding),
            }
            .ok_or_else(|| RegistryError::Provider {
                name: model.provider.clone(),
                message: format!("cannot serve '{}': this provider has no {:?} models", model.name, model.kind),
            })?;
            let vision = model.vision.unwrap_or_else(|| match &backend {
                Backend::Chat(chat) => chat.supports_vision(),
                Backend::Embedding(_) => false,
            });
            entries.insert(
                model.name.clone(),
                ModelEntry {
                    name: model.name.clone(),
                    upstream: model.provider.clone(),
                    upstream_model,
                    kind: model.kind,
                    context_window: model.context_window,
                    price,
                    fallbacks: model.fallbacks.clone(),
                    vision,
                    backend,
                },
            );
        }
        for entry in entries.values() {
            for fallback in &entry.fallbacks {
                if entries.get(fallback).is_none_or(|f| f.kind != entry.kind) || fallback == &entry.name {
                    return Err(RegistryError::BadFallback { model: entry.name.clone(), fallback: fallback.clone() });
                }
            }
        }
        Ok(Self { entries })
    }

    pub fn get(&self, name: &str) -> Option<&ModelEntry> {
        self.entries.get(name)
    }

    /// Every model, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &ModelEntry> {
        self.entries.values()
    }
}
