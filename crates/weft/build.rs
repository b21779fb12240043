//! Links the `weft` binary with packed relative relocations (`DT_RELR`)
//! where the C library that will load it understands them.
//!
//! A position-independent binary of this size carries ~56,000 relative
//! relocations. As classic `RELA` entries they take 1.3 MB, which the dynamic
//! loader reads in full at every start, so every node process kept those pages
//! resident; packed, they take 16 KB. glibc applies `DT_RELR` from 2.36 on
//! (the linker then records a `GLIBC_ABI_DT_RELR` version requirement, so an
//! older glibc refuses the binary with a clear message instead of running it
//! unrelocated). The flag is passed only when building for the machine the
//! build runs on and its glibc is 2.36 or newer; anywhere else the binary is
//! linked as before.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if packed_relocations_supported() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

fn packed_relocations_supported() -> bool {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" {
        return false;
    }
    if var("HOST") != var("TARGET") {
        return false;
    }
    let Ok(output) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    glibc_at_least(&String::from_utf8_lossy(&output.stdout), (2, 36))
}

/// Whether `getconf GNU_LIBC_VERSION`'s answer ("glibc 2.36") names at least
/// `wanted`.
fn glibc_at_least(answer: &str, wanted: (u32, u32)) -> bool {
    let Some(version) = answer.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|part| part.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= wanted,
        _ => false,
    }
}
