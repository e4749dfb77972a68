//! The payloads of `throughline load onboarding`: customers in the seeds' two body shapes, a
//! share of them invalid on purpose (each invalid in a different field).

use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};
use throughline_harness::{Expect, Request, Scenario};

/// `POST /onboard` with [`payload`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnboardingLoad;

impl Scenario for OnboardingLoad {
    fn request(&self, run_id: &str, n: u64, invalid_ratio: f64) -> Request {
        let (body, valid) = payload(run_id, n, invalid_ratio);
        Request {
            method: reqwest::Method::POST,
            path: "/onboard".into(),
            body: Some(body),
            expect: if valid {
                Expect::Accepted
            } else {
                Expect::Rejected
            },
        }
    }
}

/// A realistic payload in one of the seeds' two shapes; `false` when invalid on purpose.
pub fn payload(run_id: &str, n: u64, invalid_ratio: f64) -> (Value, bool) {
    const COMPANIES: &[&str] = &[
        "Acme Corp",
        "Globex",
        "Initech",
        "Umbrella Labs",
        "Stark Industries",
        "Wayne Enterprises",
        "Hooli",
        "Vandelay Imports",
    ];
    let mut rng = rand::rng();
    let id = format!("LOAD-{run_id}-{n:07}");
    let email = format!("customer{n}@example.com");
    let company = COMPANIES.choose(&mut rng).copied().unwrap_or("Acme Corp");
    let roll: f64 = rng.random();
    let tier = if roll < 0.6 {
        "standard"
    } else if roll < 0.9 {
        "premium"
    } else {
        "enterprise"
    };
    let size = match tier {
        "standard" => "small",
        "premium" => "medium",
        _ => "large",
    };
    if rng.random::<f64>() < invalid_ratio {
        let bad = match n % 3 {
            0 => json!({"customer_id": id, "name": company, "type": tier}),
            1 => {
                json!({"customer_id": id, "email": "not-an-email", "company_name": company, "type": tier})
            }
            _ => {
                json!({"customer_id": id, "email": email, "company_name": company, "type": "platinum"})
            }
        };
        return (bad, false);
    }
    let body = if n.is_multiple_of(2) {
        json!({"customer_id": id, "email": email, "name": company, "company_size": size})
    } else {
        json!({"customer_id": id, "email": email, "company_name": company, "type": tier})
    };
    (body, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_follow_the_seed_shapes() {
        let (a, ok) = payload("r", 0, 0.0);
        assert!(ok && a.get("company_size").is_some() && a.get("name").is_some());
        let (b, ok) = payload("r", 1, 0.0);
        assert!(ok && b.get("type").is_some() && b.get("company_name").is_some());
        let (_, ok) = payload("r", 2, 1.0);
        assert!(!ok);
    }
}
