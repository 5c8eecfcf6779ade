//! systemd notifications (`Type=notify`): READY, STATUS, WATCHDOG, STOPPING.
//!
//! The protocol is one datagram per message to the socket named by
//! `NOTIFY_SOCKET` (a path, or an abstract name when it starts with `@`), so
//! it is written here rather than pulling in a crate. Without the variable
//! every call is a no-op.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// A connection to systemd's notification socket, if there is one.
pub struct Notifier {
    socket: Option<(UnixDatagram, String)>,
}

impl Notifier {
    /// From the environment (`NOTIFY_SOCKET`).
    pub fn from_env() -> Self {
        let socket = std::env::var("NOTIFY_SOCKET")
            .ok()
            .and_then(|path| UnixDatagram::unbound().ok().map(|s| (s, path)));
        Notifier { socket }
    }

    /// Send one message (`READY=1`, `STATUS=…`); errors are logged, not fatal.
    pub fn send(&self, message: &str) {
        let Some((socket, path)) = &self.socket else {
            return;
        };
        let result = if let Some(name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .and_then(|addr| socket.send_to_addr(message.as_bytes(), &addr))
        } else {
            socket.send_to(message.as_bytes(), path)
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "systemd notification failed");
        }
    }

    /// The watchdog interval systemd asks for (`WATCHDOG_USEC`), if any.
    pub fn watchdog_interval() -> Option<Duration> {
        let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok());
        if for_us.is_some_and(|pid| pid != std::process::id()) {
            return None;
        }
        (usec > 0).then(|| Duration::from_micros(usec))
    }
}
