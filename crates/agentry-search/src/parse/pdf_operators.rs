//! The operators of decoded page content that load resources, read by
//! lopdf's own content parser — the one pdf-extract uses — so the page
//! budget measures exactly what pdf-extract will draw, select and apply
//! (a scan of our own once skipped an inline image differently from
//! lopdf, hiding every operator after it).
//!
//! Callers parse only content whose values were counted first
//! ([`super::pdf_values::count_values`] reads content conservatively: it
//! skips nothing), so the parse's memory is already within the limit.
//!
//! Must not: decode streams or charge budgets.

use std::collections::{HashMap, HashSet};

use pdf_extract::content::Content;

/// The resource-loading operators of decoded content.
#[derive(Debug, Default)]
pub(super) struct Operators {
    /// How many times each name is drawn (`/Name Do`).
    pub(super) draws: HashMap<Vec<u8>, u64>,
    /// The font names selected (`/Name size Tf`).
    pub(super) fonts: Vec<Vec<u8>>,
    /// How many times each colour space is set (`/Name cs`, `/Name CS`).
    pub(super) colour_spaces: HashMap<Vec<u8>, u64>,
    /// How many times each graphics state is applied (`/Name gs`).
    pub(super) states: HashMap<Vec<u8>, u64>,
    /// The deepest nesting of `q` not yet closed by `Q` (pdf-extract keeps
    /// a copy of the whole graphics state for each).
    pub(super) saves: u64,
    /// Every `q` (each copies the whole graphics state, kept or not).
    pub(super) save_count: u64,
    /// The most operands one colour operator (`sc`, `scn`, `SC`, `SCN`)
    /// takes (kept in the graphics state, and so in every copy).
    pub(super) colour_operands: u64,
}

/// The [`Operators`] of decoded content, as lopdf parses it (content it
/// cannot parse has none: pdf-extract draws nothing of it either).
pub(super) fn operators(content: &[u8]) -> Operators {
    let mut found = Operators::default();
    let Ok(parsed) = Content::decode(content) else {
        return found;
    };
    let mut fonts: HashSet<Vec<u8>> = HashSet::new();
    let mut depth = 0u64;
    for operation in &parsed.operations {
        let first = operation.operands.first().and_then(|o| o.as_name().ok()).map(<[u8]>::to_vec);
        match (operation.operator.as_str(), first) {
            ("q", _) => {
                found.save_count += 1;
                depth += 1;
                found.saves = found.saves.max(depth);
            }
            ("Q", _) => depth = depth.saturating_sub(1),
            ("sc" | "scn" | "SC" | "SCN", _) => found.colour_operands = found.colour_operands.max(operation.operands.len() as u64),
            ("Do", Some(name)) => *found.draws.entry(name).or_default() += 1,
            ("cs" | "CS", Some(name)) => *found.colour_spaces.entry(name).or_default() += 1,
            ("gs", Some(name)) => *found.states.entry(name).or_default() += 1,
            ("Tf", Some(name)) if fonts.insert(name.clone()) => found.fonts.push(name),
            _ => {}
        }
    }
    found
}
