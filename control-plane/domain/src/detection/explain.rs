//! Explaining a rise away: on a busy node, scheduling delay inflates the RTT the kernel
//! measures on loopback and veth links, and the latency of every request — with nothing wrong
//! on the network. Vigil measures the node's run-queue delay in the kernel; an edge latency
//! rise that delay accounts for is CPU saturation, which the starved workloads' own run-queue
//! features report, not a network fault.

use super::baseline::EntityReading;

/// Edge latencies that scheduling delay inflates.
const CPU_SENSITIVE: [&str; 2] = ["rtt_us", "request_p99_us"];

/// The node's run-queue p99 must be at least this share of a rise to explain it: a delayed
/// ACK or a delayed reply adds about one scheduling delay per round trip, and p99s of log2
/// histograms are only good to a factor of two.
const EXPLAINED_SHARE: f64 = 0.5;

/// Un-fires the edge latencies in `reading` that its node's run-queue delay explains; the
/// explaining feature itself never drives the forest (its own workloads' run-queue features
/// do). Returns the features discounted.
pub fn discount_cpu_delay(reading: &mut EntityReading) -> Vec<&'static str> {
    let Some(delay_us) = reading
        .features
        .iter()
        .find(|f| f.feature == "node_runqueue_p99_us")
        .map(|f| f.value)
        .filter(|v| v.is_finite())
    else {
        return Vec::new();
    };
    let mut discounted = Vec::new();
    for f in reading.features.iter_mut() {
        if f.feature == "node_runqueue_p99_us" {
            f.z = 0.0;
            continue;
        }
        if !CPU_SENSITIVE.contains(&f.feature) || !f.crossed {
            continue;
        }
        let rise = f.value - if f.median.is_finite() { f.median } else { 0.0 };
        if rise > 0.0 && delay_us >= EXPLAINED_SHARE * rise {
            f.crossed = false;
            f.fired = false;
            f.z = 0.0;
            discounted.push(f.feature);
        }
    }
    discounted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{detection::baseline::FeatureReading, entity::Subject};

    fn reading(rtt: f64, rtt_median: f64, delay: f64) -> EntityReading {
        let f = |feature, value, median| FeatureReading {
            feature,
            value,
            median,
            z: 9.0,
            score: 0.9,
            crossed: true,
            fired: true,
        };
        EntityReading {
            entity: Subject::parse(crate::entity::SubjectClass::Edge, "web->app").expect("edge"),
            window: 1,
            learning: false,
            features: vec![
                f("rtt_us", rtt, rtt_median),
                f("retransmits_per_s", 40.0, 0.0),
                f("node_runqueue_p99_us", delay, 500.0),
            ],
        }
    }

    #[test]
    fn a_rtt_rise_the_node_run_queue_accounts_for_is_discounted() {
        // RTT 100 µs → 8 ms while the node's tasks wait 16 ms to run: CPU, not the network.
        let mut busy = reading(8_000.0, 100.0, 16_000.0);
        assert_eq!(discount_cpu_delay(&mut busy), ["rtt_us"]);
        assert!(!busy.features[0].fired);
        assert!(busy.features[1].fired, "loss is not explained by CPU");
        // The same rise on an idle node (tasks wait 0.5 ms) is the network's.
        let mut idle = reading(8_000.0, 100.0, 500.0);
        assert!(discount_cpu_delay(&mut idle).is_empty());
        assert!(idle.features[0].fired);
    }
}
