//! The optional LLM second opinion: bounded, validated, never trusted blindly.
//!
//! - `ports`: one chat turn with tools (the adapters speak OpenAI-compatible chat completions
//!   and Anthropic messages);
//! - `brief`: what the model is told, cut to a token budget;
//! - `session`: the tool loop and its bounds (steps, tokens, cost, wall time, repeats);
//! - `answer`: the JSON answer, parsed strictly;
//! - `review`: how the answer is judged against the evidence and the retrieved documents;
//! - `verdict`: the judgement, as stored with the diagnosis.

pub mod answer;
pub mod brief;
pub mod ports;
pub mod review;
pub mod session;
pub mod verdict;

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
};

pub use self::{
    ports::{ChatModel, ChatRequest, LlmError, Message, Reply, ToolCall, ToolDef, Usage},
    session::{Bound, Ending, Investigation, LlmPolicy},
    verdict::{Judgement, LlmReview},
};

/// Investigations kept for reuse.
const CACHE: usize = 256;

/// The model, its bounds, and the investigations already made, by evidence fingerprint: an
/// incident whose evidence has not changed is not investigated again.
pub struct SecondOpinion {
    model: Arc<dyn ChatModel>,
    policy: LlmPolicy,
    cache: Mutex<(BTreeMap<String, Investigation>, VecDeque<String>)>,
}

impl SecondOpinion {
    pub fn new(model: Arc<dyn ChatModel>, policy: LlmPolicy) -> Self {
        Self {
            model,
            policy,
            cache: Mutex::new((BTreeMap::new(), VecDeque::new())),
        }
    }

    pub fn model(&self) -> &Arc<dyn ChatModel> {
        &self.model
    }

    pub fn policy(&self) -> &LlmPolicy {
        &self.policy
    }

    pub fn cached(&self, fingerprint: &str) -> Option<Investigation> {
        self.lock().0.get(fingerprint).cloned()
    }

    /// Keeps an investigation that ended on its own terms (an answer, a rejection, a bound);
    /// a provider failure is tried again next time.
    pub fn remember(&self, fingerprint: String, inv: &Investigation) {
        if matches!(inv.ending, Ending::Failed { .. }) {
            return;
        }
        let mut cache = self.lock();
        let (map, order) = &mut *cache;
        if map.insert(fingerprint.clone(), inv.clone()).is_none() {
            order.push_back(fingerprint);
        }
        while order.len() > CACHE {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, (BTreeMap<String, Investigation>, VecDeque<String>)> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}
