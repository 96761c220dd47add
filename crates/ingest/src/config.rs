//! What `POST /v1/events` reads from Spin variables.

use chrono::Duration;
use platform::client_ip::{self, IpNet, IpStorage};
use platform::vars::Vars;
use platform::ApiError;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Inactivity that ends a session (`session_timeout_minutes`).
    pub session_timeout: Duration,
    /// Proxies whose `X-Forwarded-For` is believed (`trusted_proxies`).
    pub trusted_proxies: Vec<IpNet>,
    /// How the visitor IP is kept (`ip_storage`).
    pub ip_storage: IpStorage,
    /// Rejected events kept per client per hour (`rejected_events_cap_per_hour`).
    pub rejected_cap_per_hour: i64,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Config, ApiError> {
        Ok(Config {
            session_timeout: Duration::minutes(vars.number("session_timeout_minutes")?),
            trusted_proxies: client_ip::parse_trusted(&vars.text("trusted_proxies")?)
                .map_err(|e| ApiError::misconfigured(format!("variable trusted_proxies: {e}")))?,
            ip_storage: vars.parsed("ip_storage")?,
            rejected_cap_per_hour: vars.number("rejected_events_cap_per_hour")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_variable_and_names_a_bad_one() {
        let vars = Vars::map(&[
            ("session_timeout_minutes", "30"),
            ("trusted_proxies", "10.0.0.0/8"),
            ("ip_storage", "raw"),
            ("rejected_events_cap_per_hour", "1000"),
        ]);
        let c = Config::from_vars(&vars).unwrap();
        assert_eq!(c.session_timeout, Duration::minutes(30));
        assert_eq!((c.ip_storage, c.trusted_proxies.len()), (IpStorage::Raw, 1));
        let bad = Vars::map(&[("session_timeout_minutes", "half an hour")]);
        let e = Config::from_vars(&bad).unwrap_err();
        assert!(
            e.message.contains("session_timeout_minutes"),
            "{}",
            e.message
        );
    }
}
