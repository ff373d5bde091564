//! The supervisor's egress rate limits: the token bucket (`tbf`) on a workload's `eth0`,
//! raised by a factor and written back only while it is the one Vigil set.

use serde_json::{json, Value};
use vigil_domain::remediate::supervisor::{Request, Status};

use super::{failed, Outcome};
use crate::testbed::Testbed;

impl Testbed {
    /// Raises the token-bucket rate on the workload's egress (`eth0` in its namespace) by the
    /// step's factor, to at most 1 Gbit/s.
    pub(super) fn raise_bandwidth(&self, name: &str, req: &Request) -> Outcome {
        let tbf = tbf_of(name)?;
        let factor = req
            .params
            .get("factor")
            .and_then(Value::as_f64)
            .unwrap_or(1.0);
        let new = ((tbf.rate as f64 * factor) as u64).min(125_000_000);
        if new <= tbf.rate {
            return Err((
                Status::Refused,
                format!("{name}'s egress rate is at its ceiling ({} B/s)", tbf.rate),
            ));
        }
        set_tbf(name, &Tbf { rate: new, ..tbf })?;
        Ok((
            format!(
                "{name}'s egress rate limit: {} -> {} kbit/s",
                tbf.rate * 8 / 1000,
                new * 8 / 1000
            ),
            json!({"tbf": {"netns": name, "rate": tbf.rate, "burst": tbf.burst, "lat": tbf.lat, "set": new}}),
        ))
    }

    /// Writes the old rate back while the limit is still the one Vigil set.
    pub(super) fn undo_bandwidth(&self, v: &Value) -> Result<String, (Status, String)> {
        let (Some(name), Some(rate), Some(set)) =
            (v["netns"].as_str(), v["rate"].as_u64(), v["set"].as_u64())
        else {
            return Err(failed("the inverse names no namespace and rates"));
        };
        crate::names::LabName::parse(name).map_err(|e| (Status::Refused, e.to_string()))?;
        let now = tbf_of(name)?;
        if now.rate != set {
            return Err((
                Status::Refused,
                format!(
                    "{name}'s egress rate is {} B/s, not the {set} Vigil set: left as it is",
                    now.rate
                ),
            ));
        }
        set_tbf(name, &Tbf { rate, ..now })?;
        Ok(format!(
            "{name}'s egress rate limit back to {} kbit/s",
            rate * 8 / 1000
        ))
    }
}

/// A token bucket on a workload's egress, as `tc -j` reports it (rate in bytes/s, latency in
/// microseconds).
#[derive(Debug, Clone, Copy)]
struct Tbf {
    rate: u64,
    burst: u64,
    lat: u64,
}

fn tbf_of(netns: &str) -> Result<Tbf, (Status, String)> {
    let out =
        crate::sys::run_in(netns, &["tc", "-j", "qdisc", "show", "dev", "eth0"]).map_err(failed)?;
    let list: Value =
        serde_json::from_slice(&out.stdout).map_err(|e| failed(format!("tc's JSON: {e}")))?;
    list.as_array()
        .into_iter()
        .flatten()
        .find(|q| q["kind"] == "tbf" && q["root"] == true)
        .and_then(|q| {
            Some(Tbf {
                rate: q["options"]["rate"].as_u64()?,
                burst: q["options"]["burst"].as_u64()?,
                lat: q["options"]["lat"].as_u64().unwrap_or(400_000),
            })
        })
        .ok_or_else(|| {
            (
                Status::Refused,
                format!("{netns}'s egress has no rate limit to raise"),
            )
        })
}

fn set_tbf(netns: &str, t: &Tbf) -> Result<(), (Status, String)> {
    let (rate, burst, lat) = (
        format!("{}bit", t.rate * 8),
        format!("{}b", t.burst),
        format!("{}us", t.lat),
    );
    crate::sys::run_in(
        netns,
        &[
            "tc", "qdisc", "change", "dev", "eth0", "root", "tbf", "rate", &rate, "burst", &burst,
            "latency", &lat,
        ],
    )
    .map(|_| ())
    .map_err(failed)
}
