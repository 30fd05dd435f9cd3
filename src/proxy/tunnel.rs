//! An upgraded connection (WebSocket): bytes copied both ways between the
//! client and the console, inside the same limits as any connection. The
//! tunnel keeps its connection's slot in `max_connections` and the
//! server's wait on shutdown ([`super::listener::ConnSlot`]), is counted
//! in `netwarden_open_tunnels`, is closed after `timeouts.tunnel_idle`
//! with no byte moving, and is closed when the server starts draining.

use std::sync::Arc;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::listener::{Activity, OpenConnection, Tracked, TunnelCtx};

/// Waits for both sides to hand over their connections, then copies.
pub async fn run(
    client: OnUpgrade,
    upstream: OnUpgrade,
    ctx: Arc<TunnelCtx>,
    metrics: Arc<crate::telemetry::metrics::Metrics>,
    request_id: String,
) {
    let _counted = OpenConnection::on(&metrics.open_tunnels);
    let (c, u) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(event = "upgrade_failed", request_id, detail = %e);
            return;
        }
    };
    let activity = Arc::new(Activity::default());
    let mut c = Tracked::new(TokioIo::new(c), activity.clone());
    let mut u = TokioIo::new(u);
    let mut shutdown = ctx.shutdown.clone();
    let why = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut c, &mut u) => "closed",
        _ = activity.quiet_for(ctx.idle) => "idle_timeout",
        _ = async {
            // Closed once the server starts draining, well within the drain
            // time: a tunnel has no request boundary to finish at.
            while !*shutdown.borrow_and_update() {
                if shutdown.changed().await.is_err() {
                    return;
                }
            }
        } => "shutdown",
    };
    tracing::debug!(event = "tunnel_closed", request_id, reason = why);
}
