//! The HAProxy PROXY protocol, versions 1 and 2: the header a load balancer puts before the
//! client's bytes to say who the client really is.
//!
//! [`parse`] is pure (bytes in, a verdict out); [`read_header`] reads exactly one header from a
//! stream, never a byte more, since the client's own bytes (a TLS ClientHello) may follow at once.

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature (12 octets).
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// Longest v1 header, CRLF included (the specification's figure).
const V1_MAX: usize = 107;

/// Longest v2 header we accept: the fixed 16 octets, the IPv6 addresses and room for TLVs.
const V2_MAX: usize = 16 + 536;

/// What a buffer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Not enough bytes yet: read at least this many more.
    Incomplete(usize),
    /// A whole header of `len` octets. `source` is the client's address, or `None` for a
    /// connection the proxy made itself (v2 LOCAL, v1 UNKNOWN): use the socket's own peer.
    Header {
        /// Length of the header, to skip.
        len: usize,
        /// The real client.
        source: Option<SocketAddr>,
    },
}

/// Why a header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// The bytes are not a PROXY header.
    NotProxy,
    /// A PROXY header that breaks the specification.
    Malformed(&'static str),
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyError::NotProxy => f.write_str("no PROXY protocol header"),
            ProxyError::Malformed(why) => write!(f, "bad PROXY protocol header: {why}"),
        }
    }
}

impl std::error::Error for ProxyError {}

/// Parses the start of `buf` as a PROXY header.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let v2_prefix = buf.len().min(12);
    if buf[..v2_prefix] == V2_SIGNATURE[..v2_prefix] && !buf.is_empty() && buf[0] == b'\r' {
        return parse_v2(buf);
    }
    let v1_prefix = buf.len().min(6);
    if buf[..v1_prefix] == b"PROXY "[..v1_prefix] {
        return parse_v1(buf);
    }
    Err(ProxyError::NotProxy)
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let Some(lf) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= V1_MAX {
            Err(ProxyError::Malformed("v1 header longer than 107 octets"))
        } else {
            Ok(Parsed::Incomplete(1))
        };
    };
    let len = lf + 1;
    if len > V1_MAX || lf == 0 || buf[lf - 1] != b'\r' {
        return Err(ProxyError::Malformed(
            "v1 header must end in CRLF within 107 octets",
        ));
    }
    let line = std::str::from_utf8(&buf[6..lf - 1])
        .map_err(|_| ProxyError::Malformed("v1 header is not ASCII"))?;
    let fields: Vec<&str> = line.split(' ').collect();
    let source = match fields[..] {
        ["UNKNOWN", ..] => None,
        [family @ ("TCP4" | "TCP6"), src, _dst, sport, _dport] => {
            let ip: IpAddr = src
                .parse()
                .map_err(|_| ProxyError::Malformed("v1 source address"))?;
            if (family == "TCP4") != ip.is_ipv4() {
                return Err(ProxyError::Malformed(
                    "v1 address does not match its family",
                ));
            }
            // Ports are plain decimal without leading zeros or signs.
            if sport.is_empty() || sport.len() > 5 || !sport.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ProxyError::Malformed("v1 source port"));
            }
            let port: u16 = sport
                .parse()
                .map_err(|_| ProxyError::Malformed("v1 source port"))?;
            Some(SocketAddr::new(ip, port))
        }
        _ => return Err(ProxyError::Malformed("v1 header fields")),
    };
    Ok(Parsed::Header { len, source })
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    if buf.len() < 16 {
        return Ok(Parsed::Incomplete(16 - buf.len()));
    }
    let (version_command, family) = (buf[12], buf[13]);
    let body = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = 16 + body;
    if version_command >> 4 != 2 {
        return Err(ProxyError::Malformed("v2 version is not 2"));
    }
    if len > V2_MAX {
        return Err(ProxyError::Malformed("v2 header too long"));
    }
    if buf.len() < len {
        return Ok(Parsed::Incomplete(len - buf.len()));
    }
    let addr = &buf[16..len];
    let source = match (version_command & 0x0f, family) {
        // LOCAL: the proxy's own connection (health checks); addresses are to be ignored.
        (0, _) => None,
        (1, 0x11) if addr.len() >= 12 => {
            let ip = Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]);
            Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([addr[8], addr[9]]),
            ))
        }
        (1, 0x21) if addr.len() >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&addr[..16]);
            let port = u16::from_be_bytes([addr[32], addr[33]]);
            Some(SocketAddr::new(Ipv6Addr::from(octets).into(), port))
        }
        // Another family (UNIX, UNSPEC) over PROXY: no IP to use, keep the socket's peer.
        (1, 0x00 | 0x31 | 0x32) => None,
        (1, _) => {
            return Err(ProxyError::Malformed(
                "v2 address block too short for its family",
            ))
        }
        _ => {
            return Err(ProxyError::Malformed(
                "v2 command is neither LOCAL nor PROXY",
            ))
        }
    };
    Ok(Parsed::Header { len, source })
}

/// Reads one PROXY header from `stream`, exactly, and returns the client address it names
/// (`None`: use the socket's peer). A stream that does not start with a header is an error.
pub fn read_header<R: Read>(stream: &mut R) -> io::Result<Option<SocketAddr>> {
    let mut buf = Vec::with_capacity(64);
    let mut want = 1;
    loop {
        let start = buf.len();
        buf.resize(start + want, 0);
        stream.read_exact(&mut buf[start..])?;
        match parse(&buf) {
            Ok(Parsed::Incomplete(more)) => want = more,
            Ok(Parsed::Header { source, .. }) => return Ok(source),
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, addr: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(addr.len() as u16).to_be_bytes());
        h.extend_from_slice(addr);
        h
    }

    #[test]
    fn v1_headers() {
        let h = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 110\r\nUSER x\r\n";
        assert_eq!(
            parse(h),
            Ok(Parsed::Header {
                len: 45,
                source: Some("192.0.2.7:56324".parse().unwrap())
            })
        );
        let h = b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 995\r\n";
        assert_eq!(
            parse(h),
            Ok(Parsed::Header {
                len: h.len(),
                source: Some("[2001:db8::1]:4000".parse().unwrap())
            })
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            Ok(Parsed::Header {
                len: 15,
                source: None
            })
        );
        for bad in [
            &b"PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n"[..],
            b"PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 +1 2\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 99999 2\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 1 2\n",
            b"PROXY TCP5 x y 1 2\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(ProxyError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(parse(&[b'P'; 200][..]), Err(ProxyError::NotProxy)));
        let mut long = b"PROXY ".to_vec();
        long.extend_from_slice(&[b'1'; 120]);
        assert!(matches!(parse(&long), Err(ProxyError::Malformed(_))));
        assert_eq!(parse(b"PROXY TCP4 1.2"), Ok(Parsed::Incomplete(1)));
        assert_eq!(parse(b"USER bob\r\n"), Err(ProxyError::NotProxy));
    }

    #[test]
    fn v2_headers() {
        let ipv4 = [192, 0, 2, 7, 198, 51, 100, 1, 0xdc, 0x04, 0, 110];
        let h = v2(1, 0x11, &ipv4);
        assert_eq!(
            parse(&h),
            Ok(Parsed::Header {
                len: 28,
                source: Some("192.0.2.7:56324".parse().unwrap())
            })
        );
        let mut ipv6 = vec![0x20, 0x01, 0x0d, 0xb8];
        ipv6.extend_from_slice(&[0; 11]);
        ipv6.push(1);
        ipv6.extend_from_slice(&[0; 16]);
        ipv6.extend_from_slice(&[0x0f, 0xa0, 0x03, 0xe3]);
        ipv6.extend_from_slice(&[0x03, 0, 1, 0x42]); // a TLV, skipped
        let h = v2(1, 0x21, &ipv6);
        assert_eq!(
            parse(&h),
            Ok(Parsed::Header {
                len: h.len(),
                source: Some("[2001:db8::1]:4000".parse().unwrap())
            })
        );
        assert_eq!(
            parse(&v2(0, 0, &[])),
            Ok(Parsed::Header {
                len: 16,
                source: None
            })
        );
        assert!(matches!(
            parse(&v2(1, 0x11, &[1, 2, 3])),
            Err(ProxyError::Malformed(_))
        ));
        assert!(matches!(
            parse(&v2(5, 0x11, &ipv4)),
            Err(ProxyError::Malformed(_))
        ));
        assert_eq!(parse(&h[..10]), Ok(Parsed::Incomplete(6)));
        assert_eq!(parse(&h[..20]), Ok(Parsed::Incomplete(h.len() - 20)));
    }

    #[test]
    fn read_header_stops_exactly_at_the_header_end() {
        for header in [
            b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 110\r\n".to_vec(),
            v2(
                1,
                0x11,
                &[192, 0, 2, 7, 198, 51, 100, 1, 0xdc, 0x04, 0, 110],
            ),
        ] {
            let mut input = header.clone();
            input.extend_from_slice(b"\x16\x03\x01rest");
            let mut reader = &input[..];
            let source = read_header(&mut reader).unwrap();
            assert_eq!(source, Some("192.0.2.7:56324".parse().unwrap()));
            assert_eq!(reader, b"\x16\x03\x01rest");
        }
        let mut reader = &b"+OK hello\r\n"[..];
        assert!(read_header(&mut reader).is_err());
        let mut short = &b"PROXY TCP4 1.2.3.4"[..];
        assert!(read_header(&mut short).is_err());
    }
}
