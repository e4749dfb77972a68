//! Opening the shared SQLite file with the settings both services use (WAL and a busy timeout,
//! so the API and the worker can write the same file): the service kit's opener, which every
//! system's SQLite file goes through.

pub use throughline_service_kit::database::{SqliteOpenError, open_sqlite};
