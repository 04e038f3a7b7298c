//! The child side of an [isolated](super::isolated) parse: `agentry
//! parse-worker` reads one request from standard input, caps its own
//! address space, CPU time, file writes and open files with `setrlimit`,
//! parses, and writes the reply to standard output. The wire types of
//! both sides live here.
//!
//! The wire is a JSON line, then raw bytes: the request line names the
//! format, the [`Limits`] and the input's length, and the input follows;
//! the reply line is the title and the sections' heading paths, pages and
//! text lengths (or the [`ParseError`]), and the sections' texts follow
//! back to back. Text goes raw rather than inside JSON so that the
//! parent can bound what it reads by the text budget itself (JSON escapes
//! could make a string six times longer). Hand-written because the
//! framing is two lines of each side and no dependency is needed.
//!
//! Must not: read any configuration or environment, open files or
//! sockets, or print anything but the reply on standard output.

use std::io::{BufRead, Read, Write};

use super::{Format, Limit, Limits, ParseError, Parsed, Section, parse_with_limits};

/// The argument that starts a worker (a hidden subcommand of `agentry`).
pub const WORKER_COMMAND: &str = "parse-worker";

/// The longest request line a worker reads (format and limits only).
const MAX_REQUEST_LINE: u64 = 4096;
/// The longest reply line (title, heading paths and text lengths): a
/// document whose headings need more fails as too large.
pub(super) const MAX_REPLY_LINE: u64 = 16 * 1024 * 1024;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Request {
    pub format: Format,
    pub limits: Limits,
    pub input_bytes: u64,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) enum Reply {
    Parsed { title: Option<String>, sections: Vec<SectionHead> },
    Failed(ParseError),
}

/// A section without its text; `text_bytes` of UTF-8 follow the reply line.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct SectionHead {
    pub heading_path: Vec<String>,
    pub page: Option<u32>,
    pub text_bytes: u64,
}

impl SectionHead {
    pub fn into_section(self, text: String) -> Section {
        Section { heading_path: self.heading_path, page: self.page, text }
    }
}

/// Run one parse as a worker process: the whole of `agentry parse-worker`.
/// Exits 0 with a reply (a parse error is a reply too); any other exit
/// means the request itself was unreadable.
pub fn run_worker() -> std::process::ExitCode {
    // A reader's panic is an answer (the document is unreadable), not news:
    // standard error is kept for what kills the process.
    std::panic::set_hook(Box::new(|_| {}));
    // When memory runs short the kernel should take a worker, not the server.
    #[cfg(target_os = "linux")]
    let _ = std::fs::write("/proc/self/oom_score_adj", "1000");
    match serve(&mut std::io::stdin().lock(), &mut std::io::stdout().lock()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("parse-worker: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve(input: &mut impl BufRead, output: &mut impl Write) -> std::io::Result<()> {
    let mut line = Vec::new();
    input.take(MAX_REQUEST_LINE).read_until(b'\n', &mut line)?;
    let request: Request = serde_json::from_slice(&line).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad request line: {e}")))?;
    confine(&request.limits)?;
    let mut bytes = Vec::new();
    input.take(request.input_bytes).read_to_end(&mut bytes)?;
    if bytes.len() as u64 != request.input_bytes {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the input ended early"));
    }
    let parsed = std::panic::catch_unwind(|| parse_with_limits(&bytes, request.format, &request.limits))
        .unwrap_or_else(|_| Err(ParseError::Malformed("the document reader failed on this file".into())));
    write_reply(output, parsed)
}

fn write_reply(output: &mut impl Write, parsed: Result<Parsed, ParseError>) -> std::io::Result<()> {
    let mut output = std::io::BufWriter::new(output);
    let (reply, texts) = match parsed {
        Ok(parsed) => {
            let (heads, texts): (Vec<_>, Vec<_>) =
                parsed.sections.into_iter().map(|s| (SectionHead { heading_path: s.heading_path, page: s.page, text_bytes: s.text.len() as u64 }, s.text)).unzip();
            (Reply::Parsed { title: parsed.title, sections: heads }, texts)
        }
        Err(error) => (Reply::Failed(error), Vec::new()),
    };
    let mut line = serde_json::to_vec(&reply)?;
    if line.len() as u64 >= MAX_REPLY_LINE {
        let error = ParseError::TooLarge { what: "its headings and text".into(), limit: Limit::Bytes(MAX_REPLY_LINE) };
        return write_reply(output.into_inner().map_err(|e| e.into_error())?, Err(error));
    }
    line.push(b'\n');
    output.write_all(&line)?;
    for text in texts {
        output.write_all(text.as_bytes())?;
    }
    output.flush()
}

/// Cap this process before it reads the document: address space
/// ([`Limits::max_parse_memory_mib`]), CPU seconds (the parse's own
/// deadline plus one; SIGXCPU, then SIGKILL a second later), no file
/// writes, no core dumps, few descriptors.
#[cfg(unix)]
fn confine(limits: &Limits) -> std::io::Result<()> {
    use rlimit::Resource;
    let memory = limits.max_parse_memory_mib.saturating_mul(1024 * 1024);
    Resource::AS.set(memory, memory)?;
    let cpu = limits.max_parse_secs.saturating_add(1);
    Resource::CPU.set(cpu, cpu.saturating_add(1))?;
    Resource::FSIZE.set(0, 0)?;
    Resource::CORE.set(0, 0)?;
    Resource::NOFILE.set(16, 16)
}

/// Platforms without `setrlimit` isolate the parse in its own process
/// only; the parent's timeout still bounds its time.
#[cfg(not(unix))]
fn confine(_limits: &Limits) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_of(parsed: Result<Parsed, ParseError>) -> Result<Reply, Box<dyn std::error::Error>> {
        let mut out = Vec::new();
        write_reply(&mut out, parsed)?;
        let line = out.split(|b| *b == b'\n').next().unwrap_or_default();
        Ok(serde_json::from_slice(line)?)
    }

    #[test]
    fn a_reply_whose_headings_escape_past_the_cap_is_a_too_large_answer() -> Result<(), Box<dyn std::error::Error>> {
        // 3 MiB of control characters: 18 MiB once JSON escapes them.
        let heading = "\u{1}".repeat(3 * 1024 * 1024);
        let parsed = Parsed { title: None, sections: vec![Section { heading_path: vec![heading], page: None, text: "x".into() }] };
        assert!(matches!(reply_of(Ok(parsed))?, Reply::Failed(ParseError::TooLarge { ref what, .. }) if what.contains("headings")));
        let small = Parsed { title: Some("T".into()), sections: vec![Section { heading_path: vec!["H".into()], page: Some(1), text: "body".into() }] };
        assert!(matches!(reply_of(Ok(small))?, Reply::Parsed { ref sections, .. } if sections[0].text_bytes == 4));
        Ok(())
    }
}
