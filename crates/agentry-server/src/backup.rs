//! `agentry backup` and `agentry restore`: one file holding an online,
//! consistent copy of an embedded (SQLite) installation, and its restoration
//! into an empty data dir.
//!
//! The file is a zip archive (owner-only, 0600) of:
//! - `manifest.json`: format, server version, time, the id of the key that
//!   seals secrets (derived from the master key, not secret), what is inside;
//! - `agentry.db`: the database, copied with SQLite's `VACUUM INTO` while the
//!   server keeps serving (every transaction committed when the copy began;
//!   usage records still in the writer's batch are not, see
//!   `usage.flush_interval_ms`). Secrets in it stay sealed under the master key;
//! - `agentry.toml`: the configuration file the command read, if any (it may
//!   hold provider keys: guard the backup like the data dir);
//! - `master.key` and `master.key.previous`: only with `--include-master-key`.
//!
//! The search index is not in the file: the database holds every chunk with
//! its embedding, and a server that opens an empty index rebuilds it from
//! them, so index and database cannot disagree after a restore. Models are
//! pulled again (or copied by hand). PostgreSQL installations are backed up
//! with `pg_dump` or point-in-time recovery (docs/operations.md).
//!
//! `agentry reindex` drops the search index (the embedded folder or the
//! PostgreSQL index tables) for the same rebuild.
//!
//! A backup is recorded in the installation's `backups` table (time, size,
//! whether the key is inside) for the compliance report; the archive itself
//! was copied before, so it does not hold its own record.
//!
//! Owns the archive's layout and the checks a restore makes; must not start
//! a server or change a database it did not create beyond that record
//! (reindex drops only index tables).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use agentry_db::Db;
use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::configuration::Settings;
use crate::master_key;

const FORMAT: &str = "agentry-backup/1";
const MANIFEST: &str = "manifest.json";
const DATABASE: &str = "agentry.db";
const CONFIG: &str = "agentry.toml";
const MASTER_KEY: &str = "master.key";

/// What a backup holds, written first in the archive.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub server_version: String,
    pub created_at: String,
    /// Id of the secrets-sealing key derived from the master key in use (not secret).
    pub sealing_key_id: String,
    /// Ids of the earlier master keys' sealing keys (`master.key.previous`):
    /// a restore needs that file too when any are listed.
    #[serde(default)]
    pub previous_key_ids: Vec<String>,
    pub master_key_included: bool,
    pub config_included: bool,
    pub database_bytes: u64,
}

/// `agentry backup --out FILE`: snapshot the database of `settings` (a
/// running server may be using it) into `out`; what was written.
pub async fn backup(settings: &Settings, config_file: Option<&Path>, out: &Path, include_master_key: bool) -> anyhow::Result<Manifest> {
    let url = settings.database_url();
    anyhow::ensure!(
        url.starts_with("sqlite:"),
        "`agentry backup` copies an embedded (SQLite) installation; this one uses PostgreSQL: back it up with pg_dump or point-in-time recovery (docs/operations.md)"
    );
    let database = agentry_db::sqlite_file(&url).ok_or_else(|| anyhow::anyhow!("database_url: {url} names no database file"))?;
    anyhow::ensure!(database.is_file(), "{} does not exist (is this the data dir of an installation?)", database.display());
    let master = current_master_key(settings)?;
    let (sealing_key_id, previous_key_ids) = key_ids(&master, &settings.data_dir)?;
    if let Some(config) = config_file
        && !include_master_key
        && holds_master_key(config)?
    {
        anyhow::bail!("{} sets master_key: the backup would hold the key. Pass --include-master-key, or move the key to AGENTRY_MASTER_KEY", config.display());
    }
    anyhow::ensure!(!out.exists(), "{} already exists; choose a new file", out.display());
    // A private folder beside the output: the database copy in it is never readable by others.
    let staging = tempfile::Builder::new().prefix(".agentry-backup-").tempdir_in(parent_of(out)).context("cannot create a staging folder next to the output file")?;
    let (snapshot, partial) = (staging.path().join(DATABASE), staging.path().join("backup.zip"));
    drop(create_private_file(&snapshot)?);
    let db = Db::connect(&url).await.map_err(|e| anyhow::anyhow!("database_url: {e}"))?;
    db.snapshot_into(&snapshot).await?;
    let database_bytes = std::fs::metadata(&snapshot)?.len();

    let manifest = Manifest {
        format: FORMAT.to_owned(),
        server_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        sealing_key_id,
        previous_key_ids,
        master_key_included: include_master_key,
        config_included: config_file.is_some(),
        database_bytes,
    };
    let mut zip = zip::ZipWriter::new(create_private_file(&partial)?);
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).large_file(true).unix_permissions(0o600);
    zip.start_file(MANIFEST, options)?;
    zip.write_all(&serde_json::to_vec_pretty(&manifest)?)?;
    zip.start_file(DATABASE, options)?;
    std::io::copy(&mut File::open(&snapshot)?, &mut zip)?;
    if let Some(config) = config_file {
        zip.start_file(CONFIG, options)?;
        std::io::copy(&mut File::open(config).with_context(|| format!("cannot read {}", config.display()))?, &mut zip)?;
    }
    if include_master_key {
        zip.start_file(MASTER_KEY, options)?;
        zip.write_all(master.expose_secret().as_bytes())?;
        let previous = settings.data_dir.join(master_key::PREVIOUS_FILE_NAME);
        if previous.exists() {
            zip.start_file(master_key::PREVIOUS_FILE_NAME, options)?;
            std::io::copy(&mut File::open(&previous)?, &mut zip)?;
        }
    }
    zip.finish()?.sync_all()?;
    // A hard link never replaces a file that appeared at `out` meanwhile.
    std::fs::hard_link(&partial, out).with_context(|| format!("cannot create {}", out.display()))?;
    let record = agentry_db::privacy::BackupRow {
        id: uuid::Uuid::now_v7().to_string(),
        at_ms: chrono::Utc::now().timestamp_millis(),
        bytes: i64::try_from(std::fs::metadata(out)?.len()).unwrap_or(i64::MAX),
        includes_master_key: i64::from(include_master_key),
    };
    db.record_backup(&record).await?;
    db.close().await;
    Ok(manifest)
}

/// What a restore did.
pub struct Restored {
    pub manifest: Manifest,
    /// Where the backup's configuration file was written, if it had one.
    pub config: Option<PathBuf>,
}

/// `agentry restore FILE`: unpack a backup into `settings.data_dir`, which
/// must be empty (a `models` folder may be there already). Without the
/// master key in the backup, the same key must come from configuration or
/// `master_key_file`; a different key is refused (its secrets would not open).
pub fn restore(settings: &Settings, file: &Path, master_key_file: Option<&Path>) -> anyhow::Result<Restored> {
    let mut archive = zip::ZipArchive::new(File::open(file).with_context(|| format!("cannot open {}", file.display()))?).context("not an Agentry backup (not a zip archive)")?;
    let manifest: Manifest = serde_json::from_slice(&read_entry(&mut archive, MANIFEST)?).context("not an Agentry backup (no readable manifest.json)")?;
    anyhow::ensure!(manifest.format == FORMAT, "backup format {:?} is not one this version reads ({FORMAT})", manifest.format);
    let dir = &settings.data_dir;
    ensure_empty(dir)?;

    let from_file = master_key_file.map(read_key_file).transpose()?;
    if let (Some(configured), Some(given)) = (&settings.master_key, &from_file) {
        anyhow::ensure!(configured.expose_secret() == given.expose_secret(), "--master-key-file differs from the configured master_key; give one");
    }
    let key = match (manifest.master_key_included, settings.master_key.clone().or(from_file.clone())) {
        (true, given) => {
            let included = SecretString::from(String::from_utf8(read_entry(&mut archive, MASTER_KEY)?)?.trim().to_owned());
            if let Some(given) = given {
                anyhow::ensure!(given.expose_secret() == included.expose_secret(), "the master key given differs from the one in the backup");
            }
            included
        }
        (false, Some(given)) => given,
        (false, None) => anyhow::bail!(
            "this backup was taken without the master key (sealing key id {}); restoring needs that same master key: \
             set master_key / AGENTRY_MASTER_KEY or pass --master-key-file",
            manifest.sealing_key_id
        ),
    };
    let previous = if manifest.master_key_included && archive.index_for_name(master_key::PREVIOUS_FILE_NAME).is_some() {
        Some(read_entry(&mut archive, master_key::PREVIOUS_FILE_NAME)?)
    } else {
        None
    };
    let (id, _) = key_ids(&key, dir)?;
    anyhow::ensure!(
        id == manifest.sealing_key_id,
        "the master key given (sealing key id {id}) is not the one this backup was taken with ({}): its secrets would not open",
        manifest.sealing_key_id
    );

    let url = settings.database_url();
    anyhow::ensure!(url.starts_with("sqlite:"), "restore unpacks an embedded (SQLite) installation; database_url names PostgreSQL");
    let database = agentry_db::sqlite_file(&url).ok_or_else(|| anyhow::anyhow!("database_url: {url} names no database file"))?;
    agentry_db::create_private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if let Some(parent) = database.parent().filter(|p| !p.as_os_str().is_empty()) {
        agentry_db::create_private_dir(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    anyhow::ensure!(!database.exists(), "{} already exists", database.display());
    // Unpacked beside its place, then moved: a failed restore leaves no half database.
    let unpacking = sibling(&database, "restoring");
    let unpacked = (|| {
        let mut entry = archive.by_name(DATABASE).context("the backup has no database")?;
        let mut target = create_private_file(&unpacking)?;
        std::io::copy(&mut entry, &mut target)?;
        target.sync_all()?;
        std::fs::rename(&unpacking, &database)?;
        Ok::<_, anyhow::Error>(())
    })();
    if let Err(error) = unpacked {
        let _ = std::fs::remove_file(&unpacking);
        return Err(error);
    }
    if settings.master_key.is_none() {
        write_private_file(&dir.join(MASTER_KEY), key.expose_secret().as_bytes())?;
    }
    if let Some(previous) = previous {
        write_private_file(&dir.join(master_key::PREVIOUS_FILE_NAME), &previous)?;
    }
    let config = if manifest.config_included {
        let path = dir.join(CONFIG);
        write_private_file(&path, &read_entry(&mut archive, CONFIG)?)?;
        Some(path)
    } else {
        None
    };
    Ok(Restored { manifest, config })
}

/// `agentry reindex`: drop the search index of `settings` (the embedded
/// folder, or PostgreSQL's index tables); what was dropped.
pub async fn drop_search_index(settings: &Settings) -> anyhow::Result<Vec<String>> {
    use agentry_core::knowledge::IndexBackend;
    let db = crate::startup::connect_and_migrate(settings).await?;
    let mut dropped = Vec::new();
    let embedded = match (&db, settings.knowledge.index) {
        (Db::Postgres(pool), IndexBackend::Auto | IndexBackend::Postgres) => {
            dropped = agentry_search::index::postgres::drop_all(pool).await?;
            false
        }
        _ => true,
    };
    db.close().await;
    let folder = settings.data_dir.join("index");
    if embedded && folder.exists() {
        std::fs::remove_dir_all(&folder).with_context(|| format!("cannot remove {}", folder.display()))?;
        dropped.push(folder.display().to_string());
    }
    Ok(dropped)
}

/// The master key in use: configured, or stored in the data dir (never generated here).
fn current_master_key(settings: &Settings) -> anyhow::Result<SecretString> {
    match &settings.master_key {
        Some(key) => Ok(key.clone()),
        None => master_key::stored(&settings.data_dir)?
            .ok_or_else(|| anyhow::anyhow!("no master key: none is configured and {} has no master.key (is this the data dir of an installation?)", settings.data_dir.display())),
    }
}

/// The sealing key id of `key` and those of the previous keys in `data_dir`.
fn key_ids(key: &SecretString, data_dir: &Path) -> anyhow::Result<(String, Vec<String>)> {
    let keys = master_key::derived_keys(key, data_dir)?;
    let mut ids = keys.sealer.ids().into_iter().map(str::to_owned);
    let current = ids.next().ok_or_else(|| anyhow::anyhow!("no sealing key derived"))?;
    Ok((current, ids.collect()))
}

/// Whether a configuration file sets `master_key`.
fn holds_master_key(config: &Path) -> anyhow::Result<bool> {
    use figment::providers::Format;
    Ok(figment::Figment::from(figment::providers::Toml::file_exact(config)).contains("master_key"))
}

fn read_key_file(path: &Path) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    anyhow::ensure!(text.trim().len() >= 16, "{} does not hold a master key (at least 16 characters)", path.display());
    Ok(SecretString::from(text.trim().to_owned()))
}

/// The data dir must not exist or hold nothing but a `models` folder.
fn ensure_empty(dir: &Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    let occupied: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|name| name != "models").collect();
    anyhow::ensure!(occupied.is_empty(), "{} is not empty ({}); restore into a new data dir", dir.display(), occupied.join(", "));
    Ok(())
}

/// An entry's bytes; the manifest and keys are small, the configuration a file a person wrote.
fn read_entry<R: Read + std::io::Seek>(archive: &mut zip::ZipArchive<R>, name: &str) -> anyhow::Result<Vec<u8>> {
    const MAX_SMALL_ENTRY: u64 = 16 * 1024 * 1024;
    let entry = archive.by_name(name).with_context(|| format!("the backup has no {name}"))?;
    let mut bytes = Vec::new();
    entry.take(MAX_SMALL_ENTRY).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn parent_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// `<path>.<suffix>`, beside `path`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{suffix}"));
    PathBuf::from(name)
}

/// A new owner-only file holding `bytes`, synced.
fn write_private_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = create_private_file(path)?;
    file.write_all(bytes)?;
    Ok(file.sync_all()?)
}

/// A new file, owner-only (0600 on Unix).
fn create_private_file(path: &Path) -> anyhow::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).with_context(|| format!("cannot create {}", path.display()))
}
