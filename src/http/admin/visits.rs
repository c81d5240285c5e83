//! Visit history: admins see every visit, physicians their own (the ones they admitted
//! or were in). JSON for the pages, CSV for spreadsheets.

use super::{parse_range, parse_room, parse_staff};
use crate::durable::{VisitFilter, VisitRecord, VisitTransition};
use crate::http::auth::StaffAuth;
use crate::http::error::ApiError;
use crate::identity::Role;
use crate::ids::{PatientRef, RoomId, StaffId, VisitId};
use crate::protocol::ApiErrorCode;
use crate::state::AppState;
use crate::visit::{Millis, VisitState};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 10_000;

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_visits))
        .routes(routes!(visits_csv))
        .routes(routes!(get_visit))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VisitView {
    #[schema(value_type = String)]
    pub id: VisitId,
    #[schema(value_type = String)]
    pub room: RoomId,
    /// The room's current name.
    pub room_name: Option<String>,
    /// The latest state: waiting, admitted, in_call, ended, denied, left, no_show.
    #[schema(value_type = String)]
    pub state: VisitState,
    /// The final state, once there is one.
    #[schema(value_type = Option<String>)]
    pub outcome: Option<VisitState>,
    #[schema(value_type = Option<String>)]
    pub physician: Option<StaffId>,
    pub physician_name: Option<String>,
    /// Whom the visit was for: the name on its patient link, as staff wrote it.
    pub patient_name: Option<String>,
    /// The patient record the link named, if any.
    #[schema(value_type = Option<String>)]
    pub patient_ref: Option<PatientRef>,
    #[schema(value_type = Option<String>)]
    pub admitted_by: Option<StaffId>,
    pub created_at: Millis,
    pub admitted_at: Option<Millis>,
    pub call_started_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    /// From joining the waiting room to being admitted (or leaving), seconds.
    pub wait_secs: Option<f64>,
    /// From the call starting to the visit ending, seconds.
    pub call_secs: Option<f64>,
    /// Only on `GET /api/visits/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transitions: Option<Vec<TransitionView>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionView {
    #[schema(value_type = String)]
    pub state: VisitState,
    pub at: Millis,
    /// Who caused it: a staff id, participant id or `system`.
    pub actor: Option<String>,
    #[schema(value_type = Option<String>)]
    pub physician: Option<StaffId>,
}

impl From<VisitTransition> for TransitionView {
    fn from(t: VisitTransition) -> Self {
        TransitionView {
            state: t.state,
            at: t.at,
            actor: t.actor,
            physician: t.physician,
        }
    }
}

/// Room and staff names, looked up once per request.
struct Names {
    rooms: HashMap<RoomId, String>,
    staff: HashMap<StaffId, String>,
}

impl Names {
    async fn load(state: &AppState) -> Result<Self, ApiError> {
        let rooms = state.durable.list_rooms(true).await?;
        let staff = state.durable.list_staff().await?;
        Ok(Names {
            rooms: rooms.into_iter().map(|r| (r.id, r.name)).collect(),
            staff: staff.into_iter().map(|s| (s.id, s.name)).collect(),
        })
    }

    fn view(&self, v: VisitRecord, with_transitions: bool) -> VisitView {
        VisitView {
            room_name: self.rooms.get(&v.room).cloned(),
            physician_name: v
                .physician
                .as_ref()
                .and_then(|p| self.staff.get(p))
                .cloned(),
            id: v.id,
            room: v.room,
            state: v.state,
            outcome: v.outcome,
            physician: v.physician,
            patient_name: v.patient_name,
            patient_ref: v.patient_ref,
            admitted_by: v.admitted_by,
            created_at: v.created_at,
            admitted_at: v.admitted_at,
            call_started_at: v.call_started_at,
            ended_at: v.ended_at,
            wait_secs: v.wait_secs,
            call_secs: v.call_secs,
            transitions: with_transitions
                .then(|| v.transitions.into_iter().map(Into::into).collect()),
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct VisitsQuery {
    /// Room id.
    room: Option<String>,
    /// Staff id of the physician who admitted or was in the visit.
    physician: Option<String>,
    /// Visits that started at or after this time (unix ms).
    from: Option<String>,
    /// Visits that started before this time (unix ms).
    to: Option<String>,
    /// Most visits returned, newest first; 1–10000, default 100.
    limit: Option<String>,
}

/// The filter a caller may use: a physician who is not an admin sees only visits they
/// were the physician of, and naming another physician is refused.
pub fn scoped_filter(
    me: &StaffAuth,
    room: Option<&str>,
    physician: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<VisitFilter, ApiError> {
    let room = parse_room("room", room)?;
    let mut physician = parse_staff("physician", physician)?;
    let (from, to) = parse_range(from, to)?;
    if !me.has(Role::Admin) {
        match &physician {
            Some(p) if *p != me.staff => {
                return Err(ApiError {
                    field: Some("physician"),
                    ..ApiError::forbidden(
                        ApiErrorCode::NotYourVisits,
                        "physicians see only their own visits",
                    )
                });
            }
            _ => physician = Some(me.staff.clone()),
        }
    }
    Ok(VisitFilter {
        room,
        physician,
        from,
        to,
        limit: None,
    })
}

fn visit_filter(me: &StaffAuth, q: &VisitsQuery) -> Result<VisitFilter, ApiError> {
    let mut f = scoped_filter(
        me,
        q.room.as_deref(),
        q.physician.as_deref(),
        q.from.as_deref(),
        q.to.as_deref(),
    )?;
    let limit = match q.limit.as_deref().filter(|s| !s.is_empty()) {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    f.limit = Some(limit);
    Ok(f)
}

async fn visits(
    state: &AppState,
    me: &StaffAuth,
    q: &VisitsQuery,
) -> Result<Vec<VisitView>, ApiError> {
    let f = visit_filter(me, q)?;
    let records = state.durable.list_visits(&f).await?;
    let names = Names::load(state).await?;
    Ok(records.into_iter().map(|v| names.view(v, false)).collect())
}

/// Visits, newest first. Admins: all; physicians: their own.
#[utoipa::path(get, path = "/api/visits", tag = "visits", params(VisitsQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = [VisitView]),
        (status = 403, description = "a physician naming another physician"),
        (status = 422)))]
async fn list_visits(
    me: StaffAuth,
    State(state): State<AppState>,
    Query(q): Query<VisitsQuery>,
) -> Result<Json<Vec<VisitView>>, ApiError> {
    Ok(Json(visits(&state, &me, &q).await?))
}

/// One visit with its transitions. Physicians: only visits they were the physician of.
#[utoipa::path(get, path = "/api/visits/{id}", tag = "visits", params(("id" = String, Path)),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = VisitView), (status = 403), (status = 404)))]
async fn get_visit(
    me: StaffAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<VisitView>, ApiError> {
    let id = VisitId::parse(&id).map_err(|_| ApiError::not_found("visit"))?;
    let v = state
        .durable
        .visit(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("visit"))?;
    if !me.has(Role::Admin) {
        let mine = v.physician.as_ref() == Some(&me.staff)
            || v.admitted_by.as_ref() == Some(&me.staff)
            || v.transitions
                .iter()
                .any(|t| t.physician.as_ref() == Some(&me.staff));
        if !mine {
            return Err(ApiError::forbidden(
                ApiErrorCode::NotYourVisit,
                "physicians see only their own visits",
            ));
        }
    }
    let names = Names::load(&state).await?;
    Ok(Json(names.view(v, true)))
}

pub const CSV_COLUMNS: [&str; 16] = [
    "id",
    "room",
    "room_name",
    "state",
    "outcome",
    "physician",
    "physician_name",
    "patient_name",
    "patient_ref",
    "admitted_by",
    "created_at",
    "admitted_at",
    "call_started_at",
    "ended_at",
    "wait_secs",
    "call_secs",
];

/// One RFC 4180 field: quoted when it holds a comma, quote, CR or LF; quotes doubled.
/// Text that a spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) gets a
/// leading `'` so an exported room name cannot execute in the admin's spreadsheet.
pub fn csv_field(out: &mut String, value: &str, text: bool) {
    let guarded;
    let value = if text && value.starts_with(['=', '+', '-', '@']) {
        guarded = format!("'{value}");
        guarded.as_str()
    } else {
        value
    };
    if value.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

fn csv_row(out: &mut String, cells: &[(String, bool)]) {
    for (i, (v, text)) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, v, *text);
    }
    out.push_str("\r\n");
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// The same visits as `GET /api/visits`, as CSV (RFC 4180, CRLF, a header row).
/// Times are unix ms, durations seconds; empty cells are unknown.
#[utoipa::path(get, path = "/api/visits.csv", tag = "visits", params(VisitsQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, content_type = "text/csv", body = String), (status = 403), (status = 422)))]
async fn visits_csv(
    me: StaffAuth,
    State(state): State<AppState>,
    Query(q): Query<VisitsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let rows = visits(&state, &me, &q).await?;
    let mut out = String::new();
    csv_row(&mut out, &CSV_COLUMNS.map(|c| (c.to_owned(), false)));
    for v in rows {
        csv_row(
            &mut out,
            &[
                (v.id.to_string(), false),
                (v.room.to_string(), false),
                (opt(&v.room_name), true),
                (v.state.as_str().to_owned(), false),
                (
                    v.outcome.map(|o| o.as_str().to_owned()).unwrap_or_default(),
                    false,
                ),
                (opt(&v.physician), false),
                (opt(&v.physician_name), true),
                (opt(&v.patient_name), true),
                (opt(&v.patient_ref), true),
                (opt(&v.admitted_by), false),
                (v.created_at.to_string(), false),
                (opt(&v.admitted_at), false),
                (opt(&v.call_started_at), false),
                (opt(&v.ended_at), false),
                (opt(&v.wait_secs), false),
                (opt(&v.call_secs), false),
            ],
        );
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"visits.csv\"",
            ),
        ],
        out,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting_follows_rfc_4180() {
        let mut s = String::new();
        csv_field(&mut s, "plain", true);
        s.push('|');
        csv_field(&mut s, "a,b", true);
        s.push('|');
        csv_field(&mut s, "say \"hi\"", true);
        s.push('|');
        csv_field(&mut s, "two\r\nlines", true);
        s.push('|');
        csv_field(&mut s, "=1+1", true);
        s.push('|');
        csv_field(&mut s, "-12.5", false);
        assert_eq!(
            s,
            "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"two\r\nlines\"|'=1+1|-12.5"
        );
    }
}
