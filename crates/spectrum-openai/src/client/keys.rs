//! API keys: the environment first, then the OS keyring (service
//! `spectrum-studio`, user: the endpoint's URL); held in memory only.

use super::*;

/// The OS keyring service API keys are stored under.
pub const KEYRING_SERVICE: &str = "spectrum-studio";

impl RemoteSpec {
    pub(super) fn key_env(&self) -> &str {
        self.api_key_env.as_deref().unwrap_or("OPENAI_API_KEY")
    }

    /// The key for `endpoint`: the environment first, then the OS keyring.
    pub(super) fn api_key(&self, endpoint: &str) -> Option<String> {
        if let Ok(key) = std::env::var(self.key_env())
            && !key.trim().is_empty()
        {
            return Some(key.trim().to_string());
        }
        keyring::Entry::new(KEYRING_SERVICE, endpoint)
            .and_then(|e| e.get_password())
            .ok()
    }
}

/// Stores `key` for `endpoint` in the OS keyring.
pub fn store_api_key(endpoint: &str, key: &str) -> Result<()> {
    keyring::Entry::new(KEYRING_SERVICE, endpoint.trim_end_matches('/'))
        .and_then(|e| e.set_password(key))
        .map_err(|e| {
            remote_fix(
                format!("cannot store the key in the OS keyring: {e}"),
                "set the key in the environment instead, e.g. OPENAI_API_KEY",
            )
        })
}
