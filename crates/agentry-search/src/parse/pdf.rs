//! PDF through pdf-extract (lopdf underneath): one section per page with
//! its 1-based page number; pages without text are dropped.
//!
//! pdf-extract's own per-page helper stops at the first page that fails,
//! so the pages are walked here: a page that fails or panics is skipped
//! with a warning and the rest of the document still counts. pdf-extract
//! can panic on malformed input (it unwraps inside), so every call into
//! it runs under `catch_unwind` and a panic becomes
//! [`ParseError::Malformed`] (or a skipped page). The panic message still
//! reaches stderr through the process's panic hook.
//!
//! Budgets: lopdf loads through [`super::pdf_load`], which checks the
//! cross-reference structure first and guards what lopdf builds. Neither
//! crate limits what it inflates, so [`super::pdf_streams`]
//! measures every stream with bounded decoders before loading, and each
//! page's drawing work (forms counted each time drawn, fonts and colour
//! profiles each time loaded) before extracting it. pdf-extract also
//! recurses without limits: up a page's `/Parent` chain (checked here
//! first: a loop or more than [`MAX_PAGE_TREE_DEPTH`] levels is
//! malformed) and into nested forms (refused past
//! [`super::pdf_streams::MAX_FORM_DEPTH`]). Text is written through a
//! sink that refuses to grow past the text budget, and the output device
//! counts its calls, so a page that draws without end stops at the budget
//! too. The parse's deadline is checked between pages and every few
//! thousand device calls.
//!
//! Must not: attempt OCR or ask for passwords (encrypted files are refused).

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

use pdf_extract::{ColorSpace, Document, MediaBox, Object, ObjectId, OutputDev, OutputError, Path, PlainTextOutput, Transform, output_doc_page};

use super::budget::{Budget, Deadline};
use super::pdf_raw::check_raw;
use super::pdf_streams::PageWork;
use super::{ParseError, Parsed, Section, tidy_lines};
use super::{pdf_load, pdf_xref};

pub(super) fn parse(bytes: &[u8], budget: &mut Budget) -> Result<Parsed, ParseError> {
    check_raw(bytes, budget)?;
    let document = load(bytes, budget)?;
    let pages = document.get_pages();
    if pages.is_empty() {
        return Err(malformed("the document has no pages"));
    }
    if pages.len() > budget.limits().max_sections {
        return Err(ParseError::TooLarge { what: "its number of pages".into(), limit: super::budget::Limit::Count(budget.limits().max_sections as u64) });
    }
    let deadline = budget.deadline();
    let mut boxed = Vec::with_capacity(pages.len());
    for &page_id in pages.values() {
        boxed.push(page_ancestry(&document, page_id)?);
    }
    let mut work = PageWork::new(&document, budget.inflate_limit(), pdf_xref::memory_limit(pdf_xref::from_header(bytes).len() as u64), deadline);
    let mut sections = Vec::with_capacity(pages.len());
    let mut failed = 0usize;
    for ((&page, &page_id), has_media_box) in pages.iter().zip(boxed) {
        deadline.check()?;
        if !has_media_box {
            // pdf-extract would panic (`expect("MediaBox")`).
            failed += 1;
            tracing::warn!(page, "skipping a PDF page without a MediaBox");
            continue;
        }
        work.page(page_id)?;
        let mut sink = TextSink { text: Vec::new(), room: budget.text_room(), over: false };
        let extracted = {
            let mut output = Counted {
                inner: PlainTextOutput::new(&mut sink as &mut dyn std::io::Write),
                calls: 0,
                max_calls: budget.text_room().saturating_add(1 << 20),
                over: false,
                deadline,
                late: None,
            };
            let result = catch_unwind(AssertUnwindSafe(|| output_doc_page(&document, &mut output, page)));
            if let Some(late) = output.late {
                return Err(late);
            }
            (result, output.over)
        };
        if sink.over || extracted.1 {
            return Err(budget.text_exceeded());
        }
        match extracted.0 {
            Ok(Ok(())) => {
                let text = tidy_lines(&String::from_utf8_lossy(&sink.text));
                if text.is_empty() {
                    continue;
                }
                budget.section()?;
                budget.text(text.len())?;
                sections.push(Section { heading_path: Vec::new(), page: Some(page), text });
            }
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

/// How far up a page's `/Parent` chain is followed: a page tree this deep
/// is not a real one.
const MAX_PAGE_TREE_DEPTH: usize = 256;

/// Walk a page's `/Parent` chain the way pdf-extract inherits `/Resources`
/// and `/MediaBox` (recursively, with no check of its own, so a cycle
/// would overflow its stack or never end): a cycle or a chain deeper than
/// [`MAX_PAGE_TREE_DEPTH`] is malformed. Whether the page has a MediaBox,
/// its own or inherited.
fn page_ancestry(document: &Document, page_id: ObjectId) -> Result<bool, ParseError> {
    let mut seen = HashSet::from([page_id]);
    let mut node = document.get_dictionary(page_id).map_err(|_| malformed("a page is not a dictionary"))?;
    let mut has_media_box = false;
    loop {
        has_media_box |= node.has(b"MediaBox");
        let Ok(parent) = node.get(b"Parent").and_then(Object::as_reference) else {
            return Ok(has_media_box);
        };
        if !seen.insert(parent) {
            return Err(malformed("a page's /Parent chain loops back on itself"));
        }
        if seen.len() > MAX_PAGE_TREE_DEPTH {
            return Err(malformed(&format!("a page's /Parent chain is more than {MAX_PAGE_TREE_DEPTH} levels deep")));
        }
        let Ok(next) = document.get_dictionary(parent) else {
            return Ok(has_media_box);
        };
        node = next;
    }
}

/// Where a page's text goes: refuses to grow past `room` bytes.
struct TextSink {
    text: Vec<u8>,
    room: u64,
    over: bool,
}

impl std::io::Write for TextSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if (self.text.len() + buf.len()) as u64 > self.room {
            self.over = true;
            return Err(std::io::Error::other("over the text budget"));
        }
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// pdf-extract's plain-text device, stopped after `max_calls` calls (a
/// page that only draws produces no text to run out of), or when the
/// parse's time is up (`late`).
struct Counted<D> {
    inner: D,
    calls: u64,
    max_calls: u64,
    over: bool,
    deadline: Deadline,
    late: Option<ParseError>,
}

impl<D: OutputDev> Counted<D> {
    fn tick(&mut self) -> Result<(), OutputError> {
        self.calls += 1;
        if self.calls > self.max_calls {
            self.over = true;
            return Err(OutputError::FormatError(std::fmt::Error));
        }
        // Every call: one character can cost pdf-extract a lot (a font
        // whose width lookups miss sorts its whole width map), and a clock
        // read is cheap next to any call.
        if let Err(late) = self.deadline.check() {
            self.late = Some(late);
            return Err(OutputError::FormatError(std::fmt::Error));
        }
        Ok(())
    }
}

impl<D: OutputDev> OutputDev for Counted<D> {
    fn begin_page(&mut self, page_num: u32, media_box: &MediaBox, art_box: Option<(f64, f64, f64, f64)>) -> Result<(), OutputError> {
        self.tick()?;
        self.inner.begin_page(page_num, media_box, art_box)
    }
    fn end_page(&mut self) -> Result<(), OutputError> {
        self.tick()?;
        self.inner.end_page()
    }
    fn output_character(&mut self, trm: &Transform, width: f64, spacing: f64, font_size: f64, char: &str) -> Result<(), OutputError> {
        self.tick()?;
        self.inner.output_character(trm, width, spacing, font_size, char)
    }
    fn begin_word(&mut self) -> Result<(), OutputError> {
        self.tick()?;
        self.inner.begin_word()
    }
    fn end_word(&mut self) -> Result<(), OutputError> {
        self.tick()?;
        self.inner.end_word()
    }
    fn end_line(&mut self) -> Result<(), OutputError> {
        self.tick()?;
        self.inner.end_line()
    }
    fn stroke(&mut self, ctm: &Transform, colorspace: &ColorSpace, color: &[f64], path: &Path) -> Result<(), OutputError> {
        self.tick()?;
        self.inner.stroke(ctm, colorspace, color, path)
    }
    fn fill(&mut self, ctm: &Transform, colorspace: &ColorSpace, color: &[f64], path: &Path) -> Result<(), OutputError> {
        self.tick()?;
        self.inner.fill(ctm, colorspace, color, path)
    }
}

fn load(bytes: &[u8], budget: &mut Budget) -> Result<Document, ParseError> {
    let mut document = pdf_load::load(bytes, budget)?;
    let decrypted = catch_unwind(AssertUnwindSafe(|| !document.is_encrypted() || document.decrypt("").is_ok())).map_err(|_| malformed("the file structure cannot be read"))?;
    if !decrypted {
        return Err(ParseError::Unsupported("PDF: the document is password-protected; remove the password and upload it again".into()));
    }
    Ok(document)
}

fn malformed(reason: &str) -> ParseError {
    ParseError::Malformed(format!("PDF: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::super::pdf_xref::tests::{body, with_table};
    use super::super::{Format, Limit, ParseError, parse, sniff};

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
            objects.push(format!("<< /Type /Page /Parent 2 0 R {entries} /Resources << /Font << /F1 3 0 R >> >> /Contents {content_id} 0 R >>"));
            let stream = if text.is_empty() { String::new() } else { format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET") };
            objects.push(format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()));
        }
        pdf_from_objects(objects.into_iter().map(String::into_bytes).collect())
    }

    /// A PDF file of `objects` (numbered from 1; object 1 is the catalog) with a correct xref table.
    fn pdf_from_objects(objects: Vec<Vec<u8>>) -> Vec<u8> {
        let (pdf, offsets) = body(&objects);
        with_table(pdf, &offsets, "")
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

    fn deflate(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(data).unwrap_or_else(|e| panic!("{e}"));
        encoder.finish().unwrap_or_else(|e| panic!("{e}"))
    }

    /// A one-page PDF whose page draws `content`, with `extra` objects
    /// from number 5 on (the page is 4, its content 3).
    fn pdf_with_content(content: Vec<u8>, resources: &str, extra: Vec<Vec<u8>>) -> Vec<u8> {
        let mut objects = vec![
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>".to_vec(),
            content,
            format!("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> {resources} >> /Contents 3 0 R >>").into_bytes(),
        ];
        objects.extend(extra);
        pdf_from_objects(objects)
    }

    fn stream(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut object = format!("<< {dict} /Length {} >>\nstream\n", data.len()).into_bytes();
        object.extend_from_slice(data);
        object.extend_from_slice(b"\nendstream");
        object
    }

    #[test]
    fn a_huge_flate_stream_stops_at_the_decompressed_data_budget() {
        // 64 MiB of content (spaces after one line of text) deflates to ~65 KB.
        let mut content = b"BT /F1 12 Tf 72 720 Td (boom) Tj ET\n".to_vec();
        content.resize(64 * 1024 * 1024, b' ');
        let compressed = deflate(&content);
        drop(content);
        let pdf = pdf_with_content(stream("/Filter /FlateDecode", &compressed), "", Vec::new());
        assert!(pdf.len() < 200_000, "{} bytes", pdf.len());
        assert_eq!(parse(&pdf, Format::Pdf).map(|p| p.sections.len()), Err(ParseError::TooLarge { what: "its decompressed data".into(), limit: Limit::Bytes(32 * 1024 * 1024) }));
        // Hidden behind a filter chain (deflated twice) it is found all the same.
        let twice = deflate(&compressed);
        let pdf = pdf_with_content(stream("/Filter [/FlateDecode /FlateDecode]", &twice), "", Vec::new());
        assert!(matches!(parse(&pdf, Format::Pdf), Err(ParseError::TooLarge { ref what, .. }) if what == "its decompressed data"));
        // A small compressed page still reads.
        let small = deflate(b"BT /F1 12 Tf 72 720 Td (Compressed page) Tj ET");
        let pdf = pdf_with_content(stream("/Filter /FlateDecode", &small), "", Vec::new());
        assert_eq!(parse(&pdf, Format::Pdf).map(|p| p.sections[0].text.clone()), Ok("Compressed page".to_owned()));
    }

    #[test]
    fn forms_drawn_many_times_count_each_time_and_a_form_drawing_itself_is_malformed() {
        // Form 5 draws form 6 a hundred times, 6 draws 7 a hundred times:
        // ten thousand draws of a 10 KB form (100 MB to decompress and read)
        // from a file of a few KB. (Each level more multiplies it by 100.)
        let draws = |name: &str| format!("/{name} Do ").repeat(100).into_bytes();
        let leaf = deflate(&[b' '; 10_000]);
        let forms = vec![
            stream("/Type /XObject /Subtype /Form /BBox [0 0 1 1] /Resources << /XObject << /G 6 0 R >> >> /Filter /FlateDecode", &deflate(&draws("G"))),
            stream("/Type /XObject /Subtype /Form /BBox [0 0 1 1] /Resources << /XObject << /H 7 0 R >> >> /Filter /FlateDecode", &deflate(&draws("H"))),
            stream("/Type /XObject /Subtype /Form /BBox [0 0 1 1] /Filter /FlateDecode", &leaf),
        ];
        let pdf = pdf_with_content(stream("", b"/Fm Do"), "/XObject << /Fm 5 0 R >>", forms);
        assert!(matches!(parse(&pdf, Format::Pdf), Err(ParseError::TooLarge { .. })));
        // The same draws behind ASCII85 (before: read as zeros, so never counted).
        let hex85 = |data: &[u8]| {
            let mut out = Vec::new();
            for chunk in data.chunks(4) {
                let mut group = [0u8; 4];
                group[..chunk.len()].copy_from_slice(chunk);
                let mut rest = u32::from_be_bytes(group);
                let mut digits = [0u8; 5];
                for digit in digits.iter_mut().rev() {
                    *digit = b'!' + (rest % 85) as u8;
                    rest /= 85;
                }
                out.extend_from_slice(&digits[..chunk.len() + 1]);
            }
            out.extend_from_slice(b"~>");
            out
        };
        let forms = vec![
            stream("/Type /XObject /Subtype /Form /BBox [0 0 1 1] /Resources << /XObject << /G 6 0 R >> >> /Filter /ASCII85Decode", &hex85(&draws("G"))),
            stream("/Type /XObject /Subtype /Form /BBox [0 0 1 1] /Resources << /XObject << /H 7 0 R >> >> /Filter /ASCII85Decode", &hex85(&draws("H"))),
            stream("/Type /XObject /Subtype /Form /BBox [0 0 1 1] /Filter /FlateDecode", &leaf),
        ];
        let pdf = pdf_with_content(stream("/Filter /ASCII85Decode", &hex85(b"/Fm Do")), "/XObject << /Fm 5 0 R >>", forms);
        assert!(matches!(parse(&pdf, Format::Pdf), Err(ParseError::TooLarge { .. })), "{:?}", parse(&pdf, Format::Pdf).map(|p| p.sections.len()));
        // A form that draws itself would recurse until the stack overflows.
        let selfish = vec![stream("/Type /XObject /Subtype /Form /BBox [0 0 1 1] /Resources << /XObject << /Fm 5 0 R >> >>", b"/Fm Do")];
        let pdf = pdf_with_content(stream("", b"BT /F1 12 Tf 72 720 Td (x) Tj ET /Fm Do"), "/XObject << /Fm 5 0 R >>", selfish);
        assert!(matches!(parse(&pdf, Format::Pdf), Err(ParseError::Malformed(_))), "{:?}", parse(&pdf, Format::Pdf));
    }

    /// A one-page PDF whose page draws `content` with `resources`, with
    /// `extra` objects from number 5 on; text in Helvetica as `/F1`.
    fn pdf_drawing(content: &str, resources: &str, extra: Vec<Vec<u8>>) -> Vec<u8> {
        pdf_with_content(stream("", content.as_bytes()), resources, extra)
    }

    const HELVETICA: &str = "/Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >>";

    #[test]
    fn object_streams_are_charged_before_loading_whatever_hides_their_filter() {
        // lopdf inflates object streams while loading, with no limit: 48 MiB from ~50 KB.
        let bomb = deflate(&vec![0u8; 48 << 20]);
        let dicts = [
            "/Type /ObjStm /N 1 /First 2 /Filter %x\n/FlateDecode",
            "/Type /ObjStm /N 1 /First 2 /Filter%x\n/FlateDecode",
            "/Type /ObjStm /N 1 /First 2 /Filter [%x\n/FlateDecode]",
            // Decoy keywords in a string once cut the dictionary off from its data.
            "/Type /ObjStm /N 1 /First 2 /Filter /FlateDecode /Pad (endstream\nstream\n)",
            "/Type /ObjStm /N 1 /First 2 /Filter /FlateDecode /Pad (stream\nendstream)",
        ];
        for dict in dicts {
            let pdf = pdf_drawing("BT /F1 12 Tf 72 720 Td (x) Tj ET", "", vec![stream(dict, &bomb)]);
            assert!(pdf.len() < 200_000, "{} bytes", pdf.len());
            let parsed = parse(&pdf, Format::Pdf).map(|p| p.sections.len());
            assert!(matches!(parsed, Err(ParseError::TooLarge { ref what, .. }) if what == "its decompressed data"), "{dict:?}: {parsed:?}");
        }
        // A filter neither reading can make out is refused rather than guessed at.
        let pdf = pdf_drawing("", "", vec![stream("/Type /ObjStm /N 1 /First 2 /T (%) /Filter %y\n/FlateDecode", &bomb)]);
        assert!(matches!(parse(&pdf, Format::Pdf), Err(ParseError::Malformed(_))));
    }

    #[test]
    fn a_page_whose_parent_chain_loops_or_runs_too_deep_is_malformed() {
        let content = stream("", b"BT /F1 12 Tf 72 720 Td (x) Tj ET");
        // No /Resources on the page: pdf-extract would look them up its
        // /Parent chain, recursing until the stack overflows (an abort).
        let own_parent = vec![
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
            b"<< /Type /Page /Parent 3 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>".to_vec(),
            content.clone(),
        ];
        let through_the_tree = vec![
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 /Parent 3 0 R >>".to_vec(),
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>".to_vec(),
            content.clone(),
        ];
        let mut deep = vec![
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
            b"<< /Type /Page /Parent 5 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>".to_vec(),
            content,
        ];
        deep.extend((5..305).map(|i| format!("<< /Type /Pages /Parent {} 0 R >>", i + 1).into_bytes()));
        deep.push(b"<< /Type /Pages >>".to_vec());
        for objects in [own_parent, through_the_tree, deep] {
            let parsed = parse(&pdf_from_objects(objects), Format::Pdf);
            assert!(matches!(&parsed, Err(ParseError::Malformed(reason)) if reason.contains("/Parent")), "{parsed:?}");
        }
    }

    /// `count` forms from object 5 on, each drawing the next; the last
    /// one draws `last` (or shows text).
    fn nested_forms(count: usize, first_id: usize, last: &str) -> Vec<Vec<u8>> {
        (0..count)
            .map(|i| {
                let id = first_id + i;
                let (resources, content) = if i + 1 == count {
                    let draw = if last.is_empty() { "" } else { " /Next Do" };
                    (format!("{HELVETICA} {last}"), format!("BT /F1 12 Tf 72 720 Td (deep) Tj ET{draw}"))
                } else {
                    (format!("{HELVETICA} /XObject << /Next {} 0 R >>", id + 1), "/Next Do".to_owned())
                };
                stream(&format!("/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << {resources} >>"), content.as_bytes())
            })
            .collect()
    }

    #[test]
    fn forms_nested_too_deep_are_refused_before_pdf_extract_recurses() {
        let too_deep = Err(ParseError::TooLarge { what: "its forms drawn inside forms (nesting depth)".into(), limit: Limit::Count(32) });
        let pdf = pdf_drawing("/Fm Do", "/XObject << /Fm 5 0 R >>", nested_forms(40, 5, ""));
        assert_eq!(parse(&pdf, Format::Pdf).map(|p| p.sections.len()), too_deep);
        // Thirty levels are fine.
        let pdf = pdf_drawing("/Fm Do", "/XObject << /Fm 5 0 R >>", nested_forms(30, 5, ""));
        assert_eq!(parse(&pdf, Format::Pdf).map(|p| p.sections[0].text.clone()), Ok("deep".to_owned()));
        // Measured once, a form keeps its depth: 20 forms drawn on their own
        // and again under 15 more are 35 deep, in whichever order they are met.
        let mut forms = nested_forms(20, 5, "");
        forms.extend(nested_forms(15, 25, "/XObject << /Next 5 0 R >>"));
        let pdf = pdf_drawing("/A Do /B Do", "/XObject << /A 5 0 R /B 25 0 R >>", forms);
        assert_eq!(parse(&pdf, Format::Pdf).map(|p| p.sections.len()), too_deep);
    }

    #[test]
    fn fonts_and_colour_profiles_count_each_time_pdf_extract_loads_them() {
        // One 1 MiB font file selected under 200 names: pdf-extract loads
        // (inflates) it once per name, and again on every page.
        let file = deflate(&vec![0u8; 1 << 20]);
        let font = b"<< /Type /Font /Subtype /TrueType /BaseFont /Big /FirstChar 32 /LastChar 32 /Widths [500] /FontDescriptor 6 0 R >>".to_vec();
        let descriptor = b"<< /Type /FontDescriptor /FontName /Big /Flags 32 /FontFile2 7 0 R >>".to_vec();
        let names: Vec<String> = (0..200).map(|i| format!("/G{i} 5 0 R")).collect();
        let shows: String = (0..200).map(|i| format!("/G{i} 12 Tf (a) Tj ")).collect();
        let pdf = pdf_from_objects(vec![
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>".to_vec(),
            stream("", format!("BT 72 720 Td {shows}ET").as_bytes()),
            format!("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << {} >> >> /Contents 3 0 R >>", names.join(" ")).into_bytes(),
            font,
            descriptor,
            stream("/Filter /FlateDecode", &file),
        ]);
        let parsed = parse(&pdf, Format::Pdf).map(|p| p.sections.len());
        assert!(matches!(parsed, Err(ParseError::TooLarge { ref what, .. }) if what.contains("fonts")), "{parsed:?}");
        // A 1 MiB ICC profile set a hundred times is read a hundred times.
        let sets = "/Cs cs ".repeat(100);
        let profile = stream("/N 1 /Filter /FlateDecode", &file);
        let pdf = pdf_drawing(&format!("{sets} BT /F1 12 Tf 72 720 Td (x) Tj ET"), "/ColorSpace << /Cs [/ICCBased 5 0 R] >>", vec![profile]);
        let parsed = parse(&pdf, Format::Pdf).map(|p| p.sections.len());
        assert!(matches!(parsed, Err(ParseError::TooLarge { ref what, .. }) if what.contains("page content")), "{parsed:?}");
    }

    #[test]
    fn a_parse_past_its_deadline_fails_with_the_reason() {
        use super::super::{Budget, Limits};
        let pdf = minimal_pdf(&["text"]);
        let mut budget = Budget::new(&Limits::default(), pdf.len()).expired();
        assert_eq!(super::parse(&pdf, &mut budget).map(|p| p.sections.len()), Err(ParseError::TooLarge { what: "the time it takes to parse".into(), limit: Limit::Seconds(120) }));
    }

    #[test]
    fn a_pdf_without_text_is_empty() {
        assert_eq!(parse(&minimal_pdf(&[""]), Format::Pdf), Err(ParseError::Empty));
    }
}
