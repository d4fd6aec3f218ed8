//! `wgcnn serve`'s arguments, and how --addr is read.

use std::path::PathBuf;

use wgcnn::serve::ServeOptions;

use super::tta::TtaArg;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// A model.safetensors written by `wgcnn train`.
    pub model: PathBuf,
    /// Address to listen on, HOST:PORT (a host name is resolved, e.g. localhost:9000).
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = resolve_addr)]
    pub addr: std::net::SocketAddr,
    /// The largest upload accepted, in MiB.
    #[arg(long, default_value_t = 10.0)]
    pub max_upload_mb: f64,
    /// The most requests run as one batch (1: no batching).
    #[arg(long, default_value_t = 16)]
    pub max_batch: usize,
    /// How long a request waits for others to batch with, in milliseconds.
    #[arg(long, default_value_t = 5.0)]
    pub max_wait_ms: f64,
    /// Images decoded at once (default: one per core).
    #[arg(long)]
    pub decode_threads: Option<usize>,
    /// The most memory the bodies of all uploads may hold together, in MiB: a body costs the bytes
    /// of it that have arrived, and when they would pass this, the upload idle longest is answered
    /// 503 to make room.
    #[arg(long, default_value_t = (ServeOptions::default().upload_budget_bytes >> 20) as f64)]
    pub upload_budget_mb: f64,
    /// Seconds a request's body may take to arrive (408 after).
    #[arg(long, default_value_t = ServeOptions::default().body_timeout.as_secs_f64())]
    pub body_timeout_s: f64,
    /// Connections held at once; a new client beyond them closes the connection idle longest.
    #[arg(long, default_value_t = ServeOptions::default().max_connections)]
    pub max_connections: usize,
    /// Seconds a connection may pass without a byte read or written before it is closed.
    #[arg(long, default_value_t = ServeOptions::default().idle_timeout.as_secs_f64())]
    pub idle_timeout_s: f64,
    #[command(flatten)]
    pub tta: TtaArg,
}

/// `HOST:PORT` as an address: an IP address as it is, a host name resolved (its first address).
fn resolve_addr(text: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let mut found = text.to_socket_addrs().map_err(|e| format!("{text:?} is not HOST:PORT that resolves: {e}"))?;
    found.next().ok_or_else(|| format!("{text:?} resolves to no address"))
}
