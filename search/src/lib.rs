//! ChatSDK message search: a Tantivy index that is a rebuildable projection of the event log.
//!
//! The search consumer ([`consumer`], in the projector or embedded in a query node) drives the index's only
//! writer ([`writer`]); it commits documents together with the offsets that produced them ([`payload`]), so
//! restarting from the last commit applies every event once.
//! The query API opens the same directory read-only and follows the commits ([`engine`]). Access control is
//! not in the index: callers pass the channels the reader may see.

pub mod analyzer;
pub mod consumer;
pub mod engine;
pub mod payload;
pub mod query;
pub mod schema;
pub mod writer;

pub use analyzer::Analyzer;
pub use engine::{Cursor, Hit, IndexView, Scope, SearchError, SearchPage, SearchRequest, SortOrder};
pub use payload::Payload;
pub use writer::{Change, SearchWriter, WriterSettings};
