//! Reading a trapped caller's arguments out of its memory. Whatever is read
//! here is copied once and never read again: the guard acts on the copy.

use std::io;

const PAGE: usize = 4096;
const FIRST_READ: usize = 256;

fn read_at(pid: i32, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut _,
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut _,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes our own live buffer; the kernel checks `remote`.
    let r = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// A NUL-terminated string of at most `max` bytes (without the NUL).
/// `None` for a NULL pointer.
pub fn read_cstr(pid: i32, addr: u64, max: usize) -> io::Result<Option<Vec<u8>>> {
    if addr == 0 {
        return Ok(None);
    }
    let mut out = Vec::new();
    let mut at = addr;
    loop {
        // Never cross a page in one read: the next page may be unmapped
        // although the string ends before it.
        let room = PAGE - (at as usize % PAGE);
        let mut buf = [0u8; PAGE];
        let n = read_at(pid, at, &mut buf[..room])?;
        if n == 0 {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        if let Some(end) = buf[..n].iter().position(|b| *b == 0) {
            out.extend_from_slice(&buf[..end]);
            if out.len() > max {
                return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
            }
            return Ok(Some(out));
        }
        out.extend_from_slice(&buf[..n]);
        if out.len() > max {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        at += n as u64;
    }
}

/// Several strings at once: one process_vm_readv for the common case (each
/// string shorter than 256 bytes and not crossing a page), the careful path
/// for the others.
pub fn read_cstrs(pid: i32, what: &[(u64, usize)]) -> io::Result<Vec<Option<Vec<u8>>>> {
    let mut bufs: Vec<Vec<u8>> = what
        .iter()
        .map(|(a, _)| {
            // Most strings are short: read a little first, the rest only if needed.
            let room = PAGE - (*a as usize % PAGE);
            vec![0u8; if *a == 0 { 0 } else { room.min(FIRST_READ) }]
        })
        .collect();
    let local: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr() as *mut _,
            iov_len: b.len(),
        })
        .collect();
    let remote: Vec<libc::iovec> = what
        .iter()
        .zip(bufs.iter())
        .map(|((a, _), b)| libc::iovec {
            iov_base: *a as *mut _,
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: `local` describes our own live buffers; the kernel checks `remote`.
    let n = unsafe {
        libc::process_vm_readv(
            pid,
            local.as_ptr(),
            local.len() as libc::c_ulong,
            remote.as_ptr(),
            remote.len() as libc::c_ulong,
            0,
        )
    };
    let mut got = if n < 0 { 0 } else { n as usize };
    let mut out = Vec::with_capacity(what.len());
    for ((addr, max), b) in what.iter().zip(bufs.iter()) {
        if *addr == 0 {
            out.push(None);
            continue;
        }
        let have = got.min(b.len());
        got -= have;
        match b[..have].iter().position(|c| *c == 0) {
            Some(end) if end <= *max => out.push(Some(b[..end].to_vec())),
            _ => out.push(read_cstr(pid, *addr, *max)?),
        }
    }
    Ok(out)
}

/// Exactly `len` bytes.
pub fn read_bytes(pid: i32, addr: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let n = read_at(pid, addr, &mut buf)?;
    if n != len {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_strings_across_pages_from_our_own_memory() {
        let pid = std::process::id() as i32;
        let mut big = vec![b'a'; 3 * PAGE];
        big.push(0);
        let s = read_cstr(pid, big.as_ptr() as u64 + 7, 4 * PAGE)
            .unwrap()
            .unwrap();
        assert_eq!(s.len(), 3 * PAGE - 7);
        assert!(read_cstr(pid, big.as_ptr() as u64, 10).is_err());
        assert_eq!(read_cstr(pid, 0, 10).unwrap(), None);
        let a = b"first\0".to_vec();
        let v = read_cstrs(
            pid,
            &[
                (a.as_ptr() as u64, 64),
                (0, 64),
                (big.as_ptr() as u64, 4 * PAGE),
            ],
        )
        .unwrap();
        assert_eq!(v[0].as_deref(), Some(&b"first"[..]));
        assert_eq!(v[1], None);
        assert_eq!(v[2].as_ref().map(|x| x.len()), Some(3 * PAGE));
    }
}
