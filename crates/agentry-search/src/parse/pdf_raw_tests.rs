//! The raw-bytes measure of `pdf_raw`, and the operators page work reads.

use std::io::Write;

use super::super::pdf_operators::operators;
use super::*;

fn chains(bytes: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ParseError> {
    Names::read(bytes).map(|names| names.chains.into_iter().map(|(_, chain)| chain).collect())
}

#[test]
fn filter_chains_are_read_with_escapes_and_arrays() {
    let read = chains(b"<< /Length 5 /F#69lter [/ASCII85Decode /FlateDecode] /DecodeParms << /Filter /LZWDecode >> >>");
    assert_eq!(read, Ok(vec![vec![b"ASCII85Decode".to_vec(), b"FlateDecode".to_vec()], vec![b"LZWDecode".to_vec()]]));
    // A chain stops at the first filter lopdf does not decode.
    assert_eq!(chains(b"/Filter [/FlateDecode /DCTDecode /LZWDecode]"), Ok(vec![vec![b"FlateDecode".to_vec()]]));
}

#[test]
fn comments_between_a_filter_and_its_value_are_skipped_as_lopdf_does() {
    let flate = Ok(vec![vec![b"FlateDecode".to_vec()]]);
    assert_eq!(chains(b"<< /Type /ObjStm /Filter %x\n/FlateDecode >>"), flate);
    assert_eq!(chains(b"<< /Type /ObjStm /Filter%x\r/FlateDecode >>"), flate);
    assert_eq!(chains(b"<< /Filter [%x\n/FlateDecode] >>"), flate);
    // A `%` in a string is no comment: the reading without comments sees the filter.
    assert_eq!(chains(b"<< /T (100%) /Filter /FlateDecode >>"), flate);
}

#[test]
fn a_filter_whose_value_cannot_be_read_is_malformed() {
    for region in [b"<< /T (%) /Filter %y\n/FlateDecode >>".as_slice(), b"<< /Filter 5 0 R >>", b"<< /Filter >>", b"%/Filter /X\n<< /Filter (s) >>"] {
        assert!(matches!(chains(region), Err(ParseError::Malformed(_))), "{}", String::from_utf8_lossy(region));
    }
}

#[test]
fn stream_keywords_need_an_end_of_line_and_skip_endstream() {
    let bytes = b"<< >> stream \t\r\nDATA\nendstream\n/Upstream (stream) stream\nX";
    let found: Vec<usize> = stream_keywords(bytes).into_iter().map(|(_, data)| data).collect();
    assert_eq!(found, vec![16, bytes.len() - 1]);
}

#[test]
fn operators_count_draws_colour_spaces_and_fonts() {
    let found = operators(b"q /Fm1 Do Q /Fm1 Do /Im0 Do BT /F1 12 Tf (x) Tj /F1 9.5 Tf /F2 -1 Tf ET 1 0 0 1 0 0 cm /Fm2 gs /Cs1 cs /Cs1 CS");
    assert_eq!(found.draws.get(b"Fm1".as_slice()), Some(&2));
    assert_eq!(found.draws.get(b"Im0".as_slice()), Some(&1));
    assert_eq!(found.draws.get(b"Fm2".as_slice()), None);
    assert_eq!(found.fonts, vec![b"F1".to_vec(), b"F2".to_vec()]);
    assert_eq!(found.colour_spaces.get(b"Cs1".as_slice()), Some(&2));
}

#[test]
fn every_stage_of_a_chain_is_counted_even_when_a_later_one_fails() {
    // The first stage inflates a MiB of zeros; the second cannot read them.
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let _ = encoder.write_all(&vec![0u8; 1 << 20]);
    let compressed = encoder.finish().unwrap_or_default();
    let double = [b"FlateDecode".to_vec(), b"FlateDecode".to_vec()];
    let deadline = Budget::new(&super::super::Limits::default(), 0).deadline();
    assert!(decoded_len(&compressed, &double, 8 << 20, &deadline).is_ok_and(|n| n >= 1 << 20));
    let mut budget = Budget::new(&super::super::Limits { inflate_ratio: 1, inflate_floor_bytes: 64 * 1024, ..super::super::Limits::default() }, 1000);
    let mut pdf = b"%PDF-1.4\n1 0 obj\n<< /Type /ObjStm /N 1 /First 2 /Filter [/FlateDecode /FlateDecode] >>\nstream\n".to_vec();
    pdf.extend_from_slice(&compressed);
    pdf.extend_from_slice(b"\nendstream\nendobj\n");
    assert!(matches!(check_raw(&pdf, &mut budget), Err(ParseError::TooLarge { ref what, .. }) if what == "its decompressed data"));
}

#[test]
fn filter_arrays_stop_at_their_first_item_that_is_not_a_name() {
    // Before: every `/Filter[` read to the array's end, so a file of them
    // was read in quadratic time and kept every chain (274 MB from 24 KB).
    let read = chains(&[b"/Filter[".repeat(3000), b"]".to_vec()].concat());
    assert!(read.as_ref().is_ok_and(|chains| chains.len() == 3000 && chains.iter().all(Vec::is_empty)), "{:?}", read.map(|c| c.iter().map(Vec::len).max()));
    let long: String = (0..17).map(|_| "/FlateDecode ").collect();
    assert!(chains(format!("/Filter [{long}]").as_bytes()).is_err());
}
