//! The onboarding Lambda worker of the reference system.
