//! `client_ip:` -> how the client address is found: trusted proxies (by
//! network or CIDR), the forwarding header, and what the console is told.

use std::collections::HashMap;

use super::compile::Cx;
use super::diagnostics::did_you_mean;
use super::networks::{NetDraft, Resolve, looks_like_address};
use super::raw::{RawPolicy, S};
use crate::engine::client::{ClientIpConfig, ForwardHeader};
use crate::engine::prefix::RangeSet;

impl Cx<'_, '_> {
    pub(super) fn client_ip(
        &mut self,
        raw: &RawPolicy,
        drafts: &mut [NetDraft],
        index: &HashMap<String, usize>,
    ) -> Option<ClientIpConfig> {
        let Some(cfg) = &raw.client_ip else {
            return Some(ClientIpConfig::default());
        };
        let mut ok = true;
        let mut nets = Vec::new();
        let mut trusted = RangeSet::default();
        for entry in &cfg.value.trusted_proxies {
            // A network's name wins; anything else must be a CIDR or address.
            if !index.contains_key(&entry.value) && looks_like_address(&entry.value) {
                let mut located = Vec::new();
                self.cidr(entry, &mut located);
                ok &= !located.is_empty();
                let set = RangeSet::from_nets(located.iter().map(|(n, _)| n));
                self.warn_wide_trust(entry, &set);
                nets.extend(located.into_iter().map(|(n, _)| n));
            } else {
                match self.network_ref(entry, "client_ip.trusted_proxies", drafts, index) {
                    Some(r) => match &drafts[r.id].state {
                        Resolve::Done(Some((set, false))) => {
                            let set = set.clone();
                            self.warn_wide_trust(entry, &set);
                            trusted = trusted.union(&set);
                        }
                        Resolve::Done(Some((_, true))) => {
                            self.error(
                                &entry.referenced,
                                format!(
                                    "trusted proxy network '{}' is checked per request (it uses GeoIP facts or a grant with until:)",
                                    entry.value
                                ),
                                Some("trusted proxies must be given by address: use a network of plain CIDRs".into()),
                            );
                            ok = false;
                        }
                        _ => ok = false,
                    },
                    None => ok = false,
                }
            }
        }
        let header = match &cfg.value.header {
            None => ForwardHeader::default(),
            Some(h) => match ForwardHeader::parse(&h.value) {
                Some(h) => h,
                None => {
                    let help =
                        did_you_mean(&h.value, ["x-forwarded-for", "forwarded", "x-real-ip"])
                            .or_else(|| Some("use x-forwarded-for, forwarded or x-real-ip".into()));
                    self.error(
                        &h.referenced,
                        format!("unknown client_ip.header '{}'", h.value),
                        help,
                    );
                    ok = false;
                    ForwardHeader::default()
                }
            },
        };
        if cfg.value.trusted_proxies.is_empty() && cfg.value.header.is_some() {
            self.warn(
                &cfg.referenced,
                "client_ip.header has no effect without trusted_proxies".into(),
                Some("forwarding headers are believed only from trusted proxies".into()),
            );
        }
        ok.then(|| ClientIpConfig {
            trusted_proxies: trusted.union(&RangeSet::from_nets(&nets)),
            header,
        })
    }

    /// Every trusted address may say who the client is: a range wider than
    /// a /16 (IPv6: a /48) is a Pod network or a VPC, not load balancers,
    /// and lets any machine in it claim to be the office.
    fn warn_wide_trust(&mut self, entry: &S<String>, set: &RangeSet) {
        const WIDEST_V4: u64 = 1 << 16;
        const WIDEST_V6: u128 = 1 << 80;
        let (v4, v6) = set.address_count();
        let wide = match (v4 > WIDEST_V4, v6 > WIDEST_V6) {
            (true, _) => format!("{v4} IPv4 addresses, more than a /16"),
            (_, true) => "more IPv6 addresses than a /48".to_string(),
            _ => return,
        };
        self.warn(
            &entry.referenced,
            format!("trusted proxy '{}' covers {wide}", entry.value),
            Some(
                "every address here may set the client address (X-Forwarded-For, Forwarded, PROXY protocol); list only your load balancers' or ingress controllers' own addresses, not the Pod or VPC range they live in"
                    .into(),
            ),
        );
    }

    pub(super) fn forwarding(&mut self, raw: &RawPolicy) -> crate::policy::Forwarding {
        let Some(cfg) = &raw.client_ip else {
            return crate::policy::Forwarding::default();
        };
        let mut strip = Vec::new();
        for h in &cfg.value.strip_headers {
            match http::HeaderName::from_bytes(h.value.trim().to_ascii_lowercase().as_bytes()) {
                Ok(name) => strip.push(name),
                Err(_) => self.error(
                    &h.referenced,
                    format!(
                        "client_ip.strip_headers: '{}' is not a header name",
                        h.value
                    ),
                    Some("write header names without a colon or spaces, e.g. x-client-ip".into()),
                ),
            }
        }
        crate::policy::Forwarding {
            trust_proto: cfg.value.trust_proto,
            strip_headers: strip,
            self_check: cfg.value.self_check.unwrap_or(true),
        }
    }
}
