//! Customers, their handles, and inbound messages.

use super::schema::{customer_handles, customers, inbound_messages};
use super::DbConn;
use crate::error::Result;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = inbound_messages)]
pub struct InboundRow {
    pub id: String,
    pub channel: String,
    pub external_id: String,
    pub customer_id: String,
    pub author_handle: String,
    pub text: String,
    pub received_at: NaiveDateTime,
    pub due_at: NaiveDateTime,
    pub state: String,
    pub closed_reason: Option<String>,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = customers)]
pub struct CustomerRow {
    pub id: String,
    pub crm_ref: Option<String>,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = customer_handles)]
pub struct HandleRow {
    pub channel: String,
    pub handle: String,
    pub customer_id: String,
    pub external_user_id: Option<String>,
    pub created_at: NaiveDateTime,
}

pub fn by_external_id(
    conn: &mut DbConn,
    channel: &str,
    external_id: &str,
) -> Result<Option<InboundRow>> {
    Ok(inbound_messages::table
        .select(InboundRow::as_select())
        .filter(inbound_messages::channel.eq(channel))
        .filter(inbound_messages::external_id.eq(external_id))
        .first(conn)
        .optional()?)
}

pub fn by_id(conn: &mut DbConn, id: &str) -> Result<Option<InboundRow>> {
    Ok(inbound_messages::table
        .select(InboundRow::as_select())
        .filter(inbound_messages::id.eq(id))
        .first(conn)
        .optional()?)
}

/// The customer who owns this handle on this channel, if any.
pub fn customer_for_handle(
    conn: &mut DbConn,
    channel: &str,
    handle: &str,
) -> Result<Option<String>> {
    Ok(customer_handles::table
        .select(customer_handles::customer_id)
        .filter(customer_handles::channel.eq(channel))
        .filter(customer_handles::handle.eq(handle))
        .first(conn)
        .optional()?)
}

pub fn insert_customer(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<()> {
    diesel::insert_into(customers::table)
        .values((customers::id.eq(id), customers::created_at.eq(now)))
        .execute(conn)?;
    Ok(())
}

pub fn insert_handle(
    conn: &mut DbConn,
    channel: &str,
    handle: &str,
    customer_id: &str,
    external_user_id: Option<&str>,
    now: NaiveDateTime,
) -> Result<()> {
    diesel::insert_into(customer_handles::table)
        .values((
            customer_handles::channel.eq(channel),
            customer_handles::handle.eq(handle),
            customer_handles::customer_id.eq(customer_id),
            customer_handles::external_user_id.eq(external_user_id),
            customer_handles::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

pub struct NewInbound<'a> {
    pub id: &'a str,
    pub channel: &'a str,
    pub external_id: &'a str,
    pub customer_id: &'a str,
    pub author_handle: &'a str,
    pub text: &'a str,
    pub received_at: NaiveDateTime,
    pub due_at: NaiveDateTime,
    pub now: NaiveDateTime,
}

pub fn insert(conn: &mut DbConn, m: &NewInbound<'_>) -> Result<()> {
    diesel::insert_into(inbound_messages::table)
        .values((
            inbound_messages::id.eq(m.id),
            inbound_messages::channel.eq(m.channel),
            inbound_messages::external_id.eq(m.external_id),
            inbound_messages::customer_id.eq(m.customer_id),
            inbound_messages::author_handle.eq(m.author_handle),
            inbound_messages::text.eq(m.text),
            inbound_messages::received_at.eq(m.received_at),
            inbound_messages::due_at.eq(m.due_at),
            inbound_messages::state.eq("open"),
            inbound_messages::created_at.eq(m.now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Messages in `state`, soonest due first, at most `limit`.
pub fn list_by_state(conn: &mut DbConn, state: &str, limit: i64) -> Result<Vec<InboundRow>> {
    Ok(inbound_messages::table
        .select(InboundRow::as_select())
        .filter(inbound_messages::state.eq(state))
        .order((inbound_messages::due_at.asc(), inbound_messages::id.asc()))
        .limit(limit)
        .load(conn)?)
}

pub fn set_state(conn: &mut DbConn, id: &str, state: &str) -> Result<()> {
    diesel::update(inbound_messages::table.filter(inbound_messages::id.eq(id)))
        .set(inbound_messages::state.eq(state))
        .execute(conn)?;
    Ok(())
}

pub fn customer(conn: &mut DbConn, id: &str) -> Result<Option<CustomerRow>> {
    Ok(customers::table
        .select(CustomerRow::as_select())
        .filter(customers::id.eq(id))
        .first(conn)
        .optional()?)
}

pub fn handles_of(conn: &mut DbConn, customer_id: &str) -> Result<Vec<HandleRow>> {
    Ok(customer_handles::table
        .select(HandleRow::as_select())
        .filter(customer_handles::customer_id.eq(customer_id))
        .order(customer_handles::created_at.asc())
        .load(conn)?)
}

/// The customer's messages, newest first.
pub fn history_of(conn: &mut DbConn, customer_id: &str, limit: i64) -> Result<Vec<InboundRow>> {
    Ok(inbound_messages::table
        .select(InboundRow::as_select())
        .filter(inbound_messages::customer_id.eq(customer_id))
        .order(inbound_messages::received_at.desc())
        .limit(limit)
        .load(conn)?)
}
