//! Run with `cargo run -p demo-gateway` (the gateway lands with issue 4).

fn main() {
    eprintln!("demo-gateway is not built yet: see issue 4");
    std::process::exit(2);
}
