//! Where a parse runs. The readers of binary containers (PDF through
//! lopdf and pdf-extract, DOCX through zip and quick-xml) are large
//! third-party code fed hostile bytes; the budget and the PDF guard bound
//! what they are known to spend, and this module bounds what they
//! actually spend: with [`Parser::Isolated`] such a document is parsed in
//! a child process (`agentry parse-worker`, see [`super::worker`]) that
//! caps its own memory and CPU time, so a reader that still blows up
//! takes one child down, never the server. Text formats, whose parsers
//! are linear and charged per output byte, parse on a blocking thread.
//!
//! Must not: decide limits (they are the operator's [`Limits`]) or
//! trust the child: its reply is read within the text budget and a
//! header cap, and a child that dies is classified by how it died.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use super::worker::{MAX_REPLY_LINE, Reply, Request, WORKER_COMMAND};
use super::{Format, Limit, Limits, ParseError, Parsed, parse_with_limits};

/// The most of a worker's standard error kept to classify its death.
const MAX_STDERR: u64 = 64 * 1024;
/// Time a worker gets beyond its own deadline to start and reply.
const GRACE: Duration = Duration::from_secs(5);

/// How documents are parsed.
#[derive(Debug, Clone, Default)]
pub enum Parser {
    /// On a blocking thread of this process (libraries and tests).
    #[default]
    InProcess,
    /// PDF and DOCX in a child process running `program parse-worker`
    /// (the server: `program` is its own executable), at most as many at
    /// once as `slots` has permits.
    Isolated { program: PathBuf, slots: Arc<Semaphore> },
}

/// Why a parse gave no text.
#[derive(Debug, thiserror::Error)]
pub enum ParseFailure {
    /// The document's fault: deterministic, never worth retrying.
    #[error(transparent)]
    Document(#[from] ParseError),
    /// The machine's: no worker could be started or it broke the protocol.
    #[error("the document parser could not run: {0}")]
    Worker(String),
}

impl Parser {
    /// Children running `program parse-worker`, at most `concurrency` at
    /// once (uploads and agents' fetches share them).
    pub fn isolated(program: PathBuf, concurrency: usize) -> Self {
        Parser::Isolated { program, slots: Arc::new(Semaphore::new(concurrency.max(1))) }
    }

    /// Parse `bytes` as `format` within `limits`, in this process or a
    /// child as this parser says.
    pub async fn parse(&self, bytes: Vec<u8>, format: Format, limits: Limits) -> Result<Parsed, ParseFailure> {
        match self {
            Parser::Isolated { program, slots } if matches!(format, Format::Pdf | Format::Docx) => {
                let _slot = slots.acquire().await.map_err(|e| ParseFailure::Worker(e.to_string()))?;
                parse_in_child(program, bytes, format, limits).await
            }
            _ => tokio::task::spawn_blocking(move || parse_with_limits(&bytes, format, &limits))
                .await
                .map_err(|e| ParseFailure::Worker(format!("parsing task: {e}")))?
                .map_err(ParseFailure::Document),
        }
    }
}

impl Parser {
    /// Whether an isolated parser's program answers as a parse worker (a
    /// one-line text document, parsed in a child): checked at start-up so
    /// a wrong program fails there, not on the first PDF.
    pub async fn check(&self) -> Result<(), ParseFailure> {
        let Parser::Isolated { program, .. } = self else { return Ok(()) };
        let parsed = parse_in_child(program, b"parse worker check".to_vec(), Format::Text, Limits::default()).await?;
        match parsed.sections.first() {
            Some(section) if section.text.trim() == "parse worker check" => Ok(()),
            _ => Err(ParseFailure::Worker(format!("{} {WORKER_COMMAND} did not echo its check document", program.display()))),
        }
    }
}

async fn parse_in_child(program: &std::path::Path, bytes: Vec<u8>, format: Format, limits: Limits) -> Result<Parsed, ParseFailure> {
    let mut child = tokio::process::Command::new(program)
        .arg(WORKER_COMMAND)
        .env_clear()
        // mimalloc would otherwise reserve a 1 GiB arena before the worker
        // caps its address space, and that arena would stay usable.
        .env("MIMALLOC_ARENA_RESERVE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ParseFailure::Worker(format!("cannot start {} {WORKER_COMMAND}: {e}", program.display())))?;
    let (Some(mut stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take()) else {
        return Err(ParseFailure::Worker("the parse worker has no pipes".into()));
    };
    let text_limit = limits.text_limit(bytes.len());
    let reply_too_large = ParseError::TooLarge { what: "its headings and text".into(), limit: Limit::Bytes(text_limit) };
    let request = Request { format, limits, input_bytes: bytes.len() as u64 };
    let mut line = serde_json::to_vec(&request).map_err(|e| ParseFailure::Worker(e.to_string()))?;
    line.push(b'\n');
    let exchange = async {
        // A worker that dies while reading leaves a broken pipe; how it died says why.
        let send = async {
            let _ = stdin.write_all(&line).await;
            let _ = stdin.write_all(&bytes).await;
            drop(stdin);
        };
        let ((), reply, errors) = tokio::join!(send, read_reply(stdout, text_limit), read_stderr(stderr));
        let status = child.wait().await;
        (reply, errors, status)
    };
    let deadline = Duration::from_secs(limits.max_parse_secs).saturating_add(GRACE);
    let Ok((reply, errors, status)) = tokio::time::timeout(deadline, exchange).await else {
        return Err(out_of_time(&limits).into());
    };
    let status = status.map_err(|e| ParseFailure::Worker(format!("waiting for the parse worker: {e}")))?;
    match reply {
        Ok(parsed) if status.success() => parsed.map_err(ParseFailure::Document),
        // The worker refuses a reply over the caps itself; one that sends it anyway was made to.
        Err(ReplyError::OverBudget) => Err(reply_too_large.into()),
        Ok(_) | Err(ReplyError::Broken(_)) => Err(died(status, &errors, &limits, reply.err().map(|e| e.to_string()))),
    }
}

#[derive(Debug, thiserror::Error)]
enum ReplyError {
    /// A reply line longer than the cap or text over the budget.
    #[error("the reply is over the budget")]
    OverBudget,
    #[error("{0}")]
    Broken(String),
}

/// Read a worker's reply: the line, then exactly the texts it announces,
/// never more than `text_limit` bytes of them.
async fn read_reply(stdout: tokio::process::ChildStdout, text_limit: u64) -> Result<Result<Parsed, ParseError>, ReplyError> {
    let broken = |e: std::io::Error| ReplyError::Broken(e.to_string());
    let mut reader = tokio::io::BufReader::new(stdout);
    let mut line = Vec::new();
    (&mut reader).take(MAX_REPLY_LINE).read_until(b'\n', &mut line).await.map_err(broken)?;
    if line.last() != Some(&b'\n') {
        return Err(if line.len() as u64 == MAX_REPLY_LINE { ReplyError::OverBudget } else { ReplyError::Broken("no reply".into()) });
    }
    let (title, heads) = match serde_json::from_slice(&line).map_err(|e| ReplyError::Broken(format!("bad reply: {e}")))? {
        Reply::Failed(error) => return Ok(Err(error)),
        Reply::Parsed { title, sections } => (title, sections),
    };
    let total = heads.iter().try_fold(0u64, |sum, head| sum.checked_add(head.text_bytes));
    if total.is_none_or(|total| total > text_limit) {
        return Err(ReplyError::OverBudget);
    }
    let mut sections = Vec::with_capacity(heads.len());
    for head in heads {
        let mut text = Vec::with_capacity(head.text_bytes as usize);
        (&mut reader).take(head.text_bytes).read_to_end(&mut text).await.map_err(broken)?;
        if text.len() as u64 != head.text_bytes {
            return Err(ReplyError::Broken("the reply ended early".into()));
        }
        let text = String::from_utf8(text).map_err(|_| ReplyError::Broken("the reply's text is not UTF-8".into()))?;
        sections.push(head.into_section(text));
    }
    Ok(Ok(Parsed { title, sections }))
}

async fn read_stderr(stderr: tokio::process::ChildStderr) -> String {
    let mut kept = Vec::new();
    let mut reader = stderr;
    let _ = (&mut reader).take(MAX_STDERR).read_to_end(&mut kept).await;
    // Drain the rest so a chatty worker never blocks on a full pipe.
    let _ = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
    String::from_utf8_lossy(&kept).into_owned()
}

fn out_of_time(limits: &Limits) -> ParseError {
    ParseError::TooLarge { what: "the time it takes to parse".into(), limit: Limit::Seconds(limits.max_parse_secs) }
}

/// Why a worker gave no usable reply, from its exit and its last words.
fn died(status: std::process::ExitStatus, errors: &str, limits: &Limits, protocol: Option<String>) -> ParseFailure {
    if errors.contains("memory allocation of") {
        return ParseError::TooLarge { what: "the memory it takes to parse".into(), limit: Limit::Bytes(limits.max_parse_memory_mib.saturating_mul(1024 * 1024)) }.into();
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        match status.signal() {
            Some(libc::SIGXCPU | libc::SIGKILL) => return out_of_time(limits).into(),
            Some(signal) => {
                tracing::warn!(signal, stderr = errors.trim(), "a parse worker died on a document");
                return ParseError::Malformed("the document reader failed on this file".into()).into();
            }
            None => {}
        }
    }
    let detail = protocol.unwrap_or_default();
    ParseFailure::Worker(format!("the parse worker exited with {status}: {} {detail}", errors.trim()))
}

#[cfg(all(test, unix))]
#[path = "isolated_tests.rs"]
mod tests;
