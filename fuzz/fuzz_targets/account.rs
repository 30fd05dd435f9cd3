//! The account a sign-in names, read from a hostile body: any bytes in any
//! of the three formats never panic; forms and multipart bodies built from
//! known fields give back exactly the field's one value, or `ambiguous`
//! when it has two; and case folding is idempotent (Unicode's guarantee,
//! on which "one account, whatever its case" rests).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netwarden::engine::account::{
    AccountSpec, NoAccount, extract, fold, format, from_query, names_field,
};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

const BOUNDARY: &str = "XyZzy0";

/// What the fields say the account is.
fn expected(fields: &[(String, String)]) -> Result<String, NoAccount> {
    let mut values: Vec<&str> = fields
        .iter()
        // Every name a parser family reads as the field is the field
        // (PHP's mangling, ASP.NET's case, list markers: issue 22).
        .filter(|(n, _)| names_field(n, "username"))
        .map(|(_, v)| v.as_str())
        .collect();
    values.dedup();
    let mut distinct = values.clone();
    distinct.sort_unstable();
    distinct.dedup();
    match distinct.as_slice() {
        [] => Err(NoAccount::Missing),
        [one] if one.trim().is_empty() => Err(NoAccount::Missing),
        [one] => Ok((*one).to_string()),
        _ => Err(NoAccount::Ambiguous),
    }
}

fuzz_target!(|input: (Vec<(String, String)>, &[u8])| {
    let (fields, raw) = input;
    let spec = AccountSpec {
        form: Some("username".into()),
        json: Some("/user".into()),
        max_body: 16 * 1024,
    };
    // The query string: never a panic, and a name read is never blank.
    if let Ok(name) = from_query(&spec, raw) {
        assert!(!name.trim().is_empty());
    }
    let ct_multi = format!("multipart/form-data; boundary={BOUNDARY}");
    for ct in [
        "application/x-www-form-urlencoded",
        ct_multi.as_str(),
        "application/json",
    ] {
        let f = format(&spec, Some(ct.as_bytes())).expect("a format the spec reads");
        if let Ok(name) = extract(&spec, f, raw) {
            assert!(!name.trim().is_empty());
            let once = fold(&name);
            assert_eq!(fold(&once), once, "folding is idempotent");
        }
    }

    // Forms built from the fields.
    let form: Vec<String> = fields
        .iter()
        .map(|(n, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(n, NON_ALPHANUMERIC),
                utf8_percent_encode(v, NON_ALPHANUMERIC)
            )
        })
        .collect();
    let body = form.join("&");
    let f = format(&spec, Some(b"application/x-www-form-urlencoded")).expect("form");
    let got = extract(&spec, f, body.as_bytes()).map(|c| c.into_owned());
    assert_eq!(got, expected(&fields), "{body:?}");

    // Multipart bodies built from the fields whose names and values a
    // multipart body can carry as they are.
    let carried: Vec<(String, String)> = fields
        .into_iter()
        .filter(|(n, v)| {
            !n.contains(['"', '\\', '\r', '\n', ';'])
                && !n.is_empty()
                && n.trim() == n
                && !v.contains("\r\n--")
                && !v.contains(BOUNDARY)
        })
        .collect();
    let mut body = String::new();
    for (n, v) in &carried {
        body.push_str(&format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{v}\r\n"
        ));
    }
    body.push_str(&format!("--{BOUNDARY}--\r\n"));
    let f = format(&spec, Some(ct_multi.as_bytes())).expect("multipart");
    let got = extract(&spec, f, body.as_bytes()).map(|c| c.into_owned());
    if carried.is_empty() {
        // Only the close delimiter: nothing names the account.
        assert!(got.is_err(), "{body:?}");
    } else {
        assert_eq!(got, expected(&carried), "{body:?}");
    }
});
