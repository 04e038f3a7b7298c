//! Page work measured on the very content and resources pdf-extract uses:
//! inherited direct resources, content streams joined by line ends,
//! predictors applied, colour spaces charged for their values.

use std::io::Write;

use super::super::pdf_xref::tests::{body, with_table};
use super::super::{Format, ParseError, parse};

/// Catalog 1, pages 2 (with `pages_extra` in its dictionary), page 3 (with
/// `page_extra`), then `rest` from object 4 on.
fn document(pages_extra: &str, page_extra: &str, rest: &[Vec<u8>]) -> Vec<u8> {
    let mut objects = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        format!("<< /Type /Pages /Kids [3 0 R] /Count 1 {pages_extra} >>").into_bytes(),
        format!("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] {page_extra} >>").into_bytes(),
    ];
    objects.extend_from_slice(rest);
    let (pdf, offsets) = body(&objects);
    with_table(pdf, &offsets, "")
}

fn stream(dict: &str, data: &[u8]) -> Vec<u8> {
    [format!("<< {dict} /Length {} >>\nstream\n", data.len()).as_bytes(), data, b"\nendstream"].concat()
}

/// A font (object 4) whose ToUnicode (object 5) covers 2^17 codes: 12.5 MB
/// in pdf-extract each time a name selects it.
fn heavy_font() -> Vec<Vec<u8>> {
    let cmap = "/CIDInit /ProcSet findresource begin begincmap 2 beginbfrange <00000000> <0000FFFF> <0000> <00010000> <0001FFFF> <0000> endbfrange endcmap end";
    vec![b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 5 0 R >>".to_vec(), stream("", cmap.as_bytes())]
}

/// `/F0` … `/F{names-1}`, all the heavy font.
fn font_names(names: usize) -> String {
    (0..names).map(|i| format!("/F{i} 4 0 R ")).collect()
}

fn selecting(names: usize) -> String {
    (0..names).map(|i| format!("BT /F{i} 12 Tf (A) Tj ET\n")).collect()
}

fn refused_for_memory(pdf: &[u8]) -> bool {
    let started = std::time::Instant::now();
    let result = parse(pdf, Format::Pdf);
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "took {:?}", started.elapsed());
    matches!(result, Err(ParseError::TooLarge { .. }))
}

#[test]
fn resources_inherited_as_a_direct_dictionary_are_measured() {
    // lopdf's page-resource lookup skips an ancestor's direct /Resources;
    // pdf-extract's uses it. Before: the page's fonts and forms went unmeasured.
    let content = selecting(30);
    let mut rest = heavy_font();
    rest.push(stream("", content.as_bytes()));
    let pdf = document(&format!("/Resources << /Font << {} >> >>", font_names(30)), "/Contents 6 0 R", &rest);
    assert!(refused_for_memory(&pdf));
}

#[test]
fn content_streams_are_read_joined_by_line_ends_as_pdf_extract_reads_them() {
    // `B` ending one stream and `I` starting the next are two operators to
    // lopdf (it puts a line end between streams); joined without one they
    // read `BI`, an inline image that hid everything after it.
    let mut rest = heavy_font();
    rest.push(stream("", b"0 0 m B"));
    rest.push(stream("", format!("I\n{}", selecting(30)).as_bytes()));
    let pdf = document("", &format!("/Resources << /Font << {} >> >> /Contents [6 0 R 7 0 R]", font_names(30)), &rest);
    assert!(refused_for_memory(&pdf));
}

#[test]
fn content_is_read_with_its_predictor_applied() {
    // A PNG predictor's row tags are not whitespace: reading the content
    // before the predictor, the guard saw no operators at all.
    let content = selecting(30);
    let mut rows = vec![0u8];
    rows.extend_from_slice(content.as_bytes());
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&rows).unwrap();
    let compressed = encoder.finish().unwrap();
    let mut rest = heavy_font();
    rest.push(stream(&format!("/Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns {} >>", content.len()), &compressed));
    let pdf = document("", &format!("/Resources << /Font << {} >> >> /Contents 6 0 R", font_names(30)), &rest);
    assert!(refused_for_memory(&pdf));
}

#[test]
fn colour_spaces_are_charged_for_their_values() {
    // pdf-extract builds a CalRGB space's /Matrix into a vector on every
    // `cs`, and copies it on every `q` (4 GB and an abort from 2 MB).
    let matrix = format!("[{}]", "1 ".repeat(300_000)).into_bytes();
    let content = format!("/C cs {}", "q ".repeat(200));
    let rest = vec![matrix, stream("", content.as_bytes())];
    let pdf = document("", "/Resources << /ColorSpace << /C [/CalRGB << /WhitePoint [1 1 1] /Matrix 4 0 R >>] >> >> /Contents 5 0 R", &rest);
    assert!(refused_for_memory(&pdf));
}

#[test]
fn every_saved_graphics_state_is_charged_its_copy() {
    // `q Q` pairs keep the nesting at one, but pdf-extract copies the whole
    // state (here 100 000 colour operands) on every `q`: 94 s past a 10 s
    // deadline from 4 KB before.
    let content = format!("{}sc {}", "0 ".repeat(100_000), "q Q ".repeat(100));
    let pdf = document("", "/Contents 4 0 R", &[stream("", content.as_bytes())]);
    assert!(refused_for_memory(&pdf));
}

#[test]
fn content_operations_are_charged_what_lopdf_holds_for_each() {
    // lopdf reserves four operand slots per operation (~580 bytes): 600 000
    // bare operators took 1.1 GB from 4 KB when charged as plain values.
    let content = "q\nQ\n".repeat(300_000);
    let pdf = document("", "/Contents 4 0 R", &[stream("", content.as_bytes())]);
    assert!(refused_for_memory(&pdf));
}
