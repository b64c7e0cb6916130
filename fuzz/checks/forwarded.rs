//! `http::forwarded` on any bytes: CIDR parsing and the client address behind trusted proxies.
//!
//! The input is a `--trusted-proxy` value (up to the first newline), then header lines: each
//! line starting with `F` is a `Forwarded` value, any other an `X-Forwarded-For` value. Checks:
//! nothing panics; a parsed CIDR prints in a form that parses back to itself and contains its
//! network address; the client address is the peer when the peer is not trusted, and otherwise
//! the peer or an address written somewhere in the headers; with every address trusted and
//! only well-formed hops, the leftmost hop is the client.

use std::net::IpAddr;

use pushcore::http::forwarded::{parse_forwarded_element, parse_xff_hop, Cidr, TrustedProxies};

use super::esc;

const PEERS: [&str; 4] = ["127.0.0.1", "10.1.2.3", "::1", "203.0.113.7"];

pub fn check(data: &[u8]) {
    let (first, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[data.len()..]),
    };
    let mut networks = Vec::new();
    if let Ok(text) = std::str::from_utf8(first) {
        for part in text.split(',') {
            if let Ok(cidr) = part.parse::<Cidr>() {
                let again: Cidr = cidr
                    .to_string()
                    .parse()
                    .unwrap_or_else(|e| panic!("{cidr} does not parse back: {e}: {}", esc(data)));
                assert_eq!(again, cidr, "{}", esc(data));
                assert!(cidr.contains(cidr.network()), "{cidr}: {}", esc(data));
                networks.push(cidr);
            }
        }
    }
    let mut xff: Vec<&[u8]> = Vec::new();
    let mut fwd: Vec<&[u8]> = Vec::new();
    for line in rest.split(|&b| b == b'\n') {
        match line {
            [b'F', value @ ..] => fwd.push(value),
            value => xff.push(value),
        }
    }
    let proxies = TrustedProxies::new(networks);
    for peer in PEERS {
        let peer: IpAddr = peer.parse().unwrap_or_else(|e| panic!("{e}"));
        let client = proxies.client_addr(peer, &xff, &fwd);
        if !proxies.contains(peer) {
            assert_eq!(client, peer, "untrusted peer replaced: {}", esc(data));
            continue;
        }
        if client != peer {
            let named = xff.iter().chain(&fwd).any(|line| {
                let text = String::from_utf8_lossy(line);
                text.split(',').any(|hop| {
                    parse_xff_hop(hop.as_bytes()).map(|a| a.to_canonical()) == Some(client)
                        || parse_forwarded_element(hop.as_bytes()).map(|a| a.to_canonical())
                            == Some(client)
                })
            });
            // Quoted commas can hide a hop from this simple split; accept those.
            let quoted = fwd.iter().any(|l| l.contains(&b'"'));
            assert!(
                named || quoted,
                "client {client} is written nowhere: {}",
                esc(data)
            );
        }
    }
    // Everything trusted and every X-Forwarded-For hop well formed: the leftmost hop wins.
    let all = TrustedProxies::new(vec![
        "0.0.0.0/0".parse().unwrap_or_else(|e| panic!("{e:?}")),
        "::/0".parse().unwrap_or_else(|e| panic!("{e:?}")),
    ]);
    let hops: Vec<Option<IpAddr>> = xff
        .iter()
        .flat_map(|line| line.split(|&b| b == b','))
        .map(parse_xff_hop)
        .collect();
    if let Some(Some(leftmost)) = hops.first() {
        if hops.iter().all(Option::is_some) {
            let client = all.client_addr(
                "127.0.0.1".parse().unwrap_or_else(|e| panic!("{e}")),
                &xff,
                &fwd,
            );
            assert_eq!(client, leftmost.to_canonical(), "{}", esc(data));
        }
    }
}
