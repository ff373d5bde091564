//! Calls out of the process (a model, an embeddings endpoint, PostgreSQL) from code that may
//! run anywhere: on a blocking thread inside the server's runtime, in a plain thread, or in a
//! test. Each call runs on a scoped thread of its own, outside any runtime context, so a
//! client that brings its own runtime (postgres) or needs one (reqwest) never meets the
//! server's, and nothing is dropped inside an async context.

use std::future::Future;

/// Runs `f` on a thread of its own and waits for it.
pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T, String> {
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .map_err(|_| "the call's thread panicked".to_string())
    })
}

/// Drives `fut` to completion on a small runtime of its own, off the caller's thread.
pub fn block_on<F>(fut: F) -> Result<F::Output, String>
where
    F: Future + Send,
    F::Output: Send,
{
    off_runtime(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(fut))
            .map_err(|e| format!("no runtime for the call: {e}"))
    })?
}
