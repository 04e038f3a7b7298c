//! DOCX fixtures are built here with the `zip` crate, so the tests need no
//! binary files.

use std::io::{Cursor, Write};

use zip::ZipWriter;
use zip::write::SimpleFileOptions;

use super::super::{Format, ParseError, parse, sniff};
use super::{MAX_ENTRY_BYTES, parse_with_limit};

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
    assert_eq!(
        sections,
        [
            ("Annual report".to_string(), "Revenue grew & costs fell by 5%.\ncol a\tcol b\nnext"),
            ("Annual report > Outlook".to_string(), "Steady."),
        ]
    );
    Ok(())
}

#[test]
fn style_names_from_styles_xml_mark_localised_headings() -> Result<(), Box<dyn std::error::Error>> {
    let styles = format!(
        r#"<w:styles {W}><w:style w:type="paragraph" w:styleId="berschrift1"><w:name w:val="heading 1"/></w:style><w:style w:type="paragraph" w:styleId="Titel"><w:name w:val="Title"/></w:style></w:styles>"#
    );
    let xml = document(&[
        paragraph(Some("Titel"), &run("Handbuch")),
        paragraph(Some("berschrift1"), &run("Einleitung")),
        paragraph(None, &run("Text.")),
    ]);
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
    assert!(matches!(parse_with_limit(&bytes, 1024), Err(ParseError::TooLarge(_))));
    assert!(parse_with_limit(&bytes, MAX_ENTRY_BYTES).is_ok());
    Ok(())
}

#[test]
fn a_document_without_text_is_empty() -> Result<(), Box<dyn std::error::Error>> {
    let bytes = docx(&[("word/document.xml", &document(&[paragraph(None, "")]))])?;
    assert_eq!(parse(&bytes, Format::Docx), Err(ParseError::Empty));
    Ok(())
}
