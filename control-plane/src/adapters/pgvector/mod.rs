//! Retrieval for large corpora: each document's passages embedded (by an OpenAI-compatible
//! `/embeddings` endpoint) into PostgreSQL with pgvector, a document ranked by its most
//! similar passage (cosine, through an HNSW index) so a long postmortem is not diluted by its
//! timeline, with the same metadata filters as the default index. A hit is similar enough
//! (`min_similarity`) or shares a word with the query (PostgreSQL full text, GIN-indexed):
//! hybrid, so a rare term (an error code, a team's name) is found even when the embedding
//! does not carry it. The corpus directory stays the truth: a rebuild embeds only documents
//! whose content changed and deletes those that are gone.

pub mod embeddings;

use std::{
    collections::{hash_map::DefaultHasher, HashMap, HashSet},
    hash::{Hash, Hasher},
};

use postgres::{Client, NoTls};

use self::embeddings::Embeddings;
use crate::{
    adapters::{corpus::DocIndex, outbound::off_runtime},
    domain::retrieve::{ports::CorpusError, Document, Hit, RetrievalQuery},
};

/// The shortest snippet's longest.
const SNIPPET: usize = 200;
/// A passage's longest, in characters: a paragraph or a few, as embedding models like them.
const PASSAGE: usize = 800;
/// Passages fetched per hit wanted: a document's several passages may lead the ranking.
const PASSAGES_PER_HIT: i64 = 8;

pub struct PgVector {
    client: Client,
    embeddings: Embeddings,
    /// Hits less similar than this are not hits (a vector search always has neighbours).
    min_similarity: f64,
    docs: HashMap<String, Document>,
}

fn db(what: &str, e: impl std::fmt::Display) -> CorpusError {
    CorpusError::Index(format!("PostgreSQL, {what}: {e}"))
}

fn literal(v: &[f32]) -> String {
    let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("[{}]", parts.join(","))
}

/// What is embedded of a document: its paragraphs, merged up to `PASSAGE` characters, each
/// headed by the title and services (a passage alone must still say what it is about).
fn passages(d: &Document) -> Vec<String> {
    let head = format!("{}\n{}\n", d.title, d.services.join(" "));
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for para in d
        .body
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        if !current.is_empty() && current.len() + para.len() > PASSAGE {
            out.push(format!("{head}{current}"));
            current.clear();
        }
        if !current.is_empty() {
            current.push_str("\n\n");
        }
        current.push_str(para);
    }
    if !current.is_empty() || out.is_empty() {
        out.push(format!("{head}{current}"));
    }
    out
}

fn content_hash(d: &Document, identity: &str) -> String {
    let mut h = DefaultHasher::new();
    (
        identity,
        &d.kind.as_str(),
        &d.classes,
        &d.services,
        &d.title,
        &d.body,
    )
        .hash(&mut h);
    format!("{:016x}", h.finish())
}

/// A full-text query matching any of the query's words (none: no word to match).
fn any_word(text: &str) -> Option<String> {
    let mut words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() > 2)
        .map(str::to_lowercase)
        .collect();
    words.sort();
    words.dedup();
    (!words.is_empty()).then(|| words.join(" | "))
}

/// The paragraph sharing the most words with the query, cut short.
fn snippet(body: &str, query: &str) -> String {
    let words: HashSet<String> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
        .map(str::to_lowercase)
        .collect();
    let best = body
        .split("\n\n")
        .max_by_key(|p| {
            p.split(|c: char| !c.is_alphanumeric())
                .filter(|w| words.contains(&w.to_lowercase()))
                .count()
        })
        .unwrap_or("");
    best.trim().chars().take(SNIPPET).collect()
}

impl PgVector {
    /// Connects to `url`, and creates the extension, the table and its HNSW index if missing.
    pub fn connect(
        url: &str,
        embeddings: Embeddings,
        dimensions: usize,
        min_similarity: f64,
    ) -> Result<Self, CorpusError> {
        let url = url.to_string();
        let mut client = off_runtime(move || Client::connect(&url, NoTls))
            .map_err(|e| db("connecting", e))?
            .map_err(|e| {
                db(
                    "connecting (check diagnosis.vector.postgres_url)",
                    vigil_config_file::error_chain(&e),
                )
            })?;
        let ddl = format!(
            "CREATE EXTENSION IF NOT EXISTS vector;
             CREATE TABLE IF NOT EXISTS vigil_corpus (
                 id TEXT NOT NULL,
                 passage INTEGER NOT NULL,
                 kind TEXT NOT NULL,
                 classes TEXT[] NOT NULL,
                 services TEXT[] NOT NULL,
                 hash TEXT NOT NULL,
                 body TEXT NOT NULL,
                 words tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED,
                 embedding vector({dimensions}) NOT NULL,
                 PRIMARY KEY (id, passage)
             );
             CREATE INDEX IF NOT EXISTS vigil_corpus_hnsw
                 ON vigil_corpus USING hnsw (embedding vector_cosine_ops);
             CREATE INDEX IF NOT EXISTS vigil_corpus_words ON vigil_corpus USING gin (words);"
        );
        let stored: i32 = off_runtime(|| {
            client.batch_execute(&ddl)?;
            client
                .query_one(
                    "SELECT atttypmod FROM pg_attribute \
                     WHERE attrelid = 'vigil_corpus'::regclass AND attname = 'embedding'",
                    &[],
                )
                .map(|r| r.get(0))
        })
        .map_err(|e| db("creating the table", e))?
        .map_err(|e| {
            db(
                "creating the table (is pgvector installed? CREATE EXTENSION vector)",
                vigil_config_file::error_chain(&e),
            )
        })?;
        if usize::try_from(stored).ok() != Some(dimensions) {
            return Err(db(
                "vigil_corpus",
                format!("it holds {stored}-dimensional embeddings, the config says {dimensions}: drop the table to embed again, or set diagnosis.vector.dimensions = {stored}"),
            ));
        }
        Ok(Self {
            client,
            embeddings,
            min_similarity,
            docs: HashMap::new(),
        })
    }
}

impl DocIndex for PgVector {
    fn rebuild(&mut self, docs: Vec<Document>) -> Result<(), CorpusError> {
        let identity = self.embeddings.identity();
        let client = &mut self.client;
        let stored: HashMap<String, String> = off_runtime(|| {
            client
                .query("SELECT DISTINCT id, hash FROM vigil_corpus", &[])
                .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
        .map_err(|e| db("reading the corpus", e))?
        .map_err(|e| db("reading the corpus", e))?;
        let docs: HashMap<String, Document> = docs.into_iter().map(|d| (d.id.clone(), d)).collect();
        let changed: Vec<(&Document, String, Vec<String>)> = docs
            .values()
            .map(|d| (d, content_hash(d, &identity)))
            .filter(|(d, h)| stored.get(&d.id) != Some(h))
            .map(|(d, h)| (d, h, passages(d)))
            .collect();
        let texts: Vec<String> = changed
            .iter()
            .flat_map(|(_, _, p)| p.iter().cloned())
            .collect();
        let mut vectors = self.embeddings.embed(&texts)?.into_iter();
        let gone: Vec<String> = stored
            .keys()
            .filter(|id| !docs.contains_key(*id))
            .cloned()
            .collect();
        let client = &mut self.client;
        off_runtime(|| -> Result<(), postgres::Error> {
            let mut tx = client.transaction()?;
            for (d, hash, parts) in &changed {
                tx.execute("DELETE FROM vigil_corpus WHERE id = $1", &[&d.id])?;
                let classes: Vec<&str> = d.classes.iter().map(|c| c.id()).collect();
                for (i, text) in parts.iter().enumerate() {
                    let Some(v) = vectors.next() else { break };
                    let passage = i32::try_from(i).unwrap_or(i32::MAX);
                    tx.execute(
                        "INSERT INTO vigil_corpus \
                         (id, passage, kind, classes, services, hash, body, embedding) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::vector)",
                        &[
                            &d.id,
                            &passage,
                            &d.kind.as_str(),
                            &classes,
                            &d.services,
                            hash,
                            text,
                            &literal(&v),
                        ],
                    )?;
                }
            }
            if !gone.is_empty() {
                tx.execute("DELETE FROM vigil_corpus WHERE id = ANY($1)", &[&gone])?;
            }
            tx.commit()
        })
        .map_err(|e| db("writing the corpus", e))?
        .map_err(|e| db("writing the corpus", vigil_config_file::error_chain(&e)))?;
        tracing::debug!(
            embedded = changed.len(),
            deleted = gone.len(),
            "pgvector corpus synced"
        );
        self.docs = docs;
        Ok(())
    }

    fn search(&mut self, q: &RetrievalQuery) -> Result<Vec<Hit>, CorpusError> {
        if q.text.trim().is_empty() || self.docs.is_empty() {
            return Ok(Vec::new());
        }
        let v = self
            .embeddings
            .embed(std::slice::from_ref(&q.text))?
            .pop()
            .ok_or_else(|| CorpusError::Index("embeddings: no vector for the query".into()))?;
        let (vector, kind, class) = (
            literal(&v),
            q.kind.map(|k| k.as_str().to_string()),
            q.class.map(|c| c.id().to_string()),
        );
        let limit = i64::try_from(q.limit.max(1)).unwrap_or(i64::MAX);
        let words = any_word(&q.text);
        let floor = self.min_similarity;
        let client = &mut self.client;
        // Passages, most similar first; a document counts once, at its best passage.
        let fetch = limit.saturating_mul(PASSAGES_PER_HIT);
        let rows: Vec<(String, f64, String)> = off_runtime(|| {
            client
                .query(
                    "SELECT id, 1 - (embedding <=> $1::text::vector) AS similarity, body \
                     FROM vigil_corpus \
                     WHERE ($2::text IS NULL OR kind = $2) \
                       AND ($3::text IS NULL OR $3 = ANY(classes)) \
                       AND ($4::text IS NULL OR cardinality(services) = 0 OR $4 = ANY(services)) \
                       AND (1 - (embedding <=> $1::text::vector) >= $7 \
                            OR ($6::text IS NOT NULL AND words @@ to_tsquery('simple', $6))) \
                     ORDER BY embedding <=> $1::text::vector \
                     LIMIT $5",
                    &[&vector, &kind, &class, &q.service, &fetch, &words, &floor],
                )
                .map(|rows| {
                    rows.iter()
                        .map(|r| (r.get(0), r.get(1), r.get(2)))
                        .collect()
                })
        })
        .map_err(|e| db("searching", e))?
        .map_err(|e| db("searching", vigil_config_file::error_chain(&e)))?;
        let mut seen = HashSet::new();
        let mut hits = Vec::new();
        for (id, similarity, passage) in rows {
            if hits.len() >= q.limit.max(1) || !seen.insert(id.clone()) {
                continue;
            }
            if let Some(d) = self.docs.get(&id) {
                hits.push(Hit {
                    id,
                    kind: d.kind,
                    title: d.title.clone(),
                    score: similarity,
                    snippet: snippet(&passage, &q.text),
                });
            }
        }
        Ok(hits)
    }

    fn contains(&self, id: &str) -> bool {
        self.docs.contains_key(id)
    }

    fn documents(&self) -> usize {
        self.docs.len()
    }
}
