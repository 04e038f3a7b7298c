//! A person's data export: one zip archive with `manifest.json`, the rows
//! that name them as JSON (`rows/<table>.<column>.json`, secrets and hashes
//! left out), the content of the files they own (`files/`) and of the
//! documents they created (`documents/`). A signed-in person exporting their
//! own data also gets their account's rows (`account/`: profile, sessions,
//! identities), which are not the tenant's to read.
//!
//! Built in memory up to `privacy.export_max_bytes` (files and documents
//! are measured before they are read; a bigger export is refused), at most
//! two at a time per process. Rows that only mention the person (others'
//! events and deliveries) are left out; audit events naming them are in
//! an administrator's export when they may read the audit log.

use std::io::Write;

use agentry_db::privacy::Person;
use agentry_types::{AuditAction, Permission};
use serde::Serialize;
use zip::write::SimpleFileOptions;

use super::Privacy;
use crate::audit::RequestMeta;
use crate::error::Error;
use crate::identity::{PrincipalKind, TenantAccess, now_ms};

/// A finished export.
pub struct DataExport {
    /// What to call the download.
    pub file_name: String,
    pub bytes: Vec<u8>,
}

#[derive(Serialize)]
struct Manifest<'a> {
    format: &'static str,
    tenant: &'a str,
    user_id: &'a str,
    email: &'a str,
    exported_at_ms: i64,
    /// Whether `account/` holds the account's own rows (self-exports only).
    includes_account: bool,
    /// Rows per `table.column` (and child table).
    rows: Vec<(String, usize)>,
    files: usize,
    documents: usize,
}

/// The archive being written, and how many bytes went in.
struct Archive {
    zip: zip::ZipWriter<std::io::Cursor<Vec<u8>>>,
    written: u64,
    limit: u64,
}

impl Archive {
    fn add(&mut self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        self.written += bytes.len() as u64;
        if self.written > self.limit {
            return Err(too_large(self.limit));
        }
        let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).large_file(true);
        self.zip.start_file(name, options).map_err(|e| Error::Internal(format!("writing the export: {e}")))?;
        self.zip.write_all(bytes).map_err(|e| Error::Internal(format!("writing the export: {e}")))
    }

    fn add_rows(&mut self, folder: &str, rows: &[(String, Vec<String>)]) -> Result<(), Error> {
        for (name, objects) in rows {
            let json = format!("[{}]", objects.join(",\n"));
            self.add(&format!("{folder}/{name}.json"), json.as_bytes())?;
        }
        Ok(())
    }
}

fn too_large(limit: u64) -> Error {
    Error::TooLarge(format!("this export is larger than privacy.export_max_bytes ({limit} bytes)"))
}

/// A name safe inside the archive: no folders, no dots at the start.
fn safe_name(name: &str) -> String {
    let cleaned: String = name.chars().map(|c| if c.is_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    cleaned.trim_start_matches('.').chars().take(100).collect()
}

impl Privacy {
    /// Everything the tenant holds about `user_id`, as a zip archive.
    pub async fn export(&self, access: &TenantAccess, user_id: &str, meta: &RequestMeta) -> Result<DataExport, Error> {
        let principal = access.principal();
        let is_person = principal.user_id() == Some(user_id);
        let own = is_person && principal.kind() == PrincipalKind::User;
        if !own && !access.can(Permission::ManageUsers) {
            if is_person {
                return Err(Error::Forbidden("your own data is exported signed in, not with an API key".into()));
            }
            // Whether the tenant holds anything about someone else is not this caller's to learn.
            return Err(Error::NotFound(format!("user '{user_id}'")));
        }
        let user = self.person_in_tenant(access, user_id).await?;
        if !own {
            self.inner.identity.check_subject(access, &user, false).await?;
        }
        let db = &self.inner.db;
        let tenant = access.tenant_id();
        let owner = format!("user:{}", user.id);
        let limit = self.inner.settings.export_max_bytes;
        let content = db.personal_content_bytes(tenant, &owner, &user.id).await?;
        if u64::try_from(content).unwrap_or(0) > limit {
            return Err(too_large(limit));
        }
        let _turn = self.inner.exports.acquire().await.map_err(|_| Error::Unavailable("the server is stopping".into()))?;
        let person = Person { user_id: &user.id, email: &user.email };
        // The audit events naming them are the audit log's: for administrators who may read it, not in a self-export.
        let rows = db.personal_rows(&person, Some(tenant), !own && access.can(Permission::ViewAudit)).await?;
        let account_rows = if own { db.personal_rows(&person, None, false).await? } else { Vec::new() };
        let files = db.owned_file_contents(tenant, &owner).await?;
        let documents = db.created_document_contents(tenant, &user.id).await?;

        let mut archive = Archive { zip: zip::ZipWriter::new(std::io::Cursor::new(Vec::new())), written: 0, limit: self.inner.settings.export_max_bytes };
        let manifest = Manifest {
            format: "agentry data export v1",
            tenant: access.tenant_slug(),
            user_id: &user.id,
            email: &user.email,
            exported_at_ms: now_ms(),
            includes_account: own,
            rows: rows.iter().chain(&account_rows).map(|(name, objects)| (name.clone(), objects.len())).collect(),
            files: files.len(),
            documents: documents.len(),
        };
        archive.add("manifest.json", &serde_json::to_vec_pretty(&manifest).unwrap_or_default())?;
        archive.add_rows("rows", &rows)?;
        archive.add_rows("account", &account_rows)?;
        for (id, name, bytes) in &files {
            archive.add(&format!("files/{id}-{}", safe_name(name)), bytes)?;
        }
        for (id, version, format, bytes) in &documents {
            archive.add(&format!("documents/{id}/v{version}.{}", safe_name(format)), bytes)?;
        }
        let bytes = archive.zip.finish().map_err(|e| Error::Internal(format!("writing the export: {e}")))?.into_inner();
        self.inner.identity.record_success(access, AuditAction::UserDataExport, Some(format!("user:{}", user.id)), meta, serde_json::json!({ "bytes": bytes.len() })).await?;
        Ok(DataExport { file_name: format!("agentry-export-{}-{}.zip", safe_name(access.tenant_slug()), user.id), bytes })
    }
}
