//! Cross-reference attacks on lopdf's loading, each refused before it
//! costs memory, and real cross-reference and object streams still read.

use std::io::Write;
use std::time::{Duration, Instant};

use pdf_extract::{Document, SaveOptions};

use super::super::{Format, Limits, ParseError, parse, parse_with_limits};

/// Objects 1–5 of a one-page document saying `text`.
fn page(text: &str) -> Vec<Vec<u8>> {
    let content = format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET");
    vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents 5 0 R >>".to_vec(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()).into_bytes(),
    ]
}

/// `%PDF-1.5` and `objects` numbered from 1, and where each starts.
pub(in crate::parse) fn body(objects: &[Vec<u8>]) -> (Vec<u8>, Vec<usize>) {
    let mut pdf = b"%PDF-1.5\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        pdf.extend_from_slice(object);
        pdf.extend_from_slice(b"\nendobj\n");
    }
    (pdf, offsets)
}

/// A classic table listing `offsets` as objects 1, 2, … and its trailer.
pub(in crate::parse) fn with_table(mut pdf: Vec<u8>, offsets: &[usize], trailer: &str) -> Vec<u8> {
    let at = pdf.len();
    pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", offsets.len() + 1).as_bytes());
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(format!("trailer\n<< /Size {} /Root 1 0 R {trailer} >>\nstartxref\n{at}\n%%EOF\n", offsets.len() + 1).as_bytes());
    pdf
}

/// A cross-reference stream (object `number`, with `/W [1 4 2]`) listing
/// `rows` of (object, type, second field, third field), and `dict` added.
fn with_xref_stream(mut pdf: Vec<u8>, number: u32, rows: &[(u32, u8, u32, u16)], dict: &str) -> Vec<u8> {
    let at = pdf.len();
    let mut data = Vec::new();
    let mut index = String::new();
    for &(id, kind, second, third) in rows {
        data.push(kind);
        data.extend_from_slice(&second.to_be_bytes());
        data.extend_from_slice(&third.to_be_bytes());
        index.push_str(&format!("{id} 1 "));
    }
    let mut entries = format!("/W [1 4 2] /Index [{index}]");
    if dict.contains("/W ") {
        entries.clear();
    }
    if dict.contains("/FlateDecode") {
        data = deflate(&data);
    }
    pdf.extend_from_slice(format!("{number} 0 obj\n<< /Type /XRef /Size {} {entries} /Root 1 0 R {dict} /Length {} >>\nstream\n", number + 1, data.len()).as_bytes());
    pdf.extend_from_slice(&data);
    pdf.extend_from_slice(format!("\nendstream\nendobj\nstartxref\n{at}\n%%EOF\n").as_bytes());
    pdf
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap_or_else(|e| panic!("{e}"));
    encoder.finish().unwrap_or_else(|e| panic!("{e}"))
}

/// A stream object with `dict` entries and `data` deflated.
fn deflated_stream(dict: &str, data: &[u8]) -> Vec<u8> {
    let compressed = deflate(data);
    let mut object = format!("<< {dict} /Filter /FlateDecode /Length {} >>\nstream\n", compressed.len()).into_bytes();
    object.extend_from_slice(&compressed);
    object.extend_from_slice(b"\nendstream");
    object
}

/// An object stream (deflated) holding `header` then `objects`.
fn object_stream(header: &str, objects: &[u8]) -> Vec<u8> {
    deflated_stream(&format!("/Type /ObjStm /N 1 /First {}", header.len()), &[header.as_bytes(), objects].concat())
}

fn refused_quickly(pdf: &[u8], limits: &Limits) -> ParseError {
    let started = Instant::now();
    let result = parse_with_limits(pdf, Format::Pdf, limits).map(|p| p.sections.len());
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    result.err().unwrap_or_else(|| panic!("parsed"))
}

fn says(error: &ParseError, words: &str) -> bool {
    format!("{error:?}").contains(words)
}

#[test]
fn documents_saved_with_object_and_cross_reference_streams_still_read() {
    let (pdf, offsets) = body(&page("Streams all the way"));
    let mut document = Document::load_mem(&with_table(pdf, &offsets, "")).unwrap_or_else(|e| panic!("{e}"));
    let mut saved = Vec::new();
    let options = SaveOptions::builder().use_object_streams(true).use_xref_streams(true).build();
    document.save_with_options(&mut saved, options).unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&saved);
    assert!(text.contains("/ObjStm") && text.contains("/XRef"), "{text}");
    assert_eq!(parse(&saved, Format::Pdf).map(|p| p.sections[0].text.clone()), Ok("Streams all the way".to_owned()));
}

#[test]
fn many_entries_at_one_offset_are_refused_before_lopdf_reads_them() {
    // Before: lopdf inflated the 1 MiB object stream once per entry and
    // kept every copy of its objects (20 000 entries: ~20 GB).
    let mut objects = page("x");
    objects.push(object_stream("7 0 ", &[b'(', b'a'].iter().copied().chain(std::iter::repeat_n(b'a', 1 << 20)).chain([b')']).collect::<Vec<u8>>()));
    let (pdf, mut offsets) = body(&objects);
    let container = offsets[5];
    offsets.extend(std::iter::repeat_n(container, 20_000));
    let error = refused_quickly(&with_table(pdf.clone(), &offsets, ""), &Limits::default());
    assert!(says(&error, "same object"), "{error:?}");
    // The same through a cross-reference stream.
    let mut rows: Vec<(u32, u8, u32, u16)> = offsets[..6].iter().enumerate().map(|(i, &o)| (i as u32 + 1, 1, o as u32, 0)).collect();
    rows.extend((0..20_000).map(|i| (100 + i, 1, container as u32, 0)));
    let error = refused_quickly(&with_xref_stream(pdf, 7, &rows, ""), &Limits::default());
    assert!(says(&error, "same object"), "{error:?}");
}

#[test]
fn cross_reference_streams_that_would_loop_or_allocate_are_refused() {
    let (pdf, offsets) = body(&page("x"));
    let rows: Vec<(u32, u8, u32, u16)> = offsets.iter().enumerate().map(|(i, &o)| (i as u32 + 1, 1, o as u32, 0)).collect();
    // Before: entries that read nothing looped four billion times; a
    // huge width was allocated at once (the process aborted).
    for dict in ["/W [0 0 0] /Index [0 4000000000]", "/W [1 99999999999 1] /Index [1 1]", "/W [1 4 2] /Index [0 100000000]"] {
        let error = refused_quickly(&with_xref_stream(pdf.clone(), 6, &rows, dict), &Limits::default());
        assert!(matches!(error, ParseError::Malformed(_) | ParseError::TooLarge { .. }), "{dict}: {error:?}");
    }
    // A predictor row of ten gigabytes, allocated before any data is read.
    let error = refused_quickly(&with_xref_stream(pdf.clone(), 6, &rows, "/Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns 10000000000 >>"), &Limits::default());
    assert!(says(&error, "predictor"), "{error:?}");
    // The honest stream reads.
    let honest = with_xref_stream(pdf, 6, &rows, "");
    assert_eq!(parse(&honest, Format::Pdf).map(|p| p.sections[0].text.clone()), Ok("x".to_owned()));
}

#[test]
fn object_streams_whose_objects_overlap_are_refused() {
    // Three objects at one place, and a hundred nested arrays each listed
    // as an object: lopdf parses every one from its start to the end.
    let same_place = object_stream("7 0 8 0 9 0 ", b"(abc)");
    let nested: String = (0..100).map(|i| format!("{} {i} ", 10 + i)).collect();
    let arrays = [vec![b'['; 100], vec![b'1'; 1000], vec![b']'; 100]].concat();
    for (container, words) in [(same_place, "same place"), (object_stream(&nested, &arrays), "overlap")] {
        let mut objects = page("x");
        objects.push(container);
        let (pdf, offsets) = body(&objects);
        // Listed as a plain object (lopdf expands it while loading)…
        let error = refused_quickly(&with_table(pdf.clone(), &offsets, ""), &Limits::default());
        assert!(says(&error, words), "{error:?}");
        // …and as the container of compressed entries.
        let mut rows: Vec<(u32, u8, u32, u16)> = offsets.iter().enumerate().map(|(i, &o)| (i as u32 + 1, 1, o as u32, 0)).collect();
        rows.push((7, 2, 6, 0));
        let error = refused_quickly(&with_xref_stream(pdf, 200, &rows, ""), &Limits::default());
        assert!(says(&error, words), "{error:?}");
    }
}

#[test]
fn objects_nested_inside_one_another_are_refused() {
    // Streams nested in one another's data, each listed as an object: a
    // 6 MB file that made lopdf hold ~1.8 GB (and a larger one, any amount).
    let depth = 600usize;
    let filler = vec![b' '; 10_000];
    let (mut pdf, offsets) = body(&page("x"));
    let mut starts = Vec::new();
    let mut heads = Vec::new();
    for level in 0..depth {
        starts.push(pdf.len());
        heads.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n<< /Length 0000000000 >>\nstream\n", 6 + level).as_bytes());
        let data_start = pdf.len();
        starts[level] = data_start;
        pdf.extend_from_slice(&filler);
    }
    for level in (0..depth).rev() {
        let length = pdf.len() - starts[level];
        let field = heads[level] + format!("{} 0 obj\n<< /Length ", 6 + level).len();
        pdf[field..field + 10].copy_from_slice(format!("{length:010}").as_bytes());
        pdf.extend_from_slice(b"\nendstream\n");
    }
    let mut listed = offsets;
    listed.extend(&heads);
    let pdf = with_table(pdf, &listed, "");
    let error = refused_quickly(&pdf, &Limits::default());
    assert!(says(&error, "runs into the next one"), "{error:?}");
}

#[test]
fn encrypted_documents_with_compressed_objects_are_refused_before_loading() {
    let mut objects = page("x");
    objects.push(object_stream("7 0 ", b"(abc)"));
    let (pdf, offsets) = body(&objects);
    let mut rows: Vec<(u32, u8, u32, u16)> = offsets.iter().enumerate().map(|(i, &o)| (i as u32 + 1, 1, o as u32, 0)).collect();
    rows.push((7, 2, 6, 0));
    let error = refused_quickly(&with_xref_stream(pdf, 8, &rows, "/Encrypt 9 0 R"), &Limits::default());
    assert!(matches!(&error, ParseError::Unsupported(reason) if reason.contains("encrypted")), "{error:?}");
}

#[test]
fn encrypted_documents_without_object_streams_still_read() {
    use pdf_extract::{EncryptionState, EncryptionVersion, Permissions};
    let (pdf, offsets) = body(&page("Sealed but readable"));
    let mut document = Document::load_mem(&with_table(pdf, &offsets, "")).unwrap_or_else(|e| panic!("{e}"));
    document.trailer.set("ID", vec![pdf_extract::Object::string_literal("0123456789abcdef"), pdf_extract::Object::string_literal("0123456789abcdef")]);
    let version = EncryptionVersion::V2 { document: &document, owner_password: "owner", user_password: "", key_length: 128, permissions: Permissions::all() };
    let state = EncryptionState::try_from(version).unwrap_or_else(|e| panic!("{e}"));
    document.encrypt(&state).unwrap_or_else(|e| panic!("{e}"));
    let mut saved = Vec::new();
    document.save_to(&mut saved).unwrap_or_else(|e| panic!("{e}"));
    assert!(String::from_utf8_lossy(&saved).contains("/Encrypt"));
    assert_eq!(parse(&saved, Format::Pdf).map(|p| p.sections[0].text.clone()), Ok("Sealed but readable".to_owned()));
}

#[test]
fn encrypted_documents_whose_stream_lengths_refer_to_large_objects_are_refused() {
    // lopdf reads object 6 (a megabyte) again for each of 2 000 streams,
    // with no deadline on the encrypted path.
    let mut objects = page("x");
    objects.push([b"(".to_vec(), vec![b'a'; 1 << 20], b")".to_vec()].concat());
    objects.extend((0..2000).map(|_| b"<< /Length 6 0 R >>\nstream\n\nendstream".to_vec()));
    let (pdf, offsets) = body(&objects);
    let error = refused_quickly(&with_table(pdf, &offsets, "/Encrypt 3000 0 R"), &Limits::default());
    assert!(says(&error, "/Length refers"), "{error:?}");
}

#[test]
fn stream_lengths_must_be_numbers_listed_in_the_table() {
    // Before: a /Length inside an object stream that holds it, or a chain
    // of 3 000 lengths each naming the next stream, overflowed the stack
    // (the process aborted); a length naming a large object read it again
    // for every stream.
    let mut objects = page("x");
    objects.push(object_stream("7 0 ", b"123").replace_length("7 0 R"));
    let (pdf, offsets) = body(&objects);
    let mut rows: Vec<(u32, u8, u32, u16)> = offsets.iter().enumerate().map(|(i, &o)| (i as u32 + 1, 1, o as u32, 0)).collect();
    rows.push((7, 2, 6, 0));
    let error = refused_quickly(&with_xref_stream(pdf, 8, &rows, ""), &Limits::default());
    assert!(says(&error, "/Length refers"), "{error:?}");

    let mut objects = page("x");
    objects.extend((0..3000).map(|i| format!("<< /Length {} 0 R >>\nstream\n\nendstream", 7 + i).into_bytes()));
    let (pdf, offsets) = body(&objects);
    let error = refused_quickly(&with_table(pdf, &offsets, ""), &Limits::default());
    assert!(says(&error, "/Length refers"), "{error:?}");

    // A length kept in its own object, as many writers do, reads.
    let mut objects = page("Length apart");
    let content = "BT /F1 12 Tf 72 720 Td (Length apart) Tj ET";
    objects[4] = format!("<< /Length 6 0 R >>\nstream\n{content}\nendstream").into_bytes();
    objects.push(content.len().to_string().into_bytes());
    let (pdf, offsets) = body(&objects);
    assert_eq!(parse(&with_table(pdf, &offsets, ""), Format::Pdf).map(|p| p.sections[0].text.clone()), Ok("Length apart".to_owned()));
}

#[test]
fn a_predictor_between_two_decompression_stages_is_refused() {
    // lopdf applies the predictor after each stage; without it the first
    // stage's output looked like a small stored block (measured: 256 bytes)
    // while lopdf inflated gigabytes.
    let (pdf, offsets) = body(&page("x"));
    let rows: Vec<(u32, u8, u32, u16)> = offsets.iter().enumerate().map(|(i, &o)| (i as u32 + 1, 1, o as u32, 0)).collect();
    let error = refused_quickly(&with_xref_stream(pdf, 6, &rows, "/Filter [/FlateDecode /FlateDecode] /DecodeParms << /Predictor 12 /Columns 7 >>"), &Limits::default());
    assert!(says(&error, "predictor"), "{error:?}");
}

#[test]
fn object_streams_whose_values_would_take_too_much_memory_are_refused() {
    // 6 MiB of `0 ` decoded: three million values of 120 bytes each in
    // lopdf (before: ~400 MB from an 11 KB file; 256 MiB of it, ~15 GB).
    let values = b"0 ".repeat(3 << 20);
    let mut objects = page("x");
    objects.push(object_stream("7 0 ", &[b"[".as_slice(), &values, b"]"].concat()));
    let (pdf, offsets) = body(&objects);
    let error = refused_quickly(&with_table(pdf, &offsets, ""), &Limits::default());
    assert!(says(&error, "memory its objects take"), "{error:?}");
}

#[test]
fn entries_for_missing_objects_at_offset_zero_are_not_duplicates() {
    let (pdf, mut offsets) = body(&page("Missing ones listed at zero"));
    offsets.extend([0, 0, 0]);
    assert_eq!(parse(&with_table(pdf, &offsets, ""), Format::Pdf).map(|p| p.sections[0].text.clone()), Ok("Missing ones listed at zero".to_owned()));
}

trait ReplaceLength {
    fn replace_length(self, with: &str) -> Vec<u8>;
}

impl ReplaceLength for Vec<u8> {
    /// The object with its (first) direct `/Length n` replaced by `with`.
    fn replace_length(self, with: &str) -> Vec<u8> {
        let text = String::from_utf8_lossy(&self[..self.len().min(200)]).into_owned();
        let Some(at) = text.find("/Length ") else { return self };
        let end = at + 8 + text[at + 8..].find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
        [&self[..at + 8], with.as_bytes(), &self[end..]].concat()
    }
}

#[test]
fn entries_that_reach_their_object_through_long_whitespace_or_comments_are_refused() {
    // Before: lopdf skipped the run again for every entry and the failed
    // reads never reached the deadline (10 000 entries × 1 MB: minutes).
    let (mut pdf, mut offsets) = body(&page("x"));
    let run = pdf.len();
    pdf.extend(std::iter::repeat_n(b' ', 1 << 20));
    pdf.extend_from_slice(b")\n");
    offsets.extend((0..10_000).map(|i| run + i));
    let error = refused_quickly(&with_table(pdf, &offsets, ""), &Limits::default());
    assert!(says(&error, "long run of whitespace"), "{error:?}");
    // A header inside a comment line, followed by a megabyte of comments.
    let (mut pdf, mut offsets) = body(&page("x"));
    let header = pdf.len() + 2;
    pdf.extend_from_slice(b"% 9 0 obj\n%");
    pdf.extend(std::iter::repeat_n(b'x', 1 << 20));
    pdf.extend_from_slice(b"\n)\n");
    offsets.extend([header, header, header, header]);
    let error = refused_quickly(&with_table(pdf, &offsets, ""), &Limits::default());
    assert!(says(&error, "long run of whitespace"), "{error:?}");
}

#[test]
fn values_are_counted_before_lopdf_builds_them() {
    // One object of 2.5 million empty names: ~130 bytes each in lopdf,
    // built whole before any filter runs (before: ~330 MB from 2.5 MB).
    let mut objects = page("x");
    objects.push([b"[".to_vec(), vec![b'/'; 5 << 19], b"]".to_vec()].concat());
    let (pdf, offsets) = body(&objects);
    let error = refused_quickly(&with_table(pdf, &offsets, ""), &Limits::default());
    assert!(says(&error, "memory its objects take"), "{error:?}");
    // Reals without separators inside an object stream (before: ~1 GB
    // from 15 KB, counted only after lopdf had built them).
    let mut objects = page("x");
    objects.push(object_stream("7 0 ", &[b"[".as_slice(), &b".1".repeat(6 << 20), b"]"].concat()));
    let (pdf, offsets) = body(&objects);
    let error = refused_quickly(&with_table(pdf, &offsets, ""), &Limits::default());
    assert!(says(&error, "memory its objects take"), "{error:?}");
}

#[test]
fn page_text_that_shows_pdf_syntax_still_reads() {
    // A /Length reference naming nothing listed costs lopdf nothing.
    let mut objects = page("x");
    let content = "BT /F1 12 Tf 72 720 Td (<< /Length 8 0 R >>) Tj ET";
    objects[4] = format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()).into_bytes();
    let (pdf, offsets) = body(&objects);
    assert_eq!(parse(&with_table(pdf, &offsets, ""), Format::Pdf).map(|p| p.sections[0].text.clone()), Ok("<< /Length 8 0 R >>".to_owned()));
}

#[test]
fn fonts_whose_cmaps_nest_deep_or_cover_huge_ranges_are_refused() {
    // Before: the CMap parser recursed once per `[` (a 934-byte file
    // aborted the process on a stack overflow) and inserted one map entry
    // per code of a range (4 billion for <00000000> <FFFFFFFF>).
    for cmap in [[b"/CIDInit /ProcSet findresource begin ".to_vec(), vec![b'['; 200_000]].concat(), b"1 beginbfrange\n<00000000> <FFFFFFFF> <0000>\nendbfrange".to_vec()] {
        let mut objects = page("x");
        objects[2] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 6 0 R >>".to_vec();
        objects.push(deflated_stream("", &cmap));
        let (pdf, offsets) = body(&objects);
        let error = refused_quickly(&with_table(pdf, &offsets, ""), &Limits::default());
        assert!(says(&error, "CMap"), "{error:?}");
    }
}

#[test]
fn page_operations_are_counted_before_pdf_extract_decodes_them() {
    // Three million one-byte operands: pdf-extract keeps each (~120 bytes)
    // while it reads the page (before: ~1.3 GB from 9 KB).
    let mut objects = page("x");
    let content = [b"/".repeat(3 << 20), b" n".to_vec()].concat();
    objects[4] = deflated_stream("", &content);
    let (pdf, offsets) = body(&objects);
    let error = refused_quickly(&with_table(pdf, &offsets, ""), &Limits::default());
    assert!(says(&error, "drawing operations") || says(&error, "page content it draws"), "{error:?}");
}

#[test]
fn trailers_are_counted_before_they_are_built() {
    let (pdf, offsets) = body(&page("x"));
    let names = "/".repeat(3 << 20);
    let error = refused_quickly(&with_table(pdf, &offsets, &format!("/A [{names}]")), &Limits::default());
    assert!(says(&error, "memory its objects take"), "{error:?}");
}

#[test]
fn many_entries_where_no_object_stands_are_refused() {
    // Each one is a failed read for lopdf, none reaches the deadline.
    let (mut pdf, mut offsets) = body(&page("x"));
    let nothing = pdf.len();
    pdf.extend_from_slice(b"x\n");
    offsets.extend(std::iter::repeat_n(nothing, 1000));
    let error = refused_quickly(&with_table(pdf, &offsets, ""), &Limits::default());
    assert!(says(&error, "many cross-reference entries"), "{error:?}");
}

#[test]
fn operators_are_read_with_their_first_operand_as_pdf_extract_reads_them() {
    // Before: the check paired an operator with the last name before it,
    // so these self-drawing forms went unmeasured (stack overflow, abort).
    for draw in ["/Fm /x Do", "/F#6d Do", "/Fm (x) Do"] {
        let mut objects = page("x");
        objects[3] = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /Fm 6 0 R >> >> /Contents 5 0 R >>".to_vec();
        objects[4] = format!("<< /Length {} >>\nstream\n{draw}\nendstream", draw.len()).into_bytes();
        let form = format!("<< /Type /XObject /Subtype /Form /BBox [0 0 1 1] /Resources << /XObject << /Fm 6 0 R >> >> /Length {} >>\nstream\n{draw}\nendstream", draw.len());
        objects.push(form.into_bytes());
        let (pdf, offsets) = body(&objects);
        let error = refused_quickly(&with_table(pdf, &offsets, ""), &Limits::default());
        assert!(says(&error, "draws itself"), "{draw}: {error:?}");
    }
}

#[test]
fn a_cmap_reached_first_under_another_key_is_still_checked() {
    let mut objects = page("x");
    objects[2] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 6 0 R /Zz 6 0 R >>".to_vec();
    objects.push(deflated_stream("", &[b"/CIDInit /ProcSet findresource begin ".to_vec(), vec![b'['; 200_000]].concat()));
    let (pdf, offsets) = body(&objects);
    let error = refused_quickly(&with_table(pdf, &offsets, ""), &Limits::default());
    assert!(says(&error, "CMap"), "{error:?}");
}

#[test]
fn graphics_states_count_each_time_gs_applies_them() {
    // pdf-extract walks the state's dictionary on every `gs`: 2 000 times
    // 200 000 entries ran a minute past a ten-second deadline.
    let keys: String = (0..200_000).map(|i| format!("/k{i} {i} ")).collect();
    let mut objects = page("x");
    objects[3] = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /ExtGState << /G 6 0 R >> >> /Contents 5 0 R >>".to_vec();
    objects[4] = deflated_stream("", "/G gs ".repeat(2000).as_bytes());
    objects.push(format!("<< /Type /ExtGState /SMask << {keys} >> >>").into_bytes());
    let (pdf, offsets) = body(&objects);
    assert!(matches!(refused_quickly(&with_table(pdf, &offsets, ""), &Limits::default()), ParseError::TooLarge { .. }));
}

#[test]
fn each_saved_graphics_state_counts_what_it_copies() {
    // pdf-extract copies the whole graphics state (here a 1 MB colour
    // profile) on every `q` (before: 1 GB from a 2 KB file).
    let mut objects = page("x");
    objects[3] = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /ColorSpace << /Cs [/ICCBased 6 0 R] >> >> /Contents 5 0 R >>".to_vec();
    let content = format!("/Cs cs {}", "q ".repeat(1000));
    objects[4] = format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()).into_bytes();
    objects.push(deflated_stream("/N 3", &vec![0u8; 1 << 20]));
    let (pdf, offsets) = body(&objects);
    let error = refused_quickly(&with_table(pdf, &offsets, ""), &Limits::default());
    assert!(says(&error, "drawing operations") || says(&error, "page content it draws"), "{error:?}");
}
