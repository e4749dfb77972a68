//! The pages' defaults and caps over the one query-parameter parser
//! ([`throughline_jaeger::params`]); a bad value names its parameter.

use throughline_jaeger::params::{self, SearchDefaults};
use throughline_store::TraceQuery;

pub use throughline_jaeger::params::{ParamError, Params, span_id, trace_id, unsigned};

/// The default and largest number of search results.
pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 1_000;
/// The window searched, and charted, when none is given.
pub const DEFAULT_LOOKBACK_NANOS: u64 = 3_600 * 1_000_000_000;

const DEFAULTS: SearchDefaults = SearchDefaults {
    limit: DEFAULT_LIMIT,
    max_limit: MAX_LIMIT,
    lookback_nanos: DEFAULT_LOOKBACK_NANOS,
};

/// The time window of a page: `start`/`end` in Unix microseconds (as Jaeger's URLs), or
/// `lookback` (a Go duration: `15m`, `1h30m`, `2d`) back from `now`.
pub fn window(params: &Params, now_unix_nanos: u64) -> Result<(u64, u64), ParamError> {
    params::window(params, now_unix_nanos, DEFAULT_LOOKBACK_NANOS)
}

/// The search form's parameters as a store query.
pub fn trace_query(params: &Params, now_unix_nanos: u64) -> Result<TraceQuery, ParamError> {
    params::trace_query(params, now_unix_nanos, DEFAULTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000_000_000;

    #[test]
    fn search_defaults_to_the_last_hour_and_twenty_traces() {
        let q = trace_query(&Params::default(), NOW).unwrap();
        assert_eq!(q.end_unix_nanos, NOW);
        assert_eq!(q.start_unix_nanos, NOW - DEFAULT_LOOKBACK_NANOS);
        assert_eq!(q.limit, DEFAULT_LIMIT);
    }

    #[test]
    fn lookback_is_a_go_duration_as_on_the_api() {
        let (start, end) = window(&Params::parse("lookback=1h30m"), NOW).unwrap();
        assert_eq!(end - start, 5_400_000_000_000);
    }

    #[test]
    fn limit_is_capped_naming_the_cap() {
        let err = trace_query(&Params::parse("limit=1001"), NOW).unwrap_err();
        assert_eq!(err.param, "limit");
        assert!(err.to_string().contains("1000"), "{err}");
    }
}
