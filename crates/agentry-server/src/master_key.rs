//! The bootstrap master key: the bearer credential for `/v1` and `/metrics`
//! until identity lands, then the documented break-glass admin credential,
//! and the root of every key derived from it (the audit chain's keys, the
//! key that seals secrets at rest).
//!
//! Taken from configuration when set; otherwise read from `<data_dir>/master.key`,
//! or generated there (mode 0600) on first start.
//!
//! After rotating the master key, the previous one(s) stay in
//! `<data_dir>/master.key.previous`, one per line (blank lines and lines
//! starting with `#` are ignored), so audit events and anchors written under
//! them keep verifying and secrets sealed under them keep opening; new ones
//! use the current key. [`rotate`] (`agentry keys rotate-master`) does this
//! for a file-stored key: it reseals every stored secret under a new key and
//! moves the old key to the previous file, in that order of commitment that
//! no crash leaves a secret without a held key (see [`rotate`]).
//!
//! Owns only these files (`master.key`, `master.key.previous`, and
//! `master.key.next` while a rotation writes it). Must not print or log a
//! key, except the one [`rotate`] returns for the command to show once.

use agentry_types::AuditAction;
use std::io::Write;
use std::path::Path;

use agentry_core::audit::{Actor, AuditEvent, AuditKeys, Outcome, RequestMeta};
use agentry_core::secrets::{SealReport, Sealer};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

const FILE_NAME: &str = "master.key";
/// Earlier master keys, kept so the audit chain written under them verifies
/// and secrets sealed under them open.
pub const PREVIOUS_FILE_NAME: &str = "master.key.previous";
/// The new key while a rotation writes it; renamed to `master.key` before the reseal commits.
const NEXT_FILE_NAME: &str = "master.key.next";
/// Why `keys rotate-master` refuses a configured key.
const CONFIGURED_REFUSAL: &str = "the master key comes from configuration (master_key / AGENTRY_MASTER_KEY), not from <data_dir>/master.key, \
so `agentry keys rotate-master` does not rotate it. To rotate a configured key by hand: stop the servers, move the current key into \
<data_dir>/master.key.previous (one per line), set the new key in the configuration and start again; secrets stay sealed under the old key \
(opened through the previous file) until resealed. Or drop the configured key and keep it in <data_dir>/master.key, then use this command";

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

/// The key stored in `<data_dir>/master.key`, if the file exists.
fn read_stored(path: &Path) -> Result<Option<SecretString>, anyhow::Error> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().len() >= 16 => Ok(Some(SecretString::from(text.trim().to_owned()))),
        Ok(_) => anyhow::bail!("{} is empty or too short; delete it to generate a new key", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// The key stored in `<data_dir>/master.key`, if there is one (never generated).
pub fn stored(data_dir: &Path) -> Result<Option<SecretString>, anyhow::Error> {
    read_stored(&data_dir.join(FILE_NAME))
}

/// A new random master key.
fn generate() -> SecretString {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    SecretString::from(format!("sk-agentry-{}", hex::encode(bytes)))
}

/// Write `key` to a new file at `path`, owner-only (0600), synced.
fn write_new_key_file(path: &Path, key: &SecretString) -> Result<(), anyhow::Error> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    file.write_all(key.expose_secret().as_bytes()).and_then(|()| file.sync_all()).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// Resolve the master key as described in the module doc.
pub fn resolve(configured: Option<&SecretString>, data_dir: &Path) -> Result<MasterKey, anyhow::Error> {
    if let Some(key) = configured {
        return Ok(MasterKey::Configured(key.clone()));
    }
    let path = data_dir.join(FILE_NAME);
    if let Some(key) = read_stored(&path)? {
        return Ok(MasterKey::Stored(key));
    }
    let key = generate();
    write_new_key_file(&path, &key)?;
    Ok(MasterKey::Generated(key))
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

/// The keys derived from the master keys a process holds: from the current
/// one (new audit events and anchors, newly sealed secrets) and from the
/// previous ones in the data dir (verifying, opening).
pub struct DerivedKeys {
    pub audit: AuditKeys,
    pub sealer: Sealer,
}

fn derive(current: &SecretString, previous: &[SecretString]) -> DerivedKeys {
    let previous = || previous.iter().map(|key| key.expose_secret().as_bytes());
    let current = current.expose_secret().as_bytes();
    DerivedKeys { audit: AuditKeys::from_master_keys(current, previous()), sealer: Sealer::from_master_keys(current, previous()) }
}

/// [`DerivedKeys`] of `current` and the previous master keys in `data_dir`.
pub fn derived_keys(current: &SecretString, data_dir: &Path) -> Result<DerivedKeys, anyhow::Error> {
    Ok(derive(current, &previous(data_dir)?))
}

/// The derived keys of a command that runs without the server (`admin
/// bootstrap`, `audit anchor|verify`): the master key resolved as `serve`
/// does (so generated in the data dir when there is none yet) plus the
/// previous ones.
pub fn derived_keys_for(settings: &crate::Settings) -> Result<DerivedKeys, anyhow::Error> {
    if settings.master_key.is_none() {
        agentry_db::create_private_dir(&settings.data_dir).map_err(|e| anyhow::anyhow!("cannot create data dir {}: {e}", settings.data_dir.display()))?;
    }
    let master_key = resolve(settings.master_key.as_ref(), &settings.data_dir)?;
    derived_keys(master_key.secret(), &settings.data_dir)
}

/// What [`rotate`] did.
pub struct Rotation {
    /// The new master key: shown once by the command, stored in `master.key`.
    pub new_key: SecretString,
    /// Secrets-sealing key ids (not secret): the old and the new one.
    pub old_key_id: String,
    pub new_key_id: String,
    pub resealed: SealReport,
}

/// `agentry keys rotate-master`: a new master key for a file-stored one.
///
/// Every stored secret is resealed under the new key in one database
/// transaction. Before it commits (inside it), the old key is appended to
/// `master.key.previous` (0600) and the new key replaces `master.key`
/// (written to `master.key.next`, 0600, synced, then renamed). So: a failure
/// before the rename leaves the database and `master.key` as they were; a
/// failure after it leaves secrets sealed under the old key, which the
/// previous file still holds. Audit events written under the old key keep
/// verifying through the previous file; the rotation itself is audited
/// (`master_key.rotate`, platform chain, under the new key). Refused when the
/// key comes from configuration. Servers using the data dir should be
/// stopped first: a running one keeps the old key until restarted.
pub async fn rotate(settings: &crate::Settings) -> Result<Rotation, anyhow::Error> {
    if settings.master_key.is_some() {
        anyhow::bail!("{CONFIGURED_REFUSAL}");
    }
    let data_dir = settings.data_dir.as_path();
    let key_path = data_dir.join(FILE_NAME);
    let Some(old) = read_stored(&key_path)? else {
        anyhow::bail!("no master key at {}: nothing to rotate (`agentry serve` creates one on first start)", key_path.display());
    };
    let previous_keys = previous(data_dir)?;
    let from = derive(&old, &previous_keys);
    let new = generate();
    let mut held = vec![old.clone()];
    held.extend(previous_keys.iter().cloned());
    let to = derive(&new, &held);
    let db = crate::startup::connect_and_migrate(settings).await?;
    let write_files = || -> Result<(), String> {
        append_previous(data_dir, &old).map_err(|e| format!("{e:#}"))?;
        let next_path = data_dir.join(NEXT_FILE_NAME);
        match std::fs::remove_file(&next_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove {}: {e}", next_path.display())),
        }
        write_new_key_file(&next_path, &new).map_err(|e| format!("{e:#}"))?;
        std::fs::rename(&next_path, &key_path).map_err(|e| format!("cannot move {} to {}: {e}", next_path.display(), key_path.display()))?;
        sync_dir(data_dir);
        Ok(())
    };
    let resealed = agentry_core::secrets::reseal_stored(&db, &from.sealer, &to.sealer, write_files).await;
    let result = match resealed {
        Ok(resealed) => {
            let rotation = Rotation { new_key: new, old_key_id: from.sealer.current_id().to_owned(), new_key_id: to.sealer.current_id().to_owned(), resealed };
            let metadata = serde_json::json!({ "old_key_id": rotation.old_key_id, "new_key_id": rotation.new_key_id, "resealed": rotation.resealed.rewritten });
            let event = AuditEvent {
                tenant: None,
                actor: Actor::System,
                action: AuditAction::MasterKeyRotate,
                resource: None,
                outcome: Outcome::Success,
                meta: &RequestMeta::default(),
                metadata,
            };
            match agentry_core::Audit::with_keys(db.clone(), to.audit).record(event).await {
                Ok(_) => Ok(rotation),
                Err(e) => Err(anyhow::anyhow!("the master key was rotated, but its audit event was not stored: {e}")),
            }
        }
        Err(e) if read_stored(&key_path).ok().flatten().is_some_and(|stored| stored.expose_secret() == new.expose_secret()) => Err(anyhow::anyhow!(
            "rotating the master key failed after master.key was replaced ({e}): stored secrets stay sealed under the old key, which master.key.previous holds, \
             so the server starts with the new key; run the command again to reseal them"
        )),
        Err(e) => Err(anyhow::anyhow!("rotating the master key failed; master.key and the database are unchanged: {e}")),
    };
    db.close().await;
    result
}

/// Append `key` to `<data_dir>/master.key.previous` (created 0600; kept
/// 0600), unless it is listed already.
fn append_previous(data_dir: &Path, key: &SecretString) -> Result<(), anyhow::Error> {
    if previous(data_dir)?.iter().any(|listed| listed.expose_secret() == key.expose_secret()) {
        return Ok(());
    }
    let path = data_dir.join(PREVIOUS_FILE_NAME);
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(|e| anyhow::anyhow!("cannot restrict {}: {e}", path.display()))?;
    }
    let needs_newline = std::fs::read(&path).map(|bytes| bytes.last().is_some_and(|b| *b != b'\n')).unwrap_or(false);
    let at = agentry_core::identity::now_ms();
    let entry = format!("{}# rotated out by `agentry keys rotate-master` at unix ms {at}\n{}\n", if needs_newline { "\n" } else { "" }, key.expose_secret());
    file.write_all(entry.as_bytes()).and_then(|()| file.sync_all()).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// Make a rename in `dir` durable (best effort: not every platform can open a folder).
fn sync_dir(dir: &Path) {
    if let Ok(handle) = std::fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn previous_keys_are_read_one_per_line_and_add_to_the_derived_keys() {
        let dir = tempfile::tempdir().unwrap();
        let current = SecretString::from("sk-current-key-0123456789");
        assert!(previous(dir.path()).unwrap().is_empty());
        let alone = derived_keys(&current, dir.path()).unwrap().audit;
        assert_eq!(alone.ids().len(), 1);
        std::fs::write(dir.path().join(PREVIOUS_FILE_NAME), "# rotated 2025-01\nsk-old-key-0123456789abc\n\n  sk-older-key-0123456789  \n").unwrap();
        let derived = derived_keys(&current, dir.path()).unwrap();
        assert_eq!(derived.sealer.ids().len(), 3);
        let keys = derived.audit;
        assert_eq!(keys.ids().len(), 3);
        assert_eq!(keys.current().id(), alone.current().id());
        assert!(keys.get(AuditKeys::from_master_keys(b"sk-older-key-0123456789", []).current().id()).is_some());
        std::fs::write(dir.path().join(PREVIOUS_FILE_NAME), "short\n").unwrap();
        assert!(previous(dir.path()).unwrap_err().to_string().contains("line 1"));
    }

    #[test]
    fn appending_a_previous_key_keeps_the_file_private_and_lists_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let old = SecretString::from("sk-old-key-0123456789abc");
        std::fs::write(dir.path().join(PREVIOUS_FILE_NAME), "sk-older-key-0123456789").unwrap();
        append_previous(dir.path(), &old).unwrap();
        append_previous(dir.path(), &old).unwrap();
        let listed: Vec<String> = previous(dir.path()).unwrap().iter().map(|k| k.expose_secret().to_owned()).collect();
        assert_eq!(listed, vec!["sk-older-key-0123456789".to_owned(), "sk-old-key-0123456789abc".to_owned()]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(dir.path().join(PREVIOUS_FILE_NAME)).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
