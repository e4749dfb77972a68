//! The processing steps of seed 002 by name (as `ONBOARDING_FAILURES` and `onboarding.step`
//! name them), and why a step failed.

/// One processing step. Failures can be injected per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    Validation,
    Compliance,
    Audit,
    Documents,
    Status,
    Notification,
    FollowUp,
}

impl Step {
    pub const ALL: [Step; 7] = [
        Step::Validation,
        Step::Compliance,
        Step::Audit,
        Step::Documents,
        Step::Status,
        Step::Notification,
        Step::FollowUp,
    ];

    /// The name used in `ONBOARDING_FAILURES` and in `onboarding.step`.
    pub fn name(self) -> &'static str {
        match self {
            Step::Validation => "validation",
            Step::Compliance => "compliance",
            Step::Audit => "audit",
            Step::Documents => "documents",
            Step::Status => "status",
            Step::Notification => "notification",
            Step::FollowUp => "followup",
        }
    }

    /// The span name of a step that is not a database call.
    pub fn span_name(self) -> &'static str {
        match self {
            Step::Validation => "validate and enrich customer",
            Step::Compliance => "compliance checks",
            Step::Audit => "INSERT audit_trail",
            Step::Documents => "store customer documents",
            Step::Status => "UPDATE customers",
            Step::Notification => "send welcome notification",
            Step::FollowUp => "trigger follow-up workflows",
        }
    }

    pub fn parse(s: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|step| step.name() == s)
    }

    pub fn names() -> String {
        Step::ALL.map(Step::name).join(", ")
    }

    /// The database operation and table of a step that is one database call.
    pub fn database_call(self) -> Option<(&'static str, &'static str)> {
        match self {
            Step::Audit => Some(("INSERT", "audit_trail")),
            Step::Status => Some(("UPDATE", "customers")),
            _ => None,
        }
    }
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{step}: injected failure")]
    Injected { step: &'static str },
    #[error("{step}: {message}")]
    Failed { step: &'static str, message: String },
}

impl StepError {
    pub fn step(&self) -> &'static str {
        match self {
            StepError::Injected { step } | StepError::Failed { step, .. } => step,
        }
    }
}
