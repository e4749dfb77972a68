//! `POST /v1/placements` bodies: every bad field is named, not only the first.

use serde::Serialize;
use serde_json::Value;

/// A placement as asked for, once valid.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPlacement {
    pub video_id: String,
    pub product_id: String,
    pub start_time: f64,
    pub end_time: f64,
}

/// One bad field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    pub field: &'static str,
    pub problem: String,
}

const MAX_ID_CHARS: usize = 64;

fn problem(field: &'static str, problem: impl Into<String>) -> FieldProblem {
    FieldProblem {
        field,
        problem: problem.into(),
    }
}

/// Validates a request body (its bytes, so a body that is not JSON is a field problem too).
pub fn validate(body: &[u8]) -> Result<NewPlacement, Vec<FieldProblem>> {
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(e) => return Err(vec![problem("body", format!("not JSON: {e}"))]),
    };
    let Value::Object(object) = value else {
        return Err(vec![problem("body", "must be a JSON object")]);
    };
    let mut problems = Vec::new();
    let mut id = |field: &'static str| match object.get(field) {
        None | Some(Value::Null) => {
            problems.push(problem(field, "is required"));
            None
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            problems.push(problem(field, "must not be empty"));
            None
        }
        Some(Value::String(s)) if s.chars().count() > MAX_ID_CHARS => {
            problems.push(problem(
                field,
                format!("must be at most {MAX_ID_CHARS} characters"),
            ));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            problems.push(problem(field, "must be a string"));
            None
        }
    };
    let video_id = id("video_id");
    let product_id = id("product_id");
    let mut time = |field: &'static str| match object.get(field) {
        None | Some(Value::Null) => {
            problems.push(problem(field, "is required"));
            None
        }
        Some(Value::Number(n)) => match n.as_f64() {
            Some(t) if t.is_finite() && t >= 0.0 => Some(t),
            _ => {
                problems.push(problem(field, "must be a number of seconds, 0 or more"));
                None
            }
        },
        Some(_) => {
            problems.push(problem(field, "must be a number of seconds"));
            None
        }
    };
    let start_time = time("start_time");
    let end_time = time("end_time");
    if let (Some(start), Some(end)) = (start_time, end_time)
        && end <= start
    {
        problems.push(problem("end_time", "must be after start_time"));
    }
    match (video_id, product_id, start_time, end_time) {
        (Some(video_id), Some(product_id), Some(start_time), Some(end_time))
            if problems.is_empty() =>
        {
            Ok(NewPlacement {
                video_id,
                product_id,
                start_time,
                end_time,
            })
        }
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(body: &str) -> Vec<&'static str> {
        validate(body.as_bytes())
            .unwrap_err()
            .into_iter()
            .map(|p| p.field)
            .collect()
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: &[(&str, &[&str])] = &[
            ("not json", &["body"]),
            ("[1]", &["body"]),
            ("{}", &["video_id", "product_id", "start_time", "end_time"]),
            (
                r#"{"video_id": 7, "product_id": "", "start_time": -1, "end_time": "x"}"#,
                &["video_id", "product_id", "start_time", "end_time"],
            ),
            (
                r#"{"video_id": "v", "product_id": "p", "start_time": 20, "end_time": 10}"#,
                &["end_time"],
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(&fields(body), expected, "{body}");
        }
    }

    #[test]
    fn a_good_body_is_a_placement() {
        let p = validate(
            br#"{"video_id": "vid-001", "product_id": "prod-002", "start_time": 40, "end_time": 45.5}"#,
        )
        .unwrap();
        assert_eq!(p.video_id, "vid-001");
        assert_eq!((p.start_time, p.end_time), (40.0, 45.5));
    }
}
