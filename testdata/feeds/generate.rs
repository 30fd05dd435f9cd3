//! Lists of real publishers' size, in their formats, made on the spot (no
//! publisher is reachable from CI): iCloud Private Relay's egress ranges
//! (about 287,000 rows of CSV) and AWS's `ip-ranges.json` (about 9,000
//! IPv4 and 3,000 IPv6 prefixes). Shared by the benches and the tests
//! through `#[path]`.

/// `rows` lines as iCloud Private Relay writes them
/// (`prefix,country,region,city,`): a third IPv4 `/28`s, the rest IPv6
/// `/64`s, every one distinct.
pub fn icloud_csv(rows: usize) -> String {
    const PLACES: [&str; 4] = [
        "JP,JP-13,Tokyo",
        "JP,JP-27,Osaka",
        "GB,GB-EN,London",
        "US,US-CA,Los Angeles",
    ];
    let mut out = String::with_capacity(rows * 40);
    for i in 0..rows {
        let place = PLACES[i % PLACES.len()];
        if i % 3 == 0 {
            // Every other /28 (real lists are not one block), in three
            // /12s of 32,768 each: 172.224.0.0, 104.16.0.0, 146.64.0.0.
            let n = (i / 3) as u32;
            let base = [0xACE0_0000u32, 0x6810_0000, 0x9240_0000][(n / 32_768) as usize % 3];
            let a = std::net::Ipv4Addr::from(base + (n % 32_768) * 32);
            out.push_str(&format!("{a}/28,{place},\n"));
        } else {
            let n = i as u128;
            let a = std::net::Ipv6Addr::from((0x2a02_26f7u128 << 96) | (n << 64));
            out.push_str(&format!("{a}/64,{place},\n"));
        }
    }
    out
}

/// AWS's `ip-ranges.json` with `v4` and `v6` prefixes, services and
/// regions spread over them.
pub fn aws_json(v4: usize, v6: usize) -> String {
    const REGIONS: [&str; 4] = ["ap-northeast-1", "ap-northeast-3", "us-east-1", "eu-west-1"];
    const SERVICES: [&str; 3] = ["AMAZON", "EC2", "CLOUDFRONT"];
    let mut out = String::from(
        "{\n  \"syncToken\": \"1796541197\",\n  \"createDate\": \"2026-12-07-07-53-17\",\n  \"prefixes\": [\n",
    );
    for i in 0..v4 {
        // Every other /24: distinct ranges, as AWS's are.
        let a = std::net::Ipv4Addr::from(0x0300_0000u32 + (i as u32) * 512);
        out.push_str(&format!(
            "    {{\n      \"ip_prefix\": \"{a}/24\",\n      \"region\": \"{}\",\n      \"service\": \"{}\",\n      \"network_border_group\": \"{}\"\n    }}{}\n",
            REGIONS[i % 4],
            SERVICES[i % 3],
            REGIONS[i % 4],
            if i + 1 < v4 { "," } else { "" }
        ));
    }
    out.push_str("  ],\n  \"ipv6_prefixes\": [\n");
    for i in 0..v6 {
        let a = std::net::Ipv6Addr::from((0x2600_1f00u128 << 96) | ((i as u128) << 80));
        out.push_str(&format!(
            "    {{\n      \"ipv6_prefix\": \"{a}/48\",\n      \"region\": \"{}\",\n      \"service\": \"{}\",\n      \"network_border_group\": \"{}\"\n    }}{}\n",
            REGIONS[i % 4],
            SERVICES[i % 3],
            REGIONS[i % 4],
            if i + 1 < v6 { "," } else { "" }
        ));
    }
    out.push_str("  ]\n}\n");
    out
}
