//! Untrusted rule text (the CLI sends it, the API accepts it): any input is parsed
//! or refused without panicking, and whatever parses prints as canonical text that
//! parses back to the same rule, and survives the JSON form unchanged.
#![no_main]

use atoll_core::rules::Rule;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let Ok(rule) = Rule::parse(text) else {
        return;
    };
    let printed = rule.to_string();
    assert_eq!(Rule::parse(&printed).as_ref(), Ok(&rule), "{printed}");
    assert_eq!(
        Rule::from_json(&rule.to_json()).as_ref(),
        Ok(&rule),
        "{printed}"
    );
});
