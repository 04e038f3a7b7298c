//! Stop strings over streamed text.
//!
//! A stop string can span several tokens, so text that might be the start
//! of one is held back until it either completes the stop string (generation
//! ends, the stop text and everything after it are dropped) or cannot
//! (the held text is released). Must not: know about tokens or the model.

/// Filters streamed text pieces against a set of stop strings.
pub(crate) struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

/// What to do with one piece of text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StopOutcome {
    /// Emit this text (may be empty) and keep going.
    Continue(String),
    /// Emit this text (may be empty) and stop: a stop string was produced.
    Stop(String),
}

impl StopMatcher {
    pub fn new(stops: &[String]) -> Self {
        Self { stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(), pending: String::new() }
    }

    /// Feed a decoded piece of generated text.
    pub fn push(&mut self, piece: &str) -> StopOutcome {
        if self.stops.is_empty() {
            return StopOutcome::Continue(piece.to_string());
        }
        self.pending.push_str(piece);
        // Earliest complete stop string wins.
        if let Some(at) = self.stops.iter().filter_map(|s| self.pending.find(s.as_str())).min() {
            let text = self.pending[..at].to_string();
            self.pending.clear();
            return StopOutcome::Stop(text);
        }
        // Hold back the longest tail that is a prefix of some stop string.
        let hold = self
            .pending
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| {
                let tail = &self.pending[i..];
                self.stops.iter().any(|s| s.starts_with(tail))
            })
            .unwrap_or(self.pending.len());
        let text = self.pending[..hold].to_string();
        self.pending.drain(..hold);
        StopOutcome::Continue(text)
    }

    /// Text held back when generation ends for another reason.
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut m = StopMatcher::new(&stops);
        let mut out = String::new();
        for p in pieces {
            match m.push(p) {
                StopOutcome::Continue(t) => out.push_str(&t),
                StopOutcome::Stop(t) => {
                    out.push_str(&t);
                    return (out, true);
                }
            }
        }
        out.push_str(&m.flush());
        (out, false)
    }

    #[test]
    fn stop_inside_one_piece() {
        assert_eq!(run(&["END"], &["hello END world"]), ("hello ".into(), true));
    }

    #[test]
    fn stop_across_pieces() {
        assert_eq!(run(&["\n\n"], &["a", "\n", "\nb"]), ("a".into(), true));
        assert_eq!(run(&["STOP"], &["x S", "T", "O", "P y"]), ("x ".into(), true));
    }

    #[test]
    fn false_start_is_released() {
        assert_eq!(run(&["STOP"], &["ST", "AR", "T"]), ("START".into(), false));
        assert_eq!(run(&["STOP"], &["ab", "ST"]), ("abST".into(), false));
    }

    #[test]
    fn earliest_of_several_and_multibyte() {
        assert_eq!(run(&["b", "a"], &["xab"]), ("x".into(), true));
        assert_eq!(run(&["é!"], &["café", "!"]), ("caf".into(), true));
        assert_eq!(run(&[], &["any", "thing"]), ("anything".into(), false));
    }

    #[test]
    fn held_text_is_not_emitted_early() {
        let stops = vec!["###".to_string()];
        let mut m = StopMatcher::new(&stops);
        assert_eq!(m.push("a#"), StopOutcome::Continue("a".into()));
        assert_eq!(m.push("#"), StopOutcome::Continue(String::new()));
        assert_eq!(m.push("x"), StopOutcome::Continue("##x".into()));
    }
}
