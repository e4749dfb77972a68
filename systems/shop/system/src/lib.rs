//! The shop (seed 003) as the harness sees it: only what is the shop's own.
//!
//! - [`describe`]: its parts (`product-catalog`, `checkout`, `load-generator`), their
//!   environment (each its own SQLite file in `DATA/shop`, the Black Friday clock), the seed's
//!   ports, and the addresses `up` prints;
//! - [`expected`]: a journey's trace is whole when it holds the load generator's root, the
//!   catalog's SERVER span under the load generator's CLIENT span with its database span and,
//!   for a purchase, the checkout's SERVER span under the load generator's CLIENT span, the
//!   checkout's own call to the catalog, and its database spans;
//! - [`ShopLoad`]: `throughline load shop` asks the load generator for one journey at a time;
//! - [`SERVICES`]: what `throughline serve` runs.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use shop_loadgen::JourneyKind;
use throughline_harness::{
    Expect, Hop, PartSpec, Platform, PortClaim, Request, Scenario, Service, SpanPattern,
    SystemDescription, TraceExpectation,
};

/// The system's name in `up`, `load` and `verify`.
pub const NAME: &str = "shop";
/// Where `load` sends by default: the load generator.
pub const DEFAULT_TARGET: &str = "http://127.0.0.1:8010";
/// The load generator's stats by journey and step (`POST` resets, `GET` reads).
pub const LOAD_STATS_PATH: &str = "/api/stats";
/// Where `throughline load shop --scenario` starts a demo on the running shop.
pub const DEMO_PATH: &str = "/api/demo";

/// The services `throughline serve` runs.
pub const SERVICES: &[Service] = &[
    Service {
        name: shop_catalog::SERVICE_NAME,
        about: "The shop's product catalog (HTTP, port 8014 unless SHOP_CATALOG_ADDR says otherwise)",
        run: |env| shop_catalog::entry::run_main(env).map_err(Into::into),
    },
    Service {
        name: shop_checkout::SERVICE_NAME,
        about: "The shop's checkout (HTTP, port 8016 unless SHOP_CHECKOUT_ADDR says otherwise)",
        run: |env| shop_checkout::entry::run_main(env).map_err(Into::into),
    },
    Service {
        name: shop_loadgen::SERVICE_NAME,
        about: "The shop's load generator (HTTP, port 8010 unless SHOP_LOADGEN_ADDR says otherwise)",
        run: |env| shop_loadgen::entry::run_main(env).map_err(Into::into),
    },
];

/// What the shop's demo does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShopScenario {
    /// The index in place, the pool healthy.
    Normal,
    /// Seed 003's 30-minute Black Friday (ramp, peak, degradation, critical), the load generator
    /// driving its own traffic through it.
    Blackfriday,
}

/// The flags of `throughline up` that are the shop's (their group named apart from other
/// systems' `UpOptions`: clap refuses two groups of one name).
#[derive(Debug, Clone, clap::Args)]
#[group(id = "shop_up_options")]
#[command(next_help_heading = "The shop (seed 003)")]
pub struct UpOptions {
    /// The load generator.
    #[arg(long, default_value = "127.0.0.1:8010")]
    pub loadgen_addr: SocketAddr,
    /// The product catalog.
    #[arg(long, default_value = "127.0.0.1:8014")]
    pub catalog_addr: SocketAddr,
    /// The checkout.
    #[arg(long, default_value = "127.0.0.1:8016")]
    pub checkout_addr: SocketAddr,
    /// The shop's demo: `blackfriday` runs seed 003's Black Friday with its own traffic.
    #[arg(long, value_enum, default_value = "normal")]
    pub scenario: ShopScenario,
    /// Seconds one demo minute lasts (60: the seed's 30-minute demo; 2: a one-minute one).
    #[arg(long, default_value_t = 60.0)]
    pub minute_secs: f64,
    /// Products the catalog seeds at first start.
    #[arg(long, default_value_t = 100_000)]
    pub products: u64,
    /// Connections in the checkout's pool.
    #[arg(long, default_value_t = 10)]
    pub pool_size: usize,
    /// Milliseconds a checkout waits for a connection before it fails (503).
    #[arg(long, default_value_t = 1000)]
    pub pool_wait_ms: u64,
    /// Milliseconds from which a category query carries `db.slow_query=true`.
    #[arg(long, default_value_t = 100)]
    pub slow_query_ms: u64,
    /// Journeys a second at the Black Friday peak.
    #[arg(long, default_value_t = 20.0)]
    pub peak_rate: f64,
    /// Journeys of the load generator's continuous traffic in flight at most.
    #[arg(long, default_value_t = 64)]
    pub max_in_flight: usize,
    /// Run the shop's services without tracing (`OTEL_SDK_DISABLED=true`): the benchmark's
    /// baseline.
    #[arg(long)]
    pub untraced_shop: bool,
}

/// The hops of each journey's trace, by its root span's name.
pub fn expected() -> TraceExpectation {
    let lg_client = SpanPattern::of_kind(shop_loadgen::SERVICE_NAME, "client");
    let catalog_server = SpanPattern::of_kind(shop_catalog::SERVICE_NAME, "server");
    let catalog_db = SpanPattern::of_kind(shop_catalog::SERVICE_NAME, "client");
    let checkout_server = SpanPattern::of_kind(shop_checkout::SERVICE_NAME, "server");
    let checkout_client = SpanPattern::of_kind(shop_checkout::SERVICE_NAME, "client");
    let browse = vec![
        Hop::new(lg_client.clone(), catalog_server.clone()),
        Hop::new(catalog_server.clone(), catalog_db),
    ];
    let mut purchase = browse.clone();
    purchase.extend([
        Hop::new(lg_client, checkout_server.clone()),
        Hop::new(checkout_server, checkout_client.clone()),
        Hop::new(checkout_client, catalog_server),
    ]);
    TraceExpectation {
        services: vec![shop_loadgen::SERVICE_NAME.to_owned()],
        hops: Vec::new(),
        by_root: JourneyKind::ALL
            .into_iter()
            .map(|kind| {
                let hops = if kind == JourneyKind::Purchase {
                    purchase.clone()
                } else {
                    browse.clone()
                };
                (kind.span_name(), hops)
            })
            .collect(),
    }
}

/// The system on `platform`: the catalog, the checkout, then the load generator.
pub fn describe(platform: &Platform, opts: &UpOptions) -> SystemDescription {
    let data = platform.data(NAME);
    let catalog_url = format!("http://{}", opts.catalog_addr);
    let checkout_url = format!("http://{}", opts.checkout_addr);
    let loadgen_url = format!("http://{}", opts.loadgen_addr);
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let env = |service: &str| {
        let mut env = platform.service_env(service);
        if opts.scenario == ShopScenario::Blackfriday {
            env.extend([
                ("DEMO_MODE".to_owned(), "blackfriday".to_owned()),
                ("DEMO_START_TIMESTAMP".to_owned(), start.to_string()),
                ("SHOP_MINUTE_SECS".to_owned(), opts.minute_secs.to_string()),
            ]);
        }
        env.extend([
            ("SHOP_CATALOG_URL".to_owned(), catalog_url.clone()),
            ("SHOP_CHECKOUT_URL".to_owned(), checkout_url.clone()),
        ]);
        if opts.untraced_shop {
            env.push(("OTEL_SDK_DISABLED".into(), "true".into()));
        }
        env
    };
    // The platform's PostgreSQL (`up --database-url`), the shop's tables in the schema `shop`;
    // else one SQLite file per service.
    let database = |file: &str| match &platform.database_url {
        Some(url) => url.clone(),
        None => format!("sqlite:{}", data.join(file).display()),
    };
    let part = |name: &str, addr: SocketAddr, extra: Vec<(String, String)>| {
        let mut env = env(name);
        env.extend(extra);
        PartSpec {
            name: name.into(),
            program: platform.exe.clone(),
            args: vec!["serve".into(), name.into()],
            env,
            ready: Some(addr),
        }
    };
    let catalog = part(
        shop_catalog::SERVICE_NAME,
        opts.catalog_addr,
        vec![
            ("SHOP_CATALOG_ADDR".into(), opts.catalog_addr.to_string()),
            ("DATABASE_URL".into(), database("catalog.sqlite3")),
            ("SHOP_DATABASE_SCHEMA".into(), NAME.into()),
            ("SHOP_PRODUCTS".into(), opts.products.to_string()),
            ("SHOP_SLOW_QUERY_MS".into(), opts.slow_query_ms.to_string()),
        ],
    );
    let checkout = part(
        shop_checkout::SERVICE_NAME,
        opts.checkout_addr,
        vec![
            ("SHOP_CHECKOUT_ADDR".into(), opts.checkout_addr.to_string()),
            ("DATABASE_URL".into(), database("checkout.sqlite3")),
            ("SHOP_DATABASE_SCHEMA".into(), NAME.into()),
            ("SHOP_POOL_SIZE".into(), opts.pool_size.to_string()),
            ("SHOP_POOL_WAIT_MS".into(), opts.pool_wait_ms.to_string()),
        ],
    );
    let loadgen = part(
        shop_loadgen::SERVICE_NAME,
        opts.loadgen_addr,
        vec![
            ("SHOP_LOADGEN_ADDR".into(), opts.loadgen_addr.to_string()),
            ("SHOP_PEAK_RATE".into(), opts.peak_rate.to_string()),
            ("SHOP_MAX_IN_FLIGHT".into(), opts.max_in_flight.to_string()),
        ],
    );
    let mut try_load = String::from("throughline load shop --journeys 200 --concurrency 8");
    if loadgen_url != DEFAULT_TARGET {
        try_load.push_str(&format!(" --api {loadgen_url}"));
    }
    if platform.query_url() != "http://127.0.0.1:16686" {
        try_load.push_str(&format!(" --query {}", platform.query_url()));
    }
    let mut endpoints = vec![
        (
            "load generator".into(),
            format!(
                "{loadgen_url}   (POST /api/journeys/{{browse|search|purchase|abandon}}, POST /api/traffic, GET /api/stats)"
            ),
        ),
        (
            "product catalog".into(),
            format!("{catalog_url}   (GET /products?category=books, GET /products/{{id}})"),
        ),
        (
            "checkout".into(),
            format!("{checkout_url}   (POST /orders/create, GET /orders/{{id}})"),
        ),
        (
            "shop database".into(),
            match &platform.database_url {
                Some(_) => "PostgreSQL (--database-url), schema shop".to_owned(),
                None => format!("SQLite files in {}", data.display()),
            },
        ),
    ];
    if opts.scenario == ShopScenario::Blackfriday {
        endpoints.push((
            "Black Friday".into(),
            format!(
                "running, one demo minute = {} s: ramp 0-4, peak 5-14, degradation 15-24, critical 25-29",
                opts.minute_secs
            ),
        ));
    }
    SystemDescription {
        name: NAME.into(),
        parts: vec![catalog, checkout, loadgen],
        declarations: Default::default(),
        expected: expected(),
        ports: vec![
            PortClaim::new(opts.loadgen_addr, "load-generator", "--loadgen-addr"),
            PortClaim::new(opts.catalog_addr, "product-catalog", "--catalog-addr"),
            PortClaim::new(opts.checkout_addr, "checkout", "--checkout-addr"),
        ],
        endpoints,
        try_load,
    }
}

/// `throughline load shop`: one journey per request, in the load generator's default mix
/// (browse 4, search 2, purchase 3, abandon 1 in every 10); an invalid request asks for a
/// journey that does not exist (a 400 naming `type`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ShopLoad;

impl Scenario for ShopLoad {
    fn request(&self, _run_id: &str, n: u64, invalid_ratio: f64) -> Request {
        if rand::rng().random::<f64>() < invalid_ratio {
            return Request {
                method: reqwest::Method::POST,
                path: "/api/journeys/teleport".into(),
                body: None,
                expect: Expect::Rejected,
            };
        }
        let kind = match n % 10 {
            0..=3 => JourneyKind::Browse,
            4 | 5 => JourneyKind::Search,
            6..=8 => JourneyKind::Purchase,
            _ => JourneyKind::Abandon,
        };
        Request {
            method: reqwest::Method::POST,
            path: format!("/api/journeys/{kind}"),
            body: None,
            expect: Expect::Accepted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_covers_every_journey_and_purchases_expect_the_checkout() {
        let paths: Vec<String> = (0..10)
            .map(|n| ShopLoad.request("r", n, 0.0).path)
            .collect();
        for kind in JourneyKind::ALL {
            assert!(
                paths.contains(&format!("/api/journeys/{kind}")),
                "{paths:?}"
            );
        }
        let expected = expected();
        let purchase = &expected
            .by_root
            .iter()
            .find(|(n, _)| n == "user_journey.purchase")
            .unwrap()
            .1;
        assert!(purchase.iter().any(|h| h.to.service == "checkout"));
        let browse = &expected
            .by_root
            .iter()
            .find(|(n, _)| n == "user_journey.browse")
            .unwrap()
            .1;
        assert!(browse.iter().all(|h| h.to.service != "checkout"));
    }
}
