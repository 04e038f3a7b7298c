//! File bytes: written in parts of up to 1 MiB as they arrive
//! ([`PartWriter`]), read back part by part ([`read_parts`]), so neither an
//! upload nor a download holds a whole file in memory and every replica
//! reads the same bytes. Uploads of batch input are checked line by line
//! while they stream in ([`InputCheck`]).
//!
//! Must not: decide who sees a file (the service does).

use std::collections::HashSet;

use agentry_db::Db;
use bytes::Bytes;
use futures::Stream;

use super::lines::{LineSplitter, check_line};
use super::{BatchEndpoint, Error};

/// The size of a stored part.
pub const PART_BYTES: usize = 1024 * 1024;

/// Writes a file's bytes as parts.
pub struct PartWriter {
    db: Db,
    file_id: String,
    buffer: Vec<u8>,
    seq: i32,
    bytes: i64,
}

impl PartWriter {
    pub fn new(db: Db, file_id: String) -> Self {
        Self { db, file_id, buffer: Vec::with_capacity(PART_BYTES), seq: 0, bytes: 0 }
    }

    pub fn bytes(&self) -> i64 {
        self.bytes
    }

    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), Error> {
        self.bytes += data.len() as i64;
        while !data.is_empty() {
            let room = PART_BYTES - self.buffer.len();
            let take = room.min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buffer.len() == PART_BYTES {
                self.flush().await?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Error> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.db.insert_file_part(&self.file_id, self.seq, &self.buffer).await?;
        self.seq += 1;
        self.buffer.clear();
        Ok(())
    }

    /// Store what is buffered; returns the size written.
    pub async fn finish(mut self) -> Result<i64, Error> {
        self.flush().await?;
        Ok(self.bytes)
    }
}

/// A stored file's bytes, part by part.
pub fn read_parts(db: Db, file_id: String) -> impl Stream<Item = Result<Bytes, Error>> + Send + 'static {
    futures::stream::try_unfold(0_i32, move |seq| {
        let (db, file_id) = (db.clone(), file_id.clone());
        async move { Ok(db.file_part(&file_id, seq).await?.map(|part| (Bytes::from(part), seq + 1))) }
    })
}

/// Checks batch input as it streams in: every line a request for the same
/// endpoint, `custom_id`s unique, at most `max_lines` of them.
pub struct InputCheck {
    splitter: LineSplitter,
    custom_ids: HashSet<String>,
    endpoint: Option<BatchEndpoint>,
    max_lines: usize,
}

impl InputCheck {
    pub fn new(max_lines: usize) -> Self {
        Self { splitter: LineSplitter::default(), custom_ids: HashSet::new(), endpoint: None, max_lines }
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<(), Error> {
        let lines = self.splitter.push(chunk).map_err(|e| Error::invalid(e, "file"))?;
        lines.into_iter().try_for_each(|line| self.check(line))
    }

    /// The request lines and their endpoint, once all bytes are in.
    pub fn finish(mut self) -> Result<(i64, BatchEndpoint), Error> {
        if let Some(line) = self.splitter.finish() {
            self.check(line)?;
        }
        let endpoint = self.endpoint.ok_or_else(|| Error::invalid("the file has no request lines", "file"))?;
        Ok((self.splitter.requests(), endpoint))
    }

    fn check(&mut self, line: super::lines::RawLine) -> Result<(), Error> {
        let at = |message: String| Error::invalid(format!("line {}: {message}", line.number), "file");
        if line.index as usize >= self.max_lines {
            return Err(at(format!("a batch takes at most {} requests", self.max_lines)));
        }
        let (custom_id, line_endpoint) = check_line(&line.bytes).map_err(at)?;
        match self.endpoint {
            None => self.endpoint = Some(line_endpoint),
            Some(endpoint) if endpoint != line_endpoint => {
                return Err(at(format!("'url' is {} but earlier lines call {}; one batch calls one endpoint", line_endpoint.as_str(), endpoint.as_str())));
            }
            Some(_) => {}
        }
        if self.custom_ids.contains(&custom_id) {
            return Err(at(format!("custom_id '{custom_id}' is used by an earlier line; each must be unique")));
        }
        self.custom_ids.insert(custom_id);
        Ok(())
    }
}
