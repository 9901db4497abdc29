//! The VM's network: loopback, and eth0 on QEMU's user network
//! (10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3).

use std::net::Ipv4Addr;

use crate::netlink::{add_addr_msg, default_route_msg, link_up_msg, Netlink};

pub const ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
pub const DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);

pub fn resolv_conf() -> String {
    format!("nameserver {DNS}\n")
}

/// Builds one netlink request from its sequence number.
type Step = Box<dyn FnOnce(u32) -> Vec<u8>>;

fn index(name: &str) -> Result<u32, String> {
    nix::net::if_::if_nametoindex(name).map_err(|e| format!("interface {name}: {e}"))
}

/// Brings the network up; returns what failed (the VM boots on without it).
pub fn setup() -> Vec<String> {
    let mut failed = Vec::new();
    let mut nl = match Netlink::open() {
        Ok(nl) => nl,
        Err(e) => return vec![format!("netlink socket: {e}")],
    };
    match index("lo") {
        Ok(lo) => {
            if let Err(e) = nl.request(|s| link_up_msg(s, lo)) {
                failed.push(format!("lo up: {e}"));
            }
        }
        Err(e) => failed.push(e),
    }
    match index("eth0") {
        Ok(eth) => {
            let steps: [(&str, Step); 3] = [
                ("eth0 up", Box::new(move |s| link_up_msg(s, eth))),
                (
                    "eth0 address",
                    Box::new(move |s| add_addr_msg(s, eth, ADDR, 24)),
                ),
                (
                    "default route",
                    Box::new(move |s| default_route_msg(s, eth, GATEWAY)),
                ),
            ];
            for (what, f) in steps {
                match nl.request(f) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => failed.push(format!("{what}: {e}")),
                }
            }
        }
        Err(e) => failed.push(e),
    }
    let _ = std::fs::create_dir_all("/run/hull");
    if let Err(e) = std::fs::write("/run/hull/resolv.conf", resolv_conf()) {
        failed.push(format!("/run/hull/resolv.conf: {e}"));
    }
    failed
}
