//! The bootstrap master key: the bearer credential for `/v1` and `/metrics`
//! until identity lands, then the documented break-glass admin credential.
//!
//! Taken from configuration when set; otherwise read from `<data_dir>/master.key`,
//! or generated there (mode 0600) on first start.
//!
//! The audit chain's keys are derived from it (agentry-core `audit::keys`).
//! After rotating the master key, put the previous one(s) in
//! `<data_dir>/master.key.previous`, one per line (blank lines and lines
//! starting with `#` are ignored), so events and anchors written under them
//! keep verifying; new ones use the current key. Owns only these two files.

use std::io::Write;
use std::path::Path;

use agentry_core::audit::AuditKeys;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

const FILE_NAME: &str = "master.key";
/// Earlier master keys, kept so the audit chain written under them verifies.
pub const PREVIOUS_FILE_NAME: &str = "master.key.previous";

/// Where the key came from; `Generated` is the only case where it is shown.
pub enum MasterKey {
    Configured(SecretString),
    Stored(SecretString),
    Generated(SecretString),
}

impl MasterKey {
    pub fn secret(&self) -> &SecretString {
        match self {
            Self::Configured(key) | Self::Stored(key) | Self::Generated(key) => key,
        }
    }
}

/// Resolve the master key as described in the module doc.
pub fn resolve(configured: Option<&SecretString>, data_dir: &Path) -> Result<MasterKey, anyhow::Error> {
    if let Some(key) = configured {
        return Ok(MasterKey::Configured(key.clone()));
    }
    let path = data_dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 16 => return Ok(MasterKey::Stored(SecretString::from(text.trim().to_owned()))),
        Ok(_) => anyhow::bail!("{} is empty or too short; delete it to generate a new key", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("sk-agentry-{}", hex::encode(bytes));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    file.write_all(key.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(MasterKey::Generated(SecretString::from(key)))
}

/// The previous master keys listed in `<data_dir>/master.key.previous` (none when it is missing).
pub fn previous(data_dir: &Path) -> Result<Vec<SecretString>, anyhow::Error> {
    let path = data_dir.join(PREVIOUS_FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    };
    let mut keys = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.len() < 16 {
            anyhow::bail!("{} line {}: a master key is at least 16 characters", path.display(), number + 1);
        }
        keys.push(SecretString::from(line.to_owned()));
    }
    Ok(keys)
}

/// The audit keys: derived from `current` (new events, anchors) and from
/// the previous master keys in the data dir (verification only).
pub fn audit_keys(current: &SecretString, data_dir: &Path) -> Result<AuditKeys, anyhow::Error> {
    let previous = previous(data_dir)?;
    Ok(AuditKeys::from_master_keys(current.expose_secret().as_bytes(), previous.iter().map(|key| key.expose_secret().as_bytes())))
}

/// The audit keys of a command that runs without the server (`admin
/// bootstrap`, `audit anchor|verify`): the master key resolved as `serve`
/// does (so generated in the data dir when there is none yet) plus the
/// previous ones.
pub fn audit_keys_for(settings: &crate::Settings) -> Result<AuditKeys, anyhow::Error> {
    if settings.master_key.is_none() {
        std::fs::create_dir_all(&settings.data_dir).map_err(|e| anyhow::anyhow!("cannot create data dir {}: {e}", settings.data_dir.display()))?;
    }
    let master_key = resolve(settings.master_key.as_ref(), &settings.data_dir)?;
    audit_keys(master_key.secret(), &settings.data_dir)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn previous_keys_are_read_one_per_line_and_add_to_the_audit_keys() {
        let dir = tempfile::tempdir().unwrap();
        let current = SecretString::from("sk-current-key-0123456789");
        assert!(previous(dir.path()).unwrap().is_empty());
        let alone = audit_keys(&current, dir.path()).unwrap();
        assert_eq!(alone.ids().len(), 1);
        std::fs::write(dir.path().join(PREVIOUS_FILE_NAME), "# rotated 2025-01\nsk-old-key-0123456789abc\n\n  sk-older-key-0123456789  \n").unwrap();
        let keys = audit_keys(&current, dir.path()).unwrap();
        assert_eq!(keys.ids().len(), 3);
        assert_eq!(keys.current().id(), alone.current().id());
        assert!(keys.get(AuditKeys::from_master_keys(b"sk-older-key-0123456789", []).current().id()).is_some());
        std::fs::write(dir.path().join(PREVIOUS_FILE_NAME), "short\n").unwrap();
        assert!(previous(dir.path()).unwrap_err().to_string().contains("line 1"));
    }
}
