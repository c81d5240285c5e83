//! The physician directory (issue 22): the public search (`GET /api/directory`), one
//! listing (`GET /api/directory/{id}`), and profiles as admins (`/api/staff/{id}/profile`)
//! and physicians (`/api/my/profile`) edit them. What leaves the server publicly is
//! decided in `directory` (only published fields).

use super::auth::{AdminAuth, PhysicianAuth};
use super::error::ApiError;
use super::error::ApiErrorCode;
use super::extract::Json;
use super::extract::staff_id;
use crate::directory::{self, Listing, ProfileInput, Search};
use crate::durable::directory::{Profile, Publish, Site};
use crate::gazetteer::{Gazetteer, Place, PlaceError};
use crate::ids::StaffId;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(places))
        .routes(routes!(one))
        .routes(routes!(get_profile, put_profile))
        .routes(routes!(get_my_profile, put_my_profile))
        .routes(routes!(photo))
        .routes(routes!(put_photo, delete_photo))
        .routes(routes!(put_my_photo, delete_my_photo))
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
    /// A city, town or postcode to measure from instead of `near`, optionally followed by
    /// `, country` ("Zaragoza", "28001", "Madrid, Colombia"); resolved offline
    /// (`GET /api/places` shows what it resolves to). 422 `unknown_place` when not known.
    place: Option<String>,
    /// With `near` or `place`: leave out physicians further than this many km.
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
    /// The search this query asks for; `places` resolves `place` near the clinic's
    /// published sites.
    fn into_search(self, places: &Gazetteer, clinic: &[(f64, f64)]) -> Result<Search, ApiError> {
        let place = self
            .place
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty());
        let near = match self.near.as_deref().map(str::trim) {
            None | Some("") => match place {
                None => None,
                Some(p) => {
                    let found = places.resolve(p, clinic).map_err(place_error)?;
                    Some((found.lat, found.lon))
                }
            },
            Some(_) if place.is_some() => {
                return Err(ApiError::invalid(
                    "place",
                    "give `place` or `near`, not both",
                ));
            }
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
                return Err(ApiError::invalid("within_km", "needs `near` or `place`"));
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
    let listed = directory::listings(state.durable.as_ref()).await?;
    let q = q.into_search(&state.places, &directory::published_sites(&listed))?;
    let all = with_appointments(&state, listed).await?;
    Ok(axum::Json(directory::search(all, &q)))
}

fn place_error(e: PlaceError) -> ApiError {
    let code = match e {
        PlaceError::Empty => return ApiError::invalid("place", e.to_string()),
        PlaceError::Unknown => ApiErrorCode::UnknownPlace,
    };
    ApiError {
        field: Some("place"),
        ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string())
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PlacesQuery {
    /// What the patient typed so far: the start of a city, town or postcode (2+ letters),
    /// optionally `, country`.
    q: String,
}

/// The places a directory search from `q` may mean: the one `place=q` would use first
/// (when `q` names one), then up to 8 more whose name starts with `q`, nearest to the
/// clinic first. Public, offline (no outside service is asked).
#[utoipa::path(get, path = "/api/places", tag = "directory", params(PlacesQuery),
    responses((status = 200, body = [Place]),
        (status = 422, description = "`q` empty or longer than 100 characters")))]
async fn places(
    State(state): State<AppState>,
    query: Result<Query<PlacesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Vec<Place>>, ApiError> {
    let Query(PlacesQuery { q }) = query.map_err(|e| ApiError::invalid("q", e.body_text()))?;
    let q = q.trim();
    if q.is_empty() || q.chars().count() > crate::gazetteer::MAX_QUERY {
        return Err(ApiError::invalid("q", PlaceError::Empty.to_string()));
    }
    let clinic = directory::published_sites(&directory::listings(state.durable.as_ref()).await?);
    let mut out: Vec<Place> = state
        .places
        .resolve(q, &clinic)
        .ok()
        .cloned()
        .into_iter()
        .collect();
    for p in state.places.suggest(q, &clinic, 9) {
        if out.len() < 9 && !out.contains(p) {
            out.push(p.clone());
        }
    }
    Ok(axum::Json(out))
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
    let one = directory::listing_of(state.durable.as_ref(), &id).await?;
    with_appointments(&state, one.into_iter().collect())
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

/// Refuses a directory profile (or photo) for `id` unless it is a physician's.
async fn physician_of_profile(state: &AppState, id: &StaffId) -> Result<(), ApiError> {
    let staff = state
        .durable
        .staff(id)
        .await?
        .ok_or_else(|| ApiError::not_found("staff"))?;
    if !staff.has_role(crate::ids::Role::Physician) {
        return Err(ApiError::invalid(
            "id",
            "only physicians have a directory profile",
        ));
    }
    Ok(())
}

async fn write(
    state: &AppState,
    id: StaffId,
    body: ProfileBody,
) -> Result<axum::Json<ProfileBody>, ApiError> {
    physician_of_profile(state, &id).await?;
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

/// A listed physician's photo. Public while the profile is listed and the photo published;
/// else 404 (whether there is one is not told).
#[utoipa::path(get, path = "/api/directory/{id}/photo", tag = "directory",
    params(("id" = String, Path, description = "the physician's staff id")),
    responses((status = 200, description = "the image (JPEG, PNG or WebP)", content_type = "image/*"),
        (status = 404, description = "not listed, or no published photo")))]
async fn photo(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let id = StaffId::parse(&id).map_err(|_| ApiError::not_found("photo"))?;
    let listed = directory::listing_of(state.durable.as_ref(), &id).await?;
    if listed.is_none_or(|l| l.photo_url.is_none()) {
        return Err(ApiError::not_found("photo"));
    }
    let photo = state
        .durable
        .photo(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("photo"))?;
    // The URL carries the version (`?v=`), so a short cache is safe and a new photo shows.
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, photo.content_type),
            (
                axum::http::header::CACHE_CONTROL,
                "public, max-age=300".to_owned(),
            ),
        ],
        photo.bytes,
    )
        .into_response())
}

async fn store_photo(
    state: &AppState,
    id: StaffId,
    bytes: &[u8],
) -> Result<axum::http::StatusCode, ApiError> {
    let content_type = directory::photo_type(bytes).map_err(|e| {
        if bytes.len() > directory::MAX_PHOTO {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ApiErrorCode::TooLarge,
                e.message,
            )
        } else {
            ApiError::invalid(e.field, e.message)
        }
    })?;
    physician_of_profile(state, &id).await?;
    let photo = crate::durable::directory::Photo {
        content_type: content_type.to_owned(),
        bytes: bytes.to_vec(),
        updated_at: chrono::Utc::now().timestamp_millis(),
    };
    state.durable.put_photo(&id, &photo).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_photo(state: &AppState, id: &StaffId) -> Result<StatusCode, ApiError> {
    if state.durable.delete_photo(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("photo"))
    }
}

/// Set a physician's directory photo (admin): the image itself as the body, JPEG, PNG or
/// WebP, at most 256 KiB. Shown once `publish.photo` is on.
#[utoipa::path(put, path = "/api/staff/{id}/profile/photo", tag = "directory",
    params(("id" = String, Path)), security(("bearer" = []), ("cookie" = [])),
    request_body(content = Vec<u8>, content_type = "image/*"),
    responses((status = 204, description = "stored"), (status = 403, description = "not_admin"),
        (status = 404, description = "no such staff member"), (status = 413, description = "over 256 KiB"),
        (status = 422, description = "not a JPEG, PNG or WebP image, or not a physician")))]
async fn put_photo(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    store_photo(&state, staff_id(&id)?, &body).await
}

/// Remove a physician's directory photo (admin).
#[utoipa::path(delete, path = "/api/staff/{id}/profile/photo", tag = "directory",
    params(("id" = String, Path)), security(("bearer" = []), ("cookie" = [])),
    responses((status = 204, description = "removed"), (status = 403, description = "not_admin"),
        (status = 404, description = "no photo")))]
async fn delete_photo(
    _: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    remove_photo(&state, &staff_id(&id)?).await
}

/// The signed-in physician sets their own directory photo (as `PUT /api/staff/{id}/profile/photo`).
#[utoipa::path(put, path = "/api/my/profile/photo", tag = "directory",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content = Vec<u8>, content_type = "image/*"),
    responses((status = 204, description = "stored"), (status = 403, description = "not_physician"),
        (status = 413, description = "over 256 KiB"),
        (status = 422, description = "not a JPEG, PNG or WebP image")))]
async fn put_my_photo(
    PhysicianAuth(me): PhysicianAuth,
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    store_photo(&state, me.staff, &body).await
}

/// The signed-in physician removes their directory photo.
#[utoipa::path(delete, path = "/api/my/profile/photo", tag = "directory",
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 204, description = "removed"), (status = 403, description = "not_physician"),
        (status = 404, description = "no photo")))]
async fn delete_my_photo(
    PhysicianAuth(me): PhysicianAuth,
    State(state): State<AppState>,
) -> Result<StatusCode, ApiError> {
    remove_photo(&state, &me.staff).await
}
