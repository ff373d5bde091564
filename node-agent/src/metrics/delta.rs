//! Deltas between two readings of monotonically growing kernel counters.
//!
//! The kernel never resets a counter; user space remembers the previous reading per key.
//! A key whose counters went *down* was evicted and re-created by the kernel in between, so
//! its whole current value is new.

use std::{collections::HashMap, hash::Hash};

/// A set of counters that can be subtracted.
pub trait Counters: Copy {
    /// `self - prev`, or `None` when a counter went backwards (the key was re-created).
    fn delta(&self, prev: &Self) -> Option<Self>;
    fn is_zero(&self) -> bool;
}

struct Tracked<V> {
    last: V,
    idle_intervals: u32,
}

/// Remembers the last reading per key.
pub struct DeltaTracker<K, V> {
    prev: HashMap<K, Tracked<V>>,
    /// Keys user space removed from the kernel map (for eviction accounting).
    pub deleted: u64,
}

impl<K: Eq + Hash + Copy, V: Counters> Default for DeltaTracker<K, V> {
    fn default() -> Self {
        Self {
            prev: HashMap::new(),
            deleted: 0,
        }
    }
}

/// What one reading produced.
pub struct Observed<K, V> {
    /// Keys whose counters changed, with the change.
    pub changed: Vec<(K, V)>,
    /// Keys unchanged for `idle_limit` intervals: the caller deletes them from the kernel map
    /// and reports them with [`DeltaTracker::forget`].
    pub idle: Vec<K>,
}

impl<K: Eq + Hash + Copy, V: Counters> DeltaTracker<K, V> {
    /// Takes a full reading of the map. Keys missing from it are forgotten (the kernel evicted
    /// them).
    pub fn observe(&mut self, reading: Vec<(K, V)>, idle_limit: u32) -> Observed<K, V> {
        let mut changed = Vec::new();
        let mut idle = Vec::new();
        let mut next = HashMap::with_capacity(reading.len());
        for (key, value) in reading {
            let (delta, idle_intervals) = match self.prev.get(&key) {
                None => (Some(value), 0),
                Some(t) => match value.delta(&t.last) {
                    Some(d) if d.is_zero() => (None, t.idle_intervals + 1),
                    Some(d) => (Some(d), 0),
                    None => (Some(value), 0),
                },
            };
            if let Some(d) = delta.filter(|d| !d.is_zero()) {
                changed.push((key, d));
            }
            if idle_intervals >= idle_limit {
                idle.push(key);
            }
            next.insert(
                key,
                Tracked {
                    last: value,
                    idle_intervals,
                },
            );
        }
        self.prev = next;
        Observed { changed, idle }
    }

    /// Records that user space deleted `key` from the kernel map.
    pub fn forget(&mut self, key: &K) {
        if self.prev.remove(key).is_some() {
            self.deleted += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.prev.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prev.is_empty()
    }
}

impl Counters for u64 {
    fn delta(&self, prev: &Self) -> Option<Self> {
        self.checked_sub(*prev)
    }
    fn is_zero(&self) -> bool {
        *self == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_idle_and_recreated_keys() {
        let mut t: DeltaTracker<u32, u64> = DeltaTracker::default();
        let o = t.observe(vec![(1, 5), (2, 3)], 2);
        assert_eq!(o.changed.len(), 2);
        let o = t.observe(vec![(1, 9), (2, 3)], 2);
        assert_eq!(o.changed, vec![(1, 4)]);
        assert!(o.idle.is_empty());
        let o = t.observe(vec![(1, 9), (2, 3)], 2);
        assert_eq!(o.idle.len(), 1, "key 1 idle once, key 2 twice");
        assert_eq!(o.idle, vec![2]);
        // Key 1 evicted and re-created with a smaller count: the whole value is new.
        let o = t.observe(vec![(1, 2)], 2);
        assert_eq!(o.changed, vec![(1, 2)]);
        assert_eq!(t.len(), 1, "key 2 vanished from the map and is forgotten");
        t.forget(&1);
        assert_eq!(t.deleted, 1);
    }
}
