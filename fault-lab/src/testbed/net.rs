//! The lab network: one bridge in the host namespace and one namespace per service, joined by
//! veth pairs. The host keeps an address on the bridge, so health checks reach the entry
//! proxy without entering a namespace.

use crate::{
    error::Result,
    names::{LabName, PREFIX},
    sys,
};

pub const BRIDGE: &str = "vigil-lab-br0";
/// The lab's /24; rarely used elsewhere.
pub const SUBNET: &str = "10.213.0";
pub const GATEWAY: &str = "10.213.0.1";

pub fn ip(host: u8) -> String {
    format!("{SUBNET}.{host}")
}

pub fn ensure_bridge() -> Result<()> {
    if !sys::try_run(&["ip", "link", "show", BRIDGE]) {
        sys::run(&["ip", "link", "add", BRIDGE, "type", "bridge"])?;
        sys::run(&["ip", "addr", "add", &format!("{GATEWAY}/24"), "dev", BRIDGE])?;
    }
    sys::run(&["ip", "link", "set", BRIDGE, "up"])?;
    Ok(())
}

/// Creates namespace `ns` with `eth0` at `addr` on the bridge (host side `host_if`), and a
/// resolv.conf pointing at the lab's DNS (`ip netns exec` bind-mounts
/// `/etc/netns/<ns>/resolv.conf`).
pub fn add_namespace(ns: &LabName, host_if: &LabName, addr: &str, dns: &str) -> Result<()> {
    let ns = ns.as_str();
    let host_if = host_if.as_str();
    sys::run(&["ip", "netns", "add", ns])?;
    sys::run(&[
        "ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns,
    ])?;
    sys::run(&["ip", "link", "set", host_if, "master", BRIDGE, "up"])?;
    sys::run_in(ns, &["ip", "link", "set", "lo", "up"])?;
    sys::run_in(
        ns,
        &["ip", "addr", "add", &format!("{addr}/24"), "dev", "eth0"],
    )?;
    sys::run_in(ns, &["ip", "link", "set", "eth0", "up"])?;
    sys::run_in(ns, &["ip", "route", "add", "default", "via", GATEWAY])?;
    // Services open a connection per request: let TIME_WAIT ports be reused.
    sys::run_in(ns, &["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"])?;
    let etc = std::path::Path::new("/etc/netns").join(ns);
    std::fs::create_dir_all(&etc)
        .map_err(crate::LabError::io(format!("creating {}", etc.display())))?;
    std::fs::write(
        etc.join("resolv.conf"),
        format!("nameserver {dns}\noptions timeout:1 attempts:1\n"),
    )
    .map_err(crate::LabError::io("writing the namespace resolv.conf"))?;
    Ok(())
}

/// Lab namespaces that exist now.
pub fn namespaces() -> Vec<String> {
    sys::run(&["ip", "netns", "list"])
        .map(|o| sys::stdout(&o))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(PREFIX))
        .map(str::to_string)
        .collect()
}

/// Lab interfaces in the host namespace (veth host ends and the bridge).
pub fn host_links() -> Vec<String> {
    sys::run(&["ip", "-o", "link", "show"])
        .map(|o| sys::stdout(&o))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .filter(|n| n.starts_with(PREFIX))
        .collect()
}

/// Deletes every lab namespace, the host ends of their veths (a namespace's teardown is
/// asynchronous, so they may outlive it for a moment), the bridge and the resolv.confs.
pub fn remove_all() {
    for ns in namespaces() {
        sys::try_run(&["ip", "netns", "del", &ns]);
        let _ = std::fs::remove_dir_all(std::path::Path::new("/etc/netns").join(&ns));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let links = host_links();
        if links.is_empty() || std::time::Instant::now() > deadline {
            break;
        }
        for link in links {
            sys::try_run(&["ip", "link", "del", &link]);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
