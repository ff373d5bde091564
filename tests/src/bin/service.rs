//! A DNS client for the tests: `dns SERVER NAME COUNT` sends COUNT A queries for NAME over
//! UDP and prints each rcode. (The topology's HTTP service is `vigil-lab-app`; added latency
//! is `vigil-lab nfq-delay`.)

use std::{net::UdpSocket, time::Duration};

use anyhow::{bail, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["dns", server, name, count] => dns(server, name, count.parse()?),
        _ => bail!("usage: vigil-test-service dns SERVER NAME COUNT"),
    }
}

fn dns(server: &str, name: &str, count: u32) -> Result<()> {
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.connect(server)?;
    socket.set_read_timeout(Some(Duration::from_secs(2)))?;
    for i in 0..count {
        let id = (0x1000 + i) as u16;
        let mut q = Vec::with_capacity(64);
        q.extend_from_slice(&id.to_be_bytes());
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD, 1 question
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]); // root, A, IN
        socket.send(&q)?;
        let mut buf = [0u8; 512];
        match socket.recv(&mut buf) {
            Ok(n) if n >= 4 => println!("rcode {}", buf[3] & 0x0f),
            Ok(_) => println!("short answer"),
            Err(e) => println!("no answer: {e}"),
        }
    }
    Ok(())
}
