//! The live service graph from real traffic: wrk → nginx → app → redis in network
//! namespaces, then faults on single links — packet loss (nftables), added delay (NFQUEUE),
//! redis stopped — each showing on exactly the edge it hits.

use std::{collections::HashMap, time::Duration};

use serde_json::Value;
use vigil_tests::{topology::ServiceChain, wait_for, AgentOptions, Api, Stack};

/// The graph's edges among `keys`, by (from, to).
fn edges_among(api: &Api, keys: &[&str]) -> HashMap<(String, String), Value> {
    let graph = api.get("/api/v1/graph");
    graph["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            keys.contains(&e["from"].as_str().unwrap_or(""))
                || keys.contains(&e["to"].as_str().unwrap_or(""))
        })
        .map(|e| {
            (
                (
                    e["from"].as_str().unwrap_or("").to_string(),
                    e["to"].as_str().unwrap_or("").to_string(),
                ),
                e,
            )
        })
        .collect()
}

fn num(e: &Value, field: &str) -> f64 {
    e[field].as_f64().unwrap_or(0.0)
}

/// Per-edge change of `field` between two graph readings.
fn delta(
    before: &HashMap<(String, String), Value>,
    after: &HashMap<(String, String), Value>,
    edge: &(String, String),
    field: &str,
) -> f64 {
    num(&after[edge], field) - before.get(edge).map_or(0.0, |e| num(e, field))
}

#[test]
fn service_graph_and_link_faults() {
    // A short "recent" window so the RTT under delay is not averaged with the baseline.
    let Stack {
        dir,
        cp: _cp,
        api,
        agent: _agent,
    } = Stack::start_with(
        &AgentOptions::new("graph-node"),
        "[graph]\nrecent_window_secs = 2\n",
    );
    let mut chain = ServiceChain::start(dir.path());

    // 1. Baseline: exactly client → nginx → app → redis, with traffic on every edge.
    let (client, report) = chain.load(3, 4);
    assert!(report.contains("Requests/sec"), "wrk failed:\n{report}");
    let (c, n, a, r) = (
        client.key(),
        chain.nginx.key(),
        chain.app.key(),
        chain.redis.key(),
    );
    let keys = [c.as_str(), n.as_str(), a.as_str(), r.as_str()];
    let expected = [
        (c.clone(), n.clone()),
        (n.clone(), a.clone()),
        (a.clone(), r.clone()),
    ];
    let base = wait_for(
        Duration::from_secs(15),
        "the three edges with traffic",
        || {
            let edges = edges_among(&api, &keys);
            expected
                .iter()
                .all(|k| {
                    edges.get(k).is_some_and(|e| {
                        num(e, "connections") > 0.0 && num(e, "bytes_forward") > 0.0
                    })
                })
                .then_some(edges)
        },
    );
    let mut found: Vec<_> = base.keys().cloned().collect();
    found.sort();
    let mut want = expected.to_vec();
    want.sort();
    assert_eq!(found, want, "edges touching the chain's workloads");
    for k in &expected {
        let e = &base[k];
        eprintln!(
            "baseline {} → {}: connections {} rtt {:.0} µs bytes {}",
            k.0,
            k.1,
            num(e, "connections"),
            num(e, "rtt_us"),
            num(e, "bytes_forward")
        );
        assert!(
            e["client_view"].is_object() && e["server_view"].is_object(),
            "both sides observed {k:?}: {e}"
        );
        assert!(num(e, "rtt_us") > 0.0, "RTT measured on {k:?}: {e}");
    }
    let dot = api.try_text("/api/v1/graph?format=dot").expect("dot");
    assert!(dot.starts_with("digraph") && dot.contains(&r), "{dot}");
    let blast = api.get(&format!("/api/v1/graph/blast-radius/{r}"));
    let dependents: Vec<&str> = blast["dependents"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        dependents,
        vec![a.as_str(), n.as_str(), c.as_str()],
        "who depends on redis"
    );

    // 2. 10 % loss from nginx to the app: retransmits rise on nginx → app only.
    let nft = |rule: &str| {
        let mut argv = vec!["nft"];
        argv.extend(rule.split(' '));
        chain.web_ns.run(&argv);
    };
    nft("add table inet vigil_loss");
    nft("add chain inet vigil_loss out { type filter hook output priority 0 ; }");
    nft(&format!(
        "add rule inet vigil_loss out ip daddr {} numgen random mod 100 < 10 drop",
        chain.ip(2, 2)
    ));
    let before = edges_among(&api, &keys);
    chain.load(4, 8);
    let loss_edge = (n.clone(), a.clone());
    let after = wait_for(
        Duration::from_secs(15),
        "retransmits on nginx → app",
        || {
            let after = edges_among(&api, &keys);
            (delta(&before, &after, &loss_edge, "retransmits") >= 3.0).then_some(after)
        },
    );
    nft("delete table inet vigil_loss");
    let hit = delta(&before, &after, &loss_edge, "retransmits");
    eprintln!("loss: nginx → app retransmits +{hit}");
    for k in [(c.clone(), n.clone()), (a.clone(), r.clone())] {
        let other = delta(&before, &after, &k, "retransmits");
        eprintln!("loss: {} → {} retransmits +{other}", k.0, k.1);
        assert!(
            other <= (hit / 10.0).max(1.0),
            "retransmits on {k:?} rose by {other} while the lossy link got {hit}"
        );
    }

    // 3. 150 ms added to everything redis sends: the app → redis RTT rises by about that.
    let delay_ms = 150.0;
    let delay = chain.delay_redis(7, 150);
    chain.load(4, 4);
    let slow = (a.clone(), r.clone());
    let during = wait_for(
        Duration::from_secs(15),
        "the app → redis RTT to rise",
        || {
            let edges = edges_among(&api, &keys);
            (num(&edges[&slow], "recent_rtt_us") >= delay_ms * 1000.0 * 0.8).then_some(edges)
        },
    );
    drop(delay);
    eprintln!(
        "delay: app → redis recent RTT {:.0} µs",
        num(&during[&slow], "recent_rtt_us")
    );
    for k in [(c.clone(), n.clone()), (n.clone(), a.clone())] {
        let rtt = num(&during[&k], "recent_rtt_us");
        eprintln!("delay: {} → {} recent RTT {rtt:.0} µs", k.0, k.1);
        assert!(
            rtt < delay_ms * 1000.0 / 2.0,
            "RTT on {k:?} is {rtt} µs; only app → redis was delayed"
        );
    }

    // 4. A local firewall in the app's namespace drops its SYNs to redis: no packet ever
    // leaves, and the connects that give up are failed connects of app → redis.
    let fw = |rule: &str| {
        let mut argv = vec!["nft"];
        argv.extend(rule.split(' '));
        chain.app_ns.run(&argv);
    };
    fw("add table inet vigil_fw");
    fw("add chain inet vigil_fw out { type filter hook output priority 0 ; }");
    fw("add rule inet vigil_fw out tcp dport 6379 drop");
    let before = edges_among(&api, &keys);
    chain.load(5, 2);
    let firewalled = wait_for(
        Duration::from_secs(15),
        "failed connects on app → redis behind a dropping firewall",
        || {
            let after = edges_among(&api, &keys);
            (delta(&before, &after, &slow, "failed_connects") >= 1.0).then_some(after)
        },
    );
    fw("delete table inet vigil_fw");
    eprintln!(
        "firewall: app → redis failed connects +{}",
        delta(&before, &firewalled, &slow, "failed_connects")
    );

    // 5. Redis stopped: connects from the app fail and are reset.
    chain.redis.kill();
    let before = edges_among(&api, &keys);
    chain.load(2, 2);
    let after = wait_for(
        Duration::from_secs(15),
        "failed connects on app → redis",
        || {
            let after = edges_among(&api, &keys);
            (delta(&before, &after, &slow, "failed_connects") >= 1.0).then_some(after)
        },
    );
    eprintln!(
        "redis stopped: app → redis failed connects +{} resets +{}",
        delta(&before, &after, &slow, "failed_connects"),
        delta(&before, &after, &slow, "resets")
    );
    assert!(
        delta(&before, &after, &slow, "resets") >= 1.0,
        "refused connects are resets: {}",
        after[&slow]
    );
    assert_eq!(
        delta(&before, &after, &(c.clone(), n.clone()), "failed_connects"),
        0.0
    );
}
