//! The reference implementations, driven as a child process: `reference.py`
//! (run by the venv's Python) loads llama.cpp and sentence-transformers on
//! the same files and inputs, then answers one command per repetition on
//! its stdin with one JSON line on its stdout, so our repetitions and the
//! reference's can alternate.
//!
//! Must not: time anything itself (the child times its own calls), or leave
//! the child running (it is killed on drop).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{Context, bail};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::ours::ChatRun;

/// The running `reference.py`.
pub struct Reference {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Library versions, as reported by the child.
    pub versions: serde_json::Map<String, serde_json::Value>,
    /// The GGUF path of each chat label (the Q4_1 one is found by the child).
    pub paths: serde_json::Map<String, serde_json::Value>,
    /// Keeps the spec file alive while the child may read it.
    _spec: tempfile::NamedTempFile,
}

#[derive(Deserialize)]
struct Ready {
    versions: serde_json::Map<String, serde_json::Value>,
    paths: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct EmbedReply {
    seconds: f64,
}

#[derive(Deserialize)]
struct VectorsReply {
    vectors: Vec<Vec<f32>>,
}

/// One llama.cpp repetition over all prompts.
#[derive(Deserialize)]
pub struct ChatReply {
    pub runs: Vec<ChatRun>,
    /// llama.cpp's own eval timers, when the bindings expose them.
    pub internal: Option<Internal>,
}

/// llama.cpp's own eval timers over one repetition (no Python overhead).
#[derive(Deserialize, Clone, Copy)]
pub struct Internal {
    pub prompt_ms: f64,
    pub prompt_tokens: f64,
    pub eval_ms: f64,
    pub eval_tokens: f64,
}

impl Reference {
    /// Start `python reference.py SPEC` and wait until every model is loaded
    /// and warmed up (its progress goes to our stderr).
    pub fn start(python: &Path, spec: &serde_json::Value) -> anyhow::Result<Self> {
        let mut file = tempfile::NamedTempFile::new().context("temp file for the reference spec")?;
        serde_json::to_writer(&mut file, spec)?;
        file.flush()?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference.py");
        eprintln!("starting the reference: {} {}", python.display(), script.display());
        let mut child = Command::new(python)
            .arg(&script)
            .arg(file.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("run {}", python.display()))?;
        let stdin = child.stdin.take().context("child stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("child stdout")?);
        let mut me = Self { child, stdin, stdout, versions: Default::default(), paths: Default::default(), _spec: file };
        let ready: Ready = me.read().context("reference.py did not start")?;
        me.versions = ready.versions;
        me.paths = ready.paths;
        Ok(me)
    }

    fn read<T: DeserializeOwned>(&mut self) -> anyhow::Result<T> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            let status = self.child.wait()?;
            bail!("reference.py exited ({status}); see its messages above");
        }
        serde_json::from_str(&line).context("reference.py answer")
    }

    fn ask<T: DeserializeOwned>(&mut self, command: &str) -> anyhow::Result<T> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        self.read()
    }

    /// Seconds to embed every sentence once.
    pub fn embed(&mut self) -> anyhow::Result<f64> {
        Ok(self.ask::<EmbedReply>("embed")?.seconds)
    }

    /// The vectors of the last `embed`, in sentence order.
    pub fn vectors(&mut self) -> anyhow::Result<Vec<Vec<f32>>> {
        Ok(self.ask::<VectorsReply>("vectors")?.vectors)
    }

    /// Every prompt once on the `label` GGUF, generating `counts[i]` tokens for prompt i.
    pub fn chat(&mut self, label: &str, counts: &[usize]) -> anyhow::Result<ChatReply> {
        let counts: Vec<String> = counts.iter().map(ToString::to_string).collect();
        self.ask(&format!("chat {label} {}", counts.join(",")))
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
