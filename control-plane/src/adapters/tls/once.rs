//! "Logged once per peer": a refused peer retries every few seconds, and a log line each time
//! would bury everything else; its counter still counts every refusal.

use std::{collections::HashSet, sync::Mutex};

/// Keys seen; forgotten all at once past `LIMIT`, so a scan of many addresses cannot grow it.
#[derive(Default)]
pub struct Once {
    seen: Mutex<HashSet<String>>,
}

const LIMIT: usize = 4096;

impl Once {
    /// True the first time `key` is seen.
    pub fn first(&self, key: String) -> bool {
        let mut seen = match self.seen.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if seen.len() >= LIMIT {
            seen.clear();
        }
        seen.insert(key)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_key_is_first_once() {
        let once = super::Once::default();
        assert!(once.first("a".into()));
        assert!(!once.first("a".into()));
        assert!(once.first("b".into()));
    }
}
