//! The API's own attribute keys (the conventions have none for placements), in one place.

/// The placement's id, on the PRODUCER span of its event.
pub const PLACEMENT_ID: &str = "placement.id";
/// The placement's video.
pub const PLACEMENT_VIDEO_ID: &str = "placement.video_id";
/// The placement's product.
pub const PLACEMENT_PRODUCT_ID: &str = "placement.product_id";
