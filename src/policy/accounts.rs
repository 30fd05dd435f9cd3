//! `accounts:` -> named groups of account patterns, and the `accounts:`
//! condition of login rules that name them (issue 26: "agency accounts
//! sign in only from the agency's office").

use std::collections::HashMap;

use serde_saphyr::Location;

use super::compile::Cx;
use super::raw::{Entries, RawRule, S};
use crate::engine::accounts::AccountPattern;
use crate::engine::ruleset::{AccountGroup, GroupRef};

/// Methods that carry no body to read an account from: a rule with
/// `accounts:` would refuse every such request (RFC 9110 §9.3: GET, HEAD,
/// OPTIONS and TRACE have no defined body semantics; CONNECT opens a
/// tunnel).
const BODILESS: &[&str] = &["GET", "HEAD", "OPTIONS", "TRACE", "CONNECT"];

/// The groups, as compiled so far.
#[derive(Default)]
pub(super) struct Groups {
    pub(super) list: Vec<AccountGroup>,
    index: HashMap<String, usize>,
    used: Vec<bool>,
    at: Vec<Location>,
}

impl Groups {
    pub(super) fn take(&mut self) -> Vec<AccountGroup> {
        std::mem::take(&mut self.list)
    }
}

impl Cx<'_, '_> {
    /// `accounts:`: every group and pattern checked, every problem said.
    pub(super) fn account_groups(&mut self, raw: &Entries<S<String>, S<Vec<S<String>>>>) {
        for (name, patterns) in &raw.0 {
            self.check_name(name, "account group");
            if self.groups.index.contains_key(&name.value) {
                self.error(
                    &name.referenced,
                    format!("duplicate account group '{}'", name.value),
                    Some("merge the two lists".into()),
                );
                continue;
            }
            if patterns.value.is_empty() {
                self.error(
                    &patterns.referenced,
                    format!("account group '{}' is empty", name.value),
                    Some("list its accounts: [yamada@example.jp, agency-*@example.jp]".into()),
                );
            }
            let mut compiled = Vec::with_capacity(patterns.value.len());
            for p in &patterns.value {
                match AccountPattern::parse(&p.value) {
                    Ok(c) => compiled.push(c),
                    Err(e) => self.error(
                        &p.referenced,
                        format!("account group '{}': '{}' {e}", name.value, p.value),
                        Some("write an account (yamada@example.jp, campaign01) or a pattern with '*' in the local part or the domain (agency-*@example.jp)".into()),
                    ),
                }
            }
            let id = self.groups.list.len();
            self.groups.index.insert(name.value.clone(), id);
            self.groups.used.push(false);
            self.groups.at.push(name.referenced);
            self.groups.list.push(AccountGroup {
                name: name.value.as_str().into(),
                patterns: compiled,
            });
        }
    }

    /// A login rule's `accounts:`; `Err(())` when it is wrong (said).
    pub(super) fn rule_accounts(
        &mut self,
        rule: &RawRule,
        ctx: &str,
    ) -> Result<Option<Vec<GroupRef>>, ()> {
        let Some(list) = &rule.accounts else {
            return Ok(None);
        };
        let mut ok = true;
        if !rule.login {
            self.error(
                &list.referenced,
                format!("{ctx}: 'accounts' is only for login routes"),
                Some("add 'login: true': accounts are read from sign-ins".into()),
            );
            ok = false;
        }
        if rule.account.is_none() {
            self.error(
                &list.referenced,
                format!(
                    "{ctx}: 'accounts' needs 'account:' to say where the sign-in names the account"
                ),
                Some("add 'account: { form: username }' (or 'json: /username')".into()),
            );
            ok = false;
        }
        match &rule.methods {
            None => {
                self.error(
                    &list.referenced,
                    format!("{ctx}: a rule with 'accounts' must name its methods"),
                    Some("add 'methods: [POST]': a request without a body names no account, and this rule would refuse it (the sign-in page's GET too)".into()),
                );
                ok = false;
            }
            Some(methods) => {
                for m in &methods.value {
                    if BODILESS.contains(&m.value.to_ascii_uppercase().as_str()) {
                        self.error(
                            &m.referenced,
                            format!("{ctx}: a rule with 'accounts' cannot match {}", m.value),
                            Some("a request without a body names no account, and this rule would refuse it: give the sign-in page its own rule".into()),
                        );
                        ok = false;
                    }
                }
            }
        }
        if list.value.is_empty() {
            self.error(
                &list.referenced,
                format!("{ctx}: 'accounts' is empty"),
                Some("name at least one group from 'accounts:', or remove the key".into()),
            );
            ok = false;
        }
        let mut refs = Vec::with_capacity(list.value.len());
        for g in &list.value {
            match self.groups.index.get(&g.value) {
                Some(&id) => {
                    self.groups.used[id] = true;
                    refs.push(GroupRef {
                        id,
                        name: g.value.as_str().into(),
                    });
                }
                None => {
                    let near = super::diagnostics::closest(
                        &g.value,
                        self.groups.list.iter().map(|g| &*g.name),
                    )
                    .map(str::to_string);
                    // The group this misspells is meant to be used: no
                    // "not used" warning on top of this error.
                    if let Some(&id) = near.as_ref().and_then(|n| self.groups.index.get(n)) {
                        self.groups.used[id] = true;
                    }
                    let help = near
                        .map(|n| format!("did you mean '{n}'?"))
                        .unwrap_or_else(|| {
                            "groups of accounts are defined under 'accounts:'".into()
                        });
                    self.error(
                        &g.referenced,
                        format!("{ctx}: unknown account group '{}'", g.value),
                        Some(help),
                    );
                    ok = false;
                }
            }
        }
        if ok { Ok(Some(refs)) } else { Err(()) }
    }

    /// Groups no rule names.
    pub(super) fn unused_groups(&mut self) {
        for i in 0..self.groups.list.len() {
            if !self.groups.used[i] {
                let at = self.groups.at[i];
                let name = self.groups.list[i].name.clone();
                self.warn(
                    &at,
                    format!("account group '{name}' is not used by any rule"),
                    Some("name it in a login rule's 'accounts:', or remove it".into()),
                );
            }
        }
    }
}
