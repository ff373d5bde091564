//! `vigil audit`: the audit log read through the API, and checked here, on the operator's
//! machine, against the public key they trust: a control plane cannot vouch for itself.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::Subcommand;
use control_plane::domain::audit::{verify, AuditRecord, Checkpoint};
use serde_json::Value;

use super::Api;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every record's hash and link and every checkpoint's signature; name whatever was
    /// edited, reordered or cut off. Exits non-zero if anything was.
    Verify {
        /// The public key to trust (hex), e.g. the content of `audit-ed25519.key.pub`.
        #[arg(long, conflicts_with = "public_key_file")]
        public_key: Option<String>,
        /// A file holding it.
        #[arg(long)]
        public_key_file: Option<PathBuf>,
        /// Checkpoints exported earlier (`vigil audit checkpoints > file`), checked too: they
        /// show a tail removed together with the control plane's own checkpoints.
        #[arg(long)]
        checkpoints: Option<PathBuf>,
    },
    /// Print every signed checkpoint as JSON, to keep somewhere the control plane cannot write.
    Checkpoints,
}

/// The whole log, page by page, and the checkpoints and key the control plane serves.
async fn fetch(api: &Api) -> anyhow::Result<(Vec<AuditRecord>, Vec<Checkpoint>, String)> {
    const PAGE: usize = 10_000;
    let mut records: Vec<AuditRecord> = Vec::new();
    loop {
        let after = records.last().map_or(0, |r| r.seq);
        let page = api
            .get(
                "/api/v1/audit",
                &[
                    ("after_seq", after.to_string()),
                    ("limit", PAGE.to_string()),
                ],
            )
            .await?;
        let batch: Vec<AuditRecord> = serde_json::from_value(page["records"].clone())
            .context("the audit records do not read as records")?;
        let done = batch.len() < PAGE;
        records.extend(batch);
        if done {
            let checkpoints = serde_json::from_value(page["checkpoints"].clone())
                .context("the audit checkpoints do not read as checkpoints")?;
            let key = page["public_key"].as_str().unwrap_or_default().to_string();
            return Ok((records, checkpoints, key));
        }
    }
}

fn trusted_key(
    public_key: Option<String>,
    file: Option<PathBuf>,
    served: &str,
) -> anyhow::Result<String> {
    if let Some(k) = public_key {
        return Ok(k.trim().to_string());
    }
    if let Some(path) = file {
        return Ok(std::fs::read_to_string(&path)
            .with_context(|| format!("reading the public key {}", path.display()))?
            .trim()
            .to_string());
    }
    eprintln!(
        "note: trusting the key the control plane serves ({served}); pin it with --public-key-file <store dir>/audit-ed25519.key.pub"
    );
    Ok(served.to_string())
}

pub async fn run(api: &Api, command: AuditCommand, json: bool) -> anyhow::Result<()> {
    match command {
        AuditCommand::Checkpoints => {
            let (_, checkpoints, _) = fetch(api).await?;
            println!("{}", serde_json::to_string_pretty(&checkpoints)?);
        }
        AuditCommand::Verify {
            public_key,
            public_key_file,
            checkpoints,
        } => {
            let (records, mut served, key) = fetch(api).await?;
            if let Some(path) = checkpoints {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading exported checkpoints {}", path.display()))?;
                let exported: Vec<Checkpoint> = serde_json::from_str(&text).with_context(|| {
                    format!("{} is not a JSON list of checkpoints", path.display())
                })?;
                for c in exported {
                    if !served.contains(&c) {
                        served.push(c);
                    }
                }
            }
            let hex = trusted_key(public_key, public_key_file, &key)?;
            let Some(key) = verify::public_key(&hex) else {
                bail!("{hex:?} is not an Ed25519 public key (64 hex characters)");
            };
            let v = verify(&records, &served, &key);
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if v.intact() {
                println!(
                    "audit log intact: {} records, {} checkpoints, signed through record {} ({} not yet signed)",
                    v.records,
                    v.checkpoints,
                    v.signed_through,
                    v.records - v.signed_through
                );
            }
            if !v.intact() {
                for p in &v.problems {
                    eprintln!("tampered: {p}");
                }
                bail!(
                    "the audit log is not as it was written: {} problem(s) in {} records",
                    v.problems.len(),
                    v.records
                );
            }
        }
    }
    Ok(())
}

/// One record, one line.
pub fn line(r: &Value) -> String {
    format!(
        "{:>6}  {:<12}  {:<8}  {:<12}  {}",
        r["seq"],
        r["kind"].as_str().unwrap_or("?"),
        r["incident"]
            .as_i64()
            .map_or("-".into(), |i| format!("#{i}")),
        r["actor"].as_str().unwrap_or("?"),
        r["summary"].as_str().unwrap_or("")
    )
}
