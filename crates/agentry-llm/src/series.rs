//! Metric handles per set of label values, registered once and then looked
//! up. The Prometheus recorder copies every label of a key into fresh
//! allocations on each `counter!`/`histogram!` call, even for a series it
//! already holds; on the gateway's hot path that was about a sixth of all
//! allocations of a proxied completion. A [`Series`] keeps the handle per
//! label set and finds it again without allocating (hashbrown's
//! `Equivalent` compares borrowed label values with the stored ones).
//!
//! Owns no metric names or meanings: callers say what to register. Label
//! sets must stay bounded, as for any Prometheus series.

use std::hash::{Hash, Hasher};

use hashbrown::{Equivalent, HashMap};
use parking_lot::RwLock;

/// Handles of type `H` (a `metrics::Counter`, `Gauge` or `Histogram`) by `N` label values.
pub struct Series<const N: usize, H> {
    handles: RwLock<HashMap<[String; N], H>>,
}

impl<const N: usize, H: Clone> Series<N, H> {
    pub fn new() -> Self {
        Self { handles: RwLock::new(HashMap::new()) }
    }

    /// The handle for `labels`, registered with `register` the first time.
    pub fn get(&self, labels: [&str; N], register: impl FnOnce([&str; N]) -> H) -> H {
        if let Some(handle) = self.handles.read().get(&Labels(labels)) {
            return handle.clone();
        }
        let handle = register(labels);
        self.handles.write().entry(labels.map(str::to_owned)).or_insert(handle).clone()
    }
}

impl<const N: usize, H: Clone> Default for Series<N, H> {
    fn default() -> Self {
        Self::new()
    }
}

/// Borrowed label values, hashed exactly as the stored `[String; N]` is.
struct Labels<'a, const N: usize>([&'a str; N]);

impl<const N: usize> Hash for Labels<'_, N> {
    fn hash<S: Hasher>(&self, state: &mut S) {
        self.0.hash(state);
    }
}

impl<const N: usize> Equivalent<[String; N]> for Labels<'_, N> {
    fn equivalent(&self, key: &[String; N]) -> bool {
        self.0.iter().zip(key).all(|(a, b)| *a == b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_each_label_set_once() {
        let series: Series<2, usize> = Series::new();
        let mut registered = 0;
        let mut get = |labels: [&str; 2]| {
            series.get(labels, |_| {
                registered += 1;
                registered
            })
        };
        assert_eq!(get(["a", "b"]), 1);
        assert_eq!(get(["a", "c"]), 2);
        assert_eq!(get(["a", "b"]), 1, "found again, not registered again");
        assert_eq!(get(["ab", ""]), 3, "label boundaries are part of the key");
        assert_eq!(registered, 3);
    }
}
