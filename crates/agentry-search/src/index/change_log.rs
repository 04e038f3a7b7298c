//! The embedded index's change log: what [`super::embedded::EmbeddedIndex`]
//! changed in its vector graph and filter attributes since they were last
//! written out whole. Each commit appends its changes as JSON lines and
//! syncs the file, so a commit costs the size of its own changes; the
//! whole graph is written (a checkpoint) only every
//! [`CHECKPOINT_RECORDS`] changes, and the log emptied after. Opening
//! replays the log over the last checkpoint. Replaying is idempotent (an
//! add replaces the key, a remove of a missing key does nothing), so a crash
//! between a checkpoint and emptying the log is harmless; a torn last line
//! (a crash mid-append) is ignored: that commit never returned, so the
//! ingestion job that made it runs again.
//!
//! Must not: know about tantivy (it commits on its own) or decide when to commit.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Entry, IndexError};

/// Changes the log holds before the graph is written out whole.
pub(super) const CHECKPOINT_RECORDS: usize = 20_000;

/// One change to the vector side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub(super) enum Change {
    Add { key: u64, entry: Entry, vector: Vec<f32> },
    Remove { keys: Vec<u64> },
}

impl Change {
    /// Records this change counts for towards a checkpoint.
    fn weight(&self) -> usize {
        match self {
            Self::Add { .. } => 1,
            Self::Remove { keys } => keys.len().max(1),
        }
    }
}

/// The log file and how many records it holds.
pub(super) struct ChangeLog {
    path: PathBuf,
    records: usize,
}

impl ChangeLog {
    /// The log in `dir` and the changes it holds (to replay), oldest first.
    pub(super) fn open(dir: &Path) -> Result<(Self, Vec<Change>), IndexError> {
        let path = dir.join("changes.jsonl");
        let mut changes = Vec::new();
        if path.exists() {
            for line in BufReader::new(File::open(&path)?).lines() {
                match serde_json::from_str::<Change>(&line?) {
                    Ok(change) => changes.push(change),
                    Err(error) => {
                        tracing::warn!(%error, path = %path.display(), "ignoring a torn record at the end of the index change log");
                        break;
                    }
                }
            }
        }
        let records = changes.iter().map(Change::weight).sum();
        Ok((Self { path, records }, changes))
    }

    /// Append `changes` and sync them to disk.
    pub(super) fn append(&mut self, changes: &[Change]) -> Result<(), IndexError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut buffer = Vec::new();
        for change in changes {
            serde_json::to_writer(&mut buffer, change)?;
            buffer.push(b'\n');
        }
        let mut file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        file.write_all(&buffer)?;
        file.sync_data()?;
        self.records += changes.iter().map(Change::weight).sum::<usize>();
        Ok(())
    }

    /// Whether enough has changed to write the graph out whole.
    pub(super) fn wants_checkpoint(&self) -> bool {
        self.records >= CHECKPOINT_RECORDS
    }

    /// Empty the log once a checkpoint holds everything in it.
    pub(super) fn clear(&mut self) -> Result<(), IndexError> {
        if self.path.exists() {
            File::create(&self.path)?.sync_all()?;
        }
        self.records = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry { tenant: "t".into(), collection: "c".into(), document: "d".into(), acl: vec!["*".into()], metadata: serde_json::Map::new() }
    }

    #[test]
    fn appended_changes_come_back_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (mut log, replay) = ChangeLog::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(replay.is_empty());
        let changes = vec![Change::Add { key: 1, entry: entry(), vector: vec![0.5, -1.25] }, Change::Remove { keys: vec![1, 2] }];
        log.append(&changes).unwrap_or_else(|e| panic!("{e}"));
        let mut file = OpenOptions::new().append(true).open(dir.path().join("changes.jsonl")).unwrap_or_else(|e| panic!("{e}"));
        file.write_all(b"{\"op\":\"add\",\"key\":3,\"ent").unwrap_or_else(|e| panic!("{e}"));
        let (log, replay) = ChangeLog::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(replay, changes);
        assert_eq!(log.records, 3);
        assert!(!log.wants_checkpoint());
    }
}
