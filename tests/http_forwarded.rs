//! Table-driven tests of `--trusted-proxy` CIDRs and of the client address taken from
//! `X-Forwarded-For` / `Forwarded` behind trusted proxies.

use std::net::IpAddr;

use pushcore::http::forwarded::{
    parse_forwarded_element, parse_xff_hop, Cidr, CidrError, TrustedProxies,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn cidr(s: &str) -> Cidr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[rustfmt::skip]
const GOOD_CIDRS: &[(&str, &str)] = &[
    // input                    canonical form
    ("10.0.0.0/8",              "10.0.0.0/8"),
    ("127.0.0.1",               "127.0.0.1/32"),
    ("127.0.0.1/32",            "127.0.0.1/32"),
    ("0.0.0.0/0",               "0.0.0.0/0"),
    ("192.168.4.0/22",          "192.168.4.0/22"),
    ("172.16.0.0/12",           "172.16.0.0/12"),
    ("::1",                     "::1/128"),
    ("::/0",                    "::/0"),
    ("fd00::/8",                "fd00::/8"),
    ("2001:db8::/32",           "2001:db8::/32"),
    ("2001:DB8:0:0::/64",       "2001:db8::/64"),
    ("::ffff:10.0.0.0/8",       "10.0.0.0/8"),
    ("10.1.2.3/032",            "10.1.2.3/32"),
];

#[rustfmt::skip]
const BAD_CIDRS: &[(&str, CidrError)] = &[
    ("",                        CidrError::Malformed),
    ("/8",                      CidrError::Malformed),
    ("10.0.0/8",                CidrError::Malformed),
    ("10.0.0.0.0/8",            CidrError::Malformed),
    ("256.0.0.0/8",             CidrError::Malformed),
    ("localhost",               CidrError::Malformed),
    ("10.0.0.0 /8",             CidrError::Malformed),
    ("[::1]/128",               CidrError::Malformed),
    ("fe80::1%eth0",            CidrError::Malformed),
    ("10.0.0.0/",               CidrError::Prefix { max: 32 }),
    ("10.0.0.0/33",             CidrError::Prefix { max: 32 }),
    ("10.0.0.0/-1",             CidrError::Prefix { max: 32 }),
    ("10.0.0.0/+8",             CidrError::Prefix { max: 32 }),
    ("10.0.0.0/8/8",            CidrError::Prefix { max: 32 }),
    ("10.0.0.0/0x8",            CidrError::Prefix { max: 32 }),
    ("10.0.0.0/ 8",             CidrError::Prefix { max: 32 }),
    ("10.0.0.0/0008",           CidrError::Prefix { max: 32 }),
    ("::/129",                  CidrError::Prefix { max: 128 }),
    ("::/256",                  CidrError::Prefix { max: 128 }),
];

#[test]
fn cidrs_parse_and_print() {
    for (input, canonical) in GOOD_CIDRS {
        let c = cidr(input);
        assert_eq!(c.to_string(), *canonical, "{input}");
        assert_eq!(cidr(canonical), c, "{input}: canonical form parses back");
        assert!(c.contains(c.network()), "{input}");
    }
    for (input, want) in BAD_CIDRS {
        assert_eq!(input.parse::<Cidr>().as_ref(), Err(want), "{input:?}");
        assert!(!want.to_string().is_empty());
    }
}

#[test]
fn host_bits_suggest_the_network() {
    let err = "10.1.2.3/8".parse::<Cidr>().err();
    let Some(CidrError::HostBits { network }) = err else {
        panic!("{err:?}");
    };
    assert_eq!(network.to_string(), "10.0.0.0/8");
    assert!(CidrError::HostBits { network }
        .to_string()
        .contains("did you mean 10.0.0.0/8"));
    assert!(matches!(
        "2001:db8::1/32".parse::<Cidr>(),
        Err(CidrError::HostBits { .. })
    ));
}

#[rustfmt::skip]
const MEMBERSHIP: &[(&str, &str, bool)] = &[
    ("10.0.0.0/8",      "10.255.255.255",     true),
    ("10.0.0.0/8",      "11.0.0.0",           false),
    ("10.0.0.0/8",      "::ffff:10.1.1.1",    true),   // a dual-stack socket's IPv4 peer
    ("10.0.0.0/8",      "::a00:1",            false),  // IPv4-compatible, not mapped
    ("0.0.0.0/0",       "203.0.113.9",        true),
    ("0.0.0.0/0",       "2001:db8::1",        false),
    ("::/0",            "2001:db8::1",        true),
    ("::/0",            "10.0.0.1",           false),
    ("127.0.0.1",       "127.0.0.1",          true),
    ("127.0.0.1",       "127.0.0.2",          false),
    ("192.168.4.0/22",  "192.168.7.255",      true),
    ("192.168.4.0/22",  "192.168.8.0",        false),
    ("fd00::/8",        "fdff:ffff::1",       true),
    ("fd00::/8",        "fe00::1",            false),
    ("::1",             "::1",                true),
];

#[test]
fn cidr_membership() {
    for (net, addr, inside) in MEMBERSHIP {
        assert_eq!(cidr(net).contains(ip(addr)), *inside, "{addr} in {net}");
    }
}

#[rustfmt::skip]
const XFF_HOPS: &[(&str, Option<&str>)] = &[
    ("203.0.113.9",              Some("203.0.113.9")),
    ("  203.0.113.9\t",          Some("203.0.113.9")),
    ("2001:db8::1",              Some("2001:db8::1")),
    ("[2001:db8::1]",            Some("2001:db8::1")),
    ("[2001:db8::1]:443",        Some("2001:db8::1")),
    ("203.0.113.9:51234",        Some("203.0.113.9")),
    ("::ffff:203.0.113.9",       Some("::ffff:203.0.113.9")),
    // malformed
    ("",                         None),
    ("unknown",                  None),
    ("_hidden",                  None),
    ("203.0.113",                None),
    ("203.0.113.9:",             None),
    ("203.0.113.9:123456",       None),
    ("203.0.113.9:port",         None),
    ("[203.0.113.9]",            None),
    ("[2001:db8::1",             None),
    ("[2001:db8::1]x",           None),
    ("2001:db8::1:443:",         None),
    ("\"203.0.113.9\"",          None),
    ("203.0.113.9 203.0.113.8",  None),
    ("\u{fe0f}1.2.3.4",          None),
];

#[test]
fn xff_hops() {
    for (hop, want) in XFF_HOPS {
        assert_eq!(parse_xff_hop(hop.as_bytes()), want.map(ip), "{hop:?}");
    }
    assert_eq!(parse_xff_hop(b"\xff1.2.3.4"), None);
}

#[rustfmt::skip]
const FORWARDED_ELEMENTS: &[(&str, Option<&str>)] = &[
    ("for=192.0.2.60",                                   Some("192.0.2.60")),
    ("For=192.0.2.60",                                   Some("192.0.2.60")),
    ("for=\"192.0.2.60\"",                               Some("192.0.2.60")),
    ("for=192.0.2.60;proto=http;by=203.0.113.43",        Some("192.0.2.60")),
    ("proto=https; for=192.0.2.60",                      Some("192.0.2.60")),
    ("for=\"[2001:db8:cafe::17]\"",                      Some("2001:db8:cafe::17")),
    ("for=\"[2001:db8:cafe::17]:4711\"",                 Some("2001:db8:cafe::17")),
    ("for=\"192.0.2.60:8080\"",                          Some("192.0.2.60")),
    ("for=\"19\\2.0.2.60\"",                             Some("192.0.2.60")),
    ("for=192.0.2.60;",                                  Some("192.0.2.60")),
    ("by=\"a;b\";for=192.0.2.60",                        Some("192.0.2.60")),
    // malformed or not an address
    ("",                                                 None),
    ("proto=http",                                       None),
    ("for=unknown",                                      None),
    ("for=_hidden",                                      None),
    ("for=\"_SEVKISEK\"",                                None),
    ("for=2001:db8::1",                                  None),
    ("for=\"2001:db8::1\"",                              None),
    ("for=[2001:db8::1]",                                Some("2001:db8::1")),
    ("for=",                                             None),
    ("for",                                              None),
    ("for=\"192.0.2.60",                                 None),
    ("for=192.0.2.60\"",                                 None),
    ("for=\"192.0.2.60\\\"",                             None),
    ("for=1.2.3.4;for=5.6.7.8",                          None),
    ("for=192.0.2.60;garbage",                           None),
    ("for=\"192.0.2.60\" x",                             None),
];

#[test]
fn forwarded_elements() {
    for (element, want) in FORWARDED_ELEMENTS {
        assert_eq!(
            parse_forwarded_element(element.as_bytes()),
            want.map(ip),
            "{element:?}"
        );
    }
}

/// (trusted CIDRs, peer, X-Forwarded-For lines, Forwarded lines, client)
type Row = (
    &'static [&'static str],
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static str,
);

#[rustfmt::skip]
const CLIENTS: &[Row] = &[
    // No proxies trusted: always the peer, whatever the headers say.
    (&[],               "127.0.0.1",  &["203.0.113.9"],                     &[],                      "127.0.0.1"),
    // An untrusted peer cannot speak for anyone.
    (&["10.0.0.0/8"],   "203.0.113.5", &["198.51.100.1"],                   &[],                      "203.0.113.5"),
    (&["10.0.0.0/8"],   "203.0.113.5", &[],                                 &["for=198.51.100.1"],    "203.0.113.5"),
    // A trusted proxy names the client.
    (&["127.0.0.1"],    "127.0.0.1",  &["203.0.113.9"],                     &[],                      "203.0.113.9"),
    (&["127.0.0.1"],    "::ffff:127.0.0.1", &["203.0.113.9"],               &[],                      "203.0.113.9"),
    (&["127.0.0.1"],    "127.0.0.1",  &[],                                  &["for=203.0.113.9"],     "203.0.113.9"),
    (&["::1"],          "::1",        &["2001:db8::7"],                     &[],                      "2001:db8::7"),
    // A forged entry on the left is ignored: the rightmost untrusted hop is the client.
    (&["127.0.0.1"],    "127.0.0.1",  &["1.1.1.1, 203.0.113.9"],            &[],                      "203.0.113.9"),
    (&["127.0.0.1"],    "127.0.0.1",  &["1.1.1.1", "203.0.113.9"],          &[],                      "203.0.113.9"),
    // Chains of trusted proxies are walked through.
    (&["10.0.0.0/8", "127.0.0.1"], "127.0.0.1", &["203.0.113.9, 10.0.0.2"], &[],                      "203.0.113.9"),
    (&["10.0.0.0/8", "127.0.0.1"], "127.0.0.1", &["203.0.113.9", "10.0.0.2, 10.0.0.3"], &[],          "203.0.113.9"),
    (&["10.0.0.0/8", "127.0.0.1"], "127.0.0.1", &[], &["for=203.0.113.9, for=10.0.0.2;proto=https"],  "203.0.113.9"),
    // Every hop trusted: the leftmost one is the client.
    (&["10.0.0.0/8"],   "10.0.0.1",   &["10.0.0.9, 10.0.0.8"],              &[],                      "10.0.0.9"),
    // X-Forwarded-For wins over Forwarded (a client could send the latter through a proxy).
    (&["127.0.0.1"],    "127.0.0.1",  &["203.0.113.9"],                     &["for=6.6.6.6"],         "203.0.113.9"),
    // No header: the proxy itself.
    (&["127.0.0.1"],    "127.0.0.1",  &[],                                  &[],                      "127.0.0.1"),
    // Ports and brackets.
    (&["127.0.0.1"],    "127.0.0.1",  &["[2001:db8::1]:443"],               &[],                      "2001:db8::1"),
    (&["127.0.0.1"],    "127.0.0.1",  &[],                                  &["for=\"[2001:db8::1]:443\""], "2001:db8::1"),
    // Malformed: the walk stops at the last trusted address, never at a forged one.
    (&["127.0.0.1"],    "127.0.0.1",  &["garbage"],                         &[],                      "127.0.0.1"),
    (&["127.0.0.1"],    "127.0.0.1",  &[""],                                &[],                      "127.0.0.1"),
    (&["127.0.0.1"],    "127.0.0.1",  &["203.0.113.9,"],                    &[],                      "127.0.0.1"),
    (&["127.0.0.1"],    "127.0.0.1",  &["unknown"],                         &[],                      "127.0.0.1"),
    (&["10.0.0.0/8", "127.0.0.1"], "127.0.0.1", &["6.6.6.6, junk, 10.0.0.2"], &[],                    "10.0.0.2"),
    (&["127.0.0.1"],    "127.0.0.1",  &["203.0.113.9 , 1.2.3"],             &[],                      "127.0.0.1"),
    (&["127.0.0.1"],    "127.0.0.1",  &[],                                  &["for=unknown"],         "127.0.0.1"),
    (&["127.0.0.1"],    "127.0.0.1",  &[],                                  &["proto=https"],         "127.0.0.1"),
    (&["127.0.0.1"],    "127.0.0.1",  &[],                                  &["for=\"[2001:db8::1\""], "127.0.0.1"),
    (&["127.0.0.1"],    "127.0.0.1",  &[],                                  &["for=_hidden, for=10.0.0.1"], "10.0.0.1"),
    (&["127.0.0.1"],    "127.0.0.1",  &[],                                  &["for=\"a,b\""],         "127.0.0.1"),
    (&["127.0.0.1"],    "127.0.0.1",  &[],                                  &["for=1.2.3.4;for=5.6.7.8"], "127.0.0.1"),
    // An untrusted hop stops the walk even with trusted hops further left.
    (&["10.0.0.0/8", "127.0.0.1"], "127.0.0.1", &["10.0.0.5, 203.0.113.9"], &[],                      "203.0.113.9"),
];

#[test]
fn client_addresses() {
    for (trusted, peer, xff, fwd, want) in CLIENTS {
        let proxies = TrustedProxies::new(trusted.iter().map(|c| cidr(c)).collect());
        assert_eq!(proxies.is_empty(), trusted.is_empty());
        let xff: Vec<&[u8]> = xff.iter().map(|s| s.as_bytes()).collect();
        let fwd: Vec<&[u8]> = fwd.iter().map(|s| s.as_bytes()).collect();
        let got = proxies.client_addr(ip(peer), &xff, &fwd);
        assert_eq!(
            got,
            ip(want),
            "trusted {trusted:?} peer {peer} xff {xff:?} fwd {fwd:?}"
        );
    }
}

#[test]
fn non_utf8_headers_stop_the_walk() {
    let proxies = TrustedProxies::new(vec![cidr("127.0.0.1")]);
    let got = proxies.client_addr(ip("127.0.0.1"), &[b"203.0.113.9\xff"], &[]);
    assert_eq!(got, ip("127.0.0.1"));
    let got = proxies.client_addr(ip("127.0.0.1"), &[b"\xc3\x28, 203.0.113.9"], &[]);
    assert_eq!(got, ip("203.0.113.9"));
}
