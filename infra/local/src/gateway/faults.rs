//! Fault injection for the management API (`@connections`), switchable at run time so
//! tests can exercise the functions' error paths: answer 410 Gone, 500, or delay, for a
//! given connection id and/or a random fraction of calls, optionally only for one HTTP
//! method and only a number of times. Driven through [`Faults`] (Rust) or the admin
//! endpoint `/_local/faults` on the WebSocket port (GET lists, POST adds a rule,
//! DELETE clears). Which fault each call got is kept by the gateway's call recorder
//! ([`super::recorder`]), so tests can count posts and retries per connection.

use rand::Rng;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// What to do instead of (or before) the real operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum FaultAction {
    /// 410 GoneException, as for a closed connection.
    Gone,
    /// 500 InternalServerErrorException.
    Error,
    /// Wait, then answer normally.
    Delay { ms: u64 },
}

/// One rule; the first matching rule applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// Only calls for this connection id (any connection if absent).
    #[serde(default)]
    pub connection_id: Option<String>,
    /// Only this HTTP method: `POST`, `GET` or `DELETE` (any if absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Apply to this fraction of matching calls (0.0-1.0; all if absent).
    #[serde(default)]
    pub fraction: Option<f64>,
    /// Apply this many times, then remove the rule (forever if absent).
    #[serde(default)]
    pub times: Option<u32>,
    pub action: FaultAction,
}

impl FaultRule {
    pub fn new(action: FaultAction) -> Self {
        FaultRule {
            connection_id: None,
            method: None,
            fraction: None,
            times: None,
            action,
        }
    }
    pub fn for_connection(mut self, id: impl Into<String>) -> Self {
        self.connection_id = Some(id.into());
        self
    }
    pub fn for_method(mut self, m: &str) -> Self {
        self.method = Some(m.to_ascii_uppercase());
        self
    }
    pub fn fraction(mut self, f: f64) -> Self {
        self.fraction = Some(f);
        self
    }
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }
}

/// The gateway's current fault rules.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
}

impl Faults {
    pub fn add(&self, rule: FaultRule) {
        self.lock().push(rule);
    }
    pub fn clear(&self) {
        self.lock().clear();
    }
    pub fn list(&self) -> Vec<FaultRule> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<FaultRule>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fault for a management call, if any (consumes one use of a counted rule).
    pub fn decide(&self, connection_id: &str, method: &str) -> Option<FaultAction> {
        let mut rules = self.lock();
        let mut rng = rand::thread_rng();
        let i = rules.iter().position(|r| {
            r.connection_id
                .as_deref()
                .is_none_or(|c| c == connection_id)
                && r.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
                && r.fraction.is_none_or(|f| rng.gen::<f64>() < f)
        })?;
        let action = rules[i].action.clone();
        if let Some(n) = rules[i].times.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                rules.remove(i);
            }
        }
        Some(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_by_connection_method_and_count() {
        let f = Faults::default();
        f.add(
            FaultRule::new(FaultAction::Gone)
                .for_connection("a=")
                .for_method("post")
                .times(1),
        );
        assert_eq!(f.decide("b=", "POST"), None);
        assert_eq!(f.decide("a=", "GET"), None);
        assert_eq!(f.decide("a=", "POST"), Some(FaultAction::Gone));
        assert_eq!(f.decide("a=", "POST"), None, "used up");
        f.add(FaultRule::new(FaultAction::Error).fraction(0.0));
        assert_eq!(f.decide("a=", "POST"), None);
        let rule: FaultRule =
            serde_json::from_str(r#"{"action":{"kind":"delay","ms":5},"fraction":1.0}"#).unwrap();
        assert_eq!(rule.action, FaultAction::Delay { ms: 5 });
    }
}
