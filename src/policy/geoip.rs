//! The `geoip:` section and the facts networks name: databases are opened
//! and checked here, at load (fail closed), and every fact is validated
//! against the database that must answer it.

use std::path::Path;

use super::compile::Cx;
use super::raw::{RawCountry, RawDb, RawGeoip, RawNetworkMap, S};
use crate::engine::facts::FactTest;
use crate::geo::{
    AnonymousFlags, CONNECTION_TYPES, DbKind, GeoDb, GeoSet, GeoSlot, is_country_code,
};

impl Cx<'_, '_> {
    /// Opens every configured database; each failure is an error located at
    /// its entry.
    pub(super) fn geoip(&mut self, raw: Option<&S<RawGeoip>>, base: &Path) -> GeoSet {
        let Some(raw) = raw else {
            return GeoSet::default();
        };
        let g = &raw.value;
        let mut open = |kind: DbKind, entry: &Option<S<RawDb>>| -> Option<GeoSlot> {
            let entry = entry.as_ref()?;
            let path = base.join(&entry.value.path);
            match GeoDb::open(kind, &path, entry.value.field.as_deref()) {
                Ok(db) => Some(GeoSlot::new(db, entry.value.field.clone())),
                Err(e) => {
                    let help = match kind {
                        DbKind::Country => {
                            "give a GeoIP2/GeoLite2 Country or City database, or name the field with { path, field }"
                        }
                        DbKind::Asn => {
                            "give a GeoLite2 ASN (or GeoIP2 ISP) database, or name the field with { path, field }"
                        }
                        DbKind::ConnectionType => "give a GeoIP2 Connection Type database",
                        DbKind::AnonymousIp => "give a GeoIP2 Anonymous IP database",
                    };
                    self.error(&entry.referenced, e.to_string(), Some(help.into()));
                    None
                }
            }
        };
        let set = GeoSet {
            country: open(DbKind::Country, &g.country),
            asn: open(DbKind::Asn, &g.asn),
            connection_type: open(DbKind::ConnectionType, &g.connection_type),
            anonymous_ip: open(DbKind::AnonymousIp, &g.anonymous_ip),
            log_on_allow: g.log_geo_on_allow,
            check_interval: crate::geo::DEFAULT_CHECK_INTERVAL,
        };
        let check_interval = self.duration(
            g.check_interval.as_ref(),
            crate::geo::DEFAULT_CHECK_INTERVAL,
        );
        GeoSet {
            check_interval,
            ..set
        }
    }

    /// The fact tests of one network, each checked against its database.
    pub(super) fn fact_tests(
        &mut self,
        network: &str,
        m: &RawNetworkMap,
        configured: &dyn Fn(DbKind) -> bool,
    ) -> Vec<FactTest> {
        let mut tests = Vec::new();
        let need = |cx: &mut Self, kind: DbKind, loc: &serde_saphyr::Location| -> bool {
            if configured(kind) {
                return true;
            }
            let key = match kind {
                DbKind::AnonymousIp => "anonymous_ip",
                k => k.name(),
            };
            cx.error(
                loc,
                format!(
                    "network '{network}' uses {} facts, but no geoip.{key} database is configured",
                    kind.name()
                ),
                Some(format!(
                    "add 'geoip: {{ {key}: /var/lib/GeoIP/<database>.mmdb }}'"
                )),
            );
            false
        };
        if let Some(c) = &m.country
            && need(self, DbKind::Country, &c.referenced)
        {
            let (list, not) = match &c.value {
                RawCountry::AnyOf(l) => (l, false),
                RawCountry::NoneOf(l) => (l, true),
            };
            let mut codes = Vec::with_capacity(list.len());
            for code in list {
                let upper = code.value.to_ascii_uppercase();
                if upper == code.value && is_country_code(&code.value) {
                    let b = code.value.as_bytes();
                    codes.push([b[0], b[1]]);
                } else {
                    let help = if is_country_code(&upper) {
                        format!("country codes are upper case: write '{upper}'")
                    } else {
                        "use ISO 3166-1 alpha-2 codes, such as JP or DE".to_string()
                    };
                    self.error(
                        &code.referenced,
                        format!(
                            "network '{network}': '{}' is not a country code",
                            code.value
                        ),
                        Some(help),
                    );
                }
            }
            tests.push(FactTest::Country { codes, not });
        }
        if let Some(a) = &m.asn
            && need(self, DbKind::Asn, &a.referenced)
        {
            tests.push(FactTest::Asn(a.value.iter().map(|n| n.value).collect()));
        }
        if let Some(t) = &m.connection_type
            && need(self, DbKind::ConnectionType, &t.referenced)
        {
            let mut list: Vec<Box<str>> = Vec::new();
            for v in &t.value {
                if CONNECTION_TYPES.contains(&v.value.as_str()) {
                    list.push(v.value.as_str().into());
                } else {
                    let help = super::diagnostics::did_you_mean(&v.value, CONNECTION_TYPES)
                        .unwrap_or_else(|| {
                            format!("MaxMind's types are {}", CONNECTION_TYPES.join(", "))
                        });
                    self.error(
                        &v.referenced,
                        format!(
                            "network '{network}': '{}' is not a connection type",
                            v.value
                        ),
                        Some(help),
                    );
                }
            }
            tests.push(FactTest::ConnectionType(list));
        }
        if let Some(a) = &m.anonymous
            && need(self, DbKind::AnonymousIp, &a.referenced)
        {
            let mut mask = AnonymousFlags::default();
            for v in &a.value {
                match AnonymousFlags::named(&v.value) {
                    Some(f) => mask = mask.union(f),
                    None => {
                        let names: Vec<&str> = crate::geo::ANONYMOUS_FLAGS
                            .iter()
                            .map(|(n, _)| *n)
                            .collect();
                        let help =
                            super::diagnostics::did_you_mean(&v.value, names.iter().copied())
                                .unwrap_or_else(|| format!("the flags are {}", names.join(", ")));
                        self.error(
                            &v.referenced,
                            format!(
                                "network '{network}': '{}' is not an anonymous-IP flag",
                                v.value
                            ),
                            Some(help),
                        );
                    }
                }
            }
            tests.push(FactTest::Anonymous(mask));
        }
        tests
    }
}
