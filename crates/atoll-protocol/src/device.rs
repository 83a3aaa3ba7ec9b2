//! Bodies of the device API (`/device/v1/*`), spoken by the SDK.
//!
//! Every device request is signed (see [`crate::signing`]); the device id travels in
//! the `x-atoll-device-id` header, so bodies only describe the device or the action.

use serde::{Deserialize, Serialize};

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $( $(#[$vdoc:meta])* $variant:ident = $text:literal ),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $( $(#[$vdoc])* $variant, )+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as written on the wire and in storage.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }

            /// Parses the wire form.
            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum! {
    /// A platform an app ships on.
    Platform {
        /// Android.
        Android = "android",
        /// iOS and iPadOS.
        Ios = "ios",
        /// HarmonyOS.
        Harmony = "harmony",
        /// A web app.
        Web = "web",
        /// A mini program.
        Miniprogram = "miniprogram",
    }
}

wire_enum! {
    /// A push channel a device can hold a token for.
    PushChannel {
        /// Apple Push Notification service.
        Apns = "apns",
        /// Firebase Cloud Messaging.
        Fcm = "fcm",
        /// Huawei Push Kit.
        Hms = "hms",
        /// Xiaomi push.
        Xiaomi = "xiaomi",
        /// OPPO push.
        Oppo = "oppo",
        /// vivo push.
        Vivo = "vivo",
        /// Honor push.
        Honor = "honor",
    }
}

/// `POST /device/v1/register`: the device describes itself. Registering again
/// updates the description (app upgrades, a new network, a new locale).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The platform of this install.
    pub platform: Option<Platform>,
    /// Operating system name, e.g. `Android`.
    #[serde(default)]
    pub os: Option<String>,
    /// Operating system version, e.g. `14`.
    #[serde(default)]
    pub os_version: Option<String>,
    /// Device model, e.g. `Pixel 8`.
    #[serde(default)]
    pub model: Option<String>,
    /// The app's version, semver-like.
    #[serde(default)]
    pub app_version: Option<String>,
    /// Distribution channel, e.g. `play`.
    #[serde(default)]
    pub channel: Option<String>,
    /// BCP 47 locale, e.g. `en-GB`.
    #[serde(default)]
    pub locale: Option<String>,
    /// Region or city code.
    #[serde(default)]
    pub region: Option<String>,
    /// Network type, e.g. `wifi`, `4g`.
    #[serde(default)]
    pub network: Option<String>,
}

/// The answer to `register`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterResponse {
    /// The device id, as sent in the header.
    pub device_id: String,
    /// Whether this call created the device (false: it updated it).
    pub created: bool,
    /// When the server first saw this device (Unix milliseconds).
    pub first_seen_at: i64,
    /// The server's clock (Unix milliseconds), so the SDK can correct its skew.
    pub server_time: i64,
}

/// `POST /device/v1/bind`: the app's user signed in on this device.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BindRequest {
    /// The app's own account id.
    pub user_id: String,
}

/// The answer to `bind` and `unbind`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BindingResponse {
    /// The device.
    pub device_id: String,
    /// The user now bound, or `None` after `unbind`.
    pub user_id: Option<String>,
}

/// `POST /device/v1/push-token`: the device's token for one vendor channel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PushTokenRequest {
    /// The vendor channel.
    pub channel: PushChannel,
    /// The vendor's token for this device.
    pub token: String,
}

/// A plain acknowledgement.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ack {
    /// Always true.
    pub ok: bool,
}
