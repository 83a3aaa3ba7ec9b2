//! The SDK's dependency rule: it speaks the protocol and never links server code.
//! Besides `atoll-protocol` it may use `atoll-delta`, the patch format's
//! library, `atoll-envelope`, the gateway's payload encryption, and `atoll-ws`,
//! the WebSocket codec of the device connection (pure computation or a plain
//! client, no server crate below them), so that the server's side and the
//! device's side cannot drift apart.

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
            assert!(
                [
                    "atoll-protocol",
                    "atoll-delta",
                    "atoll-envelope",
                    "atoll-ws"
                ]
                .contains(&name),
                "atoll-sdk must not depend on {name}"
            );
        }
    }
}
