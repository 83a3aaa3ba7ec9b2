//! The SDK's dependency rule: it speaks the protocol and never links server code.

#[test]
fn the_sdk_depends_on_no_server_crate() {
    let manifest = include_str!("../Cargo.toml");
    let mut section = "";
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        if section != "[dependencies]" {
            continue;
        }
        let name = line.split(['.', '=', ' ']).next().unwrap_or_default();
        if name.starts_with("atoll") {
            assert_eq!(
                name, "atoll-protocol",
                "atoll-sdk must not depend on {name}"
            );
        }
    }
}
