//! `pages:` -> the languages netwarden's own pages speak, the company's
//! contact line in each, and per-language templates (plus
//! `server.block_page`, the template for every language without its own).
//! Templates are read here, at load and at every reload, so that a missing
//! file or a template without the placeholders a person needs is a located
//! error, never a broken page at the moment someone is blocked.

use std::path::Path;
use std::sync::Arc;

use super::compile::Cx;
use super::raw::{RawPages, S};

/// The languages built in: every page's words exist in each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lang {
    En,
    Ja,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Ja];

    /// The BCP 47 tag (`Content-Language`, `<html lang>`).
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }

    /// A built-in language by its primary tag, any case.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        Lang::ALL
            .into_iter()
            .find(|l| l.tag().eq_ignore_ascii_case(tag))
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Placeholders a template must have: what happened, and the id a person
/// gives IT.
pub const REQUIRED_PLACEHOLDERS: [&str; 2] = ["message", "request_id"];

/// Fills `template`'s `{{name}}` placeholders in one pass: a value is never
/// read again, so request data that looks like a placeholder stays text.
/// Unknown names are left as they are.
pub fn fill(template: &str, mut value: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end)
                if after[..end]
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_') =>
            {
                match value(&after[..end]) {
                    Some(v) => out.push_str(&v),
                    None => out.push_str(&rest[start..start + 2 + end + 2]),
                }
                rest = &after[end + 2..];
            }
            _ => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every placeholder a page can fill.
pub const PLACEHOLDERS: [&str; 11] = [
    "lang",
    "title",
    "message",
    "advice",
    "contact",
    "client_ip",
    "request_id",
    "label_what_to_do",
    "label_your_address",
    "label_request_id",
    "whoami_link",
];

/// The compiled `pages:` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PagesSettings {
    /// Languages offered, in the policy's order of preference.
    pub offered: Vec<Lang>,
    /// When the client accepts none of them (or says nothing).
    pub fallback: Lang,
    pub(crate) contact: [Option<Arc<str>>; 2],
    pub(crate) templates: [Option<Arc<str>>; 2],
}

impl Default for PagesSettings {
    fn default() -> Self {
        Self {
            offered: Lang::ALL.to_vec(),
            fallback: Lang::En,
            contact: [None, None],
            templates: [None, None],
        }
    }
}

impl PagesSettings {
    /// Built-in words in `offered`, no contact line or template.
    pub fn offering(offered: Vec<Lang>, fallback: Lang) -> Self {
        Self {
            offered,
            fallback,
            ..Self::default()
        }
    }

    /// The company's line on whom to contact, in `lang`.
    pub fn contact(&self, lang: Lang) -> Option<&str> {
        self.contact[lang.index()].as_deref()
    }

    /// The template for `lang`, if the policy gives one.
    pub fn template(&self, lang: Lang) -> Option<&str> {
        self.templates[lang.index()].as_deref()
    }
}

impl Cx<'_, '_> {
    /// Reads a template file (counted among the policy's files, so an edit
    /// to it reloads the policy) and checks its placeholders.
    fn template(&mut self, at: &S<String>, base: &Path, what: &str) -> Option<Arc<str>> {
        let path = base.join(&at.value);
        self.sources.push(path.clone());
        match crate::files::read_to_string(&path, crate::files::MAX_TEXT_BYTES) {
            Ok(text) => {
                self.digest.update(path.as_os_str().as_encoded_bytes());
                self.digest.update(text.as_bytes());
                // Read the way pages are filled: `{{{message}}}` or
                // `{{ message }}` is not the placeholder.
                let mut found: Vec<String> = Vec::new();
                fill(&text, |name| {
                    found.push(name.to_string());
                    None
                });
                let unknown: Vec<&String> = found
                    .iter()
                    .filter(|n| !PLACEHOLDERS.contains(&n.as_str()))
                    .collect();
                if let Some(n) = unknown.first() {
                    self.warn(
                        &at.referenced,
                        format!(
                            "{what}: '{{{{{n}}}}}' is not a placeholder; it stays as it is written"
                        ),
                        Some(format!(
                            "placeholders: {}",
                            PLACEHOLDERS.map(|p| format!("{{{{{p}}}}}")).join(", ")
                        )),
                    );
                }
                let missing: Vec<String> = REQUIRED_PLACEHOLDERS
                    .into_iter()
                    .filter(|p| !found.iter().any(|f| f == p))
                    .map(|p| format!("{{{{{p}}}}}"))
                    .collect();
                if !missing.is_empty() {
                    self.error(
                        &at.referenced,
                        format!(
                            "{what} '{}' lacks {}",
                            path.display(),
                            missing.join(" and ")
                        ),
                        Some("a page must say what happened ({{message}}) and give the request id people tell IT ({{request_id}}); docs/policy.md lists every placeholder".into()),
                    );
                    return None;
                }
                Some(text.into())
            }
            Err(e) => {
                self.error(
                    &at.referenced,
                    format!("{what}: cannot read '{}': {e}", path.display()),
                    Some("paths are relative to the policy file's directory".into()),
                );
                None
            }
        }
    }

    fn lang(&mut self, tag: &S<String>, what: &str) -> Option<Lang> {
        let lang = Lang::from_tag(&tag.value);
        if lang.is_none() {
            let built_in: Vec<&str> = Lang::ALL.iter().map(|l| l.tag()).collect();
            self.error(
                &tag.referenced,
                format!("{what}: '{}' is not a language netwarden has", tag.value),
                Some(format!(
                    "the pages are written in {}; a template of your own can say anything, under one of these",
                    built_in.join(" and ")
                )),
            );
        }
        lang
    }

    pub(super) fn pages(
        &mut self,
        raw: Option<&S<RawPages>>,
        block_page: Option<&S<String>>,
        base: &Path,
    ) -> PagesSettings {
        let mut out = PagesSettings::default();
        // `server.block_page`: every language's template unless it has one.
        if let Some(p) = block_page
            && let Some(t) = self.template(p, base, "server.block_page")
        {
            out.templates = [Some(t.clone()), Some(t)];
        }
        let Some(raw) = raw else {
            return out;
        };
        let r = &raw.value;
        if let Some(list) = &r.languages {
            let mut offered = Vec::new();
            for tag in &list.value {
                if let Some(l) = self.lang(tag, "pages.languages") {
                    if offered.contains(&l) {
                        self.warn(
                            &tag.referenced,
                            format!("pages.languages: '{}' is listed twice", tag.value),
                            Some("remove the second one".into()),
                        );
                    } else {
                        offered.push(l);
                    }
                }
            }
            if list.value.is_empty() {
                self.error(
                    &list.referenced,
                    "pages.languages is empty".into(),
                    Some("list at least one language, such as [ja, en]".into()),
                );
            }
            if !offered.is_empty() {
                out.offered = offered;
            }
        }
        out.fallback = match &r.fallback {
            Some(f) => match self.lang(f, "pages.fallback") {
                Some(l) if !out.offered.contains(&l) => {
                    self.error(
                        &f.referenced,
                        format!("pages.fallback '{}' is not in pages.languages", f.value),
                        Some("add it to languages, or pick one of them".into()),
                    );
                    out.offered[0]
                }
                Some(l) => l,
                None => out.offered[0],
            },
            None => out.offered[0],
        };
        for (tag, line) in &r.contact.0 {
            if let Some(l) = self.lang(tag, "pages.contact") {
                let text = line.value.trim();
                let odd = |c: char| {
                    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
                };
                if text.is_empty() || text.len() > 500 || text.chars().any(odd) {
                    self.error(
                        &line.referenced,
                        format!(
                            "pages.contact.{}: one line of at most 500 bytes, without control or direction-changing characters",
                            l.tag()
                        ),
                        Some(
                            "say whom to contact and how, such as \"情報システム部 内線1234 まで\""
                                .into(),
                        ),
                    );
                    continue;
                }
                out.contact[l.index()] = Some(text.into());
            }
        }
        for (tag, file) in &r.templates.0 {
            if let Some(l) = self.lang(tag, "pages.templates")
                && let Some(t) = self.template(file, base, &format!("pages.templates.{}", l.tag()))
            {
                out.templates[l.index()] = Some(t);
            }
        }
        for l in Lang::ALL {
            let configured = out.contact[l.index()].is_some()
                || r.templates
                    .0
                    .iter()
                    .any(|(t, _)| Lang::from_tag(&t.value) == Some(l));
            if configured && !out.offered.contains(&l) {
                self.warn(
                    &raw.referenced,
                    format!(
                        "pages: '{}' has a contact line or template but is not offered",
                        l.tag()
                    ),
                    Some("add it to pages.languages, or remove its lines".into()),
                );
            }
        }
        out
    }
}
