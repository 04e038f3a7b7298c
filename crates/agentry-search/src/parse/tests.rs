//! Sniffing, the shared section builder and the errors every format shares.

use super::*;

fn sniffed(bytes: &[u8], name: Option<&str>, content_type: Option<&str>) -> Result<Format, ParseError> {
    sniff(bytes, name, content_type)
}

#[test]
fn magic_bytes_win_over_the_declared_type() {
    assert_eq!(sniffed(b"%PDF-1.7\n...", Some("notes.txt"), Some("text/plain")), Ok(Format::Pdf));
    assert_eq!(sniffed(b"just some words", Some("report.pdf"), Some("application/pdf")), Ok(Format::Text));
    assert_eq!(sniffed(b"<p>hi</p>", Some("a.pdf"), None), Ok(Format::Text));
}

#[test]
fn binary_and_non_utf8_data_is_unsupported() {
    let random: Vec<u8> = (0u32..512).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    assert!(matches!(sniffed(&random, Some("data.txt"), None), Err(ParseError::Unsupported(_))));
    assert!(matches!(sniffed(b"abc\0def", None, None), Err(ParseError::Unsupported(_))));
    assert!(matches!(sniffed(b"\x89PNG\r\n\x1a\n", Some("a.md"), None), Err(ParseError::Unsupported(_))));
    assert!(matches!(sniffed(b"caf\xe9", None, None), Err(ParseError::Unsupported(_))));
    assert!(matches!(sniffed(b"{\\rtf1 hello}", None, None), Err(ParseError::Unsupported(_))));
    assert!(matches!(parse(&random, Format::Text), Err(ParseError::Unsupported(_))));
    assert!(matches!(parse(&random, Format::Html), Err(ParseError::Unsupported(_))));
}

#[test]
fn html_is_recognised_without_an_extension() {
    assert_eq!(sniffed(b"\xef\xbb\xbf  <!DOCTYPE html><p>x</p>", None, None), Ok(Format::Html));
    assert_eq!(sniffed(b"\n<HTML><body>x</body></HTML>", None, None), Ok(Format::Html));
    assert_eq!(sniffed(b"<?xml version=\"1.0\"?>\n<!-- saved -->\n<html xmlns=\"x\"><p>x</p></html>", None, None), Ok(Format::Html));
    assert_eq!(sniffed(b"<!-- unterminated <html>", None, None), Ok(Format::Text));
    assert_eq!(sniffed(b"<div>x</div>", Some("page.htm"), None), Ok(Format::Html));
    assert_eq!(sniffed(b"<div>x</div>", None, Some("text/html; charset=utf-8")), Ok(Format::Html));
    assert_eq!(sniffed(b"1 < 2 and 3 > 2", Some("page.html"), None), Ok(Format::Text));
}

#[test]
fn json_csv_and_markdown_need_both_declaration_and_fitting_bytes() {
    assert_eq!(sniffed(b" {\"a\": 1}", None, None), Ok(Format::Json));
    assert_eq!(sniffed(b"[1, 2", None, None), Ok(Format::Text));
    assert_eq!(sniffed(b"\"quoted\"", None, Some("application/ld+json")), Ok(Format::Json));
    assert_eq!(sniffed(b"a,b\n1,2\n", Some("t.CSV"), None), Ok(Format::Csv));
    assert_eq!(sniffed(b"a,b\n1,2\n", None, None), Ok(Format::Text));
    assert_eq!(sniffed(b"a,b\n1,2,3\n", None, Some("text/csv")), Ok(Format::Text));
    assert_eq!(sniffed(b"# Title", Some("readme.md"), None), Ok(Format::Markdown));
    assert_eq!(sniffed(b"# Title", None, Some("text/markdown")), Ok(Format::Markdown));
    assert_eq!(sniffed(b"# Title", None, None), Ok(Format::Text));
}

#[test]
fn empty_input_is_empty() {
    assert_eq!(sniffed(b"", None, None), Err(ParseError::Empty));
    assert_eq!(sniffed(b" \n\t ", Some("a.txt"), None), Err(ParseError::Empty));
    assert_eq!(parse(b"", Format::Text), Err(ParseError::Empty));
    assert_eq!(parse(b"  \n ", Format::Markdown), Err(ParseError::Empty));
    assert_eq!(parse(b"<html><head><title>t</title></head><body> </body></html>", Format::Html), Err(ParseError::Empty));
    assert_eq!(parse(b"{}", Format::Json), Err(ParseError::Empty));
}

#[test]
fn outline_tracks_the_heading_chain() -> Result<(), ParseError> {
    let mut outline = Outline::new(Budget::new(&Limits::default(), 0));
    outline.push_str("intro");
    outline.heading(1, "A");
    outline.heading(2, "B");
    outline.push_str("under b");
    outline.heading(3, "C");
    outline.push_str("under c");
    outline.heading(2, "D");
    outline.push_str("under d");
    let parsed = outline.finish(None)?;
    assert_eq!(parsed.title.as_deref(), Some("A"));
    let paths: Vec<_> = parsed.sections.iter().map(|s| (s.heading_path.join(">"), s.text.as_str())).collect();
    assert_eq!(paths, [("".into(), "intro"), ("A>B".into(), "under b"), ("A>B>C".into(), "under c"), ("A>D".into(), "under d")]);
    Ok(())
}

#[test]
fn outline_stops_at_the_budget_and_cuts_long_headings() {
    let limits = Limits { text_ratio: 1, text_floor_bytes: 1024, max_sections: 3, ..Limits::default() };
    let mut outline = Outline::new(Budget::new(&limits, 0));
    outline.heading(1, &"h".repeat(1000));
    outline.push_str("text");
    assert!(outline.check().is_ok());
    for _ in 0..100 {
        outline.push_str("0123456789");
    }
    assert!(matches!(outline.check(), Err(ParseError::TooLarge { ref what, .. }) if what == "its extracted text"));
    assert!(matches!(outline.finish(None), Err(ParseError::TooLarge { .. })));

    let mut outline = Outline::new(Budget::new(&Limits::default(), 0));
    outline.heading(1, &"h".repeat(1000));
    outline.push_str("text");
    let parsed = outline.finish(None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed.title.as_ref().map(|t| t.chars().count()), Some(300));
    assert_eq!(parsed.sections[0].heading_path[0].chars().count(), 300);
}

#[test]
fn form_feeds_cannot_make_unbounded_sections() {
    let limits = Limits { max_sections: 10, ..Limits::default() };
    let pages = "page\x0c".repeat(11);
    assert!(matches!(parse_with_limits(pages.as_bytes(), Format::Text, &limits), Err(ParseError::TooLarge { .. })));
    let blank = "\x0c".repeat(100_000) + "one page";
    assert_eq!(parse_with_limits(blank.as_bytes(), Format::Text, &limits).map(|p| p.sections.len()), Ok(1));
}

#[test]
fn structured_formats_stop_at_the_text_budget() {
    let limits = Limits { text_ratio: 1, text_floor_bytes: 1024, ..Limits::default() };
    // Headings are repeated in every section's path, so headings over short paragraphs expand.
    let nested = format!("# {}\n\n", "h".repeat(250)) + &format!("## {}\n\nx\n\n", "s".repeat(250)).repeat(20);
    assert!(matches!(parse_with_limits(nested.as_bytes(), Format::Markdown, &limits), Err(ParseError::TooLarge { .. })));
    assert!(parse(nested.as_bytes(), Format::Markdown).is_ok());
    let html = format!("<h1>{}</h1>", "h".repeat(250)) + &format!("<h2>{}</h2><p>x</p>", "s".repeat(250)).repeat(20);
    assert!(matches!(parse_with_limits(html.as_bytes(), Format::Html, &limits), Err(ParseError::TooLarge { .. })));
    assert!(parse(html.as_bytes(), Format::Html).is_ok());
}

#[test]
fn long_titles_are_cut() -> Result<(), ParseError> {
    let html = format!("<title>{}</title><p>x</p>", "t".repeat(5_000));
    assert_eq!(parse(html.as_bytes(), Format::Html)?.title.map(|t| t.chars().count()), Some(300));
    Ok(())
}

#[test]
fn tidy_lines_trims_and_collapses_blank_lines() {
    assert_eq!(tidy_lines("\n  a  \n\n\n b\nc \n\n"), "a\n\nb\nc");
}
