//! Queries against MySQL. Every statement is parameterised; nothing is built from input strings.
//!
//! Every statement runs in a client span named after the database semantic conventions
//! (`SELECT activities`, with `db.system.name`, `db.operation.name`, `db.collection.name` and
//! `db.query.text`). The text is the statement with its `?` placeholders: bound values never
//! reach a span.

use std::future::Future;

use sqlx::MySqlPool;
use tracing::Instrument;
use tracing::field::Empty;

/// One SQL statement and what its span says about it.
pub(super) struct Stmt {
    /// `{operation} {collection}`: the span name the conventions ask for.
    pub(super) name: &'static str,
    pub(super) operation: &'static str,
    pub(super) collection: &'static str,
    pub(super) text: &'static str,
}

macro_rules! stmt {
    ($op:ident $table:ident, $text:expr) => {
        Stmt {
            name: concat!(stringify!($op), " ", stringify!($table)),
            operation: stringify!($op),
            collection: stringify!($table),
            text: $text,
        }
    };
}

impl Stmt {
    /// Runs `query` (built from `self.text`) inside this statement's span; a failure marks the
    /// span as an error and adds an exception event.
    pub(super) async fn run<T>(
        &self,
        query: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        let span = crate::telemetry::request_span!(
            "db.query",
            otel.name = self.name,
            otel.kind = "client",
            db.system.name = "mysql",
            db.operation.name = self.operation,
            db.collection.name = self.collection,
            db.query.text = self.text,
            otel.status_code = Empty,
        );
        let result = query.instrument(span.clone()).await;
        if let Err(error) = &result {
            span.record("otel.status_code", "ERROR");
            // An unnamed event with an `error` field becomes the span's exception event.
            tracing::debug!(parent: &span, error = %error);
        }
        result
    }
}

mod activities;
mod reservations;
mod runtime_settings;

pub use activities::{activity, activity_summary, insert_activity};
pub use reservations::{
    WriteError, WriteOutcome, cancel, counter, reservation, reserve, user_reservations, user_state,
};
pub use runtime_settings::{delete_runtime_setting, runtime_setting, save_runtime_setting};

pub async fn ping(pool: &MySqlPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}
