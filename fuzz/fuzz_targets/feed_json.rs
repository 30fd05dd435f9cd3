//! A published list in JSON (any bytes), read with selectors the fuzzer
//! chooses: never a panic; what parses is canonical and reads back the same
//! from a plain JSON array of its prefixes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netwarden::lists::format::{Filter, Json};
use netwarden::lists::{Format, parse};

/// The body, item paths, fields, one filter (field, value), JSON lines.
type Input<'a> = (
    &'a [u8],
    Vec<String>,
    Vec<String>,
    Option<(String, String)>,
    bool,
);

fuzz_target!(|input: Input<'_>| {
    let (body, items, fields, filter, lines) = input;
    let spec = Json {
        items: items
            .iter()
            .take(4)
            .map(|p| p.split('.').map(str::to_string).collect())
            .collect(),
        fields: fields.into_iter().take(4).collect(),
        filters: filter
            .map(|(key, value)| Filter {
                key,
                values: vec![value],
            })
            .into_iter()
            .collect(),
        lines,
    };
    let Ok(parsed) = parse(&Format::Json(spec), body) else {
        return;
    };
    let array: Vec<String> = parsed.prefixes.iter().map(ToString::to_string).collect();
    let text = serde_json::to_string(&array).expect("strings serialize");
    let round = parse(&Format::Json(Json::default()), text.as_bytes()).expect("an array parses");
    assert_eq!(round.prefixes, parsed.prefixes);
});
