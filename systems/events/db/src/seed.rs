//! What the database holds at first start: the products, the videos, on every video the house
//! placement (0 to 30 s, so an overlapping request is refused whatever the order) and a
//! catalogue of placements (one every minute of the first hour), so listing the videos with
//! their placements is a real page to load. Idempotent on both engines.

use rusqlite::Connection;
use sqlx::PgConnection;

/// The seeded products: id, name, price in cents.
pub const SEED_PRODUCTS: &[(&str, &str, i64)] = &[
    ("prod-001", "Espresso Machine", 34_900),
    ("prod-002", "Road Helmet", 8_900),
    ("prod-003", "Chef Knife", 12_500),
    ("prod-004", "Trail Shoes", 14_000),
    ("prod-005", "Standing Desk", 49_900),
];

/// How many videos are seeded (`vid-001` …).
pub const SEED_VIDEO_COUNT: usize = 80;

/// Placements seeded on every video besides the house one: minute `k` of the first hour holds
/// one from `60 k` to `60 k + 20` seconds.
pub const CATALOGUE_PLACEMENTS_PER_VIDEO: usize = 60;

/// The house placement seeded on every video: `start_time` 0, `end_time` this.
pub const HOUSE_PLACEMENT_END: f64 = 30.0;

/// The first second no seeded placement reaches: new placements from here on never overlap
/// the seed.
pub const FREE_FROM_SECS: f64 = 4_000.0;

/// The first five titles; the others are numbered episodes.
const TITLES: &[&str] = &[
    "Morning Routine",
    "City Cycling",
    "Kitchen Basics",
    "Mountain Trail",
    "Home Office Tour",
];

/// A seeded video.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedVideo {
    pub id: String,
    pub title: String,
    pub duration_secs: f64,
}

/// The seeded videos, in id order.
pub fn seed_videos() -> Vec<SeedVideo> {
    (1..=SEED_VIDEO_COUNT)
        .map(|n| SeedVideo {
            id: format!("vid-{n:03}"),
            title: TITLES
                .get(n - 1)
                .map_or_else(|| format!("Episode {n}"), |t| (*t).to_owned()),
            duration_secs: 3_600_000.0,
        })
        .collect()
}

/// The seeded placements of one video: id, product, start, end.
fn seeded_placements(video: &str) -> Vec<(String, &'static str, f64, f64)> {
    let mut out = vec![(
        format!("house-{video}"),
        SEED_PRODUCTS[0].0,
        0.0,
        HOUSE_PLACEMENT_END,
    )];
    for k in 1..=CATALOGUE_PLACEMENTS_PER_VIDEO {
        let start = 60.0 * k as f64;
        out.push((
            format!("seed-{video}-{k:03}"),
            SEED_PRODUCTS[k % SEED_PRODUCTS.len()].0,
            start,
            start + 20.0,
        ));
    }
    out
}

const SEEDED_AT: &str = "2026-01-01T00:00:00Z";

pub(crate) fn sqlite(conn: &Connection) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    for (id, name, price) in SEED_PRODUCTS {
        tx.execute(
            "INSERT OR IGNORE INTO products (id, name, price_cents) VALUES (?1, ?2, ?3)",
            (id, name, price),
        )?;
    }
    for v in seed_videos() {
        tx.execute(
            "INSERT OR IGNORE INTO videos (id, title, duration_secs) VALUES (?1, ?2, ?3)",
            (&v.id, &v.title, v.duration_secs),
        )?;
        for (id, product, start, end) in seeded_placements(&v.id) {
            tx.execute(
                "INSERT OR IGNORE INTO placements (id, video_id, product_id, start_time, end_time, status, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'valid', ?6)",
                (&id, &v.id, product, start, end, SEEDED_AT),
            )?;
        }
    }
    tx.commit()
}

/// The seed on PostgreSQL, inside the caller's transaction.
pub(crate) async fn postgres(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    for (id, name, price) in SEED_PRODUCTS {
        sqlx::query(
            "INSERT INTO products (id, name, price_cents) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(name)
        .bind(price)
        .execute(&mut *conn)
        .await?;
    }
    for v in seed_videos() {
        sqlx::query(
            "INSERT INTO videos (id, title, duration_secs) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(&v.id)
        .bind(&v.title)
        .bind(v.duration_secs)
        .execute(&mut *conn)
        .await?;
        let placements = seeded_placements(&v.id);
        let ids: Vec<String> = placements.iter().map(|p| p.0.clone()).collect();
        let products: Vec<&str> = placements.iter().map(|p| p.1).collect();
        let starts: Vec<f64> = placements.iter().map(|p| p.2).collect();
        let ends: Vec<f64> = placements.iter().map(|p| p.3).collect();
        sqlx::query(
            "INSERT INTO placements (id, video_id, product_id, start_time, end_time, status, created_at)
             SELECT id, $2, product_id, start_time, end_time, 'valid', $6
             FROM UNNEST($1::text[], $3::text[], $4::float8[], $5::float8[])
                  AS s(id, product_id, start_time, end_time)
             ON CONFLICT DO NOTHING",
        )
        .bind(&ids)
        .bind(&v.id)
        .bind(&products)
        .bind(&starts)
        .bind(&ends)
        .bind(SEEDED_AT)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_placements_never_overlap_and_end_before_the_free_range() {
        let p = seeded_placements("vid-001");
        assert_eq!(p.len(), 1 + CATALOGUE_PLACEMENTS_PER_VIDEO);
        for w in p.windows(2) {
            assert!(w[0].3 <= w[1].2, "{w:?}");
        }
        assert!(p.last().unwrap().3 < FREE_FROM_SECS);
        assert_eq!(seed_videos()[0].title, "Morning Routine");
        assert_eq!(seed_videos()[79].id, "vid-080");
    }
}
