//! PDF through pdf-extract (lopdf underneath): one section per page with
//! its 1-based page number; pages without text are dropped by the caller.
//!
//! pdf-extract's own per-page helper stops at the first page that fails,
//! so the pages are walked here: a page that fails or panics is skipped
//! with a warning and the rest of the document still counts. pdf-extract
//! can panic on malformed input (it unwraps inside), so every call into
//! it runs under `catch_unwind` and a panic becomes
//! [`ParseError::Malformed`] (or a skipped page). The panic message still
//! reaches stderr through the process's panic hook.
//!
//! Must not: attempt OCR or ask for passwords (encrypted files are refused).

use std::panic::{AssertUnwindSafe, catch_unwind};

use pdf_extract::{Document, PlainTextOutput, output_doc_page};

use super::{ParseError, Parsed, Section, tidy_lines};

pub(super) fn parse(bytes: &[u8]) -> Result<Parsed, ParseError> {
    let document = catch_unwind(|| load(bytes)).map_err(|_| malformed("the file structure cannot be read"))??;
    let pages = document.get_pages();
    if pages.is_empty() {
        return Err(malformed("the document has no pages"));
    }
    let mut sections = Vec::with_capacity(pages.len());
    let mut failed = 0usize;
    for &page in pages.keys() {
        let extracted = catch_unwind(AssertUnwindSafe(|| {
            let mut text = String::new();
            output_doc_page(&document, &mut PlainTextOutput::new(&mut text), page).map(|()| text)
        }));
        match extracted {
            Ok(Ok(text)) => sections.push(Section { heading_path: Vec::new(), page: Some(page), text: tidy_lines(&text) }),
            Ok(Err(e)) => {
                failed += 1;
                tracing::warn!(page, error = %e, "skipping a PDF page whose text cannot be extracted");
            }
            Err(_) => {
                failed += 1;
                tracing::warn!(page, "skipping a PDF page that made the extractor panic");
            }
        }
    }
    if failed == pages.len() {
        return Err(malformed("no page's text could be extracted"));
    }
    Ok(Parsed { title: None, sections })
}

fn load(bytes: &[u8]) -> Result<Document, ParseError> {
    let mut document = Document::load_mem(bytes).map_err(|e| malformed(&e.to_string()))?;
    if document.is_encrypted() && document.decrypt("").is_err() {
        return Err(ParseError::Unsupported("PDF: the document is password-protected; remove the password and upload it again".into()));
    }
    Ok(document)
}

fn malformed(reason: &str) -> ParseError {
    ParseError::Malformed(format!("PDF: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::super::{Format, ParseError, parse, sniff};

    /// A minimal valid PDF: one page per entry of `pages` (each one line of
    /// Helvetica text, empty for a blank page), with a correct xref table.
    fn minimal_pdf(pages: &[&str]) -> Vec<u8> {
        pdf_with_page_entries(pages, "/MediaBox [0 0 612 792]")
    }

    /// Like [`minimal_pdf`], with `entries` in each page dictionary.
    fn pdf_with_page_entries(pages: &[&str], entries: &str) -> Vec<u8> {
        let n = pages.len();
        // Objects: 1 catalog, 2 page tree, 3 font, then (page, content) pairs.
        let mut objects: Vec<String> = Vec::new();
        objects.push("<< /Type /Catalog /Pages 2 0 R >>".into());
        let kids: Vec<String> = (0..n).map(|i| format!("{} 0 R", 4 + 2 * i)).collect();
        objects.push(format!("<< /Type /Pages /Kids [{}] /Count {n} >>", kids.join(" ")));
        objects.push("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".into());
        for (i, text) in pages.iter().enumerate() {
            let content_id = 5 + 2 * i;
            objects.push(format!(
                "<< /Type /Page /Parent 2 0 R {entries} /Resources << /Font << /F1 3 0 R >> >> /Contents {content_id} 0 R >>"
            ));
            let stream = if text.is_empty() { String::new() } else { format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET") };
            objects.push(format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()));
        }
        let mut pdf = b"%PDF-1.4\n".to_vec();
        let mut offsets = Vec::new();
        for (i, object) in objects.iter().enumerate() {
            offsets.push(pdf.len());
            pdf.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
        }
        let xref = pdf.len();
        pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
        for offset in offsets {
            pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
        }
        pdf.extend_from_slice(format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes());
        pdf
    }

    #[test]
    fn pdf_pages_become_numbered_sections_and_blank_pages_are_skipped() -> Result<(), ParseError> {
        let pdf = minimal_pdf(&["Hello from page one", "", "Second text page"]);
        assert_eq!(sniff(&pdf, Some("scan.txt"), Some("text/plain"))?, Format::Pdf);
        let parsed = parse(&pdf, Format::Pdf)?;
        let pages: Vec<_> = parsed.sections.iter().map(|s| (s.page, s.text.as_str())).collect();
        assert_eq!(pages, [(Some(1), "Hello from page one"), (Some(3), "Second text page")]);
        Ok(())
    }

    #[test]
    fn malformed_pdfs_are_errors_not_panics() {
        let valid = minimal_pdf(&["text"]);
        let inputs: Vec<Vec<u8>> = vec![
            b"%PDF-1.7\nthis is not a pdf at all".to_vec(),
            valid[..valid.len() / 2].to_vec(),
            valid.iter().map(|b| if b.is_ascii_digit() { b'9' } else { *b }).collect(),
            b"%PDF-".to_vec(),
        ];
        for input in inputs {
            match parse(&input, Format::Pdf) {
                Err(ParseError::Malformed(_) | ParseError::Empty) => {}
                other => panic!("expected Malformed for {:?}: {other:?}", String::from_utf8_lossy(&input)),
            }
        }
        assert!(matches!(parse(b"%PDF-1.7\nnot a pdf", Format::Pdf), Err(ParseError::Malformed(_))));
    }

    #[test]
    fn a_page_that_makes_the_extractor_panic_is_malformed() {
        // pdf-extract panics (`expect("MediaBox")`) on a page without a MediaBox.
        let pdf = pdf_with_page_entries(&["text"], "");
        assert!(matches!(parse(&pdf, Format::Pdf), Err(ParseError::Malformed(_))));
    }

    #[test]
    fn a_pdf_without_text_is_empty() {
        assert_eq!(parse(&minimal_pdf(&[""]), Format::Pdf), Err(ParseError::Empty));
    }
}
