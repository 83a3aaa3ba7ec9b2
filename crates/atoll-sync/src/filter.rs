//! Which of a target's devices may receive a datum: platform and app-version
//! range, parsed once per datum and checked per connection.

use atoll_core::rules::version::Version;
use atoll_protocol::device::Platform;
use atoll_protocol::sync::DeliveryFilter;
use std::cmp::Ordering;

/// What the filter looks at on a device, fixed for a connection's life.
#[derive(Debug, Clone, Default)]
pub struct DeviceTraits {
    /// The registered platform.
    pub platform: Option<Platform>,
    /// The registered app version, when it parses.
    pub app_version: Option<Version>,
}

/// A parsed [`DeliveryFilter`].
#[derive(Debug, Clone, Default)]
pub struct CompiledFilter {
    platforms: Vec<Platform>,
    min: Option<Version>,
    max: Option<Version>,
}

impl CompiledFilter {
    /// Parses a filter; versions that do not parse (validated at send time, so
    /// only from old data) are ignored rather than blocking delivery.
    pub fn new(filter: Option<&DeliveryFilter>) -> CompiledFilter {
        let Some(filter) = filter else {
            return CompiledFilter::default();
        };
        let parse =
            |text: &Option<String>| text.as_deref().and_then(|text| Version::parse(text).ok());
        CompiledFilter {
            platforms: filter.platforms.clone(),
            min: parse(&filter.app_min_version),
            max: parse(&filter.app_max_version),
        }
    }

    /// Whether a device with `traits` may receive the datum. A device whose
    /// version is unknown passes only filters without a version range.
    pub fn admits(&self, traits: &DeviceTraits) -> bool {
        if !self.platforms.is_empty()
            && !traits
                .platform
                .is_some_and(|platform| self.platforms.contains(&platform))
        {
            return false;
        }
        if self.min.is_none() && self.max.is_none() {
            return true;
        }
        let Some(version) = &traits.app_version else {
            return false;
        };
        let above_min = self
            .min
            .as_ref()
            .is_none_or(|min| version.compare(min) != Ordering::Less);
        let below_max = self
            .max
            .as_ref()
            .is_none_or(|max| version.compare(max) != Ordering::Greater);
        above_min && below_max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(platform: Platform, version: &str) -> DeviceTraits {
        DeviceTraits {
            platform: Some(platform),
            app_version: Version::parse(version).ok(),
        }
    }

    #[test]
    fn platforms_and_version_ranges() {
        let any = CompiledFilter::new(None);
        assert!(any.admits(&DeviceTraits::default()));
        let ios_2x = CompiledFilter::new(Some(&DeliveryFilter {
            platforms: vec![Platform::Ios],
            app_min_version: Some("2.0".into()),
            app_max_version: Some("2.9.9".into()),
        }));
        assert!(ios_2x.admits(&device(Platform::Ios, "2.0.0")));
        assert!(ios_2x.admits(&device(Platform::Ios, "2.9.9")));
        assert!(!ios_2x.admits(&device(Platform::Ios, "3.0")));
        assert!(!ios_2x.admits(&device(Platform::Ios, "1.9")));
        assert!(!ios_2x.admits(&device(Platform::Android, "2.5")));
        assert!(!ios_2x.admits(&DeviceTraits {
            platform: Some(Platform::Ios),
            app_version: None
        }));
    }
}
