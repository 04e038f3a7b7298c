//! A collection's quality checks, applied to each version as it is
//! ingested, after parsing and before any embedding: a version with no
//! text, shorter than `min_chars`, reliably detected (whatlang) as a
//! language outside `languages`, or (with `exclude_duplicates`) whose bytes
//! equal those of an earlier document of the collection is `excluded`:
//! kept with its bytes, the check and the reason, and never searchable.
//! Each outcome is counted in `knowledge_quality_total{check}`.
//!
//! Must not: read or write storage (the ingestion worker asks for the
//! duplicate and records the outcome).

use serde::{Deserialize, Serialize};

use super::Error;

/// Longest `min_chars`.
const MAX_MIN_CHARS: usize = 1_000_000;
/// Most languages a collection may list.
const MAX_LANGUAGES: usize = 50;
/// Characters of text the language is detected from.
const LANGUAGE_SAMPLE_CHARS: usize = 4000;

/// What a collection requires of its documents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QualityChecks {
    /// Fewest characters of extracted text a version must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub min_chars: Option<usize>,
    /// ISO 639-3 codes (`eng`, `deu`, `fra`…): a version whose language is
    /// reliably detected as another is excluded (an uncertain detection passes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub languages: Vec<String>,
    /// Exclude a document whose bytes equal those of an earlier document of the collection.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exclude_duplicates: bool,
}

/// Which check a version failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QualityCheck {
    EmptyText,
    MinChars,
    Language,
    Duplicate,
}

impl QualityCheck {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EmptyText => "empty_text",
            Self::MinChars => "min_chars",
            Self::Language => "language",
            Self::Duplicate => "duplicate",
        }
    }

    /// A stored name (`None` for one this build does not know).
    pub fn parse(stored: &str) -> Option<Self> {
        [Self::EmptyText, Self::MinChars, Self::Language, Self::Duplicate].into_iter().find(|check| check.as_str() == stored)
    }
}

/// A failed check and why, as the version's error reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub check: QualityCheck,
    pub reason: String,
}

impl QualityChecks {
    /// The checks as sent: each language is one whatlang knows, limits in range; errors name `quality`.
    pub fn validate(&self) -> Result<(), Error> {
        if self.min_chars.is_some_and(|n| !(1..=MAX_MIN_CHARS).contains(&n)) {
            return Err(Error::invalid(format!("'quality.min_chars' must be 1 to {MAX_MIN_CHARS}"), "quality"));
        }
        if self.languages.len() > MAX_LANGUAGES {
            return Err(Error::invalid(format!("'quality.languages' lists at most {MAX_LANGUAGES} languages"), "quality"));
        }
        if let Some(unknown) = self.languages.iter().find(|code| whatlang::Lang::from_code(code.as_str()).is_none()) {
            return Err(Error::invalid(format!("'quality.languages': '{unknown}' is not an ISO 639-3 code of a detectable language (e.g. 'eng', 'deu')"), "quality"));
        }
        Ok(())
    }

    /// The checks stored with a collection; unreadable ones check nothing (and are logged).
    pub fn stored(json: &str, collection: &str) -> Self {
        serde_json::from_str(json).unwrap_or_else(|error| {
            tracing::error!(%collection, %error, "stored quality checks do not parse; the collection's documents are not checked");
            Self::default()
        })
    }

    /// The text checks (length and language) on a version's extracted text.
    pub fn check_text(&self, text: &str) -> Result<(), Rejection> {
        let chars = text.chars().filter(|c| !c.is_whitespace()).count();
        if chars == 0 {
            return Err(Rejection { check: QualityCheck::EmptyText, reason: "the document has no extractable text".into() });
        }
        if let Some(min) = self.min_chars.filter(|&min| chars < min) {
            return Err(Rejection { check: QualityCheck::MinChars, reason: format!("the document has {chars} characters of text; the collection requires at least {min}") });
        }
        if !self.languages.is_empty() {
            let sample: String = text.chars().take(LANGUAGE_SAMPLE_CHARS).collect();
            if let Some(info) = whatlang::detect(&sample).filter(whatlang::Info::is_reliable) {
                let code = info.lang().code();
                if !self.languages.iter().any(|allowed| allowed == code) {
                    let allowed = self.languages.join(", ");
                    return Err(Rejection {
                        check: QualityCheck::Language,
                        reason: format!("the document is in {} ({code}); the collection takes {allowed}", info.lang().eng_name()),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Count one version's outcome.
pub(super) fn record(outcome: Option<QualityCheck>) {
    metrics::counter!("knowledge_quality_total", "check" => outcome.map_or("passed", QualityCheck::as_str)).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENGLISH: &str = "Every laptop must use full-disk encryption and lock itself after five idle minutes; report a lost device to security at once.";
    const GERMAN: &str = "Jeder Laptop muss eine vollständige Festplattenverschlüsselung verwenden und sich nach fünf Minuten Leerlauf sperren.";

    #[test]
    fn text_checks_exclude_empty_short_and_foreign_text() {
        let checks = QualityChecks { min_chars: Some(40), languages: vec!["eng".into()], exclude_duplicates: false };
        assert_eq!(checks.check_text("  \n ").unwrap_err().check, QualityCheck::EmptyText);
        assert_eq!(checks.check_text("Too short.").unwrap_err().check, QualityCheck::MinChars);
        let foreign = checks.check_text(GERMAN).unwrap_err();
        assert_eq!(foreign.check, QualityCheck::Language);
        assert!(foreign.reason.contains("deu"), "{}", foreign.reason);
        assert!(checks.check_text(ENGLISH).is_ok());
        assert!(QualityChecks::default().check_text("ok").is_ok(), "no checks: anything with text passes");
    }

    #[test]
    fn validation_names_the_bad_setting() {
        for bad in [
            QualityChecks { min_chars: Some(0), ..Default::default() },
            QualityChecks { languages: vec!["english".into()], ..Default::default() },
            QualityChecks { languages: vec!["eng".into(); 51], ..Default::default() },
        ] {
            assert!(matches!(bad.validate(), Err(Error::Invalid { param: Some(p), .. }) if p == "quality"), "{bad:?}");
        }
        assert!(QualityChecks { min_chars: Some(10), languages: vec!["eng".into(), "deu".into()], exclude_duplicates: true }.validate().is_ok());
        assert_eq!(QualityCheck::parse("duplicate"), Some(QualityCheck::Duplicate));
        assert_eq!(QualityChecks::stored("not json", "c"), QualityChecks::default());
    }
}
