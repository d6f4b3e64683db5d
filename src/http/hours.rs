//! `GET /api/v1/hours`: the published business hours and whether the team is online now
//! (spec/api.md "Business hours and deadlines"). Public: it is meant to be shown to
//! customers.

use super::State;
use crate::domain::hours::{Schedule, DAYS};
use crate::domain::time::format_utc;
use actix_web::{get, HttpResponse};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The schedule as published. Without an `[hours]` table only `configured: false` and
/// `online: true`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HoursView {
    /// Present (false) only when no business hours are configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configured: Option<bool>,
    /// The IANA time zone of the ranges.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Each day's ranges as `["09:00", "18:00"]` pairs of local times, `[start, end)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub week: Option<BTreeMap<String, Vec<[String; 2]>>>,
    /// Closed local dates, `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holidays: Option<Vec<String>>,
    pub online: bool,
    /// When `online` next changes (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_change: Option<String>,
}

/// The business hours and whether the team is online now.
#[utoipa::path(
    tag = "inbound",
    responses((status = 200, body = HoursView))
)]
#[get("/hours")]
pub async fn hours(state: State) -> HttpResponse {
    let now = state.ctx.clock.now();
    let (online, next) = state.ctx.settings.hours.online(now);
    let view = match &state.ctx.settings.hours {
        Schedule::Always => HoursView {
            configured: Some(false),
            time_zone: None,
            week: None,
            holidays: None,
            online,
            next_change: None,
        },
        Schedule::Hours(h) => HoursView {
            configured: None,
            time_zone: Some(h.zone.name().to_string()),
            week: Some(
                DAYS.iter()
                    .map(|(name, day)| {
                        let ranges = h.week[day.num_days_from_monday() as usize]
                            .iter()
                            .map(|r| r.shown())
                            .collect();
                        (name.to_string(), ranges)
                    })
                    .collect(),
            ),
            holidays: Some(h.holidays.iter().map(|d| d.to_string()).collect()),
            online,
            next_change: next.map(format_utc),
        },
    };
    HttpResponse::Ok().json(view)
}
