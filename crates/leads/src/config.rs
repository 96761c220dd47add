//! What `POST /v1/leads` reads from Spin variables.

use std::time::Duration;

use delivery::Endpoints;
use platform::client_ip::{self, IpNet, IpStorage};
use platform::vars::Vars;
use platform::ApiError;

use crate::locate::{parse_providers, Provider};

#[derive(Debug, Clone)]
pub struct Config {
    pub trusted_proxies: Vec<IpNet>,
    pub ip_storage: IpStorage,
    /// `geo_providers`, in the order they are tried.
    pub providers: Vec<Provider>,
    /// The remote provider: origin, key, deadline, and how long a 429
    /// without `Retry-After` pauses it.
    pub remote_base_url: String,
    pub remote_key: String,
    pub remote_timeout: Duration,
    pub remote_pause: Duration,
    pub endpoints: Endpoints,
    /// The deadline of the one inline attempt per destination.
    pub inline_timeout: Duration,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Config, ApiError> {
        let named =
            |name: &str, e: String| ApiError::misconfigured(format!("variable {name}: {e}"));
        Ok(Config {
            trusted_proxies: client_ip::parse_trusted(&vars.text("trusted_proxies")?)
                .map_err(|e| named("trusted_proxies", e))?,
            ip_storage: vars.parsed("ip_storage")?,
            providers: parse_providers(&vars.text("geo_providers")?)
                .map_err(|e| named("geo_providers", e))?,
            remote_base_url: vars.text("geo_remote_base_url")?,
            remote_key: vars.text("geo_remote_key")?,
            remote_timeout: vars.millis("geo_remote_timeout_ms")?,
            remote_pause: vars.seconds("geo_remote_pause_seconds")?,
            endpoints: Endpoints::from_vars(vars)?,
            inline_timeout: vars.millis("delivery_inline_timeout_ms")?,
        })
    }

    /// How long the new outbox rows stay leased to the inline sender: every
    /// inline attempt's deadline (plus a second each), and a margin.
    pub fn lease_seconds(&self, deliveries: usize) -> i32 {
        (self.inline_timeout.as_secs() as i32 + 1) * (deliveries as i32 + 1) + 30
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(providers: &str) -> Vars<'static> {
        Vars::map(&[
            ("trusted_proxies", ""),
            ("ip_storage", "truncated"),
            ("geo_providers", providers),
            ("geo_remote_base_url", "https://pro.ip-api.com"),
            ("geo_remote_timeout_ms", "300"),
            ("geo_remote_pause_seconds", "60"),
            ("meta_capi_base_url", "https://graph.facebook.com"),
            ("delivery_inline_timeout_ms", "1500"),
        ])
    }

    #[test]
    fn reads_the_providers_in_order_and_names_a_bad_one() {
        let c = Config::from_vars(&vars("remote,embedded")).unwrap();
        assert_eq!(c.providers, [Provider::Remote, Provider::Embedded]);
        assert_eq!(c.remote_timeout, Duration::from_millis(300));
        // 1.5 s deadline → 2 s per attempt, 2 deliveries + 1, + 30.
        assert_eq!(c.lease_seconds(2), 36);
        let e = Config::from_vars(&vars("embedded,maxmind")).unwrap_err();
        assert!(e.message.contains("geo_providers") && e.message.contains("maxmind"));
    }
}
