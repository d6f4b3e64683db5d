//! Customer records and their handles (one customer, several handles on several
//! channels), with merges: a merged-away record keeps its row and points at the survivor.

use super::schema::{customer_handles, customers};
use super::{on_backend, DbConn};
use crate::domain::ids::CustomerId;
use crate::error::{Error, Result};
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = customers)]
struct Stored {
    id: String,
    crm_ref: Option<String>,
    created_at: NaiveDateTime,
    merged_into: Option<String>,
}

/// A customer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRow {
    pub id: CustomerId,
    pub crm_ref: Option<String>,
    pub created_at: NaiveDateTime,
    /// Set when this record was merged into another.
    pub merged_into: Option<CustomerId>,
}

fn id_of(raw: &str, what: &str) -> Result<CustomerId> {
    raw.parse()
        .map_err(|e| Error::Internal(format!("stored {what}: {e}")))
}

impl TryFrom<Stored> for CustomerRow {
    type Error = Error;
    fn try_from(s: Stored) -> Result<CustomerRow> {
        Ok(CustomerRow {
            id: id_of(&s.id, "customer id")?,
            crm_ref: s.crm_ref,
            created_at: s.created_at,
            merged_into: s
                .merged_into
                .as_deref()
                .map(|m| id_of(m, "merged_into"))
                .transpose()?,
        })
    }
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

pub fn by_id(conn: &mut DbConn, id: CustomerId) -> Result<Option<CustomerRow>> {
    customers::table
        .select(Stored::as_select())
        .filter(customers::id.eq(id.to_string()))
        .get_result(conn)
        .optional()?
        .map(CustomerRow::try_from)
        .transpose()
}

/// Customers (not merged away) with this CRM reference.
pub fn by_crm_ref(conn: &mut DbConn, crm_ref: &str) -> Result<Vec<CustomerRow>> {
    customers::table
        .select(Stored::as_select())
        .filter(customers::crm_ref.eq(crm_ref))
        .filter(customers::merged_into.is_null())
        .order(customers::id.asc())
        .load(conn)?
        .into_iter()
        .map(CustomerRow::try_from)
        .collect()
}

/// Ids of the customers owning this handle (in search form) on any channel.
pub fn with_handle(conn: &mut DbConn, handle: &str) -> Result<Vec<CustomerId>> {
    customer_handles::table
        .select(customer_handles::customer_id)
        .filter(customer_handles::handle.eq(handle))
        .distinct()
        .load::<String>(conn)?
        .iter()
        .map(|c| id_of(c, "customer id of a handle"))
        .collect()
}

/// Every record merged (directly) into `id`.
pub fn merged_into(conn: &mut DbConn, id: CustomerId) -> Result<Vec<CustomerId>> {
    customers::table
        .select(customers::id)
        .filter(customers::merged_into.eq(id.to_string()))
        .load::<String>(conn)?
        .iter()
        .map(|c| id_of(c, "customer id"))
        .collect()
}

/// The customer who owns this handle on this channel, if any.
pub fn owner_of_handle(
    conn: &mut DbConn,
    channel: &str,
    handle: &str,
) -> Result<Option<CustomerId>> {
    on_backend!(conn, c => customer_handles::table
        .select(customer_handles::customer_id)
        .filter(customer_handles::channel.eq(channel))
        .filter(customer_handles::handle.eq(handle))
        .get_result::<String>(c)
        .optional())?
    .map(|c| id_of(&c, "customer id of a handle"))
    .transpose()
}

pub fn insert(conn: &mut DbConn, id: CustomerId, now: NaiveDateTime) -> Result<()> {
    on_backend!(conn, c => diesel::insert_into(customers::table)
        .values((
            customers::id.eq(id.to_string()),
            customers::created_at.eq(now),
        ))
        .execute(c))?;
    Ok(())
}

pub fn insert_handle(
    conn: &mut DbConn,
    channel: &str,
    handle: &str,
    customer: CustomerId,
    external_user_id: Option<&str>,
    now: NaiveDateTime,
) -> Result<()> {
    on_backend!(conn, c => diesel::insert_into(customer_handles::table)
        .values((
            customer_handles::channel.eq(channel),
            customer_handles::handle.eq(handle),
            customer_handles::customer_id.eq(customer.to_string()),
            customer_handles::external_user_id.eq(external_user_id),
            customer_handles::created_at.eq(now),
        ))
        .execute(c))?;
    Ok(())
}

pub fn handles_of(conn: &mut DbConn, customer: CustomerId) -> Result<Vec<HandleRow>> {
    Ok(customer_handles::table
        .select(HandleRow::as_select())
        .filter(customer_handles::customer_id.eq(customer.to_string()))
        .order((
            customer_handles::created_at.asc(),
            customer_handles::channel.asc(),
        ))
        .load(conn)?)
}

pub fn set_crm_ref(conn: &mut DbConn, id: CustomerId, crm_ref: Option<&str>) -> Result<()> {
    diesel::update(customers::table.filter(customers::id.eq(id.to_string())))
        .set(customers::crm_ref.eq(crm_ref))
        .execute(conn)?;
    Ok(())
}

/// Moves `from`'s handles to `into` and marks `from` merged into it (its CRM reference
/// goes with it).
pub fn merge(conn: &mut DbConn, from: CustomerId, into: CustomerId) -> Result<()> {
    diesel::update(
        customer_handles::table.filter(customer_handles::customer_id.eq(from.to_string())),
    )
    .set(customer_handles::customer_id.eq(into.to_string()))
    .execute(conn)?;
    diesel::update(customers::table.filter(customers::id.eq(from.to_string())))
        .set((
            customers::merged_into.eq(Some(into.to_string())),
            customers::crm_ref.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(())
}

/// The customer whose handle on `channel` carries this channel user id (the author renamed
/// their handle since), if any.
pub fn owner_of_external_user(
    conn: &mut DbConn,
    channel: &str,
    external_user_id: &str,
) -> Result<Option<CustomerId>> {
    customer_handles::table
        .select(customer_handles::customer_id)
        .filter(customer_handles::channel.eq(channel))
        .filter(customer_handles::external_user_id.eq(external_user_id))
        .order(customer_handles::created_at.desc())
        .limit(1)
        .load::<String>(conn)?
        .first()
        .map(|c| id_of(c, "customer id of a handle"))
        .transpose()
}
