//! Physician profiles for the public directory (issue 22): what a physician or an admin
//! chose to show, and which of the optional fields may leave the server at all.

use super::DurableError;
use crate::ids::StaffId;
use crate::visit::Millis;
use serde::{Deserialize, Serialize};

/// A place the physician sees patients (or a clinic site they belong to).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Site {
    pub name: String,
    pub address: String,
    /// WGS 84 degrees.
    pub lat: f64,
    pub lon: f64,
}

/// Which optional fields are public. Name, specialties, visit types and whether the
/// physician takes new patients are public whenever the profile is listed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Publish {
    pub gender: bool,
    pub languages: bool,
    pub sites: bool,
    pub bio: bool,
    pub photo: bool,
}

/// A physician's directory photo, as stored (checked by `directory::photo_type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub staff: StaffId,
    pub display_name: String,
    pub specialties: Vec<String>,
    pub bio: Option<String>,
    pub sites: Vec<Site>,
    pub visit_types: Vec<String>,
    pub accepting_new: bool,
    /// In the public directory at all.
    pub listed: bool,
    pub publish: Publish,
    pub updated_at: Millis,
}

/// Physician profiles.
#[async_trait::async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Creates or replaces `profile.staff`'s profile; an unknown staff id is
    /// `Invalid{staff}`.
    async fn put_profile(&self, profile: &Profile) -> Result<(), DurableError>;

    async fn profile(&self, staff: &StaffId) -> Result<Option<Profile>, DurableError>;

    /// Every listed profile, by staff id. The caller drops inactive accounts.
    async fn listed_profiles(&self) -> Result<Vec<Profile>, DurableError>;

    /// Sets `staff`'s photo, replacing any; an unknown staff id is `Invalid{staff}`.
    async fn put_photo(&self, staff: &StaffId, photo: &Photo) -> Result<(), DurableError>;

    async fn photo(&self, staff: &StaffId) -> Result<Option<Photo>, DurableError>;

    /// Removes `staff`'s photo; false when there was none.
    async fn delete_photo(&self, staff: &StaffId) -> Result<bool, DurableError>;

    /// Who has a photo, and when it last changed (for cache-busting URLs).
    async fn photo_dates(&self) -> Result<Vec<(StaffId, Millis)>, DurableError>;
}

pub(crate) type ProfileRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    bool,
    bool,
    String,
    i64,
);

pub(crate) fn decode_profile(r: ProfileRow) -> Result<Profile, DurableError> {
    let json = |what: &'static str, text: &str| -> Result<serde_json::Value, DurableError> {
        serde_json::from_str(text)
            .map_err(|e| DurableError::Internal(format!("profile {what}: {e}")))
    };
    let list = |what, text: &str| {
        serde_json::from_value::<Vec<String>>(json(what, text)?)
            .map_err(|e| DurableError::Internal(format!("profile {what}: {e}")))
    };
    Ok(Profile {
        staff: StaffId::parse(&r.0)
            .map_err(|_| DurableError::Internal("profile: bad staff id".into()))?,
        display_name: r.1,
        specialties: list("specialties", &r.2)?,
        bio: r.3,
        sites: serde_json::from_value(json("sites", &r.4)?)
            .map_err(|e| DurableError::Internal(format!("profile sites: {e}")))?,
        visit_types: list("visit_types", &r.5)?,
        accepting_new: r.6,
        listed: r.7,
        publish: serde_json::from_value(json("publish", &r.8)?)
            .map_err(|e| DurableError::Internal(format!("profile publish: {e}")))?,
        updated_at: r.9,
    })
}

pub(crate) const PROFILE_COLUMNS: &str = "staff_id, display_name, specialties, bio, sites, \
     visit_types, accepting_new, listed, publish, updated_at";

// The store methods, expanded once per store type (`sqlite.rs`, `postgres.rs`); see `sql.rs`
// for why one body fits both databases.

macro_rules! impl_directory_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl DirectoryStore for $store {
            async fn put_profile(
                &self,
                p: &$crate::durable::directory::Profile,
            ) -> Result<(), DurableError> {
                let to_json = |v: serde_json::Result<String>| {
                    v.map_err(|e| DurableError::Internal(format!("profile: {e}")))
                };
                let known: Option<(String,)> =
                    sqlx::query_as("SELECT id FROM staff WHERE id = $1")
                        .bind(p.staff.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                if known.is_none() {
                    return Err(DurableError::invalid("staff", "no such staff member"));
                }
                sqlx::query(
                    "INSERT INTO physician_profiles (staff_id, display_name, specialties, bio, \
                     sites, visit_types, accepting_new, listed, publish, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (staff_id) DO UPDATE SET display_name = $2, specialties = $3, \
                     bio = $4, sites = $5, visit_types = $6, accepting_new = $7, listed = $8, \
                     publish = $9, updated_at = $10",
                )
                .bind(p.staff.as_str())
                .bind(&p.display_name)
                .bind(to_json(serde_json::to_string(&p.specialties))?)
                .bind(p.bio.as_deref())
                .bind(to_json(serde_json::to_string(&p.sites))?)
                .bind(to_json(serde_json::to_string(&p.visit_types))?)
                .bind(p.accepting_new)
                .bind(p.listed)
                .bind(to_json(serde_json::to_string(&p.publish))?)
                .bind(p.updated_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn profile(
                &self,
                staff: &$crate::ids::StaffId,
            ) -> Result<Option<$crate::durable::directory::Profile>, DurableError> {
                let sql = format!(
                    "SELECT {} FROM physician_profiles WHERE staff_id = $1",
                    $crate::durable::directory::PROFILE_COLUMNS
                );
                self.find_one(
                    &sql,
                    staff.as_str(),
                    $crate::durable::directory::decode_profile,
                )
                .await
            }

            async fn listed_profiles(
                &self,
            ) -> Result<Vec<$crate::durable::directory::Profile>, DurableError> {
                let sql = format!(
                    "SELECT {} FROM physician_profiles WHERE listed ORDER BY staff_id",
                    $crate::durable::directory::PROFILE_COLUMNS
                );
                self.find_all(
                    sqlx::query_as::<_, $crate::durable::directory::ProfileRow>(&sql),
                    $crate::durable::directory::decode_profile,
                )
                .await
            }

            async fn put_photo(
                &self,
                staff: &$crate::ids::StaffId,
                photo: &$crate::durable::directory::Photo,
            ) -> Result<(), DurableError> {
                let known: Option<(String,)> =
                    sqlx::query_as("SELECT id FROM staff WHERE id = $1")
                        .bind(staff.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                if known.is_none() {
                    return Err(DurableError::invalid("staff", "no such staff member"));
                }
                sqlx::query(
                    "INSERT INTO physician_photos (staff_id, content_type, bytes, updated_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (staff_id) DO UPDATE SET \
                     content_type = $2, bytes = $3, updated_at = $4",
                )
                .bind(staff.as_str())
                .bind(&photo.content_type)
                .bind(&photo.bytes)
                .bind(photo.updated_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn photo(
                &self,
                staff: &$crate::ids::StaffId,
            ) -> Result<Option<$crate::durable::directory::Photo>, DurableError> {
                let row: Option<(String, Vec<u8>, i64)> = sqlx::query_as(
                    "SELECT content_type, bytes, updated_at FROM physician_photos \
                     WHERE staff_id = $1",
                )
                .bind(staff.as_str())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(content_type, bytes, updated_at)| {
                    $crate::durable::directory::Photo {
                        content_type,
                        bytes,
                        updated_at,
                    }
                }))
            }

            async fn delete_photo(&self, staff: &$crate::ids::StaffId) -> Result<bool, DurableError> {
                let done = sqlx::query("DELETE FROM physician_photos WHERE staff_id = $1")
                    .bind(staff.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn photo_dates(
                &self,
            ) -> Result<Vec<($crate::ids::StaffId, i64)>, DurableError> {
                let rows: Vec<(String, i64)> =
                    sqlx::query_as("SELECT staff_id, updated_at FROM physician_photos")
                        .fetch_all(&self.pool)
                        .await?;
                Ok(rows
                    .into_iter()
                    .filter_map(|(id, at)| Some(($crate::ids::StaffId::parse(&id).ok()?, at)))
                    .collect())
            }
        }
    };
}

pub(super) use impl_directory_store;
