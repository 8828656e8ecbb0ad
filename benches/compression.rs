//! Compression of the demo payloads: size and time per coding and level.
//! (Being written; see bench/README.md.)

fn main() {}
