//! Loading a PDF with lopdf under a guard: [`super::pdf_xref`] checks
//! the cross-reference structure first, then lopdf loads with a filter it
//! calls for every object it reads. The filter charges the memory the
//! object takes against a limit proportional to the file (objects nested
//! inside one another's bytes would take more), checks every object
//! stream (and charges the memory of its objects) before lopdf expands
//! it, and checks the parse's deadline. lopdf builds one object before
//! the filter sees it: [`super::pdf_xref`] has counted every object's
//! values (and refused objects that run into the next one) before the
//! load starts. A refusal inside lopdf unwinds out of it
//! with [`std::panic::resume_unwind`] (no panic message) and is reported
//! with its reason.
//!
//! Must not: decrypt or extract text.

use std::cell::RefCell;
use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use pdf_extract::{Document, LoadOptions, Object, ObjectId};

use super::ParseError;
use super::budget::{Budget, Deadline};
use super::pdf_xref::{VALUE_BYTES, check, check_object_stream, from_header, malformed, memory_exceeded, memory_limit};

/// Load `bytes` with lopdf once its cross-reference structure has passed
/// the checks, charging object streams to `budget`.
pub(super) fn load(bytes: &[u8], budget: &mut Budget) -> Result<Document, ParseError> {
    check(bytes, budget)?;
    let buffer = from_header(bytes);
    let memory_limit = memory_limit(buffer.len() as u64);
    let guard = LoadGuard {
        deadline: budget.deadline(),
        file_len: buffer.len() as u64,
        memory_limit,
        memory_room: memory_limit,
        inflate_room: budget.inflate_remaining(),
        prepaid: HashSet::new(),
        refused: None,
    };
    GUARD.with(|cell| *cell.borrow_mut() = Some(guard));
    let options = LoadOptions { filter: Some(guard_object), ..LoadOptions::default() };
    let loaded = catch_unwind(AssertUnwindSafe(|| Document::load_mem_with_options(bytes, options)));
    let guard = GUARD.with(|cell| cell.borrow_mut().take());
    match loaded {
        Ok(Ok(document)) => Ok(document),
        Ok(Err(e)) => Err(malformed(&e.to_string())),
        Err(payload) if payload.is::<Refused>() => Err(guard.and_then(|g| g.refused).unwrap_or_else(|| malformed("the file structure cannot be read"))),
        Err(_) => Err(malformed("the file structure cannot be read")),
    }
}

thread_local! {
    /// The guard of the load running on this thread (lopdf reads objects
    /// on the calling thread: its rayon feature is off).
    static GUARD: RefCell<Option<LoadGuard>> = const { RefCell::new(None) };
}

/// What one load may still build.
struct LoadGuard {
    deadline: Deadline,
    file_len: u64,
    memory_limit: u64,
    /// Memory lopdf's objects may still take (see [`weight`]).
    memory_room: u64,
    /// Decompressed bytes object streams may still take.
    inflate_room: u64,
    /// Objects of object streams already charged with their stream.
    prepaid: HashSet<ObjectId>,
    refused: Option<ParseError>,
}

/// The unwinding payload of a refusal.
struct Refused;

/// lopdf's load filter: charge `object`, check an object stream before
/// lopdf expands it, keep everything. The object is cloned because lopdf
/// keeps the one it passed for plain objects and the returned one for the
/// objects of object streams.
fn guard_object(id: ObjectId, object: &mut Object) -> Option<(ObjectId, Object)> {
    // No guard on this thread (lopdf reading on another one) refuses too.
    let admitted = GUARD.with(|cell| {
        let mut slot = cell.borrow_mut();
        let Some(guard) = slot.as_mut() else { return false };
        guard.admit(id, object).map_err(|reason| guard.refused = Some(reason)).is_ok()
    });
    if !admitted {
        resume_unwind(Box::new(Refused));
    }
    Some((id, object.clone()))
}

impl LoadGuard {
    fn admit(&mut self, id: ObjectId, object: &Object) -> Result<(), ParseError> {
        self.deadline.check()?;
        // An object of an object stream was charged with its stream.
        if !self.prepaid.remove(&id) {
            self.charge(weight(object, self.file_len))?;
        }
        if let Object::Stream(stream) = object
            && stream.dict.has_type(b"ObjStm")
        {
            let expansion = check_object_stream(stream, self.inflate_room, (self.memory_room, self.memory_limit), self.deadline)?;
            self.inflate_room = self.inflate_room.saturating_sub(expansion.decoded);
            self.charge(expansion.memory)?;
            self.prepaid.extend(expansion.ids);
        }
        Ok(())
    }

    fn charge(&mut self, memory: u64) -> Result<(), ParseError> {
        if memory > self.memory_room {
            return Err(memory_exceeded(self.memory_limit));
        }
        self.memory_room -= memory;
        Ok(())
    }
}

/// What lopdf holds for `object`: [`VALUE_BYTES`] for every value, and
/// the bytes of its strings, names and stream data. A stream whose `/Length`
/// lopdf could not resolve yet (it kept only the data's position) is read
/// after loading, up to the end of the file (`file_len`) at most.
fn weight(object: &Object, file_len: u64) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![object];
    while let Some(object) = stack.pop() {
        total = total.saturating_add(match object {
            Object::String(bytes, _) | Object::Name(bytes) => bytes.len() as u64 + VALUE_BYTES,
            Object::Array(items) => {
                stack.extend(items);
                VALUE_BYTES
            }
            Object::Dictionary(dict) => {
                stack.extend(dict.iter().map(|(_, value)| value));
                (dict.len() as u64 + 1).saturating_mul(VALUE_BYTES)
            }
            Object::Stream(stream) => {
                stack.extend(stream.dict.iter().map(|(_, value)| value));
                let data = match stream.start_position {
                    Some(start) if stream.content.is_empty() => file_len.saturating_sub(start as u64),
                    _ => stream.content.len() as u64,
                };
                data.saturating_add((stream.dict.len() as u64 + 1).saturating_mul(VALUE_BYTES))
            }
            _ => VALUE_BYTES,
        });
    }
    total
}
