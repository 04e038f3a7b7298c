//! A PDF's cross-reference structure, checked before lopdf loads it
//! (by [`super::pdf_load`]).
//!
//! lopdf reads the cross-reference sections (tables and streams, following
//! `/Prev` and `/XRefStm`), then every object they list, with no limits of
//! its own: a section stream's `/W` and `/Index` make it allocate or loop
//! at will, many entries may name one offset (each one read again, an
//! object stream inflated again), an object stream's header may point many
//! objects at one place, and every stream whose `/Length` is a reference
//! reads that object (or inflates its object stream) again. [`check`]
//! reads the same sections the way lopdf does, with lopdf's own public
//! pieces where it has them (`Reader::get_object` for a section's stream
//! or trailer, `decode_xref_stream` for a stream's entries), after
//! bounding what they would allocate, and refuses a document whose entries
//! share an offset, number more than [`MAX_ENTRIES`], or whose object
//! streams hold objects that overlap (each object must parse, with lopdf's
//! own parser, from its own bytes alone).
//!
//! Encrypted documents load through a different path of lopdf's (no
//! filter; each object's raw bytes copied up to the first `endobj`): their
//! objects must each end before the next one starts, and object streams
//! (which lopdf can only expand after decryption, unchecked) are refused.
//!
//! Hand-written because lopdf's own section reader is private; the
//! classic table grammar here is lopdf's, restated.
//!
//! Must not: decrypt, repair a broken table, or extract text.

use std::collections::{BTreeMap, HashSet};

use pdf_extract::xref::{Xref, XrefEntry, XrefType, decode_xref_stream};
use pdf_extract::{Dictionary, Document, Object, ObjectId, ObjectStream, Reader, Stream};

use super::ParseError;
use super::budget::{Budget, Deadline, Limit};
use super::pdf_cursor::Cursor;
use super::pdf_decode::decode_stream;
use super::pdf_streams::{Lexer, Token, find, is_delimiter};
use super::pdf_values::{Reading, count_values};

/// Cross-reference sections followed from `startxref` (real files have a
/// handful: one per incremental update).
const MAX_SECTIONS: usize = 256;

/// Objects a document may list.
pub(super) const MAX_ENTRIES: u64 = 1 << 22;

/// A section stream's field widths (`/W`) above this many bytes are not a
/// real table.
const MAX_FIELD_WIDTH: i64 = 8;

/// Check `bytes`' cross-reference structure the way lopdf will read it,
/// charging the streams read to `budget`.
pub(super) fn check(bytes: &[u8], budget: &mut Budget) -> Result<(), ParseError> {
    let buffer = from_header(bytes);
    let table = read_sections(buffer, budget)?;
    let objects = object_positions(buffer, &table.xref, budget.deadline())?;
    check_lengths(buffer, &table.xref)?;
    check_values(buffer, &table.xref, &objects, budget.deadline())?;
    let normal: Vec<usize> = objects.iter().map(|o| o.entry).collect();
    if table.encrypted {
        if table.xref.entries.values().any(|e| matches!(e, XrefEntry::Compressed { .. })) {
            return Err(ParseError::Unsupported(
                "PDF: encrypted documents that keep objects in compressed object streams are not supported; save it without a password and upload it again".into(),
            ));
        }
        check_raw_spans(buffer, &normal)?;
    }
    Ok(())
}

/// The bytes from `%PDF-` on, as lopdf reads them (offsets count from there).
pub(super) fn from_header(bytes: &[u8]) -> &[u8] {
    let start = bytes.windows(5).position(|w| w == b"%PDF-").unwrap_or(0);
    &bytes[start..]
}

/// The merged cross-reference table lopdf would build, and whether the
/// trailer names an encryption dictionary.
struct Table {
    xref: Xref,
    encrypted: bool,
}

/// lopdf's `Reader::read` up to loading objects: the section at
/// `startxref`, then each `/Prev` (and the first trailer's `/XRefStm`),
/// earlier entries winning.
fn read_sections(buffer: &[u8], budget: &mut Budget) -> Result<Table, ParseError> {
    let start = xref_start(buffer).ok_or_else(|| malformed("the file does not end with startxref and %%EOF"))?;
    let mut sections = Sections { buffer, read: 0 };
    let (mut xref, mut trailer) = sections.read(start, budget)?;
    let mut seen = HashSet::new();
    let mut prev = trailer.remove(b"Prev");
    while let Some(offset) = prev.and_then(|o| o.as_i64().ok()) {
        if !seen.insert(offset) {
            break;
        }
        let (older, older_trailer) = sections.read(sections.position(offset)?, budget)?;
        xref.merge(older);
        if let Some(hybrid) = trailer.remove(b"XRefStm").and_then(|o| o.as_i64().ok()) {
            let (streamed, _) = sections.read(sections.position(hybrid)?, budget)?;
            xref.merge(streamed);
        }
        prev = older_trailer.get(b"Prev").ok().cloned();
        if xref.entries.len() as u64 > MAX_ENTRIES {
            return Err(too_many_entries());
        }
    }
    Ok(Table { xref, encrypted: trailer.get(b"Encrypt").is_ok() })
}

/// lopdf's `get_xref_start`: `startxref` within 25 bytes before the last
/// `%%EOF` of the final 512, then its number.
fn xref_start(buffer: &[u8]) -> Option<usize> {
    let tail = buffer.len().saturating_sub(512);
    let eof = tail + rfind(&buffer[tail..], b"%%EOF")?;
    if eof <= 25 {
        return None;
    }
    let keyword = eof - 25 + rfind(&buffer[eof - 25..eof], b"startxref")?;
    let mut cursor = Cursor { bytes: buffer, at: keyword + b"startxref".len() };
    while cursor.peek().is_some_and(|c| c.is_ascii_whitespace()) {
        cursor.at += 1;
    }
    cursor.unsigned::<usize>()
}

struct Sections<'b> {
    buffer: &'b [u8],
    read: usize,
}

impl Sections<'_> {
    fn position(&self, offset: i64) -> Result<usize, ParseError> {
        usize::try_from(offset).ok().filter(|&o| o <= self.buffer.len()).ok_or_else(|| malformed("a cross-reference section starts outside the file"))
    }

    /// The section at `at`: a classic table and its trailer, else a
    /// cross-reference stream (whose dictionary is its trailer).
    fn read(&mut self, at: usize, budget: &mut Budget) -> Result<(Xref, Dictionary), ParseError> {
        self.read += 1;
        if self.read > MAX_SECTIONS {
            return Err(ParseError::TooLarge { what: "its number of cross-reference sections".into(), limit: Limit::Count(MAX_SECTIONS as u64) });
        }
        budget.deadline().check()?;
        if let Some(table) = classic_table(self.buffer, at) {
            return table;
        }
        stream_section(self.buffer, at, budget)
    }
}

/// lopdf's classic table grammar at `at`: `xref`, then subsections of
/// fixed 20-byte entries, then `trailer` and its dictionary. `None` when
/// the grammar does not match (lopdf then tries a stream).
fn classic_table(buffer: &[u8], at: usize) -> Option<Result<(Xref, Dictionary), ParseError>> {
    let mut cursor = Cursor { bytes: buffer, at };
    if !cursor.tag(b"xref") {
        return None;
    }
    cursor.tag(b" ");
    if !cursor.eol() {
        return None;
    }
    let mut xref = Xref::new(0, XrefType::CrossReferenceTable);
    let mut subsections = 0usize;
    loop {
        let mark = cursor.at;
        let Some((first, _count)) = cursor.subsection_header() else {
            cursor.at = mark;
            break;
        };
        subsections += 1;
        let mut index = 0usize;
        while let Some((offset, generation, in_use)) = cursor.entry() {
            if in_use && let Ok(generation) = u16::try_from(generation) {
                xref.insert(first.wrapping_add(index) as u32, XrefEntry::Normal { offset, generation });
            }
            index += 1;
        }
        if xref.entries.len() as u64 > MAX_ENTRIES {
            return Some(Err(too_many_entries()));
        }
    }
    if subsections == 0 {
        return None;
    }
    cursor.space();
    if !cursor.tag(b"trailer") {
        return None;
    }
    cursor.space();
    let end = find(&buffer[cursor.at..], b"startxref").map_or(buffer.len(), |n| cursor.at + n);
    if let Err(refused) = section_fits(buffer, &buffer[cursor.at..end], Reading::Content) {
        return Some(Err(refused));
    }
    let trailer = dictionary_at(buffer, cursor.at)?;
    let Some(size) = trailer.get(b"Size").and_then(Object::as_i64).ok() else {
        return Some(Err(malformed("the trailer has no /Size")));
    };
    xref.size = size as u32;
    Some(Ok((xref, trailer)))
}

/// A cross-reference stream at `at`, its allocations bounded before
/// lopdf decodes it: field widths of at most [`MAX_FIELD_WIDTH`] bytes
/// adding up to at least one (an entry that reads nothing loops as long as
/// `/Index` says), at most [`MAX_ENTRIES`] entries, its data within the
/// decompressed-data budget.
fn stream_section(buffer: &[u8], at: usize, budget: &mut Budget) -> Result<(Xref, Dictionary), ParseError> {
    let unreadable = || malformed("a cross-reference section is neither a table nor a stream");
    let mut cursor = Cursor { bytes: buffer, at };
    cursor.space();
    let number = cursor.unsigned::<u32>().ok_or_else(unreadable)?;
    cursor.space();
    let generation = cursor.unsigned::<u16>().ok_or_else(unreadable)?;
    cursor.space();
    if !cursor.tag(b"obj") {
        return Err(unreadable());
    }
    section_fits(buffer, &buffer[at..], Reading::FileObject)?;
    let Some(Object::Stream(stream)) = object_at(buffer, at, (number, generation)) else {
        return Err(unreadable());
    };
    let integers = |key: &[u8]| stream.dict.get(key).and_then(Object::as_array).ok().and_then(|items| items.iter().map(|i| i.as_i64().ok()).collect::<Option<Vec<i64>>>());
    if let Some(widths) = integers(b"W").filter(|w| w.len() >= 3)
        && (widths[..3].iter().any(|w| !(0..=MAX_FIELD_WIDTH).contains(w)) || widths[..3].iter().sum::<i64>() == 0)
    {
        return Err(malformed("a cross-reference stream's field widths (/W) are not a table's"));
    }
    let size = stream.dict.get(b"Size").and_then(Object::as_i64).unwrap_or(0);
    let index = integers(b"Index").unwrap_or_else(|| vec![0, size]);
    let listed = index.chunks_exact(2).fold(0u64, |sum, pair| sum.saturating_add(u64::try_from(pair[1]).unwrap_or(0)));
    if listed > MAX_ENTRIES {
        return Err(too_many_entries());
    }
    let decoded = decode_stream(&stream, budget.inflate_remaining(), &budget.deadline()).map_err(|why| why.or_over(budget.inflate_exceeded()))?;
    budget.inflated(decoded.len() as u64)?;
    decode_xref_stream(stream).map_err(|e| malformed(&format!("a cross-reference stream cannot be read ({e})")))
}

/// A section's trailer (or stream object) in `bytes`, counted before lopdf
/// (and [`dictionary_at`]) build it, must fit the memory limit of the file.
fn section_fits(buffer: &[u8], bytes: &[u8], reading: Reading) -> Result<(), ParseError> {
    let limit = memory_limit(buffer.len() as u64);
    let values = count_values(bytes, &|_, _| None, reading).0;
    if values.saturating_mul(VALUE_BYTES) > limit { Err(memory_exceeded(limit)) } else { Ok(()) }
}

/// How far lopdf's `space` may run around an object header (real files:
/// none, or the header comments of the file for an entry at offset 0).
const MAX_SPACE_AROUND_HEADER: usize = 4096;

/// Entries whose object starts at one place (lopdf reads it once for
/// each; some writers list missing objects at offset 0, which reads as
/// the first object).
const MAX_ENTRIES_PER_OBJECT: usize = 16;

/// An object lopdf will read: where its entry points, and where its
/// header starts after lopdf's `space`.
pub(super) struct Placed {
    pub(super) entry: usize,
    pub(super) header: usize,
}

/// The objects the in-use entries point at, sorted by header. lopdf reads
/// each entry (however many share an object) and, for one that fails,
/// nothing reaches the filter (so no deadline): an entry whose object is
/// reached through more than [`MAX_SPACE_AROUND_HEADER`] bytes of
/// whitespace or comments before or after its header, or an object more
/// than [`MAX_ENTRIES_PER_OBJECT`] entries point at, is refused. Entries
/// where no header stands cost lopdf one short failed read each.
fn object_positions(buffer: &[u8], xref: &Xref, deadline: Deadline) -> Result<Vec<Placed>, ParseError> {
    if xref.entries.len() as u64 > MAX_ENTRIES {
        return Err(too_many_entries());
    }
    let many = || malformed("many cross-reference entries point at the same object");
    let mut entries: Vec<usize> = xref.entries.values().filter_map(|entry| if let XrefEntry::Normal { offset, .. } = entry { Some(*offset as usize) } else { None }).collect();
    entries.sort_unstable();
    let mut placed: Vec<Placed> = Vec::with_capacity(entries.len());
    let mut per_header: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    for (i, &entry) in entries.iter().enumerate() {
        if i % 1024 == 0 {
            deadline.check()?;
        }
        // lopdf reads an offset once per entry, whether or not an object stands there.
        if i >= MAX_ENTRIES_PER_OBJECT && entries[i - MAX_ENTRIES_PER_OBJECT] == entry {
            return Err(many());
        }
        if i > 0 && entries[i - 1] == entry {
            continue;
        }
        let Some(header) = header_after_space(buffer, entry)? else { continue };
        let shared = per_header.entry(header).or_default();
        *shared += entries[i..].iter().take_while(|&&e| e == entry).count();
        if *shared > MAX_ENTRIES_PER_OBJECT {
            return Err(many());
        }
        placed.push(Placed { entry, header });
    }
    placed.sort_unstable_by_key(|p| p.header);
    placed.dedup_by_key(|p| p.header);
    Ok(placed)
}

/// Where the object header lopdf reads at `entry` starts, `None` when no
/// header stands there; refused when lopdf would run long before finding
/// out: more than [`MAX_SPACE_AROUND_HEADER`] bytes of `space` anywhere in
/// or around the header, or a number longer than 20 digits.
fn header_after_space(buffer: &[u8], entry: usize) -> Result<Option<usize>, ParseError> {
    let long = || malformed("a cross-reference entry points at a long run of whitespace, comments or digits");
    let mut cursor = Cursor { bytes: buffer, at: entry.min(buffer.len()) };
    let space = |cursor: &mut Cursor| {
        let start = cursor.at;
        cursor.space();
        if cursor.at - start > MAX_SPACE_AROUND_HEADER { Err(long()) } else { Ok(()) }
    };
    let number = |cursor: &mut Cursor| {
        let start = cursor.at;
        while cursor.peek().is_some_and(|c| c.is_ascii_digit()) {
            cursor.at += 1;
            if cursor.at - start > 20 {
                return Err(long());
            }
        }
        Ok(cursor.at > start)
    };
    space(&mut cursor)?;
    let header = cursor.at;
    if !number(&mut cursor)? {
        return Ok(None);
    }
    space(&mut cursor)?;
    if !number(&mut cursor)? {
        return Ok(None);
    }
    space(&mut cursor)?;
    if !cursor.tag(b"obj") {
        return Ok(None);
    }
    space(&mut cursor)?;
    Ok(Some(header))
}

/// The memory lopdf's objects would take, counted before it builds any
/// (it builds each whole before the filter sees it): the values of every
/// object ([`super::pdf_values`]), each read from its header to its
/// `endobj`, which must come before the next object's header (else lopdf
/// could read on into it), at [`VALUE_BYTES`] each, must fit
/// [`memory_limit`].
fn check_values(buffer: &[u8], xref: &Xref, objects: &[Placed], deadline: Deadline) -> Result<(), ParseError> {
    let length_of = |number: u32, generation: u16| integer_held(buffer, xref, (number, generation));
    let limit = memory_limit(buffer.len() as u64);
    let mut memory = 0u64;
    for (i, object) in objects.iter().enumerate() {
        if i % 1024 == 0 {
            deadline.check()?;
        }
        let next = objects.get(i + 1).map(|next| next.header);
        let (values, ended) = count_values(&buffer[object.header..next.unwrap_or(buffer.len())], &length_of, Reading::FileObject);
        if next.is_some() && ended.is_none() {
            return Err(malformed("an object runs into the next one (no endobj before the next object starts)"));
        }
        memory = memory.saturating_add(values.saturating_mul(VALUE_BYTES));
        if memory > limit {
            return Err(memory_exceeded(limit));
        }
    }
    Ok(())
}

/// What lopdf's objects for one document may take: 64 times the file, at
/// least 256 MiB (object streams of small files), at most 2 GiB.
pub(super) fn memory_limit(file_len: u64) -> u64 {
    file_len.saturating_mul(64).clamp(256 << 20, 2 << 30)
}

pub(super) fn memory_exceeded(limit: u64) -> ParseError {
    ParseError::TooLarge { what: "the memory its objects take (objects overlapping one another count each time)".into(), limit: Limit::Bytes(limit) }
}

/// For an encrypted document: the bytes lopdf copies for each object
/// (its header up to the first `endobj`) must end before the next
/// object starts.
fn check_raw_spans(buffer: &[u8], offsets: &[usize]) -> Result<(), ParseError> {
    for (i, &offset) in offsets.iter().enumerate() {
        let Some(body) = raw_header_end(buffer, offset) else {
            continue;
        };
        let next = offsets.get(i + 1).copied().unwrap_or(buffer.len()).min(buffer.len());
        if next <= body || find(&buffer[body..next], b"endobj").is_none() && i + 1 < offsets.len() {
            return Err(malformed("an object runs into the next one"));
        }
    }
    Ok(())
}

/// Every stream `/Length` that is a reference to a listed object must name
/// a plain entry (not in an object stream) that holds a bare integer (a
/// reference to nothing listed costs lopdf one failed lookup).
/// lopdf resolves each one while it reads the stream, once per stream and
/// before any filter or deadline can step in: a reference to a large
/// object reads it again for every stream, a chain of stream lengths
/// recurses once per link, and a reference into an object stream expands
/// that stream (with loop detection reset at each container). References
/// are found in the raw bytes, with and without `%` comments, as lopdf
/// reads a reference (`n g R`, comments allowed between).
fn check_lengths(buffer: &[u8], xref: &Xref) -> Result<(), ParseError> {
    let mut checked: HashSet<ObjectId> = HashSet::new();
    for comments in [true, false] {
        for (start, token) in (Lexer { bytes: buffer, at: 0, comments }) {
            let Token::Name(name) = token else { continue };
            if name.as_slice() != b"Length" {
                continue;
            }
            let mut cursor = Cursor { bytes: buffer, at: start + 1 };
            while cursor.peek().is_some_and(|c| !is_delimiter(c)) {
                cursor.at += 1;
            }
            let Some(target) = cursor.reference() else { continue };
            if checked.insert(target) && xref.get(target.0).is_some() && integer_held(buffer, xref, target).is_none() {
                return Err(malformed("a stream's /Length refers to something other than a number listed in the cross-reference table"));
            }
        }
    }
    Ok(())
}

/// The integer `id` holds when it is listed as a plain entry whose object
/// is `id obj`, a non-negative integer and `endobj`, within a few hundred
/// bytes.
fn integer_held(buffer: &[u8], xref: &Xref, id: ObjectId) -> Option<u64> {
    let Some(XrefEntry::Normal { offset, generation }) = xref.get(id.0) else { return None };
    if *generation != id.1 {
        return None;
    }
    let window = &buffer[(*offset as usize).min(buffer.len())..];
    let mut cursor = Cursor { bytes: &window[..window.len().min(512)], at: 0 };
    cursor.space();
    let header = (cursor.unsigned::<u32>(), cursor.space(), cursor.unsigned::<u16>(), cursor.space(), cursor.tag(b"obj"));
    if header != (Some(id.0), (), Some(id.1), (), true) {
        return None;
    }
    cursor.space();
    cursor.tag(b"+");
    let value = cursor.unsigned::<u64>()?;
    cursor.space();
    cursor.tag(b"endobj").then_some(value)
}

/// lopdf's raw header reading for encrypted documents: ASCII whitespace,
/// digits, whitespace, digits, whitespace, `obj`. Where the body starts.
fn raw_header_end(buffer: &[u8], offset: usize) -> Option<usize> {
    let mut cursor = Cursor { bytes: buffer, at: offset };
    let skip = |cursor: &mut Cursor| {
        while cursor.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            cursor.at += 1;
        }
    };
    skip(&mut cursor);
    cursor.unsigned::<u32>()?;
    skip(&mut cursor);
    cursor.unsigned::<u16>()?;
    skip(&mut cursor);
    cursor.tag(b"obj").then_some(cursor.at)
}

/// What expanding an object stream costs: its decoded bytes, and the
/// memory lopdf's objects for it take (each value [`VALUE_BYTES`]).
pub(super) struct Expansion {
    pub(super) decoded: u64,
    pub(super) memory: u64,
    /// The objects it lists (charged here, so not again when they arrive).
    pub(super) ids: Vec<ObjectId>,
}

/// What lopdf holds for one value (a number, a reference, a name, an
/// array or dictionary entry) besides its bytes: an `Object` is 120 bytes.
pub(super) const VALUE_BYTES: u64 = 128;

/// Check an object stream the way lopdf's `ObjectStream::new` will read
/// it: each object it lists must parse from its own bytes (up to where the
/// next one starts), and no two may start at one place.
/// `memory` is the room left and the limit it came from: the values are
/// counted (and refused past the room) before any object is parsed.
pub(super) fn check_object_stream(stream: &Stream, room: u64, memory: (u64, u64), deadline: Deadline) -> Result<Expansion, ParseError> {
    let over = || ParseError::TooLarge { what: "its decompressed data".into(), limit: Limit::Bytes(room) };
    decode_stream(stream, room, &deadline).map_err(|why| why.or_over(over()))?;
    let mut stream = stream.clone();
    // lopdf's own decoding, now known to stay within the room.
    let _ = stream.decompress();
    let content = &stream.content;
    // Without a readable header lopdf builds no objects from it.
    let mut expansion = Expansion { decoded: content.len() as u64, memory: content.len() as u64, ids: Vec::new() };
    let Some(first) = stream.dict.get(b"First").and_then(Object::as_i64).ok().and_then(|f| usize::try_from(f).ok()) else {
        return Ok(expansion);
    };
    let Some(header) = content.get(..first).and_then(|h| std::str::from_utf8(h).ok()) else {
        return Ok(expansion);
    };
    let numbers: Vec<Option<u32>> = header.split_whitespace().map(|n| n.parse().ok()).collect();
    let mut starts: Vec<(usize, u32)> = numbers[..numbers.len() / 2 * 2]
        .chunks_exact(2)
        .filter_map(|pair| {
            let id = pair[0]?;
            let mut start = first.checked_add(pair[1]? as usize)?;
            while content.get(start).is_some_and(u8::is_ascii_whitespace) {
                start += 1;
            }
            (start < content.len()).then_some((start, id))
        })
        .collect();
    starts.sort_unstable();
    expansion.ids = starts.iter().map(|&(_, id)| (id, 0)).collect();
    // Counted before anything is parsed: each object from its own start
    // to the next one's (the probe below makes sure it ends there).
    let mut values = count_values(header.as_bytes(), &|_, _| None, Reading::Content).0;
    for (i, &(start, _)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(content.len(), |next| next.0);
        values = values.saturating_add(count_values(&content[start..end], &|_, _| None, Reading::StreamObject).0);
    }
    expansion.memory = expansion.memory.saturating_add(values.saturating_mul(VALUE_BYTES));
    if expansion.memory > memory.0 {
        return Err(memory_exceeded(memory.1));
    }
    for (i, &(start, id)) in starts.iter().enumerate() {
        if i % 4096 == 0 {
            deadline.check()?;
        }
        let end = starts.get(i + 1).map_or(content.len(), |next| next.0);
        if end == start {
            return Err(malformed("several objects of an object stream start at the same place"));
        }
        let label = format!("{id} 0 ");
        let mut dict = Dictionary::new();
        dict.set("First", label.len() as i64);
        dict.set("N", 1);
        let mut alone = Stream::new(dict, [label.as_bytes(), &content[start..end]].concat());
        if ObjectStream::new(&mut alone).map(|s| s.objects.len()).unwrap_or(0) != 1 {
            return Err(malformed("an object stream's objects overlap or cannot be read"));
        }
    }
    Ok(expansion)
}

/// The object `id` at `offset`, read by lopdf's reader with nothing else
/// listed (so a `/Length` reference is not followed).
fn object_at(buffer: &[u8], offset: usize, id: ObjectId) -> Option<Object> {
    let mut document = Document::new();
    document.reference_table.insert(id.0, XrefEntry::Normal { offset: u32::try_from(offset).ok()?, generation: id.1 });
    let reader = Reader { buffer, document, encryption_state: None, raw_objects: BTreeMap::new(), password: None, strict: false };
    reader.get_object(id, &mut HashSet::new()).ok()
}

/// A trailer dictionary at `at`, read by lopdf's parser (as the body of
/// an object made up for it, over the bytes up to the next `startxref`).
fn dictionary_at(buffer: &[u8], at: usize) -> Option<Dictionary> {
    let end = find(&buffer[at..], b"startxref").map_or(buffer.len(), |n| at + n);
    let mut made_up = b"1 0 obj\n".to_vec();
    made_up.extend_from_slice(&buffer[at..end]);
    match object_at(&made_up, 0, (1, 0))? {
        Object::Dictionary(dict) => Some(dict),
        Object::Stream(stream) => Some(stream.dict),
        _ => None,
    }
}

fn too_many_entries() -> ParseError {
    ParseError::TooLarge { what: "its number of cross-reference entries".into(), limit: Limit::Count(MAX_ENTRIES) }
}

pub(super) fn malformed(reason: &str) -> ParseError {
    ParseError::Malformed(format!("PDF: {reason}"))
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

#[cfg(test)]
#[path = "pdf_xref_tests.rs"]
pub(super) mod tests;
