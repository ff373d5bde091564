//! `/proc/net/tcp{,6}`: every TCP socket of a network namespace with its inode, state and
//! addresses. Read to name host listeners (`listeners`) and to find the sockets the TLS
//! probes name by fd (`metrics::tls_sockets`).

use node_agent_common::FlowKey;

/// One line of `/proc/net/tcp{,6}`: a socket's inode, state and 4-tuple (this side's view,
/// as the kernel's `FlowKey` spells it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSocket {
    pub inode: u64,
    /// `st`: `TCP_ESTABLISHED` is 1, [`LISTEN`] 0x0A.
    pub state: u8,
    pub flow: FlowKey,
}

/// `TCP_LISTEN` in the `st` column.
pub const LISTEN: u8 = 0x0a;

/// Every socket of one `/proc/net/tcp*` text; lines that do not parse are skipped.
pub fn sockets(text: &str) -> impl Iterator<Item = TcpSocket> + '_ {
    text.lines().skip(1).filter_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (local_addr, local_port) = endpoint(f.get(1)?)?;
        let (remote_addr, remote_port) = endpoint(f.get(2)?)?;
        Some(TcpSocket {
            inode: f.get(9)?.parse().ok()?,
            state: u8::from_str_radix(f.get(3)?, 16).ok()?,
            flow: FlowKey {
                local_addr,
                remote_addr,
                local_port,
                remote_port,
                _pad: 0,
            },
        })
    })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits (IPv6), each 32-bit word in host byte order, as
/// the kernel prints them: the address as 16 bytes (IPv4 mapped into IPv6, as the eBPF
/// programs store it) and the port.
fn endpoint(s: &str) -> Option<([u8; 16], u16)> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = addr.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let mut out = [0u8; 16];
    match addr.len() {
        8 => {
            out[10] = 0xff;
            out[11] = 0xff;
            out[12..].copy_from_slice(&word(0)?);
        }
        32 => {
            for i in 0..4 {
                out[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
        }
        _ => return None,
    }
    Some((out, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn proc_net_tcp_lines_give_the_kernel_s_4_tuple() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 0200007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 20 4 30 10 -1\n";
        let TcpSocket { inode, state, flow } = sockets(v4).next().expect("one socket");
        assert_eq!((inode, state), (4242, 1));
        assert_eq!((flow.local_port, flow.remote_port), (8080, 50000));
        assert_eq!(
            Ipv6Addr::from(flow.local_addr).to_ipv4_mapped(),
            Some("127.0.0.1".parse().expect("an address"))
        );
        assert_eq!(
            Ipv6Addr::from(flow.remote_addr).to_ipv4_mapped(),
            Some("127.0.0.2".parse().expect("an address"))
        );
        assert_eq!(sockets("header\ngarbage line\n").count(), 0);
    }
}
