//! What pdf-extract's font parsers would do with a font's CMaps and
//! Type 1 program, checked before a page selects the font: its CMap parser
//! (adobe-cmap-parser) inserts one map entry per code of every
//! `bfrange`/`cidrange` and recurses once per nested `[`, `(`, `<<` or
//! `{`, as does the Type 1 encoding parser, on a stack that a deep nesting
//! overflows (the process aborts; `catch_unwind` cannot help).
//!
//! Hand-written because neither parser offers limits; the scan is the
//! little needed to find nesting and ranges, and errs towards refusing.
//!
//! Must not: parse fonts or decode text.

use pdf_extract::{Dictionary, Document, Object};

use super::ParseError;
use super::pdf_streams::resolve;
use super::pdf_values::{Reading, count_values};

/// Nesting a real CMap or Type 1 program never reaches.
const MAX_NESTING: usize = 64;

/// Codes the ranges of one CMap may cover (a font has at most 65 535
/// glyphs; twice that leaves room for a map and its fallbacks).
const MAX_RANGE_CODES: u64 = 1 << 17;

/// What the font parsers hold for one token of a CMap or program.
const TOKEN_BYTES: u64 = 64;

/// What one code of a CMap range takes once expanded into pdf-extract's
/// map (measured: ~12.5 MB for 2^17 codes).
const RANGE_CODE_BYTES: u64 = 96;

/// Width entries a composite font's `/W` may give (a font has at most
/// 65 535 glyphs; twice that leaves room).
const MAX_CID_WIDTHS: u64 = 1 << 17;

/// What building `font`'s width map holds in pdf-extract, at
/// [`RANGE_CODE_BYTES`] an entry. A simple font must keep to single-byte
/// codes: pdf-extract sorts its whole width map for every character whose
/// width is missing, so more than 256 widths are refused. A composite
/// (Type0) font's `/W` is read as pdf-extract reads it: each `cid [w …]`
/// array counted every time it appears, references followed every time
/// (a `/W` of many references to one long array costs their product).
pub(super) fn widths_held(document: &Document, font: &Dictionary) -> Result<u64, ParseError> {
    let array = |dict, key| array_at(document, dict, key);
    // pdf-extract follows a reference to the subtype; all but Type0 are simple to it.
    let subtype = font.get(b"Subtype").ok().and_then(|o| resolve(document, o)).and_then(|o| o.as_name().ok());
    match subtype {
        Some(b"Type0") => {
            let descendant = array(font, b"DescendantFonts").and_then(|d| d.first()).and_then(|d| resolve(document, d)).and_then(|d| d.as_dict().ok());
            let entries = descendant
                .and_then(|d| array(d, b"W"))
                .into_iter()
                .flatten()
                .filter_map(|item| resolve(document, item)?.as_array().ok())
                .fold(0u64, |sum, a| sum.saturating_add(a.len() as u64));
            if entries > MAX_CID_WIDTHS {
                return Err(ParseError::TooLarge { what: "the widths its composite fonts list".into(), limit: super::budget::Limit::Count(MAX_CID_WIDTHS) });
            }
            Ok(entries * RANGE_CODE_BYTES)
        }
        _ => {
            let widths = array(font, b"Widths").map_or(0, Vec::len);
            if widths > 256 {
                return Err(ParseError::Malformed(format!("PDF: a simple font lists {widths} widths (single-byte codes have at most 256)")));
            }
            Ok(widths as u64 * RANGE_CODE_BYTES)
        }
    }
}

/// The array at `key` of `dict`, references followed.
fn array_at<'d>(document: &'d Document, dict: &'d Dictionary, key: &[u8]) -> Option<&'d Vec<Object>> {
    dict.get(key).ok().and_then(|o| resolve(document, o)).and_then(|o| o.as_array().ok())
}

/// Tokens one CMap or program may hold: its parsers rebuild their value
/// parser for every array element (~3.4 µs each) with no deadline check,
/// and pdf-extract parses a font's CMap each time a page selects it.
const MAX_FONT_TOKENS: u64 = 1 << 18;

/// Check a decoded CMap or Type 1 font program as far as its parsers read
/// it ([`readable`]): nesting, range codes, and the tokens the parsers hold
/// (at most [`MAX_FONT_TOKENS`], each at [`TOKEN_BYTES`] within
/// `memory_limit`). Returns what parsing it holds: its tokens, and its
/// range codes at [`RANGE_CODE_BYTES`].
pub(super) fn check_font_data(data: &[u8], kind: FontData, memory_limit: u64) -> Result<u64, ParseError> {
    let clear = readable(data, kind)?;
    let tokens = count_values(clear, &|_, _| None, Reading::Content).0;
    if tokens > MAX_FONT_TOKENS {
        return Err(ParseError::TooLarge { what: "the tokens of one of its fonts' CMaps or programs".into(), limit: super::budget::Limit::Count(MAX_FONT_TOKENS) });
    }
    if tokens.saturating_mul(TOKEN_BYTES) > memory_limit {
        return Err(ParseError::TooLarge { what: "the memory its fonts' CMaps or programs take to parse".into(), limit: super::budget::Limit::Bytes(memory_limit) });
    }
    let codes = match kind {
        FontData::CMap => parsed_range_codes(clear),
        FontData::Program => 0,
    };
    if codes > MAX_RANGE_CODES {
        return Err(ParseError::TooLarge { what: "the codes its fonts' CMap ranges cover".into(), limit: super::budget::Limit::Count(MAX_RANGE_CODES) });
    }
    Ok(tokens.saturating_mul(TOKEN_BYTES).saturating_add(codes.saturating_mul(RANGE_CODE_BYTES)))
}

/// What a font's stream is to pdf-extract: a CMap (`/ToUnicode`,
/// `/Encoding`, `/UseCMap`: read by adobe-cmap-parser, whole) or a Type 1
/// program (`/FontFile`: its clear-text part read for the encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum FontData {
    CMap,
    Program,
}

/// The codes the `bfrange`/`cidrange` sections of a CMap cover, read with
/// adobe-cmap-parser's own lexer and walked as its `get_unicode_map`
/// walks them (the entry count before the keyword, three values an entry,
/// codes from hex or literal strings), so neither a `(literal)` code nor
/// a decoy end keyword in a comment hides a range. Called only once the
/// CMap's nesting and tokens are known to be bounded.
fn parsed_range_codes(cmap: &[u8]) -> u64 {
    let Ok(lexed) = adobe_cmap_parser::parse(cmap) else {
        return 0;
    };
    let code = |value: Option<&adobe_cmap_parser::Value>| match value {
        Some(adobe_cmap_parser::Value::LiteralString(bytes)) => Some(bytes.iter().fold(0u32, |code, b| (code << 8) | u32::from(*b))),
        _ => None,
    };
    let mut codes = 0u64;
    for (i, value) in lexed.iter().enumerate() {
        let adobe_cmap_parser::Value::Operator(operator) = value else { continue };
        if !matches!(operator.as_str(), "beginbfrange" | "begincidrange") {
            continue;
        }
        let count = match i.checked_sub(1).and_then(|at| lexed.get(at)) {
            Some(adobe_cmap_parser::Value::Integer(count)) => usize::try_from(*count).unwrap_or(0),
            _ => 0,
        };
        let entries = lexed.get(i + 1..).unwrap_or_default().chunks(3).take(count);
        for entry in entries {
            if let (Some(low), Some(high)) = (code(entry.first()), code(entry.get(1))) {
                codes = codes.saturating_add(u64::from(high.saturating_sub(low)) + u64::from(high >= low));
            }
        }
    }
    codes
}

/// The part of a CMap or program its parsers (adobe-cmap-parser,
/// type1-encoding-parser: the same pom lexer) read, with nesting deeper
/// than [`MAX_NESTING`] refused, read as that lexer reads: a literal
/// string recurses once per `(` inside it (brackets are plain bytes
/// there, `\` escapes one byte); outside strings a `%` comment runs to
/// the line's end and `[`, `{`, `<<` nest. A CMap is read whole; a
/// program stops at its first byte outside a string or comment that
/// starts no token (the binary of its encrypted part), not at `eexec`,
/// which the lexer reads as one more name.
fn readable(data: &[u8], kind: FontData) -> Result<&[u8], ParseError> {
    let deep = || ParseError::Malformed(format!("PDF: a font's CMap or program nests more than {MAX_NESTING} levels deep"));
    let mut depth = 0usize;
    let mut string = 0usize;
    let mut i = 0usize;
    while i < data.len() {
        let c = data[i];
        if string > 0 {
            match c {
                b'\\' => i += 1,
                b'(' => string += 1,
                b')' => string -= 1,
                _ => {}
            }
        } else {
            match c {
                b'%' => {
                    while i < data.len() && !matches!(data[i], b'\r' | b'\n') {
                        i += 1;
                    }
                }
                b'(' => string = 1,
                b'[' | b'{' => depth += 1,
                b'<' if data.get(i + 1) == Some(&b'<') => {
                    depth += 1;
                    i += 1;
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                b'>' if data.get(i + 1) == Some(&b'>') => {
                    depth = depth.saturating_sub(1);
                    i += 1;
                }
                c if c >= 0x80 && kind == FontData::Program => return Ok(&data[..i]),
                _ => {}
            }
        }
        if depth + string > MAX_NESTING {
            return Err(deep());
        }
        i += 1;
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::{FontData, RANGE_CODE_BYTES, check_font_data};
    use crate::parse::ParseError;
    use crate::parse::pdf_xref::tests::{body, with_table};

    #[test]
    fn wide_ranges_and_deep_nesting_are_refused_and_real_cmaps_pass() {
        // Before: 4 billion map entries, or a stack overflow that aborted the process.
        let wide = b"1 beginbfrange\n<00000000> <FFFFFFFF> <0000>\nendbfrange";
        assert!(matches!(check_font_data(wide, FontData::CMap, 1 << 28), Err(ParseError::TooLarge { .. })));
        let deep = [b"/CIDInit /ProcSet findresource begin ".to_vec(), vec![b'['; 200_000]].concat();
        assert!(matches!(check_font_data(&deep, FontData::CMap, 1 << 28), Err(ParseError::Malformed(_))));
        assert!(matches!(check_font_data(&b"1 ".repeat(1 << 20), FontData::CMap, 1 << 20), Err(ParseError::TooLarge { .. })));
        let real = b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /Adobe-Identity-UCS def\n\
            1 begincodespacerange <0000> <FFFF> endcodespacerange\n2 beginbfrange <0020> <007E> <0020> <00A0> <00FF> [<00A0> <00A1>] endbfrange\n\
            1 beginbfchar <0003> <0020> endbfchar endcmap CMapName currentdict /CMap defineresource pop end end";
        assert!(check_font_data(real, FontData::CMap, 1 << 28).is_ok_and(|held| held > 191 * RANGE_CODE_BYTES && held < 1 << 20));
    }

    #[test]
    fn ranges_are_counted_as_the_cmap_parser_reads_them() {
        // Before: a byte scan counted only <hex> codes up to the first
        // `endbfrange` anywhere (2 GB, or an abort, from an 850-byte file).
        let raw = [b"begincmap 1 beginbfrange (".as_slice(), &[0, 0, 0, 0], b") (", &[0xff, 0xff, 0xff, 0xff], b") <00000000> endbfrange endcmap"].concat();
        assert!(matches!(check_font_data(&raw, FontData::CMap, 1 << 28), Err(ParseError::TooLarge { .. })));
        let decoy = b"begincmap 1 beginbfrange % endbfrange\n<00000000> <00FFFFFF> <00000000>\nendbfrange endcmap";
        assert!(matches!(check_font_data(decoy, FontData::CMap, 1 << 28), Err(ParseError::TooLarge { .. })));
        // A CMap is read whole: `eexec` (which ends a Type 1 program's clear text) hides nothing in it.
        let hidden = b"%eexec\nbegincmap 1 beginbfrange <00000000> <00FFFFFF> <00000000> endbfrange endcmap";
        assert!(matches!(check_font_data(hidden, FontData::CMap, 1 << 28), Err(ParseError::TooLarge { .. })));
    }

    #[test]
    fn nesting_and_tokens_are_read_as_the_font_parsers_read_them() {
        // `(]` nests a string per `(` to the parsers (brackets are bytes in a
        // string); the old count saw depth 0-1 and the guard's own parse overflowed.
        let strings = [b"begincmap ".to_vec(), b"(]".repeat(20_000)].concat();
        assert!(matches!(check_font_data(&strings, FontData::CMap, 1 << 28), Err(ParseError::Malformed(_))));
        // `eexec` is one more name to type1-encoding-parser: what follows in clear text is read too.
        let program = [b"/Encoding 256 array currentfile eexec\n".to_vec(), b"[".repeat(20_000)].concat();
        assert!(matches!(check_font_data(&program, FontData::Program, 1 << 28), Err(ParseError::Malformed(_))));
        let tokens = [b"/Encoding 256 array currentfile eexec\n".to_vec(), b"1 ".repeat(300_000)].concat();
        assert!(matches!(check_font_data(&tokens, FontData::Program, 1 << 30), Err(ParseError::TooLarge { .. })));
        // A real program's encrypted binary ends what the parser reads.
        let binary = [b"/FontName /X def currentfile eexec\n".to_vec(), vec![0xd9; 64], b"[".repeat(20_000)].concat();
        assert!(check_font_data(&binary, FontData::Program, 1 << 28).is_ok());
    }

    /// A one-page document whose page selects `font` (object 3, with
    /// `extra` objects from 6 on) under `names` names, showing text with each.
    fn page_with_font(font: &str, extra: &[Vec<u8>], names: usize) -> Vec<u8> {
        page_drawing(font, extra, names, "")
    }

    /// [`page_with_font`], its content starting with `prefix`.
    fn page_drawing(font: &str, extra: &[Vec<u8>], names: usize, prefix: &str) -> Vec<u8> {
        let fonts: String = (0..names).map(|i| format!("/F{i} 3 0 R ")).collect();
        let content: String = std::iter::once(prefix.to_owned()).chain((0..names).map(|i| format!("BT /F{i} 12 Tf 72 720 Td (A) Tj ET\n"))).collect();
        let mut objects = vec![
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>".to_vec(),
            font.as_bytes().to_vec(),
            format!("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << {fonts}>> >> /Contents 5 0 R >>").into_bytes(),
            format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()).into_bytes(),
        ];
        objects.extend_from_slice(extra);
        let (pdf, offsets) = body(&objects);
        with_table(pdf, &offsets, "")
    }

    fn parsed(pdf: &[u8]) -> Result<usize, ParseError> {
        let started = std::time::Instant::now();
        let result = crate::parse::parse(pdf, crate::parse::Format::Pdf).map(|p| p.sections.len());
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "took {:?}", started.elapsed());
        result
    }

    #[test]
    fn a_font_selected_under_many_names_is_charged_once_per_name() {
        // Before: each name built the font again, its 2^17-code CMap expanded
        // each time (12.5 MB a name: 3.75 GB from an 8 KB file).
        let to_unicode = widest_cmap();
        let font = "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 6 0 R >>";
        assert!(parsed(&page_with_font(font, std::slice::from_ref(&to_unicode), 2)).is_ok());
        let refused = parsed(&page_with_font(font, &[to_unicode], 300));
        assert!(matches!(refused, Err(ParseError::TooLarge { ref what, .. }) if what.contains("one page")), "{refused:?}");
        // Big encodings count too: 300 000 differences under 100 names.
        let differences = format!("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding << /Differences [{}] >> >>", "0/a ".repeat(300_000));
        let refused = parsed(&page_with_font(&differences, &[], 100));
        assert!(matches!(refused, Err(ParseError::TooLarge { ref what, .. }) if what.contains("one page")), "{refused:?}");
    }

    #[test]
    fn simple_fonts_with_more_than_256_widths_are_refused() {
        // pdf-extract sorts a simple font's whole width map for every character without a width.
        let widths = format!("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /FirstChar 1000 /LastChar 200999 /Widths [{}] >>", "0 ".repeat(200_000));
        assert!(matches!(parsed(&page_with_font(&widths, &[], 1)), Err(ParseError::Malformed(m)) if m.contains("widths")));
        let real = format!("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /FirstChar 32 /LastChar 126 /Widths [{}] >>", "500 ".repeat(95));
        assert!(parsed(&page_with_font(&real, &[], 1)).is_ok());
    }

    /// A ToUnicode CMap of 2^17 codes (the most one may cover), as object 6.
    fn widest_cmap() -> Vec<u8> {
        let cmap = "/CIDInit /ProcSet findresource begin begincmap 2 beginbfrange <00000000> <0000FFFF> <0000> <00010000> <0001FFFF> <0000> endbfrange endcmap end";
        format!("<< /Length {} >>\nstream\n{cmap}\nendstream", cmap.len()).into_bytes()
    }

    #[test]
    fn operators_after_an_inline_image_are_read_where_lopdf_reads_them() {
        // lopdf reads W×H bytes of image data and then `EI`, with or without a
        // space before it. Before: the guard looked for ` EI` and skipped the
        // rest of the content, so fonts selected after the image went
        // uncharged (1.9 GB from 7.6 KB; a CMap nested too deep aborted).
        let font = "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 6 0 R >>";
        let image = "BI /W 1 /H 1 /BPC 8 /CS /Gray ID XEI\n";
        let refused = parsed(&page_drawing(font, &[widest_cmap()], 30, image));
        assert!(matches!(refused, Err(ParseError::TooLarge { ref what, .. }) if what.contains("one page")), "{refused:?}");
        assert!(parsed(&page_drawing(font, &[widest_cmap()], 1, image)).is_ok());
    }

    #[test]
    fn composite_font_widths_count_every_time_pdf_extract_reads_them() {
        // 1000 `/W` entries that all refer to one 1000-width array: pdf-extract
        // inserts a million widths (50 000 × 50 000 ran 65 s past a 10 s deadline).
        let pairs: String = (0..1000).map(|i| format!("{} 7 0 R ", i * 1000)).collect();
        let descendant = format!(
            "<< /Type /Font /Subtype /CIDFontType2 /BaseFont /X /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> /FontDescriptor 8 0 R /W [{pairs}] >>"
        );
        let widths = format!("[{}]", "500 ".repeat(1000));
        let descriptor = b"<< /Type /FontDescriptor /FontName /X /Flags 4 /FontBBox [0 0 1000 1000] /ItalicAngle 0 /Ascent 800 /Descent -200 /CapHeight 700 /StemV 80 >>";
        let font = "<< /Type /Font /Subtype /Type0 /BaseFont /X /Encoding /Identity-H /DescendantFonts [6 0 R] >>";
        let extra = [descendant.into_bytes(), widths.into_bytes(), descriptor.to_vec()];
        let refused = parsed(&page_with_font(font, &extra, 1));
        assert!(matches!(refused, Err(ParseError::TooLarge { ref what, .. }) if what.contains("composite fonts")), "{refused:?}");
        // The subtype through a reference is still a composite font to pdf-extract.
        let indirect = "<< /Type /Font /Subtype 9 0 R /BaseFont /X /Encoding /Identity-H /DescendantFonts [6 0 R] >>";
        let mut extra = extra.to_vec();
        extra.push(b"/Type0".to_vec());
        let refused = parsed(&page_with_font(indirect, &extra, 1));
        assert!(matches!(refused, Err(ParseError::TooLarge { ref what, .. }) if what.contains("composite fonts")), "{refused:?}");
    }
}
