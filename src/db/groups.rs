//! Reviewer groups (`review_groups`, `review_group_members`): who may act on a step of a
//! review route.

use super::schema::{review_group_members, review_groups, users};
use super::DbConn;
use crate::domain::ids::{GroupId, UserId};
use crate::domain::roles::{Role, RoleSet};
use crate::error::{Error, Result};
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = review_groups)]
pub struct GroupRow {
    #[diesel(deserialize_as = String)]
    pub id: GroupId,
    pub name: String,
    pub created_at: NaiveDateTime,
}

/// Creates a group. Errors: [`Error::Conflict`] when the name is taken.
pub fn insert(conn: &mut DbConn, g: &GroupRow) -> Result<()> {
    let inserted = diesel::insert_into(review_groups::table)
        .values((
            review_groups::id.eq(g.id.to_string()),
            review_groups::name.eq(&g.name),
            review_groups::created_at.eq(g.created_at),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(()),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Err(Error::Conflict(format!("a group named {} exists", g.name))),
        Err(e) => Err(e.into()),
    }
}

pub fn by_name(conn: &mut DbConn, name: &str) -> Result<Option<GroupRow>> {
    Ok(review_groups::table
        .select(GroupRow::as_select())
        .filter(review_groups::name.eq(name))
        .get_result(conn)
        .optional()?)
}

/// Every group, by name.
pub fn all(conn: &mut DbConn) -> Result<Vec<GroupRow>> {
    Ok(review_groups::table
        .select(GroupRow::as_select())
        .order(review_groups::name.asc())
        .load(conn)?)
}

fn parse_users(raw: Vec<String>) -> Result<Vec<UserId>> {
    raw.into_iter()
        .map(|u| {
            u.parse()
                .map_err(|e| Error::Internal(format!("a stored group member id: {e}")))
        })
        .collect()
}

/// The members of a group, oldest user first.
pub fn members(conn: &mut DbConn, group: GroupId) -> Result<Vec<UserId>> {
    parse_users(
        review_group_members::table
            .select(review_group_members::user_id)
            .filter(review_group_members::group_id.eq(group.to_string()))
            .order(review_group_members::user_id.asc())
            .load(conn)?,
    )
}

/// Every (group, member) pair.
pub fn all_members(conn: &mut DbConn) -> Result<Vec<(GroupId, UserId)>> {
    let rows: Vec<(String, String)> = review_group_members::table
        .select((
            review_group_members::group_id,
            review_group_members::user_id,
        ))
        .order((
            review_group_members::group_id.asc(),
            review_group_members::user_id.asc(),
        ))
        .load(conn)?;
    rows.into_iter()
        .map(|(g, u)| {
            let bad = |e: crate::domain::ids::InvalidId| {
                Error::Internal(format!("a stored group membership: {e}"))
            };
            Ok((g.parse().map_err(bad)?, u.parse().map_err(bad)?))
        })
        .collect()
}

/// Makes `members` the group's members, replacing the ones it had.
pub fn set_members(
    conn: &mut DbConn,
    group: GroupId,
    members: &[UserId],
    at: NaiveDateTime,
) -> Result<()> {
    diesel::delete(
        review_group_members::table.filter(review_group_members::group_id.eq(group.to_string())),
    )
    .execute(conn)?;
    for user in members {
        diesel::insert_into(review_group_members::table)
            .values((
                review_group_members::group_id.eq(group.to_string()),
                review_group_members::user_id.eq(user.to_string()),
                review_group_members::added_at.eq(at),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The users who may review for `group` now: its members (every user when `None`) who
/// hold the reviewer role and are not disabled, oldest first. An unknown group has none.
pub fn reviewers(conn: &mut DbConn, group: Option<&str>) -> Result<Vec<UserId>> {
    let mut q = users::table
        .select((users::id, users::roles))
        .filter(users::disabled.eq(false))
        .order(users::id.asc())
        .into_boxed();
    if let Some(name) = group {
        let ids = review_group_members::table
            .inner_join(review_groups::table)
            .select(review_group_members::user_id)
            .filter(review_groups::name.eq(name));
        q = q.filter(users::id.eq_any(ids));
    }
    let rows: Vec<(String, String)> = q.load(conn)?;
    let mut out = Vec::new();
    for (id, roles) in rows {
        let roles: RoleSet = roles
            .parse()
            .map_err(|e| Error::Internal(format!("user {id}: stored roles: {e}")))?;
        if roles.contains(Role::Reviewer) {
            out.push(
                id.parse()
                    .map_err(|e| Error::Internal(format!("a stored user id: {e}")))?,
            );
        }
    }
    Ok(out)
}
