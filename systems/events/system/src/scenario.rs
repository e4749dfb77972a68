//! The placements of `throughline load events`: each valid one in its own time slot on one of the
//! seeded videos (slots are unique per run, and runs differ by their id), a share invalid on
//! purpose (each in a different field, answered 400), and every tenth overlapping the house
//! placement seeded on every video (answered 409). Valid slots start after the seeded
//! catalogue placements (`events_db::FREE_FROM_SECS`).

use rand::Rng as _;
use serde_json::{Value, json};
use throughline_harness::{Expect, Request, Scenario};

/// `POST /v1/placements` with [`placement`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventsLoad;

impl Scenario for EventsLoad {
    fn request(&self, run_id: &str, n: u64, invalid_ratio: f64) -> Request {
        let (body, expect) = placement(run_id, n, invalid_ratio);
        Request {
            method: reqwest::Method::POST,
            path: "/v1/placements".into(),
            body: Some(body),
            expect,
        }
    }
}

/// Slots per run: a run sends fewer requests than this.
const SLOTS_PER_RUN: u64 = 1 << 22;

/// The `n`th placement of run `run_id` and the answer it should get.
pub fn placement(run_id: &str, n: u64, invalid_ratio: f64) -> (Value, Expect) {
    let videos = ["vid-001", "vid-002", "vid-003", "vid-004", "vid-005"];
    let products = ["prod-001", "prod-002", "prod-003", "prod-004", "prod-005"];
    let video = videos[(n % 5) as usize];
    let product = products[((n / 5) % 5) as usize];
    if n % 10 == 9 {
        // Inside the house placement (0 to 30 s) every video carries.
        let body =
            json!({"video_id": video, "product_id": product, "start_time": 5, "end_time": 12});
        return (body, Expect::Refused(409));
    }
    if rand::rng().random::<f64>() < invalid_ratio {
        let bad = match n % 3 {
            0 => json!({"product_id": product, "start_time": 40, "end_time": 45}),
            1 => {
                json!({"video_id": video, "product_id": product, "start_time": 50, "end_time": 45})
            }
            _ => json!({"video_id": video, "product_id": 7, "start_time": "soon", "end_time": 45}),
        };
        return (bad, Expect::Rejected);
    }
    let run = u64::from_str_radix(run_id, 16).unwrap_or(0) & 0xff_ffff;
    let slot = run * SLOTS_PER_RUN + n % SLOTS_PER_RUN;
    // 10 s slots after the seeded placements; f64 holds these integers exactly.
    let start = events_db::FREE_FROM_SECS + 10.0 * slot as f64;
    let body = json!({"video_id": video, "product_id": product, "start_time": start, "end_time": start + 8.0});
    (body, Expect::Accepted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_slots_never_overlap_and_every_tenth_is_a_conflict() {
        let (a, ea) = placement("00ab12", 0, 0.0);
        let (b, eb) = placement("00ab12", 5, 0.0);
        assert_eq!((ea, eb), (Expect::Accepted, Expect::Accepted));
        assert_eq!(a["video_id"], b["video_id"]);
        assert!(b["start_time"].as_f64().unwrap() >= a["end_time"].as_f64().unwrap());
        let (_, e) = placement("00ab12", 19, 0.0);
        assert_eq!(e, Expect::Refused(409));
        let (_, e) = placement("00ab12", 3, 1.0);
        assert_eq!(e, Expect::Rejected);
        let (other, _) = placement("00ab13", 0, 0.0);
        assert_ne!(other["start_time"], a["start_time"]);
    }
}
