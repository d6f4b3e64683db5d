//! The rows `audit verify --state` compares with the log (spec/audit.md "Verify and
//! export"): only the columns the log's entries determine.

use super::schema::{
    customer_handles, customers, draft_revisions, drafts, inbound_messages, reviews, users,
};
use super::DbConn;
use crate::error::Result;
use diesel::prelude::*;

/// `(id, username, email, roles, disabled)`: roles as stored (comma-separated).
pub type UserState = (String, String, Option<String>, String, bool);
/// `(id, draft_id, reviewer_id, decision, revision)`.
pub type ReviewState = (String, String, String, String, i32);

pub fn users(conn: &mut DbConn) -> Result<Vec<UserState>> {
    Ok(users::table
        .select((
            users::id,
            users::username,
            users::email,
            users::roles,
            users::disabled,
        ))
        .load(conn)?)
}

/// `(id, crm_ref, merged_into)`.
pub type CustomerState = (String, Option<String>, Option<String>);

pub fn customers(conn: &mut DbConn) -> Result<Vec<CustomerState>> {
    Ok(customers::table
        .select((customers::id, customers::crm_ref, customers::merged_into))
        .load(conn)?)
}

/// `(channel, handle, customer_id)`.
pub fn handles(conn: &mut DbConn) -> Result<Vec<(String, String, String)>> {
    Ok(customer_handles::table
        .select((
            customer_handles::channel,
            customer_handles::handle,
            customer_handles::customer_id,
        ))
        .load(conn)?)
}

/// An inbound message's logged columns.
#[derive(Debug, Clone, Queryable)]
pub struct InboundState {
    pub id: String,
    pub channel: String,
    pub external_id: String,
    pub customer_id: String,
    pub text: String,
    pub state: String,
}

pub fn inbound(conn: &mut DbConn) -> Result<Vec<InboundState>> {
    Ok(inbound_messages::table
        .select((
            inbound_messages::id,
            inbound_messages::channel,
            inbound_messages::external_id,
            inbound_messages::customer_id,
            inbound_messages::text,
            inbound_messages::state,
        ))
        .load(conn)?)
}

/// `(id, state, revision, text)`.
pub fn drafts(conn: &mut DbConn) -> Result<Vec<(String, String, i32, String)>> {
    Ok(drafts::table
        .select((drafts::id, drafts::state, drafts::revision, drafts::text))
        .load(conn)?)
}

/// `(draft_id, revision, text, author_id)`.
pub fn revisions(conn: &mut DbConn) -> Result<Vec<(String, i32, String, String)>> {
    Ok(draft_revisions::table
        .select((
            draft_revisions::draft_id,
            draft_revisions::revision,
            draft_revisions::text,
            draft_revisions::author_id,
        ))
        .load(conn)?)
}

/// Every review, oldest first.
pub fn reviews(conn: &mut DbConn) -> Result<Vec<ReviewState>> {
    Ok(reviews::table
        .select((
            reviews::id,
            reviews::draft_id,
            reviews::reviewer_id,
            reviews::decision,
            reviews::revision,
        ))
        .order(reviews::id.asc())
        .load(conn)?)
}
