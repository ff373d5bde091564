//! What every store port can fail with.

/// A store port's failure. The backend's own error is kept as the source, not repeated in the
/// message: a reporter that walks the chain (anyhow, tracing) prints it once.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage backend failed while {action}")]
    Backend {
        action: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("incident {0} does not exist")]
    NoSuchIncident(crate::incident::IncidentId),
    /// A stored row that no longer reads back (a corrupt or foreign value): surfaced, never
    /// replaced by a default.
    #[error("stored {what} {key} is unreadable")]
    Corrupt {
        what: &'static str,
        key: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    pub fn backend(
        action: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Backend {
            action,
            source: source.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_error_is_the_source_not_part_of_the_message() {
        use std::error::Error as _;
        let e = StoreError::backend("reading events", std::io::Error::other("disk gone"));
        assert_eq!(e.to_string(), "storage backend failed while reading events");
        assert_eq!(
            e.source().map(ToString::to_string).as_deref(),
            Some("disk gone")
        );
    }
}
