//! The corpus: a directory of markdown runbooks and postmortems with YAML front matter. The
//! directory is the truth: a search first checks whether any file changed (at most once a
//! second) and re-indexes if so, so an edited runbook is found without a restart. Postmortem
//! drafts are written into it.
//!
//! What indexes it is a `DocIndex`: by default tantivy in memory (full text over title and
//! body, with the fault classes, kind and services as filterable terms); for large corpora,
//! embeddings in PostgreSQL with pgvector (`adapters::pgvector`).

mod document;
mod index;
pub mod seed;

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, Instant, SystemTime},
};

use tracing::{info, warn};

use crate::domain::retrieve::{
    ports::{Corpus, CorpusError},
    Document, Hit, RetrievalQuery,
};

pub use document::{parse, render};
use index::Indexed;

/// What searches the corpus's documents; rebuilt from the whole set when the directory
/// changes (an index may keep what did not change).
pub trait DocIndex: Send {
    fn rebuild(&mut self, docs: Vec<Document>) -> Result<(), CorpusError>;
    fn search(&mut self, query: &RetrievalQuery) -> Result<Vec<Hit>, CorpusError>;
    fn contains(&self, id: &str) -> bool;
    /// Documents indexed (for the log).
    fn documents(&self) -> usize;
}

/// The default index: tantivy, in memory.
#[derive(Default)]
pub struct Tantivy(Option<Indexed>);

impl DocIndex for Tantivy {
    fn rebuild(&mut self, docs: Vec<Document>) -> Result<(), CorpusError> {
        self.0 = Some(Indexed::build(docs)?);
        Ok(())
    }

    fn search(&mut self, query: &RetrievalQuery) -> Result<Vec<Hit>, CorpusError> {
        self.0.as_ref().map_or(Ok(Vec::new()), |i| i.search(query))
    }

    fn contains(&self, id: &str) -> bool {
        self.0.as_ref().is_some_and(|i| i.contains(id))
    }

    fn documents(&self) -> usize {
        self.0.as_ref().map_or(0, Indexed::len)
    }
}

/// How often a search looks at the directory for changes.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Each markdown file's path, modification time and size: a change to any is a re-index.
type Signature = Vec<(PathBuf, SystemTime, u64)>;

struct State<I> {
    signature: Option<Signature>,
    checked: Option<Instant>,
    /// Whether `index` holds the directory as of `signature`.
    built: bool,
    index: I,
}

pub struct FsCorpus<I = Tantivy> {
    dir: PathBuf,
    state: Mutex<State<I>>,
}

fn markdown_files(dir: &Path, out: &mut Signature) -> Result<(), CorpusError> {
    let unreadable = |e: std::io::Error| CorpusError::Unreadable {
        path: dir.display().to_string(),
        detail: e.to_string(),
    };
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let path = entry.path();
        let meta = entry.metadata().map_err(unreadable)?;
        if meta.is_dir() {
            markdown_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push((path, meta.modified().map_err(unreadable)?, meta.len()));
        }
    }
    Ok(())
}

impl FsCorpus<Tantivy> {
    /// A corpus over `dir`, created if missing, indexed by tantivy. Nothing is read until
    /// the first search.
    pub fn open(dir: &Path) -> Result<Self, CorpusError> {
        Self::with_index(dir, Tantivy::default())
    }
}

impl<I: DocIndex> FsCorpus<I> {
    /// A corpus over `dir`, created if missing, indexed by `index`.
    pub fn with_index(dir: &Path, index: I) -> Result<Self, CorpusError> {
        std::fs::create_dir_all(dir).map_err(|e| CorpusError::Unreadable {
            path: dir.display().to_string(),
            detail: e.to_string(),
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                signature: None,
                checked: None,
                built: false,
                index,
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<I>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Re-indexes if a file changed since the last look (forced: look now). A malformed
    /// document is logged and left out; the rest are indexed.
    fn refresh(&self, state: &mut State<I>, forced: bool) -> Result<(), CorpusError> {
        if !forced && state.checked.is_some_and(|t| t.elapsed() < CHECK_EVERY) && state.built {
            return Ok(());
        }
        state.checked = Some(Instant::now());
        let mut signature = Signature::new();
        markdown_files(&self.dir, &mut signature)?;
        signature.sort();
        if state.built && state.signature.as_ref() == Some(&signature) {
            return Ok(());
        }
        let mut docs = Vec::with_capacity(signature.len());
        for (path, _, _) in &signature {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "corpus document unreadable; left out");
                    continue;
                }
            };
            match parse(path, &text) {
                Ok(d) => docs.push(d),
                Err(e) => warn!(error = %e, "corpus document left out"),
            }
        }
        let started = Instant::now();
        state.built = false;
        state.index.rebuild(docs)?;
        info!(
            dir = %self.dir.display(),
            documents = state.index.documents(),
            took_ms = started.elapsed().as_millis() as u64,
            "corpus indexed"
        );
        state.built = true;
        state.signature = Some(signature);
        Ok(())
    }
}

impl<I: DocIndex> Corpus for FsCorpus<I> {
    fn search(&self, query: &RetrievalQuery) -> Result<Vec<Hit>, CorpusError> {
        let mut state = self.lock();
        self.refresh(&mut state, false)?;
        state.index.search(query)
    }

    fn contains(&self, id: &str) -> Result<bool, CorpusError> {
        let mut state = self.lock();
        self.refresh(&mut state, false)?;
        Ok(state.index.contains(id))
    }

    /// Read from its file, not the index: what the operator opens is what is on disk now.
    fn get(&self, id: &str) -> Result<Option<Document>, CorpusError> {
        let mut files = Signature::new();
        markdown_files(&self.dir, &mut files)?;
        for (path, _, _) in files {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            if let Ok(doc) = parse(&path, &text) {
                if doc.id == id {
                    return Ok(Some(doc));
                }
            }
        }
        Ok(None)
    }

    /// Written whole to a temporary file and renamed over, so a reader never sees half.
    fn put(&self, doc: &Document) -> Result<(), CorpusError> {
        let sub = self.dir.join(format!("{}s", doc.kind.as_str()));
        let path = sub.join(format!("{}.md", document::file_stem(&doc.id)));
        let write = |e: std::io::Error| CorpusError::Write {
            path: path.display().to_string(),
            detail: e.to_string(),
        };
        std::fs::create_dir_all(&sub).map_err(write)?;
        let tmp = path.with_extension("md.tmp");
        std::fs::write(&tmp, render(doc)?).map_err(write)?;
        std::fs::rename(&tmp, &path).map_err(write)?;
        let mut state = self.lock();
        self.refresh(&mut state, true)
    }
}
