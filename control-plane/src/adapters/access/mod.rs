//! Access to the REST API, MCP and the CLI: a guard in front of every route that needs a
//! role (`guard`), the first admin token's file (`token_file`) and the token endpoints an
//! admin manages tokens with (`api`).

pub mod api;
pub mod guard;
pub mod token_file;

pub use guard::{guard, need, GuardState, Need};
