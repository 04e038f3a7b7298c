//! DOCX fixtures are built here with the `zip` crate, so the tests need no
//! binary files.

use std::io::{Cursor, Write};

use zip::ZipWriter;
use zip::write::SimpleFileOptions;

use super::super::{Format, Limit, Limits, ParseError, parse, parse_with_limits, sniff};

const W: &str = r#"xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main""#;

fn paragraph(style: Option<&str>, runs: &str) -> String {
    let properties = style.map(|s| format!(r#"<w:pPr><w:pStyle w:val="{s}"/><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr>"#));
    format!("<w:p>{}{runs}</w:p>", properties.unwrap_or_default())
}

fn run(text: &str) -> String {
    format!(r#"<w:r><w:rPr><w:b/></w:rPr><w:t xml:space="preserve">{text}</w:t></w:r>"#)
}

fn document(paragraphs: &[String]) -> String {
    format!(r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document {W}><w:body>{}<w:sectPr/></w:body></w:document>"#, paragraphs.concat())
}

fn docx(entries: &[(&str, &str)]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, content) in entries {
        zip.start_file(*name, SimpleFileOptions::default())?;
        zip.write_all(content.as_bytes())?;
    }
    Ok(zip.finish()?.into_inner())
}

#[test]
fn headings_and_paragraphs_become_sections() -> Result<(), Box<dyn std::error::Error>> {
    let xml = document(&[
        paragraph(Some("Heading1"), &run("Annual report")),
        paragraph(None, &format!("{}{}", run("Revenue grew &amp; costs fell"), run(" by 5&#37;."))),
        paragraph(None, r#"<w:r><w:t>col a</w:t><w:tab/><w:t>col b</w:t><w:br/><w:t>next</w:t></w:r>"#),
        paragraph(None, r#"<w:del><w:r><w:delText>removed</w:delText></w:r></w:del><w:r><w:instrText>PAGE</w:instrText></w:r>"#),
        paragraph(Some("Heading2"), &run("Outlook")),
        paragraph(None, &run("Steady.")),
    ]);
    let bytes = docx(&[("[Content_Types].xml", "<Types/>"), ("word/document.xml", &xml)])?;
    assert_eq!(sniff(&bytes, Some("report.zip"), None)?, Format::Docx);
    let parsed = parse(&bytes, Format::Docx)?;
    assert_eq!(parsed.title.as_deref(), Some("Annual report"));
    let sections: Vec<_> = parsed.sections.iter().map(|s| (s.heading_path.join(" > "), s.text.as_str())).collect();
    assert_eq!(sections, [("Annual report".to_string(), "Revenue grew & costs fell by 5%.\ncol a\tcol b\nnext"), ("Annual report > Outlook".to_string(), "Steady."),]);
    Ok(())
}

#[test]
fn style_names_from_styles_xml_mark_localised_headings() -> Result<(), Box<dyn std::error::Error>> {
    let styles = format!(
        r#"<w:styles {W}><w:style w:type="paragraph" w:styleId="berschrift1"><w:name w:val="heading 1"/></w:style><w:style w:type="paragraph" w:styleId="Titel"><w:name w:val="Title"/></w:style></w:styles>"#
    );
    let xml = document(&[paragraph(Some("Titel"), &run("Handbuch")), paragraph(Some("berschrift1"), &run("Einleitung")), paragraph(None, &run("Text."))]);
    let bytes = docx(&[("word/document.xml", &xml), ("word/styles.xml", &styles)])?;
    let parsed = parse(&bytes, Format::Docx)?;
    assert_eq!(parsed.title.as_deref(), Some("Handbuch"));
    assert_eq!(parsed.sections[0].heading_path, ["Handbuch", "Einleitung"]);
    assert_eq!(parsed.sections[0].text, "Text.");
    Ok(())
}

#[test]
fn malformed_docx_is_an_error_not_a_panic() -> Result<(), Box<dyn std::error::Error>> {
    assert!(matches!(parse(b"PK\x03\x04 not really a zip", Format::Docx), Err(ParseError::Malformed(_))));
    assert!(matches!(sniff(b"PK\x03\x04 not really a zip", Some("a.docx"), None), Err(ParseError::Malformed(_))));
    let broken = docx(&[("word/document.xml", "<w:document><w:body><w:p><w:r><w:t>x</w:t></w:p></w:body>")])?;
    assert!(matches!(parse(&broken, Format::Docx), Err(ParseError::Malformed(_))));
    let not_word = docx(&[("xl/workbook.xml", "<workbook/>")])?;
    assert!(matches!(parse(&not_word, Format::Docx), Err(ParseError::Malformed(_))));
    assert!(matches!(sniff(&not_word, Some("book.docx"), None), Err(ParseError::Unsupported(_))));
    let valid = docx(&[("word/document.xml", &document(&[paragraph(None, &run("text"))]))])?;
    assert!(matches!(parse(&valid[..valid.len() / 2], Format::Docx), Err(ParseError::Malformed(_))));
    Ok(())
}

#[test]
fn oversized_entries_are_refused() -> Result<(), Box<dyn std::error::Error>> {
    let big = document(&[paragraph(None, &run(&"a".repeat(4096)))]);
    let bytes = docx(&[("word/document.xml", &big)])?;
    let tight = Limits { inflate_ratio: 1, inflate_floor_bytes: 1024, ..Limits::default() };
    assert!(matches!(parse_with_limits(&bytes, Format::Docx, &tight), Err(ParseError::TooLarge { .. })));
    assert!(parse(&bytes, Format::Docx).is_ok());
    Ok(())
}

/// 40 MiB of XML that deflates to ~40 KB: over the 32 MiB floor of a small
/// file's decompressed-data budget.
fn bomb() -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let padding = " ".repeat(40 * 1024 * 1024);
    let xml = document(&[paragraph(None, &format!("{}{padding}", run("boom")))]);
    docx(&[("word/document.xml", &xml)])
}

#[test]
fn a_zip_bomb_stops_at_the_decompressed_data_budget() -> Result<(), Box<dyn std::error::Error>> {
    let bytes = bomb()?;
    assert!(bytes.len() < 200_000, "{} bytes", bytes.len());
    let result = parse(&bytes, Format::Docx);
    assert_eq!(result.map(|p| p.sections.len()), Err(ParseError::TooLarge { what: "the DOCX archive's decompressed parts".into(), limit: Limit::Bytes(32 * 1024 * 1024) }));
    Ok(())
}

/// Sizes in the local and central headers that claim 100 bytes: the
/// bounded reader still stops at the budget (or the archive is refused).
#[test]
fn a_zip_entry_that_lies_about_its_size_is_still_bounded() -> Result<(), Box<dyn std::error::Error>> {
    let mut bytes = bomb()?;
    let patch = |bytes: &mut Vec<u8>, signature: &[u8], offset: usize| {
        let positions: Vec<usize> = bytes.windows(4).enumerate().filter(|(_, w)| *w == signature).map(|(i, _)| i).collect();
        for at in positions {
            if let Some(field) = bytes.get_mut(at + offset..at + offset + 4) {
                field.copy_from_slice(&100u32.to_le_bytes());
            }
        }
    };
    patch(&mut bytes, b"PK\x03\x04", 22);
    patch(&mut bytes, b"PK\x01\x02", 24);
    assert!(matches!(parse(&bytes, Format::Docx), Err(ParseError::TooLarge { .. } | ParseError::Malformed(_))));
    Ok(())
}

#[test]
fn a_document_without_text_is_empty() -> Result<(), Box<dyn std::error::Error>> {
    let bytes = docx(&[("word/document.xml", &document(&[paragraph(None, "")]))])?;
    assert_eq!(parse(&bytes, Format::Docx), Err(ParseError::Empty));
    Ok(())
}

/// A ZIP of 12 000 empty entries plus a Word body: opening it would make
/// the zip crate read and allocate for every central-directory entry
/// during upload sniffing, so it is refused before it is opened.
#[test]
fn an_archive_with_too_many_entries_is_refused_before_opening() -> Result<(), Box<dyn std::error::Error>> {
    let body = document(&[paragraph(None, &run("text"))]);
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file("word/document.xml", SimpleFileOptions::default())?;
    zip.write_all(body.as_bytes())?;
    for i in 0..12_000 {
        zip.start_file(format!("e/{i}"), SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored))?;
    }
    let bytes = zip.finish()?.into_inner();
    let too_many = ParseError::TooLarge { what: "its number of ZIP entries".into(), limit: Limit::Count(10_000) };
    assert_eq!(sniff(&bytes, Some("report.docx"), None), Err(too_many.clone()));
    assert_eq!(parse(&bytes, Format::Docx).map(|p| p.sections.len()), Err(too_many.clone()));
    // The record's count alone is enough: here it claims 60 000 entries.
    let mut claimed = docx(&[("word/document.xml", &body)])?;
    let eocd = claimed.windows(4).rposition(|w| w == b"PK\x05\x06").ok_or("no end record")?;
    claimed[eocd + 8..eocd + 12].copy_from_slice(&[0x60, 0xEA, 0x60, 0xEA]);
    assert_eq!(sniff(&claimed, Some("report.docx"), None), Err(too_many));
    // A normal document still opens.
    assert_eq!(sniff(&docx(&[("word/document.xml", &body)])?, None, None), Ok(Format::Docx));
    Ok(())
}
