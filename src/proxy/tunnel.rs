//! An upgraded connection (WebSocket): bytes copied both ways between the
//! client and the console, inside the same limits as any connection. The
//! tunnel keeps its connection's slot in `max_connections` and the
//! server's wait on shutdown ([`super::listener::ConnSlot`]), is counted
//! in `netwarden_open_tunnels`, is closed after `timeouts.tunnel_idle`
//! with no byte moving, and is closed when the server starts draining.
//!
//! A tunnel outlives the request that opened it, so it is decided again
//! every [`RECHECK`] against the running policy at the current instant: a
//! grant that expired, a `when:` window that closed, or a reload that
//! denies its client closes it (`tunnel_closed`, reason `no_longer_allowed`).

use std::sync::Arc;
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::listener::{Activity, OpenConnection, Tracked, TunnelCtx};
use super::recent::Sample;
use super::service::Shared;

/// How often an open tunnel is decided again: a grant's end cuts it within
/// this, at the cost of one decision per tunnel per period.
pub const RECHECK: Duration = Duration::from_secs(2);

/// Whether the request that opened the tunnel would still be forwarded
/// (through a load balancer still trusted, if it came by PROXY protocol),
/// and its protocol is still one the policy lets clients upgrade to.
fn still_allowed(shared: &Shared, opened: &Sample, protocols: &[u8]) -> bool {
    let policy = shared.policy.load();
    super::recent::denied_by(policy.ruleset(), opened, crate::clock::now()).is_none()
        && protocols
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
            .filter(|p| !p.is_empty())
            .all(|p| policy.server().upgrades.allows(p))
}

/// Waits for both sides to hand over their connections, then copies.
pub async fn run(
    client: OnUpgrade,
    upstream: OnUpgrade,
    ctx: Arc<TunnelCtx>,
    shared: Arc<Shared>,
    opened: Sample,
    protocols: http::HeaderValue,
    request_id: String,
) {
    let metrics = shared.metrics.clone();
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
        _ = async {
            let mut tick = tokio::time::interval(RECHECK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if !still_allowed(&shared, &opened, protocols.as_bytes()) {
                    return;
                }
            }
        } => "no_longer_allowed",
    };
    if why == "no_longer_allowed" {
        tracing::warn!(
            event = "tunnel_closed",
            request_id,
            reason = why,
            "an open tunnel's request is no longer allowed (a grant or window ended, or the policy changed): closed"
        );
    } else {
        tracing::debug!(event = "tunnel_closed", request_id, reason = why);
    }
}
