//! The physician directory (issue 22): the public search (`GET /api/directory`), one
//! listing (`GET /api/directory/{id}`), and profiles as admins (`/api/staff/{id}/profile`)
//! and physicians (`/api/my/profile`) edit them. What leaves the server publicly is
//! decided in `directory` (only published fields).

use super::auth::{AdminAuth, PhysicianAuth};
use super::error::ApiError;
use super::extract::Json;
use crate::directory::{self, Listing, ProfileInput, Search};
use crate::durable::directory::{Profile, Publish, Site};
use crate::ids::StaffId;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(one))
        .routes(routes!(get_profile, put_profile))
        .routes(routes!(get_my_profile, put_my_profile))
}

pub fn routes() -> axum::Router<AppState> {
    api().split_for_parts().0
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DirectoryQuery {
    /// A specialty, as listed (case-insensitive).
    specialty: Option<String>,
    /// A language tag; `es` matches `es-MX`. Only physicians who publish their languages match.
    language: Option<String>,
    /// Only physicians who publish their gender match.
    gender: Option<String>,
    /// `true`: only physicians taking new patients.
    accepting_new: Option<bool>,
    /// `lat,lon` in degrees: nearest first, with `distance_km`. Only physicians who publish
    /// a site match.
    near: Option<String>,
    /// With `near`: leave out physicians further than this many km.
    within_km: Option<f64>,
    /// Only physicians with a free appointment starting before this time (unix ms).
    free_before: Option<i64>,
    /// `earliest`: soonest free appointment first. Default: nearest first with `near`,
    /// else by name.
    sort: Option<String>,
}

fn short(field: &'static str, v: Option<String>) -> Result<Option<String>, ApiError> {
    match v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
        Some(s) if s.chars().count() > directory::MAX_ITEM => Err(ApiError::invalid(
            field,
            format!("at most {} characters", directory::MAX_ITEM),
        )),
        other => Ok(other),
    }
}

impl DirectoryQuery {
    fn into_search(self) -> Result<Search, ApiError> {
        let near = match self.near.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => {
                let bad =
                    || ApiError::invalid("near", "`lat,lon` in degrees, e.g. 40.4168,-3.7038");
                let (lat, lon) = text.split_once(',').ok_or_else(bad)?;
                let lat: f64 = lat.trim().parse().map_err(|_| bad())?;
                let lon: f64 = lon.trim().parse().map_err(|_| bad())?;
                if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                    return Err(bad());
                }
                Some((lat, lon))
            }
        };
        if let Some(km) = self.within_km {
            if near.is_none() {
                return Err(ApiError::invalid("within_km", "needs `near`"));
            }
            if !(km.is_finite() && km > 0.0) {
                return Err(ApiError::invalid("within_km", "a positive number of km"));
            }
        }
        let sort = match self.sort.as_deref() {
            None | Some("") | Some("default") => directory::Sort::Default,
            Some("earliest") => directory::Sort::Earliest,
            Some(_) => return Err(ApiError::invalid("sort", "`earliest`, or leave it out")),
        };
        Ok(Search {
            free_before: self.free_before,
            sort,
            specialty: short("specialty", self.specialty)?,
            language: short("language", self.language)?,
            gender: short("gender", self.gender)?,
            accepting_new: self.accepting_new,
            near,
            within_km: self.within_km,
        })
    }
}

/// Search the directory. Public: only what each physician chose to publish.
#[utoipa::path(get, path = "/api/directory", tag = "directory", params(DirectoryQuery),
    responses((status = 200, body = [Listing]),
        (status = 422, description = "a filter malformed (`field` names it)")))]
async fn search(
    State(state): State<AppState>,
    query: Result<Query<DirectoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Vec<Listing>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let q = q.into_search()?;
    let all = with_appointments(&state, directory::listings(state.durable.as_ref()).await?).await?;
    Ok(axum::Json(directory::search(all, &q)))
}

/// Each listing's next free appointment and booking page, for physicians who take
/// appointments (a schedule, within the booking window's first month).
async fn with_appointments(
    state: &AppState,
    mut listings: Vec<Listing>,
) -> Result<Vec<Listing>, ApiError> {
    let appointments = &state.appointments;
    let bookable = appointments
        .bookable(&Default::default())
        .await
        .map_err(|e| match e {
            crate::appointments::AppointmentError::Store(d) => ApiError::from(d),
            other => ApiError::internal(other),
        })?;
    let now = chrono::Utc::now().timestamp_millis();
    let month = crate::appointments::MAX_LISTING_DAYS * 86_400_000;
    for l in &mut listings {
        let Some(b) = bookable.iter().find(|b| b.staff.id == l.id) else {
            continue;
        };
        l.book_url = Some(format!(
            "{}/book?physician={}",
            state.settings.public_url(),
            l.id
        ));
        // A physician whose slots cannot be laid out is listed without a next slot.
        if let Ok(slots) = appointments.free_slots(b, now, now + month, now).await {
            l.next_free_at = slots.first().map(|s| s.start.timestamp_millis());
        }
    }
    Ok(listings)
}

/// One listed physician. Public; 404 for anyone not listed (or not active).
#[utoipa::path(get, path = "/api/directory/{id}", tag = "directory",
    params(("id" = String, Path, description = "the physician's staff id")),
    responses((status = 200, body = Listing), (status = 404, description = "not in the directory")))]
async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Listing>, ApiError> {
    let id = StaffId::parse(&id).map_err(|_| ApiError::not_found("physician"))?;
    let all = directory::listings(state.durable.as_ref()).await?;
    let one: Vec<Listing> = all.into_iter().filter(|l| l.id == id).collect();
    with_appointments(&state, one)
        .await?
        .into_iter()
        .find(|l| l.id == id)
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("physician"))
}

/// A profile as its editors see it: every field, published or not.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    pub display_name: String,
    #[serde(default)]
    pub specialties: Vec<String>,
    #[serde(default)]
    pub bio: Option<String>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub sites: Vec<Site>,
    #[serde(default)]
    pub visit_types: Vec<String>,
    #[serde(default = "yes")]
    pub accepting_new: bool,
    /// In the public directory at all.
    #[serde(default)]
    pub listed: bool,
    /// Which optional fields are public: `gender`, `languages`, `sites`, `bio` (booleans).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub publish: Publish,
}

fn yes() -> bool {
    true
}

impl From<Profile> for ProfileBody {
    fn from(p: Profile) -> Self {
        ProfileBody {
            display_name: p.display_name,
            specialties: p.specialties,
            bio: p.bio,
            sites: p.sites,
            visit_types: p.visit_types,
            accepting_new: p.accepting_new,
            listed: p.listed,
            publish: p.publish,
        }
    }
}

async fn read(state: &AppState, id: &StaffId) -> Result<axum::Json<ProfileBody>, ApiError> {
    let p = state.durable.profile(id).await?;
    p.map(|p| axum::Json(p.into()))
        .ok_or_else(|| ApiError::not_found("profile"))
}

async fn write(
    state: &AppState,
    id: StaffId,
    body: ProfileBody,
) -> Result<axum::Json<ProfileBody>, ApiError> {
    let staff = state
        .durable
        .staff(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("staff"))?;
    if !staff.has_role(crate::ids::Role::Physician) {
        return Err(ApiError::invalid(
            "id",
            "only physicians have a directory profile",
        ));
    }
    let input = ProfileInput {
        display_name: body.display_name,
        specialties: body.specialties,
        bio: body.bio,
        sites: body.sites,
        visit_types: body.visit_types,
        accepting_new: body.accepting_new,
        listed: body.listed,
        publish: body.publish,
    };
    let now = chrono::Utc::now().timestamp_millis();
    let profile = input
        .into_profile(id, now)
        .map_err(|e| ApiError::invalid(e.field, e.message))?;
    state.durable.put_profile(&profile).await?;
    Ok(axum::Json(profile.into()))
}

fn staff_id(id: &str) -> Result<StaffId, ApiError> {
    StaffId::parse(id).map_err(|_| ApiError::not_found("staff"))
}

/// A physician's profile, every field (admin).
#[utoipa::path(get, path = "/api/staff/{id}/profile", tag = "directory",
    params(("id" = String, Path)), security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = ProfileBody), (status = 403, description = "not_admin"),
        (status = 404, description = "no such staff member, or no profile yet")))]
async fn get_profile(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<ProfileBody>, ApiError> {
    read(&state, &staff_id(&id)?).await
}

/// Create or replace a physician's profile (admin).
#[utoipa::path(put, path = "/api/staff/{id}/profile", tag = "directory", request_body = ProfileBody,
    params(("id" = String, Path)), security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = ProfileBody), (status = 403, description = "not_admin"),
        (status = 404, description = "no such staff member"),
        (status = 422, description = "a field out of range, or not a physician (`field` names it)")))]
async fn put_profile(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<ProfileBody>,
) -> Result<axum::Json<ProfileBody>, ApiError> {
    write(&state, staff_id(&id)?, body).await
}

/// The signed-in physician's own profile.
#[utoipa::path(get, path = "/api/my/profile", tag = "directory",
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = ProfileBody), (status = 403, description = "not_physician"),
        (status = 404, description = "no profile yet")))]
async fn get_my_profile(
    PhysicianAuth(me): PhysicianAuth,
    State(state): State<AppState>,
) -> Result<axum::Json<ProfileBody>, ApiError> {
    read(&state, &me.staff).await
}

/// The signed-in physician writes their own profile.
#[utoipa::path(put, path = "/api/my/profile", tag = "directory", request_body = ProfileBody,
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = ProfileBody), (status = 403, description = "not_physician"),
        (status = 422, description = "a field out of range (`field` names it)")))]
async fn put_my_profile(
    PhysicianAuth(me): PhysicianAuth,
    State(state): State<AppState>,
    Json(body): Json<ProfileBody>,
) -> Result<axum::Json<ProfileBody>, ApiError> {
    write(&state, me.staff, body).await
}
