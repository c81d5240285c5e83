//! The route table: every HTTP route examroom serves, with who may call it.
//!
//! This is the authorization matrix's source of truth. `tests/authz_matrix.rs`
//! - reads every `.route("…", get(…).post(…))` call under `src/` and fails if one is
//!   missing here (or listed here but not routed), and
//! - calls every route listed here as nobody, a patient, a guest, a physician and an
//!   admin, and checks each gets exactly what its [`Access`] says.
//!
//! # Adding a route
//! 1. Route it in your module as usual: `.route("/api/rooms/{id}", get(show).put(update))`.
//!    Take the matching extractor as the handler's FIRST argument (`AdminAuth`,
//!    `PhysicianAuth`, `StaffAuth`, `ParticipantAuth`), so it runs before the body is read.
//! 2. Add one line per method below, keeping the list sorted by path:
//!    `Route::new("PUT", "/api/rooms/{id}", Access::Admin),`
//! 3. If the route needs a request body to get past validation, the matrix sends `{}`;
//!    that is fine — it only checks who is let past authentication.
//!
//! Merge conflicts here are one-line-per-route and sorted, so they resolve by keeping
//! both sides.

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: pages, health, sign-in.
    Public,
    /// Anyone holding the secret in the path (join code, setup token); the caller's
    /// token is ignored.
    Secret,
    /// Any signed-in staff member (physician or admin).
    Staff,
    /// Staff with the physician role (`not_physician` otherwise).
    Physician,
    /// Staff with the admin role (`not_admin` otherwise).
    Admin,
    /// A physician assigned to the room the request names, or an admin
    /// (`not_your_room` otherwise).
    RoomPhysicianOrAdmin,
    /// A physician assigned to the room the request names (`not_your_room` otherwise).
    RoomPhysician,
    /// A patient or guest token (`not_participant` otherwise).
    Participant,
    /// A patient token — not a guest (`not_patient`) nor staff (`not_participant`).
    Patient,
    /// The physician who admitted the visit the path names, while it is open (plus the
    /// records window); everyone else is refused — and audited (`not_physician`,
    /// `not_your_visit`, `visit_closed`).
    VisitPhysician,
    /// Anyone may open the WebSocket; the `hello` message authenticates (see the
    /// WebSocket half of the matrix).
    WebSocket,
    /// The holder of `metrics.token` (`Authorization: Bearer`); everyone else gets 401
    /// (`metrics_token_required` when none is configured, else `bad_metrics_token`).
    MetricsToken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
}

impl Route {
    pub const fn new(method: &'static str, path: &'static str, access: Access) -> Self {
        Route {
            method,
            path,
            access,
        }
    }
}

/// Every route, sorted by path.
pub const ROUTES: &[Route] = &[
    Route::new("GET", "/", Access::Public),
    Route::new("GET", "/.well-known/jwks.json", Access::Public),
    Route::new("GET", "/admin", Access::Public),
    Route::new("GET", "/api/appointments", Access::Staff),
    Route::new("GET", "/api/appointments/notices/failed", Access::Admin),
    Route::new("GET", "/api/appointments/stats", Access::Staff),
    Route::new("POST", "/api/appointments/{id}/cancel", Access::Staff),
    Route::new("POST", "/api/appointments/{id}/move", Access::Staff),
    Route::new("GET", "/api/booking", Access::Public),
    Route::new("POST", "/api/booking", Access::Public),
    Route::new("GET", "/api/booking/slots", Access::Public),
    Route::new("POST", "/api/booking/{id}/confirm", Access::Public),
    Route::new("GET", "/api/clinic", Access::Public),
    Route::new("GET", "/api/directory", Access::Public),
    Route::new("GET", "/api/directory/{id}", Access::Public),
    Route::new("GET", "/api/directory/{id}/photo", Access::Public),
    Route::new("GET", "/api/emergency-access", Access::Admin),
    Route::new("GET", "/api/experience", Access::Staff),
    Route::new("POST", "/api/identity", Access::Patient),
    Route::new("POST", "/api/join/{code}", Access::Secret),
    Route::new("GET", "/api/links", Access::Staff),
    Route::new("POST", "/api/links", Access::RoomPhysicianOrAdmin),
    Route::new("POST", "/api/links/guest", Access::RoomPhysician),
    Route::new("DELETE", "/api/links/{id}", Access::RoomPhysicianOrAdmin),
    Route::new("GET", "/api/manage/{token}", Access::Secret),
    Route::new("POST", "/api/manage/{token}/cancel", Access::Secret),
    Route::new("POST", "/api/manage/{token}/move", Access::Secret),
    Route::new("POST", "/api/manage/{token}/reminders-off", Access::Secret),
    Route::new("GET", "/api/me", Access::Staff),
    Route::new("GET", "/api/my/profile", Access::Physician),
    Route::new("PUT", "/api/my/profile", Access::Physician),
    Route::new("PUT", "/api/my/profile/photo", Access::Physician),
    Route::new("DELETE", "/api/my/profile/photo", Access::Physician),
    Route::new("GET", "/api/my/rooms", Access::Physician),
    Route::new("GET", "/api/my/schedule", Access::Physician),
    Route::new("PUT", "/api/my/schedule", Access::Physician),
    Route::new("GET", "/api/openapi.json", Access::Public),
    Route::new("GET", "/api/places", Access::Public),
    Route::new("GET", "/api/record-writes", Access::Admin),
    Route::new("GET", "/api/referrals", Access::Physician),
    Route::new("POST", "/api/referrals", Access::Physician),
    Route::new("POST", "/api/referrals/{id}/accept", Access::Physician),
    Route::new("POST", "/api/referrals/{id}/decline", Access::Physician),
    Route::new("GET", "/api/rooms", Access::Admin),
    Route::new("POST", "/api/rooms", Access::Admin),
    Route::new("DELETE", "/api/rooms/{id}", Access::Admin),
    Route::new("GET", "/api/rooms/{id}", Access::Admin),
    Route::new("PUT", "/api/rooms/{id}", Access::Admin),
    Route::new("GET", "/api/rooms/{id}/status", Access::Public),
    Route::new("GET", "/api/schedules/{id}", Access::Admin),
    Route::new("PUT", "/api/schedules/{id}", Access::Admin),
    Route::new("DELETE", "/api/session", Access::Staff),
    Route::new("POST", "/api/session", Access::Public),
    Route::new("GET", "/api/setup/{token}", Access::Secret),
    Route::new("POST", "/api/setup/{token}", Access::Secret),
    Route::new("GET", "/api/staff", Access::Admin),
    Route::new("POST", "/api/staff", Access::Admin),
    Route::new("PATCH", "/api/staff/{id}", Access::Admin),
    Route::new("GET", "/api/staff/{id}/profile", Access::Admin),
    Route::new("PUT", "/api/staff/{id}/profile", Access::Admin),
    Route::new("PUT", "/api/staff/{id}/profile/photo", Access::Admin),
    Route::new("DELETE", "/api/staff/{id}/profile/photo", Access::Admin),
    Route::new("POST", "/api/staff/{id}/reset", Access::Admin),
    Route::new("POST", "/api/surveys", Access::Patient),
    Route::new("GET", "/api/visits", Access::Staff),
    Route::new("GET", "/api/visits.csv", Access::Staff),
    Route::new("GET", "/api/visits/{id}", Access::Staff),
    Route::new("GET", "/api/visits/{visit}/note", Access::VisitPhysician),
    Route::new("POST", "/api/visits/{visit}/note", Access::VisitPhysician),
    Route::new("GET", "/api/visits/{visit}/record", Access::VisitPhysician),
    Route::new(
        "POST",
        "/api/visits/{visit}/record/emergency-access",
        Access::VisitPhysician,
    ),
    Route::new("GET", "/api/visits/{visit}/referrals", Access::Patient),
    Route::new("GET", "/assets/{*path}", Access::Public),
    Route::new("GET", "/book", Access::Public),
    Route::new("GET", "/dashboard", Access::Public),
    Route::new("GET", "/directory", Access::Public),
    Route::new("GET", "/favicon.ico", Access::Public),
    Route::new("GET", "/healthz", Access::Public),
    Route::new("GET", "/join/{code}", Access::Public),
    Route::new("GET", "/manage/{token}", Access::Public),
    Route::new("GET", "/metrics", Access::MetricsToken),
    Route::new("GET", "/readyz", Access::Public),
    Route::new("GET", "/setup/{token}", Access::Public),
    Route::new("GET", "/ws", Access::WebSocket),
];
