//! Network faults: loss, latency, partition, DNS failure, bandwidth cap — all inside the
//! target's `vigil-lab-` namespace (this kernel has no netem).

use std::{process::Command, time::Duration};

use super::{FaultClass, FaultCtx, Info, Params, Scenario};
use crate::{
    error::{LabError, Result},
    state::Undo,
    sys,
    testbed::{cgroups::LabCgroup, dnsmasq_conf_without_redis, service_ip},
};

const ALL: &[&str] = &["app1", "app2", "redis", "postgres", "web"];

/// Adds an nftables table with one output (and optionally input) rule in the target.
fn nft_table(ctx: &mut FaultCtx<'_>, table: &str, rules: &[(&str, &str)]) -> Result<()> {
    let ns = ctx.target.to_string();
    ctx.will_undo(Undo::NftTable {
        netns: ns.clone(),
        table: table.to_string(),
    })?;
    let nft = |args: &str| -> Result<()> {
        let mut argv = vec!["ip", "netns", "exec", ns.as_str(), "nft"];
        argv.extend(args.split(' '));
        sys::run(&argv).map(|_| ())
    };
    nft(&format!("add table inet {table}"))?;
    for (chain, rule) in rules {
        nft(&format!(
            "add chain inet {table} {chain} {{ type filter hook {chain} priority 0 ; }}"
        ))?;
        nft(&format!("add rule inet {table} {chain} {rule}"))?;
    }
    Ok(())
}

pub struct PacketLoss;

impl Scenario for PacketLoss {
    fn info(&self) -> Info {
        Info {
            name: "packet-loss",
            class: FaultClass::NetworkLoss,
            about: "the target drops a share of the packets it sends (nftables numgen)",
            targets: ALL,
            default_target: "app1",
            intensity: "percent of packets dropped",
            default_intensity: 30.0,
            default_duration: Duration::from_secs(8),
            expected_action: "reroute-traffic",
        }
    }

    fn inject(&self, ctx: &mut FaultCtx<'_>, p: &Params) -> Result<()> {
        let pct = p.intensity.clamp(1.0, 100.0) as u32;
        nft_table(
            ctx,
            "vigil-lab-loss",
            &[(
                "output",
                &format!("oifname eth0 numgen random mod 100 < {pct} drop"),
            )],
        )
    }
}

pub struct Partition;

impl Scenario for Partition {
    fn info(&self) -> Info {
        Info {
            name: "partition",
            class: FaultClass::Partition,
            about: "the target and redis cannot reach each other (nftables drop both ways)",
            targets: &["app1", "app2", "web"],
            default_target: "app1",
            intensity: "unused",
            default_intensity: 1.0,
            default_duration: Duration::from_secs(8),
            expected_action: "reroute-traffic",
        }
    }

    fn inject(&self, ctx: &mut FaultCtx<'_>, _p: &Params) -> Result<()> {
        let redis = service_ip("redis")?;
        nft_table(
            ctx,
            "vigil-lab-partition",
            &[
                ("output", &format!("ip daddr {redis} drop")),
                ("input", &format!("ip saddr {redis} drop")),
            ],
        )
    }
}

pub struct Latency;

impl Scenario for Latency {
    fn info(&self) -> Info {
        Info {
            name: "latency",
            class: FaultClass::NetworkLatency,
            about: "every packet the target sends is held (NFQUEUE) before it leaves",
            targets: ALL,
            default_target: "redis",
            intensity: "milliseconds added",
            default_intensity: 200.0,
            default_duration: Duration::from_secs(8),
            expected_action: "reroute-traffic",
        }
    }

    fn inject(&self, ctx: &mut FaultCtx<'_>, p: &Params) -> Result<()> {
        let ns = ctx.target.to_string();
        let queue = "9";
        let exe = std::env::current_exe().map_err(LabError::io("locating vigil-lab"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(&exe)
            .args([
                "nfq-delay",
                "--queue",
                queue,
                "--ms",
                &(p.intensity.max(1.0) as u64).to_string(),
            ])
            .stdin(std::process::Stdio::null())
            .spawn()
            .map_err(LabError::io("starting the delayer"))?;
        let comm = exe
            .file_name()
            .map(|n| n.to_string_lossy().chars().take(15).collect())
            .unwrap_or_default();
        ctx.will_undo(Undo::Process {
            pid: child.id(),
            comm,
        })?;
        // The delayer lives in a lab cgroup too, so a cleanup finds it.
        let group = LabCgroup::create(&crate::names::LabName::of("faults")?)?;
        for f in group.procs_files() {
            let _ = std::fs::write(f, child.id().to_string());
        }
        std::thread::sleep(Duration::from_millis(200));
        ctx.will_undo(Undo::IptablesChain {
            netns: ns.clone(),
            chain: "OUTPUT".into(),
        })?;
        sys::run_in(
            &ns,
            &[
                "iptables",
                "-A",
                "OUTPUT",
                "-o",
                "eth0",
                "-j",
                "NFQUEUE",
                "--queue-num",
                queue,
                "--queue-bypass",
            ],
        )?;
        Ok(())
    }
}

pub struct DnsFailure;

impl Scenario for DnsFailure {
    fn info(&self) -> Info {
        Info {
            name: "dns-failure",
            class: FaultClass::DnsFailure,
            about: "the lab DNS stops knowing redis.lab: NXDOMAIN for every lookup",
            targets: &["dns"],
            default_target: "dns",
            intensity: "unused",
            default_intensity: 1.0,
            default_duration: Duration::from_secs(8),
            expected_action: "restore-dns-record",
        }
    }

    fn inject(&self, ctx: &mut FaultCtx<'_>, _p: &Params) -> Result<()> {
        let conf = ctx.bed.files.dnsmasq_conf.clone();
        let original =
            std::fs::read_to_string(&conf).map_err(LabError::io("reading dnsmasq.conf"))?;
        ctx.will_undo(Undo::KillCgroup {
            name: ctx.target.to_string(),
        })?;
        ctx.will_undo(Undo::WriteFile {
            path: conf.clone(),
            value: original,
        })?;
        std::fs::write(&conf, dnsmasq_conf_without_redis())
            .map_err(LabError::io("writing dnsmasq.conf"))?;
        ctx.bed.supervisor.restart(ctx.target.as_str())
    }
}

pub struct BandwidthCap;

impl Scenario for BandwidthCap {
    fn info(&self) -> Info {
        Info {
            name: "bandwidth-cap",
            class: FaultClass::BandwidthSaturation,
            about: "the target's egress is capped (tc tbf)",
            targets: ALL,
            default_target: "web",
            intensity: "kbit/s",
            default_intensity: 64.0,
            default_duration: Duration::from_secs(8),
            expected_action: "raise-bandwidth",
        }
    }

    fn inject(&self, ctx: &mut FaultCtx<'_>, p: &Params) -> Result<()> {
        let ns = ctx.target.to_string();
        ctx.will_undo(Undo::Qdisc {
            netns: ns.clone(),
            dev: "eth0".into(),
        })?;
        let rate = format!("{}kbit", p.intensity.max(8.0) as u64);
        sys::run_in(
            &ns,
            &[
                "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", &rate, "burst", "4kb",
                "latency", "400ms",
            ],
        )?;
        Ok(())
    }
}
