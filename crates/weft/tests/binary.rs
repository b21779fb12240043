//! The `weft` binary as built: its relative relocations are packed
//! (`DT_RELR`) where the C library that loads it applies them, and only there.

use std::process::Command;

fn readelf(flag: &str) -> String {
    let output = Command::new("readelf")
        .args([flag, "--wide", env!("CARGO_BIN_EXE_weft")])
        .output()
        .expect("readelf (binutils, which the C linker needs too)");
    assert!(output.status.success(), "readelf {flag} failed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// This machine's glibc as (major, minor), from `getconf GNU_LIBC_VERSION`.
fn glibc() -> Option<(u32, u32)> {
    let output = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let (major, minor) = text.trim().strip_prefix("glibc ")?.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The size in bytes of the named section, as `readelf -S` lists it.
fn section_size(sections: &str, name: &str) -> Option<u64> {
    sections.lines().find_map(|line| {
        let fields: Vec<&str> = line
            .split(|c: char| c == ']' || c.is_whitespace())
            .filter(|field| !field.is_empty())
            .collect();
        let at = fields.iter().position(|field| *field == name)?;
        // Name, Type, Address, Off, Size.
        u64::from_str_radix(fields.get(at + 4)?, 16).ok()
    })
}

#[test]
fn relative_relocations_are_packed_where_glibc_applies_them() {
    let Some(version) = glibc() else {
        eprintln!("skipped: not a glibc system (getconf GNU_LIBC_VERSION answered nothing)");
        return;
    };
    let dynamic = readelf("--dynamic");
    let sections = readelf("--section-headers");
    let rela = section_size(&sections, ".rela.dyn").unwrap_or(0);
    if version >= (2, 36) {
        assert!(
            dynamic.contains("(RELR)"),
            "glibc {version:?} applies DT_RELR but the binary has none:\n{dynamic}"
        );
        assert!(
            readelf("--version-info").contains("GLIBC_ABI_DT_RELR"),
            "a binary with DT_RELR must require GLIBC_ABI_DT_RELR, so an older glibc refuses it"
        );
        // Unpacked, the ~56,000 relative relocations take 1.3 MB here.
        assert!(
            rela < 256 * 1024,
            ".rela.dyn still holds {rela} bytes: the relative relocations were not packed"
        );
    } else {
        assert!(
            !dynamic.contains("(RELR)"),
            "glibc {version:?} does not apply DT_RELR, yet the binary uses it"
        );
    }
}
