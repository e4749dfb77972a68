//! Turns a `POST /onboard` body into a validated [`OnboardRequest`], naming every bad field.
//!
//! The seeds send two shapes: `{customer_id, email, name, company_size}` (000) and
//! `{customer_id, email, company_name, type}` (002). Both are accepted; `type` wins over
//! `company_size` when both are present.

use serde::Serialize;
use serde_json::Value;

/// The customer tier that drives the worker's checks and the business metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CustomerType {
    Standard,
    Premium,
    Enterprise,
}

impl CustomerType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Premium => "premium",
            Self::Enterprise => "enterprise",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "standard" => Some(Self::Standard),
            "premium" => Some(Self::Premium),
            "enterprise" => Some(Self::Enterprise),
            _ => None,
        }
    }

    /// The tier a `company_size` maps to (seed 000's payload).
    fn from_company_size(size: &str) -> Option<Self> {
        match size {
            "small" => Some(Self::Standard),
            "medium" => Some(Self::Premium),
            "large" | "enterprise" => Some(Self::Enterprise),
            _ => None,
        }
    }
}

/// A request that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnboardRequest {
    pub customer_id: String,
    /// Personal data: stored and queued, never put on a span, a metric or a log line.
    pub email: String,
    pub name: String,
    pub customer_type: CustomerType,
    pub company_size: Option<String>,
}

/// One field that was wrong, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub problem: String,
}

/// Why a body was refused: not JSON at all, or a list of bad fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("request body is not a JSON object: {0}")]
    NotAnObject(String),
    #[error("invalid fields: {}", .0.iter().map(|f| f.field).collect::<Vec<_>>().join(", "))]
    Fields(Vec<FieldError>),
}

pub const MAX_CUSTOMER_ID_CHARS: usize = 64;
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_EMAIL_CHARS: usize = 254;

/// Parses and validates a body. Every bad field is reported, not only the first.
pub fn validate(body: &[u8]) -> Result<OnboardRequest, ValidationError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ValidationError::NotAnObject(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(ValidationError::NotAnObject(format!(
            "found {}",
            json_kind(&value)
        )));
    };
    let mut errors = Vec::new();

    let customer_id = required_string(&obj, "customer_id", &mut errors).and_then(|id| {
        let valid_chars = id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if id.chars().count() > MAX_CUSTOMER_ID_CHARS {
            errors.push(field(
                "customer_id",
                format!("longer than {MAX_CUSTOMER_ID_CHARS} characters"),
            ));
            None
        } else if !valid_chars {
            errors.push(field(
                "customer_id",
                "may hold only letters, digits, '-' and '_'",
            ));
            None
        } else {
            Some(id)
        }
    });

    let email = required_string(&obj, "email", &mut errors).and_then(|email| {
        if email.chars().count() > MAX_EMAIL_CHARS {
            errors.push(field(
                "email",
                format!("longer than {MAX_EMAIL_CHARS} characters"),
            ));
            None
        } else if !looks_like_email(&email) {
            // The value itself is personal data: the problem never repeats it.
            errors.push(field("email", "is not an email address"));
            None
        } else {
            Some(email)
        }
    });

    let name_key = if obj.contains_key("company_name") {
        "company_name"
    } else {
        "name"
    };
    let name = match obj.get(name_key) {
        None | Some(Value::Null) => {
            errors.push(field("name", "is required (as name or company_name)"));
            None
        }
        Some(_) => required_string(&obj, name_key, &mut errors).and_then(|name| {
            if name.chars().count() > MAX_NAME_CHARS {
                errors.push(field(
                    name_key,
                    format!("longer than {MAX_NAME_CHARS} characters"),
                ));
                None
            } else if name.chars().any(char::is_control) {
                errors.push(field(name_key, "holds control characters"));
                None
            } else {
                Some(name)
            }
        }),
    };

    let company_size = optional_string(&obj, "company_size", &mut errors);
    let size_type = company_size.as_deref().and_then(|size| {
        let t = CustomerType::from_company_size(size);
        if t.is_none() {
            errors.push(field(
                "company_size",
                "must be one of small, medium, large, enterprise",
            ));
        }
        t
    });
    let explicit_type = optional_string(&obj, "type", &mut errors).and_then(|t| {
        let parsed = CustomerType::parse(&t);
        if parsed.is_none() {
            errors.push(field(
                "type",
                "must be one of standard, premium, enterprise",
            ));
        }
        parsed
    });

    match (customer_id, email, name) {
        (Some(customer_id), Some(email), Some(name)) if errors.is_empty() => Ok(OnboardRequest {
            customer_id,
            email,
            name,
            customer_type: explicit_type
                .or(size_type)
                .unwrap_or(CustomerType::Standard),
            company_size,
        }),
        _ => Err(ValidationError::Fields(errors)),
    }
}

fn field(name: &'static str, problem: impl Into<String>) -> FieldError {
    FieldError {
        field: name,
        problem: problem.into(),
    }
}

fn required_string(
    obj: &serde_json::Map<String, Value>,
    key: &'static str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match obj.get(key) {
        None | Some(Value::Null) => {
            errors.push(field(key, "is required"));
            None
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            errors.push(field(key, "must not be empty"));
            None
        }
        Some(Value::String(s)) => Some(s.trim().to_owned()),
        Some(other) => {
            errors.push(field(
                key,
                format!("must be a string, found {}", json_kind(other)),
            ));
            None
        }
    }
}

fn optional_string(
    obj: &serde_json::Map<String, Value>,
    key: &'static str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match obj.get(key) {
        None | Some(Value::Null) => None,
        Some(_) => required_string(obj, key, errors).map(|s| s.to_ascii_lowercase()),
    }
}

fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(body: &str) -> Vec<&'static str> {
        match validate(body.as_bytes()) {
            Err(ValidationError::Fields(f)) => f.into_iter().map(|f| f.field).collect(),
            other => panic!("expected field errors for {body}, got {other:?}"),
        }
    }

    #[test]
    fn accepts_both_seed_shapes() {
        let a = validate(
            br#"{"customer_id":"TEST-001","email":"test@example.com","company_size":"medium","name":"Test Company"}"#,
        )
        .unwrap();
        assert_eq!(a.customer_type, CustomerType::Premium);
        assert_eq!(a.name, "Test Company");
        assert_eq!(a.company_size.as_deref(), Some("medium"));
        let b = validate(
            br#"{"customer_id":"demo-customer-001","email":"demo@example.com","type":"premium","company_name":"Demo Corp"}"#,
        )
        .unwrap();
        assert_eq!(b.customer_type, CustomerType::Premium);
        assert_eq!(b.name, "Demo Corp");
    }

    #[test]
    fn type_wins_over_company_size_and_default_is_standard() {
        let r = validate(
            br#"{"customer_id":"a","email":"a@b.io","name":"n","company_size":"small","type":"enterprise"}"#,
        )
        .unwrap();
        assert_eq!(r.customer_type, CustomerType::Enterprise);
        let r = validate(br#"{"customer_id":"a","email":"a@b.io","name":"n"}"#).unwrap();
        assert_eq!(r.customer_type, CustomerType::Standard);
    }

    #[test]
    fn names_every_bad_field() {
        assert_eq!(fields(r#"{}"#), ["customer_id", "email", "name"]);
        assert_eq!(
            fields(
                r#"{"customer_id":"bad id!","email":"nope","name":"","type":"gold","company_size":"huge"}"#
            ),
            ["customer_id", "email", "name", "company_size", "type"]
        );
        assert_eq!(
            fields(r#"{"customer_id":7,"email":"a@b.io","company_name":"x"}"#),
            ["customer_id"]
        );
        let long = "x".repeat(65);
        assert_eq!(
            fields(&format!(
                r#"{{"customer_id":"{long}","email":"a@b.io","name":"n"}}"#
            )),
            ["customer_id"]
        );
    }

    #[test]
    fn email_problem_never_repeats_the_address() {
        let Err(ValidationError::Fields(f)) =
            validate(br#"{"customer_id":"a","email":"secret.person@nowhere","name":"n"}"#)
        else {
            panic!("expected a field error")
        };
        assert!(!f[0].problem.contains("secret"));
    }

    #[test]
    fn refuses_non_objects() {
        assert!(matches!(
            validate(b"[1]"),
            Err(ValidationError::NotAnObject(_))
        ));
        assert!(matches!(
            validate(b"{"),
            Err(ValidationError::NotAnObject(_))
        ));
        assert!(matches!(
            validate(b""),
            Err(ValidationError::NotAnObject(_))
        ));
    }

    #[test]
    fn email_shapes() {
        for ok in ["a@b.io", "first.last+tag@sub.example.com"] {
            assert!(looks_like_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "a@", "@b.io", "a@b", "a@@b.io", "a b@c.io", "a@.io", "a@b.io.",
        ] {
            assert!(!looks_like_email(bad), "{bad}");
        }
    }
}
