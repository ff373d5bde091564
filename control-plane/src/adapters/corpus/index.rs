//! The in-memory tantivy index of one corpus snapshot: BM25 over title and body, exact terms
//! for id, kind and fault classes, and the documents kept beside it for metadata filters.

use std::collections::HashMap;

use tantivy::{
    collector::TopDocs,
    query::{BooleanQuery, Occur, Query, QueryParser, TermQuery},
    schema::{Field, IndexRecordOption, Schema, Value, STORED, STRING, TEXT},
    snippet::SnippetGenerator,
    Index, IndexReader, TantivyDocument, Term,
};

use crate::domain::retrieve::{ports::CorpusError, Document, Hit, RetrievalQuery};

/// The writer's memory arena (tantivy's minimum per thread is 15 MB).
const WRITER_ARENA: usize = 32_000_000;
/// A snippet's length in characters.
const SNIPPET: usize = 200;

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    kind: Field,
    class: Field,
    title: Field,
    body: Field,
}

pub struct Indexed {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    docs: HashMap<String, Document>,
}

fn index_err(e: impl std::fmt::Display) -> CorpusError {
    CorpusError::Index(e.to_string())
}

impl Indexed {
    pub fn build(docs: Vec<Document>) -> Result<Self, CorpusError> {
        let mut schema = Schema::builder();
        let fields = Fields {
            id: schema.add_text_field("id", STRING | STORED),
            kind: schema.add_text_field("kind", STRING),
            class: schema.add_text_field("class", STRING),
            title: schema.add_text_field("title", TEXT | STORED),
            body: schema.add_text_field("body", TEXT | STORED),
        };
        let index = Index::create_in_ram(schema.build());
        let mut writer: tantivy::IndexWriter<TantivyDocument> = index
            .writer_with_num_threads(1, WRITER_ARENA)
            .map_err(index_err)?;
        let mut by_id = HashMap::with_capacity(docs.len());
        for d in docs {
            // A later file with the same id replaces the earlier one, as `put` does.
            if by_id.contains_key(&d.id) {
                writer.delete_term(Term::from_field_text(fields.id, &d.id));
            }
            let mut doc = TantivyDocument::default();
            doc.add_text(fields.id, &d.id);
            doc.add_text(fields.kind, d.kind.as_str());
            for c in &d.classes {
                doc.add_text(fields.class, c.id());
            }
            doc.add_text(fields.title, &d.title);
            // Services are searchable words too: the same service ranks a past incident up.
            doc.add_text(fields.body, format!("{}\n{}", d.services.join(" "), d.body));
            writer.add_document(doc).map_err(index_err)?;
            by_id.insert(d.id.clone(), d);
        }
        writer.commit().map_err(index_err)?;
        let reader = index.reader().map_err(index_err)?;
        reader.reload().map_err(index_err)?;
        Ok(Self {
            index,
            reader,
            fields,
            docs: by_id,
        })
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.docs.contains_key(id)
    }

    pub fn search(&self, q: &RetrievalQuery) -> Result<Vec<Hit>, CorpusError> {
        let f = self.fields;
        let parser = QueryParser::for_index(&self.index, vec![f.title, f.body]);
        // Free text from evidence has quotes, colons and arrows: read leniently, never fail.
        let (text, _) = parser.parse_query_lenient(&q.text);
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, text)];
        let term = |field, value: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, value),
                IndexRecordOption::Basic,
            ))
        };
        if let Some(k) = q.kind {
            clauses.push((Occur::Must, term(f.kind, k.as_str())));
        }
        if let Some(c) = q.class {
            clauses.push((Occur::Must, term(f.class, c.id())));
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let limit = q.limit.max(1);
        // Fetch more than asked when a service filter will drop some.
        let fetch = if q.service.is_some() {
            limit * 4
        } else {
            limit
        };
        let top = searcher
            .search(&query, &TopDocs::with_limit(fetch))
            .map_err(index_err)?;
        let snippets = SnippetGenerator::create(&searcher, &query, f.body).map_err(index_err);
        let mut hits = Vec::new();
        for (score, address) in top {
            let stored: TantivyDocument = searcher.doc(address).map_err(index_err)?;
            let Some(id) = stored.get_first(f.id).and_then(|v| v.as_str()) else {
                continue;
            };
            let Some(doc) = self.docs.get(id) else {
                continue;
            };
            if let Some(s) = &q.service {
                if !doc.services.is_empty() && !doc.services.iter().any(|x| x == s) {
                    continue;
                }
            }
            let snippet = match &snippets {
                Ok(g) => g.snippet_from_doc(&stored).fragment().to_string(),
                Err(_) => String::new(),
            };
            let snippet = if snippet.is_empty() {
                doc.body.chars().take(SNIPPET).collect()
            } else {
                snippet.chars().take(SNIPPET).collect()
            };
            hits.push(Hit {
                id: doc.id.clone(),
                kind: doc.kind,
                title: doc.title.clone(),
                score: f64::from(score),
                snippet,
            });
            if hits.len() >= limit {
                break;
            }
        }
        Ok(hits)
    }
}
