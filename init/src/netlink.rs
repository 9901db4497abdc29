//! Just enough rtnetlink to bring up lo and eth0 with a static address and a
//! default route. Hand-written (a few message types) to keep PID 1 free of an
//! async runtime and of a large dependency tree.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NETLINK_ROUTE: i32 = 0;
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// One request: header, fixed body, attributes.
struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    fn new(ty: u16, flags: u16, seq: u32, body: &[u8]) -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched in finish()
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
        buf.extend_from_slice(body);
        buf.resize(align4(buf.len()), 0);
        Msg { buf }
    }

    fn attr(mut self, ty: u16, data: &[u8]) -> Self {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

pub fn link_up_msg(seq: u32, index: u32) -> Vec<u8> {
    // struct ifinfomsg: family, pad, type, index, flags, change
    let mut body = vec![libc::AF_UNSPEC as u8, 0, 0, 0];
    body.extend_from_slice(&(index as i32).to_ne_bytes());
    body.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
    body.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
    Msg::new(RTM_NEWLINK, 0, seq, &body).finish()
}

pub fn add_addr_msg(seq: u32, index: u32, addr: Ipv4Addr, prefix: u8) -> Vec<u8> {
    // struct ifaddrmsg: family, prefixlen, flags, scope, index
    let mut body = vec![libc::AF_INET as u8, prefix, 0, 0];
    body.extend_from_slice(&index.to_ne_bytes());
    Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, seq, &body)
        .attr(IFA_LOCAL, &addr.octets())
        .attr(IFA_ADDRESS, &addr.octets())
        .finish()
}

pub fn default_route_msg(seq: u32, index: u32, gw: Ipv4Addr) -> Vec<u8> {
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
    let mut body = vec![
        libc::AF_INET as u8,
        0,
        0,
        0,
        libc::RT_TABLE_MAIN,
        libc::RTPROT_BOOT,
        libc::RT_SCOPE_UNIVERSE,
        libc::RTN_UNICAST,
    ];
    body.extend_from_slice(&0u32.to_ne_bytes());
    Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, seq, &body)
        .attr(RTA_GATEWAY, &gw.octets())
        .attr(RTA_OIF, &index.to_ne_bytes())
        .finish()
}

pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2); the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Netlink { fd, seq: 1 })
    }

    /// Sends one request built by `f(seq)` and waits for the kernel's ack.
    pub fn request(&mut self, f: impl FnOnce(u32) -> Vec<u8>) -> io::Result<()> {
        self.seq += 1;
        let msg = f(self.seq);
        // SAFETY: msg is a valid buffer of msg.len() bytes for the duration of the call.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: buf is writable for buf.len() bytes.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(r) = parse_ack(&buf[..n as usize], self.seq) {
                return r;
            }
        }
    }
}

/// Finds the ack (or error) for `seq` in a netlink reply.
pub fn parse_ack(mut b: &[u8], seq: u32) -> Option<io::Result<()>> {
    while b.len() >= 16 {
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let ty = u16::from_ne_bytes([b[4], b[5]]);
        let s = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
        if len < 16 || len > b.len() {
            return Some(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "malformed netlink reply",
            )));
        }
        if ty == NLMSG_ERROR && s == seq && len >= 20 {
            let err = i32::from_ne_bytes([b[16], b[17], b[18], b[19]]);
            return Some(if err == 0 {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(-err))
            });
        }
        b = &b[align4(len).min(b.len())..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_message_layout() {
        let m = add_addr_msg(7, 2, Ipv4Addr::new(10, 0, 2, 15), 24);
        assert_eq!(m.len(), 16 + 8 + 8 + 8);
        assert_eq!(
            u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), RTM_NEWADDR);
        assert_eq!(m[17], 24);
        assert_eq!(&m[28..32], &[10, 0, 2, 15]);
    }

    #[test]
    fn ack_parsing() {
        let mut ok = vec![0u8; 36];
        ok[0..4].copy_from_slice(&36u32.to_ne_bytes());
        ok[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ok[8..12].copy_from_slice(&5u32.to_ne_bytes());
        assert!(parse_ack(&ok, 5).unwrap().is_ok());
        ok[16..20].copy_from_slice(&(-libc::EEXIST).to_ne_bytes());
        assert_eq!(
            parse_ack(&ok, 5).unwrap().unwrap_err().raw_os_error(),
            Some(libc::EEXIST)
        );
        assert!(parse_ack(&ok, 6).is_none());
        assert!(parse_ack(&[0xff; 16], 1).unwrap().is_err());
    }
}
