//! A WHERE clause of only the conditions a query sets. `(?1 IS NULL OR col = ?1)` reads the
//! same but keeps SQLite from using any index: every query became a scan of the whole table.

use rusqlite::types::Value;

#[derive(Default)]
pub struct Filter {
    conditions: Vec<String>,
    pub params: Vec<Value>,
}

impl Filter {
    /// `column op ?` when `value` is set (`op`: `=`, `>=`, …).
    pub fn and(mut self, column: &str, op: &str, value: Option<impl Into<Value>>) -> Self {
        if let Some(v) = value {
            self.params.push(v.into());
            self.conditions
                .push(format!("{column} {op} ?{}", self.params.len()));
        }
        self
    }

    /// ` WHERE …` (empty when nothing is set), then `tail` whose `?` placeholders are
    /// numbered after the filter's.
    pub fn sql(&self, tail: &str) -> String {
        let mut s = if self.conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conditions.join(" AND "))
        };
        let mut n = self.params.len();
        for part in tail.split_inclusive('?') {
            if let Some(head) = part.strip_suffix('?') {
                n += 1;
                s.push_str(head);
                s.push_str(&format!("?{n}"));
            } else {
                s.push_str(part);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_set_conditions_are_in_the_clause() {
        let f = Filter::default()
            .and("kind", "=", Some("flow".to_string()))
            .and("node", "=", None::<String>)
            .and("end_unix_ns", ">=", Some(5_i64));
        assert_eq!(
            f.sql(" ORDER BY x LIMIT ?"),
            " WHERE kind = ?1 AND end_unix_ns >= ?2 ORDER BY x LIMIT ?3"
        );
        assert_eq!(f.params.len(), 2);
        assert_eq!(Filter::default().sql(" LIMIT ?"), " LIMIT ?1");
    }
}
