//! `UPDATE` statements that are prepared once per connection.
//!
//! Diesel keeps a prepared statement per connection for a query whose SQL its type fixes,
//! but never for an `UPDATE`: a changeset struct with `Option` fields renders different SQL
//! from one call to the next, so Diesel gives up on all of them, and every update is parsed
//! and planned by the database again. On the write path that was a sixth of the SQLite
//! writer's time (docs/performance.md). [`fixed_update`] builds the same statement from parts
//! whose types fix its SQL: the table, a changeset of plain `column.eq(value)` pairs (a
//! value may be an `Option`, bound as NULL), and a filter expression. A changeset that
//! could change shape (an `Option<Eq<…>>`, a boxed expression) has no static query id,
//! and then the statement is simply not kept, as before.

use diesel::backend::Backend;
use diesel::query_builder::{AsChangeset, AstPass, QueryFragment, QueryId};
use diesel::query_source::QuerySource;
use diesel::{QueryResult, RunQueryDsl, Table};
use std::marker::PhantomData;

/// `UPDATE table SET changes WHERE filter`, kept prepared when its parts' types fix its
/// SQL; built by [`fixed_update`].
#[derive(Debug)]
pub struct FixedUpdate<T: QuerySource, C, I, W> {
    from: T::FromClause,
    changes: C,
    filter: W,
    /// The changeset as the caller wrote it: its query id names the statement's shape.
    written: PhantomData<I>,
}

/// `UPDATE table SET changes WHERE filter`: `changes` a tuple of `column.eq(value)`,
/// `filter` a boolean expression on the table's columns. Run it with `execute`; it
/// returns the rows changed.
pub fn fixed_update<T, I, W>(table: T, filter: W, changes: I) -> FixedUpdate<T, I::Changeset, I, W>
where
    T: Table,
    I: AsChangeset<Target = T> + QueryId,
{
    FixedUpdate {
        from: table.from_clause(),
        changes: changes.as_changeset(),
        filter,
        written: PhantomData,
    }
}

impl<T, C, I, W> QueryId for FixedUpdate<T, C, I, W>
where
    T: QuerySource + 'static,
    I: QueryId,
    W: QueryId,
{
    type QueryId = FixedUpdate<T, (), I::QueryId, W::QueryId>;
    const HAS_STATIC_QUERY_ID: bool = I::HAS_STATIC_QUERY_ID && W::HAS_STATIC_QUERY_ID;
}

impl<T, C, I, W, DB> QueryFragment<DB> for FixedUpdate<T, C, I, W>
where
    DB: Backend,
    T: QuerySource,
    T::FromClause: QueryFragment<DB>,
    C: QueryFragment<DB>,
    W: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        self.from.walk_ast(out.reborrow())?;
        out.push_sql(" SET ");
        self.changes.walk_ast(out.reborrow())?;
        out.push_sql(" WHERE ");
        self.filter.walk_ast(out.reborrow())
    }
}

impl<T: QuerySource, C, I, W, Conn> RunQueryDsl<Conn> for FixedUpdate<T, C, I, W> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::schema::audit_head;
    use diesel::prelude::*;
    use diesel::sqlite::Sqlite;

    #[test]
    fn renders_what_diesel_renders_and_may_be_kept() {
        let diesels = diesel::update(audit_head::table.filter(audit_head::id.eq(1)))
            .set((audit_head::size.eq(2_i64), audit_head::tree_size.eq(2_i64)));
        let ours = fixed_update(
            audit_head::table,
            audit_head::id.eq(1),
            (audit_head::size.eq(2_i64), audit_head::tree_size.eq(2_i64)),
        );
        assert_eq!(
            diesel::debug_query::<Sqlite, _>(&ours).to_string(),
            diesel::debug_query::<Sqlite, _>(&diesels).to_string()
        );
        assert!(!diesels.is_safe_to_cache_prepared(&Sqlite).unwrap());
        assert!(ours.is_safe_to_cache_prepared(&Sqlite).unwrap());
        assert!(has_static_id(&ours));
    }

    #[test]
    fn changes_rows_on_a_real_database() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        diesel::sql_query("CREATE TABLE audit_head (id INTEGER PRIMARY KEY, size BIGINT NOT NULL, tree_size BIGINT NOT NULL)")
            .execute(&mut conn)
            .unwrap();
        diesel::sql_query("INSERT INTO audit_head VALUES (1, 0, 0), (2, 0, 0)")
            .execute(&mut conn)
            .unwrap();
        for n in 1..=3_i64 {
            let changed = fixed_update(
                audit_head::table,
                audit_head::id.eq(1),
                (audit_head::size.eq(n), audit_head::tree_size.eq(n * 10)),
            )
            .execute(&mut conn)
            .unwrap();
            assert_eq!(changed, 1);
        }
        let rows: Vec<(i32, i64, i64)> = audit_head::table
            .select((audit_head::id, audit_head::size, audit_head::tree_size))
            .order(audit_head::id)
            .load(&mut conn)
            .unwrap();
        assert_eq!(rows, vec![(1, 3, 30), (2, 0, 0)]);
    }

    fn has_static_id<Q: QueryId>(_: &Q) -> bool {
        Q::HAS_STATIC_QUERY_ID
    }
}
