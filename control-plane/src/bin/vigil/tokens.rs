//! `vigil tokens` (admin) and `vigil whoami`.

use clap::Subcommand;
use serde_json::{json, Value};

use super::Api;

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Every token's name, role and creator (never the secret).
    List,
    /// A new token; its secret is printed this once.
    Create {
        name: String,
        /// viewer, approver or admin.
        #[arg(long)]
        role: String,
    },
    /// Revoke a token (never the last admin one).
    Revoke { name: String },
}

fn line(t: &Value) -> String {
    format!(
        "{:<24} {:<9} by {}",
        t["name"].as_str().unwrap_or("?"),
        t["role"].as_str().unwrap_or("?"),
        t["created_by"].as_str().unwrap_or("?")
    )
}

pub async fn run(api: &Api, command: TokensCommand, json_out: bool) -> anyhow::Result<()> {
    let out = match command {
        TokensCommand::List => {
            let list = api.get("/api/v1/tokens", &[]).await?;
            if !json_out {
                for t in list.as_array().into_iter().flatten() {
                    println!("{}", line(t));
                }
                return Ok(());
            }
            list
        }
        TokensCommand::Create { name, role } => {
            let made = api
                .post("/api/v1/tokens", &json!({ "name": name, "role": role }))
                .await?;
            if !json_out {
                // The secret on stdout alone, so `vigil tokens create … > file` stores it;
                // the explanation on stderr.
                eprintln!(
                    "created the {} token `{}`; it is shown only now:",
                    made["role"].as_str().unwrap_or("?"),
                    made["name"].as_str().unwrap_or("?")
                );
                println!("{}", made["token"].as_str().unwrap_or_default());
                return Ok(());
            }
            made
        }
        TokensCommand::Revoke { name } => {
            let gone = api.delete(&format!("/api/v1/tokens/{name}")).await?;
            if !json_out {
                println!("revoked {}", line(&gone));
                return Ok(());
            }
            gone
        }
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

pub async fn whoami(api: &Api, json_out: bool) -> anyhow::Result<()> {
    let me = api.get("/api/v1/whoami", &[]).await?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&me)?);
    } else {
        println!(
            "{} ({})",
            me["name"].as_str().unwrap_or("?"),
            me["role"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}
