//! The JSON form of an upload (`text`, `content_base64` or `url`, with its
//! title, metadata, ACL and document), read into an [`Upload`] here so that
//! the upload route and native batches of documents read it the same way.
//!
//! Must not: store anything (the service's upload does).

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{AccessList, Content, Error, Upload};

/// The JSON form of an upload: text, any file as base64, or a URL to fetch.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonUpload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub acl: AccessList,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_id: Option<String>,
}

impl JsonUpload {
    /// The upload it describes; exactly one of `text`, `content_base64` (valid base64) or `url`.
    pub fn into_upload(self) -> Result<Upload, Error> {
        let Self { text, content_base64, url, file_name, content_type, title, metadata, acl, document_id } = self;
        let content = match (text, content_base64, url) {
            (Some(text), None, None) => Content::Bytes { bytes: text.into_bytes(), file_name, content_type },
            (None, Some(encoded), None) => {
                let bytes =
                    base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| Error::invalid("'content_base64' is not valid base64", "content_base64"))?;
                Content::Bytes { bytes, file_name, content_type }
            }
            (None, None, Some(_)) if file_name.is_some() || content_type.is_some() => {
                let message = "'file_name' and 'content_type' describe sent bytes; a URL's come from its answer";
                return Err(Error::invalid(message, if file_name.is_some() { "file_name" } else { "content_type" }));
            }
            (None, None, Some(url)) => Content::Url(url),
            _ => return Err(Error::invalid("give exactly one of 'text', 'content_base64' or 'url'", "text")),
        };
        Ok(Upload { content, title, metadata, acl, document_id, collected: None })
    }
}
