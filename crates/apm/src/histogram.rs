//! Percentiles and merging of the store's fixed-bucket latency histograms.

use throughline_store::{LATENCY_BUCKETS_MS, LatencyHistogram};

/// The `q` quantile (0..=1) in milliseconds ([`LatencyHistogram::quantile_ms`]).
pub fn quantile_ms(h: &LatencyHistogram, q: f64) -> Option<f64> {
    h.quantile_ms(q)
}

/// Adds `other` into `into`, bucket by bucket ([`LatencyHistogram::merge`]).
pub fn merge(into: &mut LatencyHistogram, other: &LatencyHistogram) {
    into.merge(other);
}

/// An empty histogram over the shared buckets.
pub fn empty() -> LatencyHistogram {
    LatencyHistogram {
        bucket_counts: vec![0; LATENCY_BUCKETS_MS.len() + 1],
        count: 0,
        sum_ms: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(pairs: &[(usize, u64)]) -> LatencyHistogram {
        let mut h = empty();
        for &(i, c) in pairs {
            h.bucket_counts[i] = c;
            h.count += c;
        }
        h
    }

    #[test]
    fn empty_has_no_quantile() {
        assert_eq!(quantile_ms(&empty(), 0.5), None);
    }

    #[test]
    fn interpolates_inside_the_bucket() {
        // 100 calls in (10, 50] ms: the median is half way.
        let h = hist(&[(5, 100)]);
        assert_eq!(quantile_ms(&h, 0.5), Some(30.0));
        assert_eq!(quantile_ms(&h, 1.0), Some(50.0));
    }

    #[test]
    fn p95_lands_in_the_tail_bucket() {
        // 90 fast calls (≤ 2 ms), 10 slow ones in (800, 1000] ms.
        let h = hist(&[(0, 90), (10, 10)]);
        let p95 = quantile_ms(&h, 0.95).unwrap();
        assert!((800.0..=1000.0).contains(&p95), "{p95}");
        assert!(quantile_ms(&h, 0.5).unwrap() <= 2.0);
    }

    #[test]
    fn overflow_reports_the_last_bound() {
        let h = hist(&[(LATENCY_BUCKETS_MS.len(), 3)]);
        assert_eq!(quantile_ms(&h, 0.99), Some(15_000.0));
    }

    #[test]
    fn merge_adds_buckets() {
        let mut a = hist(&[(1, 2)]);
        merge(&mut a, &hist(&[(1, 3), (4, 1)]));
        assert_eq!((a.bucket_counts[1], a.bucket_counts[4], a.count), (5, 1, 6));
    }
}
