//! A published list in CSV (any bytes), with a column and a filter the
//! fuzzer chooses: never a panic; what parses is canonical and reads back
//! the same from a one-column CSV of its prefixes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netwarden::lists::format::{Column, Csv, Filter};
use netwarden::lists::{Format, parse};

fuzz_target!(|input: (&[u8], u8, bool, Option<(u8, String)>)| {
    let (body, column, header, filter) = input;
    let spec = Csv {
        column: Column::Index(usize::from(column % 8) + 1),
        header,
        filters: filter
            .map(|(c, value)| Filter {
                key: Column::Index(usize::from(c % 8) + 1),
                values: vec![value],
            })
            .into_iter()
            .collect(),
    };
    let Ok(parsed) = parse(&Format::Csv(spec), body) else {
        return;
    };
    let text: String = parsed.prefixes.iter().map(|n| format!("{n}\n")).collect();
    let plain = Csv {
        column: Column::Index(1),
        header: false,
        filters: Vec::new(),
    };
    let round = parse(&Format::Csv(plain), text.as_bytes()).expect("a column of prefixes parses");
    assert_eq!(round.prefixes, parsed.prefixes);
});
