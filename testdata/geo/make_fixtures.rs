//! Writes the GeoIP test databases into testdata/geo/:
//!
//!     cargo run --example make-geo-fixtures
//!
//! No real MaxMind database can be downloaded for tests; these small files
//! have known networks (listed in fixtures.rs).

#[path = "mmdb_writer.rs"]
mod mmdb_writer;

#[path = "fixtures.rs"]
mod fixtures;

fn main() -> std::io::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/geo");
    for (name, db) in fixtures::all() {
        let path = dir.join(name);
        std::fs::write(&path, db.to_bytes())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
