//! Inbound messages: the queue, and each message's deadline marks.

use super::schema::inbound_messages;
use super::{fixed_update, on_backend, DbConn};
use crate::domain::ids::{CustomerId, InboundId};
use crate::domain::inbound::InboundState;
use crate::error::Result;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = inbound_messages)]
pub struct InboundRow {
    #[diesel(deserialize_as = String)]
    pub id: InboundId,
    /// As stored: `x`, `mastodon` or `log` (older rows may name another channel).
    pub channel: String,
    pub external_id: String,
    #[diesel(deserialize_as = String)]
    pub customer_id: CustomerId,
    pub author_handle: String,
    pub text: String,
    pub received_at: NaiveDateTime,
    pub due_at: NaiveDateTime,
    #[diesel(deserialize_as = String)]
    pub state: InboundState,
    pub closed_reason: Option<String>,
    pub created_at: NaiveDateTime,
    /// When it becomes `at_risk` (business time before `due_at`).
    pub at_risk_at: NaiveDateTime,
    /// When `inbound.at_risk` was recorded (once).
    pub at_risk_noted_at: Option<NaiveDateTime>,
    /// When `inbound.breached` was recorded (once).
    pub breached_noted_at: Option<NaiveDateTime>,
    /// When it left the open queue (answered or closed); its deadline state stops there.
    pub settled_at: Option<NaiveDateTime>,
    /// Mastodon: the post's visibility (`public`, `unlisted`, `private`, `direct`), which
    /// the reply keeps. `None` on other channels.
    pub visibility: Option<String>,
}

pub fn by_external_id(
    conn: &mut DbConn,
    channel: &str,
    external_id: &str,
) -> Result<Option<InboundRow>> {
    Ok(on_backend!(conn, c => inbound_messages::table
        .select(InboundRow::as_select())
        .filter(inbound_messages::channel.eq(channel))
        .filter(inbound_messages::external_id.eq(external_id))
        .get_result(c)
        .optional())?)
}

pub fn by_id(conn: &mut DbConn, id: InboundId) -> Result<Option<InboundRow>> {
    let id = id.to_string();
    Ok(on_backend!(conn, c => inbound_messages::table
        .select(InboundRow::as_select())
        .filter(inbound_messages::id.eq(&id))
        .get_result(c)
        .optional())?)
}

pub struct NewInbound<'a> {
    pub id: InboundId,
    pub channel: &'a str,
    pub external_id: &'a str,
    pub customer_id: CustomerId,
    pub author_handle: &'a str,
    pub text: &'a str,
    pub received_at: NaiveDateTime,
    pub due_at: NaiveDateTime,
    pub at_risk_at: NaiveDateTime,
    pub visibility: Option<&'a str>,
    pub now: NaiveDateTime,
}

pub fn insert(conn: &mut DbConn, m: &NewInbound<'_>) -> Result<()> {
    on_backend!(conn, c => diesel::insert_into(inbound_messages::table)
        .values((
            inbound_messages::id.eq(m.id.to_string()),
            inbound_messages::channel.eq(m.channel),
            inbound_messages::external_id.eq(m.external_id),
            inbound_messages::customer_id.eq(m.customer_id.to_string()),
            inbound_messages::author_handle.eq(m.author_handle),
            inbound_messages::text.eq(m.text),
            inbound_messages::received_at.eq(m.received_at),
            inbound_messages::due_at.eq(m.due_at),
            inbound_messages::at_risk_at.eq(m.at_risk_at),
            inbound_messages::visibility.eq(m.visibility),
            inbound_messages::state.eq(InboundState::Open.as_str()),
            inbound_messages::created_at.eq(m.now),
        ))
        .execute(c))?;
    Ok(())
}

/// Messages in `state`, soonest due first, at most `limit`.
pub fn list_by_state(
    conn: &mut DbConn,
    state: InboundState,
    limit: i64,
) -> Result<Vec<InboundRow>> {
    Ok(inbound_messages::table
        .select(InboundRow::as_select())
        .filter(inbound_messages::state.eq(state.as_str()))
        .order((inbound_messages::due_at.asc(), inbound_messages::id.asc()))
        .limit(limit)
        .load(conn)?)
}

/// Takes the message out of the open queue as `state` (answered or closed) at `at`.
pub fn settle(
    conn: &mut DbConn,
    id: InboundId,
    state: InboundState,
    at: NaiveDateTime,
) -> Result<()> {
    let id = id.to_string();
    on_backend!(conn, c => fixed_update(
        inbound_messages::table,
        inbound_messages::id.eq(&id),
        (
            inbound_messages::state.eq(state.as_str()),
            inbound_messages::settled_at.eq(Some(at)),
        ),
    )
    .execute(c))?;
    Ok(())
}

/// Open messages whose at-risk or breached moment has come (by `now`) and is not yet
/// recorded, soonest due first, at most `limit`.
pub fn deadlines_due(conn: &mut DbConn, now: NaiveDateTime, limit: i64) -> Result<Vec<InboundRow>> {
    use inbound_messages::dsl as m;
    Ok(m::inbound_messages
        .select(InboundRow::as_select())
        .filter(m::state.eq(InboundState::Open.as_str()))
        .filter(
            m::at_risk_at
                .le(now)
                .and(m::at_risk_noted_at.is_null())
                .or(m::due_at.lt(now).and(m::breached_noted_at.is_null())),
        )
        .order((m::due_at.asc(), m::id.asc()))
        .limit(limit)
        .load(conn)?)
}

/// Marks the at-risk and breached moments recorded (those given).
pub fn note_deadline(
    conn: &mut DbConn,
    id: InboundId,
    at_risk: Option<NaiveDateTime>,
    breached: Option<NaiveDateTime>,
) -> Result<()> {
    use inbound_messages::dsl as m;
    let id = id.to_string();
    if let Some(t) = at_risk {
        diesel::update(m::inbound_messages.filter(m::id.eq(&id)))
            .set(m::at_risk_noted_at.eq(Some(t)))
            .execute(conn)?;
    }
    if let Some(t) = breached {
        diesel::update(m::inbound_messages.filter(m::id.eq(&id)))
            .set(m::breached_noted_at.eq(Some(t)))
            .execute(conn)?;
    }
    Ok(())
}

/// Every message of this customer, oldest first.
pub fn of_customer(conn: &mut DbConn, customer: CustomerId) -> Result<Vec<InboundRow>> {
    Ok(inbound_messages::table
        .select(InboundRow::as_select())
        .filter(inbound_messages::customer_id.eq(customer.to_string()))
        .order((
            inbound_messages::received_at.asc(),
            inbound_messages::id.asc(),
        ))
        .load(conn)?)
}

/// Moves every message of customer `from` to customer `to` (a merge).
pub fn move_to_customer(conn: &mut DbConn, from: CustomerId, to: CustomerId) -> Result<usize> {
    Ok(diesel::update(
        inbound_messages::table.filter(inbound_messages::customer_id.eq(from.to_string())),
    )
    .set(inbound_messages::customer_id.eq(to.to_string()))
    .execute(conn)?)
}

/// Closes an open message with a reason, at `at`. Returns whether it was open.
pub fn close(conn: &mut DbConn, id: InboundId, reason: &str, at: NaiveDateTime) -> Result<bool> {
    let n = diesel::update(
        inbound_messages::table
            .filter(inbound_messages::id.eq(id.to_string()))
            .filter(inbound_messages::state.eq(InboundState::Open.as_str())),
    )
    .set((
        inbound_messages::state.eq(InboundState::Closed.as_str()),
        inbound_messages::closed_reason.eq(Some(reason)),
        inbound_messages::settled_at.eq(Some(at)),
    ))
    .execute(conn)?;
    Ok(n == 1)
}
