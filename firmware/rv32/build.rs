//! Puts memory.x on the linker path and links with riscv-rt's and defmt's scripts; marks an
//! F-extension build.

fn main() {
    println!("cargo:rustc-link-search={}", env!("CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rustc-link-arg-bins=-Tmemory.x");
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    // The stream example names its target from this: stable rustc does not expose the F
    // extension as `target_feature = "f"` on riscv32imafc-unknown-none-elf.
    println!("cargo::rustc-check-cfg=cfg(hard_float)");
    if std::env::var("TARGET").is_ok_and(|t| t.starts_with("riscv32imafc")) {
        println!("cargo:rustc-cfg=hard_float");
    }
}
