//! Port checks before anything starts: every taken address is named with the part that wanted
//! it and the flag that moves it.

use std::net::{SocketAddr, TcpListener};

/// An address a part will listen on.
#[derive(Debug, Clone)]
pub struct PortClaim {
    pub addr: SocketAddr,
    /// Who listens there (`onboarding-api`, `collector OTLP/gRPC`).
    pub what: String,
    /// The flag that moves it (`--api-addr`).
    pub flag: String,
}

impl PortClaim {
    pub fn new(addr: SocketAddr, what: impl Into<String>, flag: impl Into<String>) -> Self {
        Self {
            addr,
            what: what.into(),
            flag: flag.into(),
        }
    }
}

/// Some addresses are taken; the message lists each with its flag.
#[derive(Debug, thiserror::Error)]
#[error("cannot start: {} address(es) taken\n{}", .taken.len(), .taken.join("\n"))]
pub struct PortsTaken {
    pub taken: Vec<String>,
}

/// Refuses when any claimed address cannot be bound now.
pub fn check_ports_free(claims: &[PortClaim]) -> Result<(), PortsTaken> {
    let taken: Vec<String> = claims
        .iter()
        .filter_map(|c| {
            TcpListener::bind(c.addr)
                .err()
                .map(|e| format!("  {} ({}): {e}; free it or pass {}", c.addr, c.what, c.flag))
        })
        .collect();
    if taken.is_empty() {
        Ok(())
    } else {
        Err(PortsTaken { taken })
    }
}
