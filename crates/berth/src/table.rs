//! Plain aligned columns, as `docker ps` prints them.

use comfy_table::{presets::NOTHING, Table};

pub fn print(header: &[&str], rows: Vec<Vec<String>>) {
    let mut t = Table::new();
    t.load_preset(NOTHING).set_header(header.to_vec());
    for r in rows {
        t.add_row(r);
    }
    for line in t.to_string().lines() {
        println!("{}", line.trim());
    }
}
