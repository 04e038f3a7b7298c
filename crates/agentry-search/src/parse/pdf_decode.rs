//! Bounded decoding of PDF streams: the filters lopdf decodes (flate2
//! and weezl, the decoders lopdf itself uses, and lopdf's ASCII85
//! reading), each stage reading at most one byte past a cap, so a stream
//! can be measured, or its content read, before lopdf or pdf-extract
//! inflate it without limits.
//!
//! Every decoder reads its input through [`Timed`], which stops it once
//! the parse deadline passes: input that inflates to nothing (LZW data of
//! only Clear codes) costs time without output, so the cap alone does not
//! bound it.
//!
//! Hand-written because no PDF crate offers a bounded decode.
//!
//! Must not: decide what a document may spend (callers pass the cap and
//! the deadline).

use std::io::{BufRead, Read, Write};

use pdf_extract::{Dictionary, Object, Stream};

use super::ParseError;
use super::budget::Deadline;

/// Input bytes a decoder reads between two looks at the deadline.
const CHECK_EVERY: usize = 64 * 1024;

/// Why a stream was not decoded.
#[derive(Debug, PartialEq)]
pub(super) enum Undecoded {
    /// It decodes to more than the cap.
    OverCap,
    /// Its PNG predictor's rows are longer than its data (lopdf would
    /// allocate two such rows before reading any), or it would apply
    /// between two decompression stages.
    Predictor,
    /// The parse deadline passed while decoding.
    Late(ParseError),
}

impl Undecoded {
    /// The error to report: `over` names the budget a stream over the cap ran out of.
    pub(super) fn or_over(self, over: ParseError) -> ParseError {
        match self {
            Self::OverCap => over,
            Self::Late(late) => late,
            Self::Predictor => {
                ParseError::Malformed("PDF: a stream's predictor does not fit its data (rows longer than the data, or applied between two decompression stages)".into())
            }
        }
    }
}

/// A loaded stream's content decoded through its filters (without the
/// predictor, which does not change the size). Filters lopdf cannot
/// decode leave the content as it is (pdf-extract then reads it raw).
pub(super) fn decode_stream(stream: &Stream, cap: u64, deadline: &Deadline) -> Result<Vec<u8>, Undecoded> {
    let filters: Vec<Vec<u8>> = match stream.filters() {
        Ok(filters) => filters.into_iter().map(<[u8]>::to_vec).collect(),
        Err(_) => Vec::new(),
    };
    let mut data = stream.content.clone();
    for filter in &filters {
        match decode(filter, &data, cap, true, deadline).map_err(Undecoded::Late)? {
            Decoded::Data(out) => data = out,
            Decoded::Unknown => {
                data = stream.content.clone();
                break;
            }
            Decoded::Len(_) => return Err(Undecoded::OverCap),
        }
        if data.len() as u64 > cap {
            return Err(Undecoded::OverCap);
        }
    }
    if data.len() as u64 > cap {
        return Err(Undecoded::OverCap);
    }
    let inflating = filters.iter().filter(|f| matches!(f.as_slice(), b"FlateDecode" | b"LZWDecode")).count();
    if !predictor_fits(&stream.dict, data.len()) || inflating > 1 && has_predictor(&stream.dict) {
        return Err(Undecoded::Predictor);
    }
    Ok(data)
}

/// Whether `dict` names a PNG predictor, which lopdf applies after every
/// Flate and LZW stage (so between two stages it changes what the next
/// one inflates, and this module, which measures without it, could not
/// measure the result: a stream with two such stages and a predictor is
/// refused).
fn has_predictor(dict: &Dictionary) -> bool {
    dict.get(b"DecodeParms").and_then(Object::as_dict).is_ok_and(|params| (10..=15).contains(&params.get(b"Predictor").and_then(Object::as_i64).unwrap_or(1)))
}

/// Whether the PNG predictor `dict` names (if any) has rows no longer
/// than `decoded_len` bytes, the row computed the way lopdf does.
fn predictor_fits(dict: &Dictionary, decoded_len: usize) -> bool {
    let Ok(params) = dict.get(b"DecodeParms").and_then(Object::as_dict) else {
        return true;
    };
    let predictor = params.get(b"Predictor").and_then(Object::as_i64).unwrap_or(1);
    if !(10..=15).contains(&predictor) {
        return true;
    }
    let number = |key: &[u8], default: i64| params.get(key).and_then(Object::as_i64).unwrap_or(default);
    let columns = number(b"Columns", 1).max(1) as u64;
    let colors = number(b"Colors", 1).max(1) as u64;
    let bits = number(b"BitsPerComponent", 8).max(8) as u64;
    colors.checked_mul(bits).map(|b| b / 8).and_then(|pixel| pixel.checked_mul(columns)).is_some_and(|row| row <= decoded_len as u64)
}

/// The decoded size of `data` through `chain`: every stage's output
/// counted (lopdf holds each one, even when a later stage fails), at most
/// `cap + 1` in all; an error once the deadline passes.
pub(super) fn decoded_len(data: &[u8], chain: &[Vec<u8>], cap: u64, deadline: &Deadline) -> Result<u64, ParseError> {
    let mut total = 0u64;
    let mut current: Vec<u8>;
    let mut input = data;
    for (i, filter) in chain.iter().enumerate() {
        let last = i + 1 == chain.len();
        match decode(filter, input, cap.saturating_sub(total), !last, deadline)? {
            Decoded::Len(n) => return Ok(total.saturating_add(n)),
            Decoded::Data(out) => {
                total = total.saturating_add(out.len() as u64);
                if total > cap {
                    return Ok(total);
                }
                current = out;
            }
            // lopdf gives up here, having inflated the stages before.
            Decoded::Unknown => return Ok(total),
        }
        input = &current;
    }
    Ok(total)
}

pub(super) enum Decoded {
    /// The output (when kept), at most `cap + 1` bytes.
    Data(Vec<u8>),
    /// Only the output's size, at most `cap + 1`.
    Len(u64),
    /// A filter lopdf does not decode either.
    Unknown,
}

/// One filter stage, reading at most `cap + 1` bytes of output; an error
/// once the deadline passes.
pub(super) fn decode(filter: &[u8], input: &[u8], cap: u64, keep: bool, deadline: &Deadline) -> Result<Decoded, ParseError> {
    let mut out = Capped { data: Vec::new(), len: 0, cap: cap.saturating_add(1), keep };
    let timed = |data| Timed { data, deadline, unchecked: 0 };
    match filter {
        b"FlateDecode" => {
            // lopdf: zlib; when that fails having produced nothing, raw deflate after the header.
            let zlib = std::io::copy(&mut flate2::read::ZlibDecoder::new(timed(input)).take(out.cap), &mut out);
            if zlib.is_err() && out.len == 0 && input.len() > 2 {
                deadline.check()?;
                let _ = std::io::copy(&mut flate2::read::DeflateDecoder::new(timed(&input[2..])).take(out.cap), &mut out);
            }
        }
        b"LZWDecode" => {
            // lopdf switches code size early unless told otherwise; count the larger reading.
            let mut other = Capped { data: Vec::new(), len: 0, cap: out.cap, keep };
            let _ = weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8).into_stream(&mut out).decode_all(timed(input)).status;
            deadline.check()?;
            let _ = weezl::decode::Decoder::new(weezl::BitOrder::Msb, 8).into_stream(&mut other).decode_all(timed(input)).status;
            if other.len > out.len {
                out = other;
            }
        }
        b"ASCII85Decode" => ascii85(input, &mut out, deadline)?,
        _ => return Ok(Decoded::Unknown),
    }
    deadline.check()?;
    Ok(if keep { Decoded::Data(out.data) } else { Decoded::Len(out.len) })
}

/// A decoder's input, which fails to read once the deadline has passed
/// (looked at every [`CHECK_EVERY`] bytes).
struct Timed<'a> {
    data: &'a [u8],
    deadline: &'a Deadline,
    unchecked: usize,
}

impl Read for Timed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Timed<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.unchecked >= CHECK_EVERY {
            self.deadline.check().map_err(std::io::Error::other)?;
            self.unchecked = 0;
        }
        Ok(&self.data[..self.data.len().min(CHECK_EVERY)])
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.data.len());
        self.data = &self.data[n..];
        self.unchecked += n;
    }
}

/// lopdf's ASCII85 reading: whitespace skipped, `z` for four zero bytes,
/// stop at the first byte outside the alphabet or at a group that
/// overflows; a last partial group padded with `u`.
fn ascii85(input: &[u8], out: &mut Capped, deadline: &Deadline) -> Result<(), ParseError> {
    let input = input.strip_suffix(b"~>").unwrap_or(input);
    let mut group = 0u32;
    let mut count = 0usize;
    for (i, &c) in input.iter().enumerate() {
        if out.len >= out.cap {
            return Ok(());
        }
        if i % CHECK_EVERY == CHECK_EVERY - 1 {
            deadline.check()?;
        }
        if c == b'z' {
            if count != 0 {
                return Ok(());
            }
            let _ = out.write_all(&[0; 4]);
        } else if c.is_ascii_whitespace() {
            continue;
        } else if (b'!'..=b'u').contains(&c) {
            let Some(next) = group.checked_mul(85).and_then(|g| g.checked_add(u32::from(c - b'!'))) else {
                return Ok(());
            };
            group = next;
            count += 1;
            if count == 5 {
                let _ = out.write_all(&group.to_be_bytes());
                group = 0;
                count = 0;
            }
        } else {
            break;
        }
    }
    if count > 0 {
        let padded = (count..5).try_fold(group, |g, _| g.checked_mul(85).and_then(|g| g.checked_add(84)));
        if let Some(padded) = padded {
            let _ = out.write_all(&padded.to_be_bytes()[..count - 1]);
        }
    }
    Ok(())
}

/// A writer that keeps (or only counts) up to `cap` bytes, then fails.
struct Capped {
    data: Vec<u8>,
    len: u64,
    cap: u64,
    keep: bool,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = usize::try_from(self.cap.saturating_sub(self.len)).unwrap_or(usize::MAX);
        if room == 0 {
            return Err(std::io::Error::other("over the decompression budget"));
        }
        let n = buf.len().min(room);
        if self.keep {
            self.data.extend_from_slice(&buf[..n]);
        }
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Limits;
    use crate::parse::budget::Budget;

    fn deadline() -> Deadline {
        Budget::new(&Limits::default(), 0).deadline()
    }

    #[test]
    fn decoding_stops_past_the_cap() {
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        let _ = encoder.write_all(&vec![b'a'; 1 << 20]);
        let compressed = encoder.finish().unwrap_or_default();
        let chain = [b"FlateDecode".to_vec()];
        assert_eq!(decoded_len(&compressed, &chain, 100, &deadline()), Ok(101));
        assert_eq!(decoded_len(&compressed, &chain, 2 << 20, &deadline()), Ok(1 << 20));
        let double = [b"FlateDecode".to_vec(), b"FlateDecode".to_vec()];
        let mut outer = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        let _ = outer.write_all(&compressed);
        assert_eq!(decoded_len(&outer.finish().unwrap_or_default(), &double, 1000, &deadline()), Ok(1001));
    }

    /// ASCII85 as the PDF reference writes it (`z` for zero groups).
    fn ascii85_encode(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in data.chunks(4) {
            let mut group = [0u8; 4];
            group[..chunk.len()].copy_from_slice(chunk);
            let value = u32::from_be_bytes(group);
            if value == 0 && chunk.len() == 4 {
                out.push(b'z');
                continue;
            }
            let mut digits = [0u8; 5];
            let mut rest = value;
            for digit in digits.iter_mut().rev() {
                *digit = b'!' + (rest % 85) as u8;
                rest /= 85;
            }
            out.extend_from_slice(&digits[..chunk.len() + 1]);
        }
        out.extend_from_slice(b"~>");
        out
    }

    #[test]
    fn ascii85_decodes_to_the_bytes_lopdf_reads() {
        // Before: only the length was counted (zeros), so operators hidden
        // behind ASCII85 were never seen by the page budget.
        let text = b"/Fm Do /Fm Do\0\0\0\0 tail";
        let encoded = ascii85_encode(text);
        let mut dict = Dictionary::new();
        dict.set("Filter", Object::Name(b"ASCII85Decode".to_vec()));
        let stream = Stream::new(dict, encoded);
        assert_eq!(decode_stream(&stream, 1 << 20, &deadline()), Ok(text.to_vec()));
        let mut lopdf = stream.clone();
        assert!(lopdf.decompress().is_ok());
        assert_eq!(lopdf.content, text.to_vec());
    }

    #[test]
    fn predictor_rows_longer_than_the_data_are_refused() {
        let mut params = Dictionary::new();
        params.set("Predictor", 12);
        params.set("Columns", 10_000_000_000i64);
        let mut dict = Dictionary::new();
        dict.set("DecodeParms", params);
        assert_eq!(decode_stream(&Stream::new(dict.clone(), vec![0; 64]), 1 << 20, &deadline()), Err(Undecoded::Predictor));
        let mut fits = Dictionary::new();
        fits.set("Predictor", 12);
        fits.set("Columns", 4);
        dict.set("DecodeParms", fits);
        assert_eq!(decode_stream(&Stream::new(dict, vec![0; 64]), 1 << 20, &deadline()).map(|d| d.len()), Ok(64));
    }

    /// LZW data of nothing but Clear codes inflates to nothing: only the
    /// deadline stops the decoders, between chunks of input.
    #[test]
    fn decoders_stop_at_the_deadline() {
        // 9-bit Clear codes (256), most significant bit first: 8 codes in 9 bytes.
        let clears: Vec<u8> = [0x80u8, 0x40, 0x20, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00].repeat(1 << 16);
        let lzw = [b"LZWDecode".to_vec()];
        assert_eq!(decoded_len(&clears, &lzw, 1 << 20, &deadline()), Ok(0));
        let expired = Budget::new(&Limits::default(), 0).expired().deadline();
        assert!(matches!(decoded_len(&clears, &lzw, 1 << 20, &expired), Err(ParseError::TooLarge { .. })));
        assert!(matches!(decode(b"FlateDecode", &clears, 1 << 20, false, &expired), Err(ParseError::TooLarge { .. })));
    }
}
