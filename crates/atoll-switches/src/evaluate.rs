//! A published set compiled for evaluation: rules parsed once, so answering a
//! device is a walk over prepared conditions and no parsing or allocation per rule.

use crate::targeting::{self, CompiledRule};
use crate::Result;
use atoll_core::rules::Env;
use atoll_protocol::device::Platform;
use atoll_protocol::switches::{SampleDevice, Switch, SwitchValues};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

struct CompiledSwitch {
    key: String,
    platforms: Vec<Platform>,
    default: Value,
    rules: Vec<(CompiledRule, Value)>,
}

/// One app's published switches, ready to evaluate.
pub struct CompiledSet {
    /// The version they were published as.
    pub version: u64,
    switches: Vec<CompiledSwitch>,
}

impl CompiledSet {
    /// Compiles a validated set.
    pub fn compile(version: u64, switches: &[Switch]) -> Result<CompiledSet> {
        let switches = switches
            .iter()
            .map(|switch| {
                let rules = switch
                    .rules
                    .iter()
                    .enumerate()
                    .map(|(index, targeted)| {
                        let rule =
                            targeting::compile(&targeted.when, &switch.key).map_err(|detail| {
                                crate::Error::InvalidRule {
                                    key: switch.key.clone(),
                                    position: index + 1,
                                    detail,
                                }
                            })?;
                        Ok((rule, targeted.value.clone()))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(CompiledSwitch {
                    key: switch.key.clone(),
                    platforms: switch.platforms.clone(),
                    default: switch.default.clone(),
                    rules,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(CompiledSet { version, switches })
    }

    /// The values `device` gets: for each key of its platform, the value of the
    /// first matching rule, else the default. A percentage in a rule buckets the
    /// device with the key as the salt, so each key rolls out independently.
    pub fn evaluate(&self, device: &SampleDevice, env: &Env<'_>) -> SwitchValues {
        let context = targeting::context(device);
        let mut values = BTreeMap::new();
        for switch in &self.switches {
            let for_platform = switch.platforms.is_empty()
                || device
                    .platform
                    .is_some_and(|platform| switch.platforms.contains(&platform));
            if !for_platform {
                continue;
            }
            let value = switch
                .rules
                .iter()
                .find(|(rule, _)| targeting::matches(rule, &context, env))
                .map_or(&switch.default, |(_, value)| value);
            values.insert(switch.key.clone(), value.clone());
        }
        SwitchValues {
            version: self.version,
            values,
        }
    }
}

/// The body of a device's answer and its entity tag (a hash of the body, so the
/// tag changes exactly when the answer does).
pub fn answer(values: &SwitchValues) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(values).unwrap_or_default();
    let digest = Sha256::digest(&body);
    (body, format!("\"{}\"", hex::encode(&digest[..16])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_protocol::switches::{SwitchType, TargetedValue};
    use serde_json::json;

    fn device(id: &str, platform: Platform, app_version: &str) -> SampleDevice {
        SampleDevice {
            device_id: id.into(),
            platform: Some(platform),
            app_version: Some(app_version.into()),
            ..SampleDevice::default()
        }
    }

    #[test]
    fn the_first_matching_rule_wins_else_the_default_and_platforms_filter_keys() {
        let switches = vec![
            Switch {
                key: "checkout".into(),
                value_type: SwitchType::String,
                description: String::new(),
                platforms: vec![],
                default: json!("old"),
                rules: vec![
                    TargetedValue {
                        when: "app_version >= 3.0".into(),
                        value: json!("v3"),
                    },
                    TargetedValue {
                        when: "platform = ios".into(),
                        value: json!("ios"),
                    },
                ],
            },
            Switch {
                key: "android_only".into(),
                value_type: SwitchType::Bool,
                description: String::new(),
                platforms: vec![Platform::Android],
                default: json!(true),
                rules: vec![],
            },
        ];
        let set = CompiledSet::compile(4, &switches).unwrap();
        let ios_new = set.evaluate(&device("d1", Platform::Ios, "3.1"), &Env::empty());
        assert_eq!(ios_new.version, 4);
        assert_eq!(ios_new.values["checkout"], json!("v3"));
        assert!(!ios_new.values.contains_key("android_only"));
        let ios_old = set.evaluate(&device("d1", Platform::Ios, "2.9"), &Env::empty());
        assert_eq!(ios_old.values["checkout"], json!("ios"));
        let android_old = set.evaluate(&device("d2", Platform::Android, "2.0"), &Env::empty());
        assert_eq!(android_old.values["checkout"], json!("old"));
        assert_eq!(android_old.values["android_only"], json!(true));
        let (body, tag) = answer(&android_old);
        assert_eq!(answer(&android_old), (body, tag.clone()));
        assert_ne!(answer(&ios_old).1, tag);
    }

    fn rollout(percent: &str) -> CompiledSet {
        let switch = Switch {
            key: "rollout".into(),
            value_type: SwitchType::Bool,
            description: String::new(),
            platforms: vec![],
            default: json!(false),
            rules: vec![TargetedValue {
                when: format!("percent({percent})"),
                value: json!(true),
            }],
        };
        CompiledSet::compile(1, &[switch]).unwrap()
    }

    #[test]
    fn a_percentage_selects_its_share_of_100k_devices_and_raising_it_keeps_everyone() {
        let (five, ten) = (rollout("5"), rollout("10"));
        let (mut at_five, mut at_ten) = (0, 0);
        for index in 0..100_000 {
            let device = SampleDevice {
                device_id: format!("device-{index}"),
                ..SampleDevice::default()
            };
            let in_five = five.evaluate(&device, &Env::empty()).values["rollout"] == json!(true);
            let in_ten = ten.evaluate(&device, &Env::empty()).values["rollout"] == json!(true);
            assert!(
                !in_five || in_ten,
                "device-{index} left when the rollout grew"
            );
            at_five += usize::from(in_five);
            at_ten += usize::from(in_ten);
        }
        assert!((4_500..=5_500).contains(&at_five), "{at_five} at 5 %");
        assert!((9_500..=10_500).contains(&at_ten), "{at_ten} at 10 %");
    }
}
