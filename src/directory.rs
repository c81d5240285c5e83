//! The public physician directory (issue 22): what a listed profile shows, and the search
//! over it (specialty, language, gender, distance from a point).
//!
//! Pure: the edge reads the profiles and staff accounts, this module decides what leaves
//! the server. Invariant: a field the physician did not publish is never in a [`Listing`],
//! and never used to filter or sort either: a filter on an unpublished field would tell
//! by who is left out what the field holds.

use crate::durable::StaffStore;
use crate::durable::directory::{Profile, Publish, Site};
use crate::ids::StaffId;
use serde::Serialize;

/// Bounds on what a profile may hold: a directory page, not a CV.
pub const MAX_NAME: usize = 100;
pub const MAX_ITEMS: usize = 10;
pub const MAX_ITEM: usize = 60;
pub const MAX_BIO: usize = 1000;
pub const MAX_ADDRESS: usize = 200;
/// The largest photo taken: a portrait for a listing, not a print.
pub const MAX_PHOTO: usize = 256 * 1024;

/// A profile as an admin or the physician writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileInput {
    pub display_name: String,
    pub specialties: Vec<String>,
    pub bio: Option<String>,
    pub sites: Vec<Site>,
    pub visit_types: Vec<String>,
    pub accepting_new: bool,
    pub listed: bool,
    pub publish: Publish,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ProfileError {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> ProfileError {
    ProfileError {
        field,
        message: message.into(),
    }
}

fn clean_list(field: &'static str, items: Vec<String>) -> Result<Vec<String>, ProfileError> {
    if items.len() > MAX_ITEMS {
        return Err(invalid(field, format!("at most {MAX_ITEMS} entries")));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let item = item.trim().to_owned();
        if item.is_empty() || item.chars().count() > MAX_ITEM {
            return Err(invalid(
                field,
                format!("each entry 1–{MAX_ITEM} characters"),
            ));
        }
        if !out.iter().any(|o| o.eq_ignore_ascii_case(&item)) {
            out.push(item);
        }
    }
    Ok(out)
}

impl ProfileInput {
    /// Trims and bounds every field; the profile to store for `staff` at `now`.
    pub fn into_profile(self, staff: StaffId, now: i64) -> Result<Profile, ProfileError> {
        let display_name = self.display_name.trim().to_owned();
        if display_name.is_empty() || display_name.chars().count() > MAX_NAME {
            return Err(invalid("display_name", format!("1–{MAX_NAME} characters")));
        }
        let bio = self
            .bio
            .map(|b| b.trim().to_owned())
            .filter(|b| !b.is_empty());
        if bio.as_ref().is_some_and(|b| b.chars().count() > MAX_BIO) {
            return Err(invalid("bio", format!("at most {MAX_BIO} characters")));
        }
        if self.sites.len() > MAX_ITEMS {
            return Err(invalid("sites", format!("at most {MAX_ITEMS} sites")));
        }
        let mut sites = Vec::with_capacity(self.sites.len());
        for s in self.sites {
            let name = s.name.trim().to_owned();
            let address = s.address.trim().to_owned();
            if name.is_empty() || name.chars().count() > MAX_NAME {
                return Err(invalid(
                    "sites",
                    format!("a site's name is 1–{MAX_NAME} characters"),
                ));
            }
            if address.chars().count() > MAX_ADDRESS {
                return Err(invalid(
                    "sites",
                    format!("an address is at most {MAX_ADDRESS} characters"),
                ));
            }
            if !(-90.0..=90.0).contains(&s.lat) || !(-180.0..=180.0).contains(&s.lon) {
                return Err(invalid("sites", "lat is -90..90 and lon -180..180 degrees"));
            }
            sites.push(Site {
                name,
                address,
                lat: s.lat,
                lon: s.lon,
            });
        }
        Ok(Profile {
            staff,
            display_name,
            specialties: clean_list("specialties", self.specialties)?,
            bio,
            sites,
            visit_types: clean_list("visit_types", self.visit_types)?,
            accepting_new: self.accepting_new,
            listed: self.listed,
            publish: self.publish,
            updated_at: now,
        })
    }
}

/// A listed physician as the public sees them: only what they published.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Listing {
    #[schema(value_type = String)]
    pub id: StaffId,
    pub display_name: String,
    pub specialties: Vec<String>,
    pub visit_types: Vec<String>,
    pub accepting_new: bool,
    /// Only when published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// Only when published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub languages: Option<Vec<String>>,
    /// Only when published.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub sites: Option<Vec<Site>>,
    /// Only when published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bio: Option<String>,
    /// Kilometres from the point searched from to the nearest published site; only in a
    /// search with `near`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_km: Option<f64>,
    /// The start of the physician's next free appointment (unix ms), within the booking
    /// window; absent when they take no appointments or have none free.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_free_at: Option<i64>,
    /// The photo (`/api/directory/{id}/photo?v=…`), when there is one and it is published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub photo_url: Option<String>,
    /// Where a patient books this physician (`/book?physician=…`), when they take appointments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub book_url: Option<String>,
}

/// The public view of `profile` for an account with these `languages` and `gender`, whose
/// photo (if any) last changed at `photo_at`.
pub fn listing(
    profile: &Profile,
    languages: &[String],
    gender: Option<&str>,
    photo_at: Option<i64>,
) -> Listing {
    let p = profile.publish;
    Listing {
        id: profile.staff.clone(),
        display_name: profile.display_name.clone(),
        specialties: profile.specialties.clone(),
        visit_types: profile.visit_types.clone(),
        accepting_new: profile.accepting_new,
        gender: p.gender.then(|| gender.map(str::to_owned)).flatten(),
        languages: p.languages.then(|| languages.to_vec()),
        sites: p.sites.then(|| profile.sites.clone()),
        bio: p.bio.then(|| profile.bio.clone()).flatten(),
        photo_url: p
            .photo
            .then(|| photo_at.map(|at| format!("/api/directory/{}/photo?v={at}", profile.staff)))
            .flatten(),
        distance_km: None,
        next_free_at: None,
        book_url: None,
    }
}

/// A search of the directory. Text filters match case-insensitively.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Search {
    pub specialty: Option<String>,
    pub language: Option<String>,
    pub gender: Option<String>,
    pub accepting_new: Option<bool>,
    /// (lat, lon) to measure from; listings without a published site are left out.
    pub near: Option<(f64, f64)>,
    /// Leave out listings further than this, in km (with `near`).
    pub within_km: Option<f64>,
    /// Only physicians with a free appointment starting before this time (unix ms).
    pub free_before: Option<i64>,
    pub sort: Sort,
}

/// The order of a search's results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    /// Nearest first with `near`, else by name.
    #[default]
    Default,
    /// Earliest free appointment first; those without one last, by name.
    Earliest,
}

pub use crate::gazetteer::distance_km;
use crate::visit::same_language;

/// The listings that match, nearest first with `near`, else by name. Filters read only
/// what the listing shows (see the module's invariant).
pub fn search(listings: Vec<Listing>, q: &Search) -> Vec<Listing> {
    let mut out: Vec<Listing> = listings
        .into_iter()
        .filter(|l| {
            q.specialty.as_deref().is_none_or(|want| {
                l.specialties
                    .iter()
                    .any(|s| s.to_lowercase() == want.trim().to_lowercase())
            })
        })
        .filter(|l| {
            q.language.as_deref().is_none_or(|want| {
                l.languages
                    .as_deref()
                    .is_some_and(|langs| langs.iter().any(|x| same_language(x, want)))
            })
        })
        .filter(|l| {
            q.gender.as_deref().is_none_or(|want| {
                l.gender
                    .as_deref()
                    .is_some_and(|g| g.eq_ignore_ascii_case(want))
            })
        })
        .filter(|l| q.accepting_new.is_none_or(|want| l.accepting_new == want))
        .filter(|l| {
            q.free_before
                .is_none_or(|before| l.next_free_at.is_some_and(|at| at < before))
        })
        .filter_map(|mut l| {
            let Some(from) = q.near else { return Some(l) };
            let nearest = l
                .sites
                .as_deref()?
                .iter()
                .map(|s| distance_km(from, (s.lat, s.lon)))
                .min_by(f64::total_cmp)?;
            if q.within_km.is_some_and(|max| nearest > max) {
                return None;
            }
            // Metres are more than a directory needs, and less than a site's address gives away.
            l.distance_km = Some((nearest * 10.0).round() / 10.0);
            Some(l)
        })
        .collect();
    if q.sort == Sort::Earliest {
        out.sort_by(|a, b| {
            a.next_free_at
                .unwrap_or(i64::MAX)
                .cmp(&b.next_free_at.unwrap_or(i64::MAX))
                .then_with(|| a.display_name.cmp(&b.display_name))
        });
    } else if q.near.is_some() {
        out.sort_by(|a, b| {
            a.distance_km
                .unwrap_or(f64::MAX)
                .total_cmp(&b.distance_km.unwrap_or(f64::MAX))
                .then_with(|| a.display_name.cmp(&b.display_name))
        });
    } else {
        out.sort_by(|a, b| a.display_name.cmp(&b.display_name));
    }
    out
}

/// Where the listed physicians published a site: the clinic's area, which decides
/// between places of the same name ("Madrid" near a clinic in Spain is the Spanish one).
pub fn published_sites(listings: &[Listing]) -> Vec<(f64, f64)> {
    listings
        .iter()
        .flat_map(|l| l.sites.iter().flatten())
        .map(|s| (s.lat, s.lon))
        .collect()
}

/// Every listed profile of an active physician, as the public sees it.
pub async fn listings(
    store: &(impl crate::durable::DirectoryStore + StaffStore + ?Sized),
) -> Result<Vec<Listing>, crate::durable::DurableError> {
    let profiles = store.listed_profiles().await?;
    let staff = store.list_staff().await?;
    let photos = store.photo_dates().await?;
    Ok(profiles
        .iter()
        .filter_map(|p| {
            let s = staff.iter().find(|s| s.id == p.staff)?;
            let photo_at = photos
                .iter()
                .find(|(id, _)| *id == p.staff)
                .map(|(_, at)| *at);
            (s.active && s.has_role(crate::ids::Role::Physician))
                .then(|| listing(p, &s.languages, s.gender.as_deref(), photo_at))
        })
        .collect())
}

/// One physician's public listing, if they are listed and active: the reads of
/// [`listings`] for one account only.
pub async fn listing_of(
    store: &(impl crate::durable::DirectoryStore + StaffStore + ?Sized),
    id: &StaffId,
) -> Result<Option<Listing>, crate::durable::DurableError> {
    let Some(p) = store.profile(id).await?.filter(|p| p.listed) else {
        return Ok(None);
    };
    let Some(s) = store.staff(id).await? else {
        return Ok(None);
    };
    if !(s.active && s.has_role(crate::ids::Role::Physician)) {
        return Ok(None);
    }
    let photo_at = store
        .photo_dates()
        .await?
        .into_iter()
        .find(|(who, _)| who == id)
        .map(|(_, at)| at);
    Ok(Some(listing(
        &p,
        &s.languages,
        s.gender.as_deref(),
        photo_at,
    )))
}

/// The media type of a photo a physician uploads, by its first bytes: JPEG, PNG or WebP,
/// at most [`MAX_PHOTO`]. Anything else (SVG, which can carry script; HTML; a truncated
/// file) is refused, so what `/api/directory/{id}/photo` serves is always an image.
pub fn photo_type(bytes: &[u8]) -> Result<&'static str, ProfileError> {
    if bytes.len() > MAX_PHOTO {
        return Err(invalid(
            "photo",
            format!("at most {} KiB", MAX_PHOTO / 1024),
        ));
    }
    match bytes {
        [0xFF, 0xD8, 0xFF, ..] if bytes.ends_with(&[0xFF, 0xD9]) => Ok("image/jpeg"),
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Ok("image/png"),
        [
            b'R',
            b'I',
            b'F',
            b'F',
            _,
            _,
            _,
            _,
            b'W',
            b'E',
            b'B',
            b'P',
            ..,
        ] => Ok("image/webp"),
        _ => Err(invalid("photo", "a JPEG, PNG or WebP image")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(name: &str, publish: Publish, sites: Vec<Site>) -> Profile {
        ProfileInput {
            display_name: name.into(),
            specialties: vec!["Family medicine".into()],
            bio: Some("Twenty years in primary care.".into()),
            sites,
            visit_types: vec!["video".into()],
            accepting_new: true,
            listed: true,
            publish,
        }
        .into_profile(StaffId::parse(&format!("s-{}", name.len())).unwrap(), 0)
        .unwrap()
    }

    fn site(name: &str, lat: f64, lon: f64) -> Site {
        Site {
            name: name.into(),
            address: String::new(),
            lat,
            lon,
        }
    }

    const ALL: Publish = Publish {
        gender: true,
        languages: true,
        sites: true,
        bio: true,
        photo: true,
    };

    #[test]
    fn a_published_photo_is_linked_and_only_images_are_taken() {
        let p = profile("Dr Pic", ALL, vec![]);
        let l = listing(&p, &[], None, Some(42));
        assert_eq!(
            l.photo_url.as_deref(),
            Some("/api/directory/s-6/photo?v=42")
        );
        assert_eq!(
            listing(&p, &[], None, None).photo_url,
            None,
            "no photo, no link"
        );
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(photo_type(png), Ok("image/png"));
        assert_eq!(
            photo_type(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, 0xFF, 0xD9]),
            Ok("image/jpeg")
        );
        assert_eq!(photo_type(b"RIFF\x24\0\0\0WEBPVP8 "), Ok("image/webp"));
        for bad in [
            &b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"[..],
            b"<html>",
            &[0xFF, 0xD8, 0xFF, 0xE0],
            b"",
        ] {
            assert_eq!(photo_type(bad).unwrap_err().field, "photo");
        }
        let mut big = png.to_vec();
        big.resize(MAX_PHOTO + 1, 0);
        assert!(photo_type(&big).unwrap_err().message.contains("256 KiB"));
    }

    #[test]
    fn unpublished_fields_are_not_shown_and_do_not_filter() {
        let p = profile(
            "Dr Quiet",
            Publish::default(),
            vec![site("Centro", 40.4, -3.7)],
        );
        let l = listing(&p, &["es".into()], Some("female"), Some(7));
        assert_eq!(
            (
                l.gender.as_deref(),
                l.languages.as_ref(),
                l.sites.as_ref(),
                l.bio.as_ref()
            ),
            (None, None, None, None)
        );
        let json = serde_json::to_string(&l).unwrap();
        for secret in ["female", "\"es\"", "Centro", "Twenty years", "photo"] {
            assert!(!json.contains(secret), "{secret} left the server: {json}");
        }
        // A filter on an unpublished field leaves the physician out rather than telling.
        for q in [
            Search {
                gender: Some("female".into()),
                ..Default::default()
            },
            Search {
                language: Some("es".into()),
                ..Default::default()
            },
            Search {
                near: Some((40.4, -3.7)),
                ..Default::default()
            },
        ] {
            assert!(search(vec![l.clone()], &q).is_empty(), "{q:?}");
        }
    }

    #[test]
    fn filters_match_what_is_published() {
        let a = listing(
            &profile("Dr Ana", ALL, vec![]),
            &["es-MX".into(), "en".into()],
            Some("female"),
            None,
        );
        let b = listing(
            &profile("Dr Bartholomew", ALL, vec![]),
            &["en".into()],
            Some("male"),
            None,
        );
        let all = vec![a.clone(), b.clone()];
        let names = |q: Search| {
            search(all.clone(), &q)
                .into_iter()
                .map(|l| l.display_name)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(Search {
                language: Some("es".into()),
                ..Default::default()
            }),
            ["Dr Ana"]
        );
        assert_eq!(
            names(Search {
                gender: Some("MALE".into()),
                ..Default::default()
            }),
            ["Dr Bartholomew"]
        );
        assert_eq!(
            names(Search {
                specialty: Some("family medicine".into()),
                ..Default::default()
            }),
            ["Dr Ana", "Dr Bartholomew"]
        );
        assert_eq!(
            names(Search {
                specialty: Some("cardiology".into()),
                ..Default::default()
            }),
            Vec::<String>::new()
        );
    }

    #[test]
    fn near_sorts_by_the_nearest_site_and_bounds_the_distance() {
        // Madrid, Barcelona, Seville.
        let madrid = listing(
            &profile("Dr M", ALL, vec![site("Madrid", 40.4168, -3.7038)]),
            &[],
            None,
            None,
        );
        let two = listing(
            &profile(
                "Dr Two",
                ALL,
                vec![
                    site("Seville", 37.3891, -5.9845),
                    site("Barcelona", 41.3874, 2.1686),
                ],
            ),
            &[],
            None,
            None,
        );
        // From Zaragoza: Barcelona (≈ 256 km) is nearer than Madrid (≈ 274 km).
        let q = Search {
            near: Some((41.6488, -0.8891)),
            ..Default::default()
        };
        let found = search(vec![madrid.clone(), two.clone()], &q);
        assert_eq!(
            found
                .iter()
                .map(|l| l.display_name.as_str())
                .collect::<Vec<_>>(),
            ["Dr Two", "Dr M"]
        );
        let d = found[0].distance_km.unwrap();
        assert!((250.0..265.0).contains(&d), "{d}");
        let q = Search {
            within_km: Some(260.0),
            ..q
        };
        assert_eq!(search(vec![madrid, two], &q).len(), 1);
    }

    #[test]
    fn earliest_puts_the_soonest_free_appointment_first_and_free_before_filters() {
        let mut a = listing(&profile("Dr Late", ALL, vec![]), &[], None, None);
        let mut b = listing(&profile("Dr Soon", ALL, vec![]), &[], None, None);
        let c = listing(&profile("Dr None", ALL, vec![]), &[], None, None);
        a.next_free_at = Some(2_000);
        b.next_free_at = Some(1_000);
        let q = Search {
            sort: Sort::Earliest,
            ..Default::default()
        };
        let order: Vec<_> = search(vec![a.clone(), c.clone(), b.clone()], &q)
            .into_iter()
            .map(|l| l.display_name)
            .collect();
        assert_eq!(order, ["Dr Soon", "Dr Late", "Dr None"]);
        let q = Search {
            free_before: Some(1_500),
            ..Default::default()
        };
        assert_eq!(search(vec![a, b, c], &q).len(), 1);
    }

    #[test]
    fn bad_profiles_are_refused_with_the_field() {
        let ok = ProfileInput {
            display_name: "Dr A".into(),
            specialties: vec![],
            bio: None,
            sites: vec![],
            visit_types: vec![],
            accepting_new: true,
            listed: true,
            publish: ALL,
        };
        let id = StaffId::parse("s-1").unwrap();
        let field = |p: ProfileInput| p.into_profile(id.clone(), 0).unwrap_err().field;
        assert_eq!(
            field(ProfileInput {
                display_name: "  ".into(),
                ..ok.clone()
            }),
            "display_name"
        );
        assert_eq!(
            field(ProfileInput {
                specialties: vec!["x".into(); 11],
                ..ok.clone()
            }),
            "specialties"
        );
        assert_eq!(
            field(ProfileInput {
                bio: Some("b".repeat(MAX_BIO + 1)),
                ..ok.clone()
            }),
            "bio"
        );
        assert_eq!(
            field(ProfileInput {
                sites: vec![site("Far", 91.0, 0.0)],
                ..ok.clone()
            }),
            "sites"
        );
        // Duplicates differing in case collapse; blanks are trimmed.
        let p = ProfileInput {
            specialties: vec![" Cardiology ".into(), "cardiology".into()],
            ..ok
        }
        .into_profile(id, 0)
        .unwrap();
        assert_eq!(p.specialties, ["Cardiology"]);
    }
}
