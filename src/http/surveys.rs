//! Post-visit surveys (the patient, once, after the visit ended) and the experience
//! figures staff read from them: NPS, waiting times, no-shows.

use super::admin::{now_millis, scoped_filter};
use super::auth::{ParticipantAuth, StaffAuth};
use super::error::ApiError;
use super::extract::Json;
use crate::durable::{ExperienceStats, NewSurvey};
use crate::identity::Role;
use crate::protocol::ApiErrorCode;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub const MAX_COMMENT_CHARS: usize = 2000;

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(submit_survey))
        .routes(routes!(experience))
}

pub fn routes() -> axum::Router<AppState> {
    api().split_for_parts().0
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SurveyBody {
    /// How likely are you to recommend this service? 0–10.
    pub score: i64,
    /// Up to 2000 characters.
    #[serde(default)]
    pub comment: Option<String>,
    /// Optional: the visit the page thinks it is answering for. It must be the token's.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub visit: Option<crate::ids::VisitId>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SurveyReceipt {
    #[schema(value_type = String)]
    pub visit: crate::ids::VisitId,
    pub score: i64,
}

/// The patient answers the post-visit survey for their own visit, once, after it ended.
#[utoipa::path(post, path = "/api/surveys", tag = "surveys", request_body = SurveyBody,
    security(("patient" = [])),
    responses((status = 201, body = SurveyReceipt),
        (status = 403, description = "not a patient token, or another visit"),
        (status = 409, description = "already answered (`field: visit`), or the visit has not ended"),
        (status = 422, description = "score or comment out of range")))]
async fn submit_survey(
    who: ParticipantAuth,
    State(state): State<AppState>,
    Json(body): Json<SurveyBody>,
) -> Result<(StatusCode, Json<SurveyReceipt>), ApiError> {
    if !who.claims.has(Role::Patient) {
        return Err(ApiError::forbidden(
            ApiErrorCode::NotPatient,
            "only the patient of a visit answers its survey",
        ));
    }
    let Some(visit) = who.claims.visit.clone() else {
        return Err(ApiError::forbidden(
            ApiErrorCode::NotParticipant,
            "token has no visit",
        ));
    };
    if body.visit.as_ref().is_some_and(|v| *v != visit) {
        return Err(ApiError {
            field: Some("visit"),
            ..ApiError::forbidden(
                ApiErrorCode::NotYourVisit,
                "you can answer only for your own visit",
            )
        });
    }
    if !(0..=10).contains(&body.score) {
        return Err(ApiError::invalid(
            "score",
            "must be a whole number from 0 to 10",
        ));
    }
    let comment = body
        .comment
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    if comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS)
    {
        return Err(ApiError::invalid(
            "comment",
            format!("at most {MAX_COMMENT_CHARS} characters"),
        ));
    }
    let record = state.durable.visit(&visit).await?;
    let ended = record.as_ref().is_some_and(|r| {
        r.outcome.is_some() && who.claims.room.as_ref().is_none_or(|room| *room == r.room)
    });
    if !ended {
        return Err(ApiError {
            code: ApiErrorCode::VisitNotEnded,
            ..ApiError::conflict("visit", "the survey opens when the visit has ended")
        });
    }
    state
        .durable
        .submit_survey(NewSurvey {
            visit: visit.clone(),
            score: body.score,
            comment,
            at: now_millis(),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(SurveyReceipt {
            visit,
            score: body.score,
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ExperienceQuery {
    /// Room id.
    room: Option<String>,
    /// Staff id; physicians may give only their own (or nothing).
    physician: Option<String>,
    /// Visits that started at or after (unix ms).
    from: Option<String>,
    /// Visits that started before (unix ms).
    to: Option<String>,
}

/// Experience figures over the matching visits.
#[derive(Debug, Serialize, ToSchema)]
pub struct Experience {
    /// Net Promoter Score: % promoters (9–10) − % detractors (0–6), −100..100;
    /// `null` without answers.
    pub nps: Option<f64>,
    pub answers: u64,
    pub promoters: u64,
    pub passives: u64,
    pub detractors: u64,
    pub median_wait_secs: Option<f64>,
    pub p90_wait_secs: Option<f64>,
    /// No-shows among visits that reached a final state (0..1); `null` if none did.
    pub no_show_rate: Option<f64>,
    pub visits: u64,
}

impl From<ExperienceStats> for Experience {
    fn from(s: ExperienceStats) -> Self {
        Experience {
            nps: s.nps,
            answers: s.answers,
            promoters: s.promoters,
            passives: s.passives,
            detractors: s.detractors,
            median_wait_secs: s.median_wait_secs,
            p90_wait_secs: s.p90_wait_secs,
            no_show_rate: s.no_show_rate,
            visits: s.visits,
        }
    }
}

/// Patient experience. Admins: any filter; physicians: their own visits only
/// (naming another physician → 403 `not_your_visits`).
#[utoipa::path(get, path = "/api/experience", tag = "surveys", params(ExperienceQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = Experience), (status = 403), (status = 422)))]
async fn experience(
    me: StaffAuth,
    State(state): State<AppState>,
    Query(q): Query<ExperienceQuery>,
) -> Result<Json<Experience>, ApiError> {
    let f = scoped_filter(
        &me,
        q.room.as_deref(),
        q.physician.as_deref(),
        q.from.as_deref(),
        q.to.as_deref(),
    )?;
    Ok(Json(state.durable.experience(&f).await?.into()))
}
