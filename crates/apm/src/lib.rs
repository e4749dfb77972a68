//! The APM web pages: search, trace waterfall, service map, services, trace integrity.
