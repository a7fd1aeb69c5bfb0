//! The sockets of systemd's readiness protocol: one datagram socket per
//! `sd_notify` service, with SO_PASSCRED so that every datagram carries
//! its sender's pid, read without ever blocking.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};

use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, UnixCredentials,
};

use crate::core::notify::MAX_DATAGRAM;

/// A bound notify socket and the `NOTIFY_SOCKET` value that names it.
pub struct Bound {
    pub fd: OwnedFd,
    pub address: String,
}

/// Binds `dir/NAME.sock` (made writable for `owner`), or, when that cannot
/// be (no writable runtime dir), an abstract socket `@rinit-PID-NAME`, which
/// needs no file system; the sender check is the same for both.
pub fn bind(dir: &Path, name: &str, owner: Option<(u32, u32)>) -> std::io::Result<Bound> {
    match bind_path(&dir.join(format!("{name}.sock")), owner) {
        Ok(b) => Ok(b),
        Err(e) => {
            let abstract_name = format!("rinit-{}-{name}", std::process::id());
            let addr = SocketAddr::from_abstract_name(abstract_name.as_bytes())?;
            let sock = UnixDatagram::bind_addr(&addr)?;
            log::warn!(
                "{name}: cannot make its notify socket in {}: {e}; using the abstract socket @{abstract_name}",
                dir.display()
            );
            finish(sock, format!("@{abstract_name}"))
        }
    }
}

fn bind_path(path: &PathBuf, owner: Option<(u32, u32)>) -> std::io::Result<Bound> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A socket file left by an earlier rinit: nothing else binds here.
    if std::fs::symlink_metadata(path).is_ok() {
        std::fs::remove_file(path)?;
    }
    let sock = UnixDatagram::bind(path)?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    }
    let address = path.to_string_lossy().into_owned();
    finish(sock, address)
}

fn finish(sock: UnixDatagram, address: String) -> std::io::Result<Bound> {
    sock.set_nonblocking(true)?;
    setsockopt(&sock, sockopt::PassCred, &true).map_err(std::io::Error::from)?;
    Ok(Bound {
        fd: OwnedFd::from(sock),
        address,
    })
}

/// One read from a notify socket.
pub enum Received {
    /// Nothing (more) to read now.
    Empty,
    /// A datagram within the size bound, with its sender's pid.
    Datagram { pid: Option<i32>, bytes: Vec<u8> },
    /// A datagram over MAX_DATAGRAM bytes (or a failed read): ignored.
    Unreadable,
}

pub fn receive(fd: &OwnedFd) -> Received {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    // Room for the credentials only: descriptors a sender attaches find no
    // space, so the kernel installs none of them into PID 1.
    let mut cmsg = nix::cmsg_space!(UnixCredentials);
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_TRUNC;
    let (len, truncated, pid) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<()>(fd.as_raw_fd(), &mut iov, Some(&mut cmsg), flags) {
            Ok(m) => m,
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {
                return Received::Empty
            }
            Err(_) => return Received::Unreadable,
        };
        let mut pid = None;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                match c {
                    ControlMessageOwned::ScmCredentials(cred) => pid = Some(cred.pid()),
                    ControlMessageOwned::ScmRights(fds) => {
                        for fd in fds {
                            let _ = nix::unistd::close(fd);
                        }
                    }
                    _ => {}
                }
            }
        }
        // With MSG_TRUNC, `bytes` is the datagram's real length.
        (msg.bytes, msg.bytes > MAX_DATAGRAM, pid)
    };
    if truncated {
        return Received::Unreadable;
    }
    buf.truncate(len);
    Received::Datagram { pid, bytes: buf }
}

/// rinit's own `NOTIFY_SOCKET`, when whoever started it gave one: a path
/// or `@abstract` name. Sends never block; a send that fails is dropped
/// (the listener may be gone), logged once.
pub struct Client {
    sock: UnixDatagram,
    addr: SocketAddr,
    warned: bool,
}

impl Client {
    pub fn from_env() -> Option<Client> {
        let value = std::env::var_os("NOTIFY_SOCKET")?;
        let text = value.to_string_lossy();
        let addr = match text.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
            None => SocketAddr::from_pathname(Path::new(&*text)),
        };
        let made = addr.and_then(|a| UnixDatagram::unbound().map(|s| (s, a)));
        match made {
            Ok((sock, addr)) => {
                let _ = sock.set_nonblocking(true);
                Some(Client {
                    sock,
                    addr,
                    warned: false,
                })
            }
            Err(e) => {
                log::warn!("NOTIFY_SOCKET={text}: unusable ({e}); not notifying");
                None
            }
        }
    }

    pub fn send(&mut self, message: &str) {
        if let Err(e) = self.sock.send_to_addr(message.as_bytes(), &self.addr) {
            if !self.warned {
                self.warned = true;
                log::warn!("cannot notify NOTIFY_SOCKET ({e}); further failures are not logged");
            }
        }
    }
}
