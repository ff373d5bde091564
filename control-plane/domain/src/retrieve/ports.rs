//! Where documents are kept and searched.

use super::model::{Document, Hit, RetrievalQuery};

#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("the corpus at {path} cannot be read: {detail} (check `diagnosis.corpus` and the directory's permissions)")]
    Unreadable { path: String, detail: String },
    #[error("document {path} is malformed: {detail} (its front matter is YAML between two `---` lines: id, kind, title, classes, services, severity, date)")]
    Malformed { path: String, detail: String },
    #[error("the corpus index failed: {0}")]
    Index(String),
    #[error("writing {path} failed: {detail}")]
    Write { path: String, detail: String },
}

/// A searchable set of runbooks and postmortems. Always current: a document added or edited
/// where the corpus lives is found by the next search.
pub trait Corpus: Send + Sync {
    fn search(&self, query: &RetrievalQuery) -> Result<Vec<Hit>, CorpusError>;
    /// Whether a document of this id exists (a citation must name one).
    fn contains(&self, id: &str) -> Result<bool, CorpusError>;
    /// The document of this id, whole (what a citation opens).
    fn get(&self, id: &str) -> Result<Option<Document>, CorpusError>;
    /// Adds (or replaces, by id) a document, e.g. a postmortem draft.
    fn put(&self, doc: &Document) -> Result<(), CorpusError>;
}
