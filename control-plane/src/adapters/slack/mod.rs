//! Slack: a message through an incoming webhook (Block Kit) when an action waits for an
//! approver and when one ran or ended, and the approve and deny buttons' callback, taken only
//! with Slack's valid signature and from a listed approver.

pub mod blocks;
pub mod interactions;
pub mod notifier;
pub mod signature;

pub use interactions::SlackInteractions;
pub use notifier::{SecretUrl, SlackNotifier};
pub use signature::SigningSecret;
