//! The bootstrap master key: the bearer credential for `/v1` and `/metrics`
//! until identity lands, then the documented break-glass admin credential.
//!
//! Taken from configuration when set; otherwise read from `<data_dir>/master.key`,
//! or generated there (mode 0600) on first start. Owns only that file.

use std::io::Write;
use std::path::Path;

use rand::RngCore;
use secrecy::SecretString;

const FILE_NAME: &str = "master.key";

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
