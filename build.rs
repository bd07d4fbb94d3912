//! Link options for the `tarn` binary only (dependencies are unaffected).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TARN_PIE");
    // Link `tarn` as a position-dependent executable on Linux. As a PIE, the dynamic loader
    // has to apply ~300,000 relocations (DataFusion's and Arrow's vtables) and copy the
    // pages they live in before `main` runs: 6 ms of every command (8.0 ms vs 1.8 ms for
    // `tarn --version`, see docs/performance.md). The cost: the executable's own code is
    // not at a random address (libraries, heap and stacks still are). `TARN_PIE=1` at build
    // time keeps the PIE default.
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    if linux && std::env::var_os("TARN_PIE").is_none_or(|v| v != "1") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
