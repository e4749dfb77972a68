//! The rules file: the issue's example is accepted as written, the built-in rules are valid,
//! and every mistake names its group, rule and field.

use throughline_alerts::rules::{Condition, Literal, MetricKind, Op, Threshold};
use throughline_alerts::{RuleError, builtin, parse};

/// The issue's file as written, plus the two span rules its flow names.
const ISSUE_EXAMPLE: &str = include_str!("issue_example.yaml");

fn errors(text: &str) -> Vec<RuleError> {
    parse(text).expect_err("refused").0
}

fn one_error(text: &str) -> RuleError {
    let e = errors(text);
    assert_eq!(e.len(), 1, "{e:?}");
    e.into_iter().next().unwrap()
}

#[test]
fn the_issues_example_is_accepted_as_written() {
    let set = parse(ISSUE_EXAMPLE).unwrap();
    assert_eq!(set.groups.len(), 1);
    assert_eq!(set.groups[0].interval_nanos, 5_000_000_000);
    let r = &set.rules[0];
    assert_eq!(r.name, "CheckoutFailures");
    assert_eq!(r.threshold, Some(Threshold::Above(5.0)));
    assert_eq!(r.for_nanos, 0);
    assert_eq!(r.labels["severity"], "critical");
    assert_eq!(r.labels["alertname"], "CheckoutFailures");
    let Condition::Spans {
        filter,
        window_nanos,
    } = &r.condition
    else {
        panic!("{:?}", r.condition)
    };
    assert_eq!(*window_nanos, 60_000_000_000);
    assert_eq!(filter.service.as_deref(), Some("checkout"));
    assert_eq!(filter.predicates.len(), 1);
    assert_eq!(filter.predicates[0].key, "checkout.failed");
    assert_eq!(filter.predicates[0].op, Op::Eq);
    assert_eq!(filter.predicates[0].value, Literal::Bool(true));
    assert_eq!(
        r.annotations["summary"].render(Some(7.0), &r.labels),
        "7 failed checkouts in the last minute"
    );
    let Condition::Metric {
        metric,
        service,
        window_nanos,
        ..
    } = &set.rules[1].condition
    else {
        panic!()
    };
    assert_eq!(*metric, MetricKind::ErrorRate);
    assert_eq!(service.as_deref(), Some("onboarding-api"));
    assert_eq!(*window_nanos, 300_000_000_000);
    assert_eq!(set.rules[1].threshold, Some(Threshold::Above(0.05)));
    // The flow names rules defined after it, by name.
    let Condition::Flow {
        stages,
        within_nanos,
        reset_on_resolve,
    } = &set.rules[2].condition
    else {
        panic!()
    };
    assert_eq!(stages, &[3, 4, 0]);
    assert_eq!(*within_nanos, 600_000_000_000);
    assert!(!reset_on_resolve);
    let Condition::Spans { filter, .. } = &set.rules[4].condition else {
        panic!()
    };
    assert_eq!(filter.predicates[0].op, Op::Gt);
    assert_eq!(filter.predicates[0].value, Literal::Number(1000.0));
}

#[test]
fn the_built_in_rules_are_valid() {
    let onboarding = parse(builtin::ONBOARDING).unwrap();
    assert_eq!(onboarding.rules.len(), 4);
    for minute_secs in [60.0, 1.0, 0.5] {
        let shop = parse(&builtin::shop(minute_secs)).unwrap();
        assert_eq!(shop.rules.len(), 4, "{minute_secs}");
        let Condition::Flow { stages, .. } = &shop.rules[3].condition else {
            panic!()
        };
        assert_eq!(stages, &[0, 1, 2]);
    }
    // Demo minutes of a second: windows of two seconds at least, the group faster.
    let fast = parse(&builtin::shop(1.0)).unwrap();
    assert_eq!(fast.groups[0].interval_nanos, 500_000_000);
    let Condition::Spans { window_nanos, .. } = &fast.rules[0].condition else {
        panic!()
    };
    assert_eq!(*window_nanos, 2_000_000_000);
    // Five failed checkouts a minute; in proportion over the shorter window.
    assert_eq!(fast.rules[2].threshold, Some(Threshold::Above(0.0)));
    let real = parse(&builtin::shop(60.0)).unwrap();
    assert_eq!(real.rules[2].threshold, Some(Threshold::Above(5.0)));
}

#[test]
fn an_unknown_operator_names_group_rule_and_field() {
    let e = one_error(
        "groups: [{name: g, rules: [{alert: A, spans: {where: 'http.route =~ /x'}, window: 1m, above: 1}]}]",
    );
    assert_eq!(e.group.as_deref(), Some("g"));
    assert_eq!(e.rule.as_deref(), Some("A"));
    assert_eq!(e.field.as_deref(), Some("spans.where"));
    assert!(e.to_string().contains("unknown operator \"=~\""), "{e}");
    assert!(
        e.to_string()
            .starts_with("group \"g\": rule \"A\": `spans.where`:"),
        "{e}"
    );
}

#[test]
fn a_comparison_needs_a_number() {
    let e = one_error(
        "groups: [{name: g, rules: [{alert: A, spans: {where: 'a > lots'}, window: 1m, above: 1}]}]",
    );
    assert_eq!(e.field.as_deref(), Some("spans.where"));
}

#[test]
fn a_bad_duration_names_its_field() {
    let e = one_error(
        "groups: [{name: g, rules: [{alert: A, spans: {service: s}, window: 5 minutes, above: 1}]}]",
    );
    assert_eq!(
        (e.group.as_deref(), e.rule.as_deref(), e.field.as_deref()),
        (Some("g"), Some("A"), Some("window"))
    );
    assert!(e.to_string().contains("\"5 minutes\""), "{e}");
    let e = one_error("groups: [{name: g, interval: soon, rules: []}]");
    assert_eq!(
        (e.group.as_deref(), e.field.as_deref()),
        (Some("g"), Some("interval"))
    );
    let e = one_error(
        "groups: [{name: g, rules: [{alert: A, spans: {}, window: 1m, above: 1, for: 1x}]}]",
    );
    assert_eq!(e.field.as_deref(), Some("for"));
}

#[test]
fn a_flow_naming_no_rule_is_refused() {
    let e = one_error(
        "groups: [{name: g, rules: [{alert: A, spans: {}, window: 1m, above: 0}, {alert: F, flow: [A, Missing], within: 5m}]}]",
    );
    assert_eq!(
        (e.group.as_deref(), e.rule.as_deref(), e.field.as_deref()),
        (Some("g"), Some("F"), Some("flow"))
    );
    assert!(e.to_string().contains("\"Missing\""), "{e}");
}

#[test]
fn a_cycle_of_flows_is_refused() {
    let text = "groups: [{name: g, rules: [
        {alert: A, spans: {}, window: 1m, above: 0},
        {alert: F1, flow: [A, F2], within: 5m},
        {alert: F2, flow: [A, F1], within: 5m}]}]";
    let e = one_error(text);
    assert_eq!(e.field.as_deref(), Some("flow"));
    assert!(e.to_string().contains("cycle"), "{e}");
    assert!(
        e.to_string().contains("F1") && e.to_string().contains("F2"),
        "{e}"
    );
}

#[test]
fn every_mistake_of_a_file_is_listed() {
    let text = "groups:
  - name: g
    rules:
      - alert: NoThreshold
        spans: {service: s}
        window: 1m
      - alert: TwoKinds
        spans: {service: s}
        metric: error_rate
        window: 1m
        above: 1
      - alert: UnknownMetric
        metric: latency
        service: s
        window: 1m
        above: 1
      - alert: Typo
        spans: {servce: s}
        window: 1m
        above: 1
        lables: {a: b}
      - alert: BadTemplate
        spans: {}
        window: 1m
        above: 1
        annotations: {summary: '{{ .Value }}'}
      - alert: NoService
        metric: p95
        window: 1m
        above: 100
";
    let e = errors(text);
    let found: Vec<(String, String)> = e
        .iter()
        .map(|e| (e.rule.clone().unwrap(), e.field.clone().unwrap()))
        .collect();
    for want in [
        ("NoThreshold", "above"),
        ("TwoKinds", "spans"),
        ("UnknownMetric", "metric"),
        ("Typo", "spans.servce"),
        ("Typo", "lables"),
        ("BadTemplate", "annotations.summary"),
        ("NoService", "service"),
    ] {
        assert!(
            found.iter().any(|(r, f)| r == want.0 && f == want.1),
            "{want:?} in {found:?}"
        );
    }
}

#[test]
fn not_yaml_is_an_error_not_a_panic() {
    for text in [
        "",
        "groups: [",
        "- a\n- b",
        "groups: 3",
        "groups: [3]",
        "\u{0}",
    ] {
        assert!(parse(text).is_err(), "{text:?}");
    }
}
