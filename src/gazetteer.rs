//! Places by name or postcode, offline (issue 22): a patient searching the directory types
//! "Zaragoza" or "28001" and gets distances without the server calling anyone.
//!
//! Two sources, both read at start and held in memory:
//! - **bundled**: about 10,600 of the world's larger cities with their country, from the
//!   `cities` crate (fetched through crates.io like any dependency, compiled in);
//! - **files the clinic adds** (`directory.places_files`): GeoNames exports, either the
//!   postal-code files (`ES.txt`, `allCountries.txt` from `export/zip/`, 12 columns) or the
//!   place dumps (`cities500.txt`, `ES.txt` from `export/dump/`, 19 columns), told apart
//!   by their column count. That is how postcodes and smaller towns get in.
//!
//! Names compare without case, accents or punctuation ("Alcalá de Henares" finds
//! "Alcala de Henares"). A name several places share is decided by, in order: the country
//! the query names ("Madrid, Colombia" or "Madrid, CO"), the place nearest to the clinic's
//! own sites (a clinic in Spain means the Spanish Madrid), then the larger place.
//!
//! Pure apart from [`Gazetteer::load_file`]: resolving is a lookup in maps built once.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use unicode_normalization::UnicodeNormalization;

/// The longest query taken: a place name, not a paragraph.
pub const MAX_QUERY: usize = 100;

/// One place a query can resolve to.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Place {
    /// The place's name, or the postcode and its place ("28001 Madrid").
    pub name: String,
    /// Region or province, when the source gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The country's name (bundled cities) or ISO 3166 code (GeoNames files).
    pub country: String,
    pub lat: f64,
    pub lon: f64,
    /// People living there when the source says, else 0; breaks ties between namesakes.
    #[serde(skip)]
    pub population: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum GazetteerError {
    #[error("cannot read places file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "places file {path} line {line}: expected a GeoNames postal-code (12 columns) or place (19 columns) row"
    )]
    Format { path: String, line: usize },
}

/// Why a query names no place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceError {
    #[error("type a city, town or postcode (at most {MAX_QUERY} characters)")]
    Empty,
    #[error("no city, town or postcode by that name is known here")]
    Unknown,
}

/// Every place known, indexed by folded name and by folded postcode.
#[derive(Debug, Default)]
pub struct Gazetteer {
    places: Vec<Place>,
    // Ordered, so a search box's prefix is a range rather than a scan of every name.
    names: BTreeMap<String, Vec<u32>>,
    postcodes: BTreeMap<String, Vec<u32>>,
    /// Folded country names and codes seen, so "Madrid, Spain" can split off the country.
    countries: HashSet<String>,
}

/// Lower case, accents dropped, anything but letters and digits made one space.
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut gap = false;
    for c in s
        .nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
    {
        if c.is_alphanumeric() {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.extend(c.to_lowercase());
        } else {
            gap = true;
        }
    }
    out
}

/// Postcodes compare without spaces or dashes ("SW1A 1AA" = "sw1a1aa").
fn fold_postcode(s: &str) -> String {
    fold(s).replace(' ', "")
}

/// Great-circle distance in km (haversine, mean Earth radius).
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1) = (a.0.to_radians(), a.1.to_radians());
    let (la2, lo2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6371.0088 * h.sqrt().asin()
}

/// Km from `p` to the nearest of the clinic's sites; 0 without sites.
fn nearest_site(clinic: &[(f64, f64)], p: &Place) -> f64 {
    clinic
        .iter()
        .map(|&s| distance_km(s, (p.lat, p.lon)))
        .min_by(f64::total_cmp)
        .unwrap_or(0.0)
}

impl Gazetteer {
    /// The bundled world cities only.
    pub fn bundled() -> Self {
        let mut g = Self::default();
        for c in cities::all() {
            g.add(Place {
                name: c.city.to_owned(),
                region: None,
                country: c.country.to_owned(),
                lat: c.latitude,
                lon: c.longitude,
                population: 0,
            });
        }
        g
    }

    pub fn len(&self) -> usize {
        self.places.len()
    }

    pub fn is_empty(&self) -> bool {
        self.places.is_empty()
    }

    fn add(&mut self, place: Place) {
        let i = self.places.len() as u32;
        self.countries.insert(fold(&place.country));
        self.names.entry(fold(&place.name)).or_default().push(i);
        self.places.push(place);
    }

    fn add_postcode(&mut self, code: &str, place: Place) {
        let i = self.places.len() as u32;
        self.countries.insert(fold(&place.country));
        self.postcodes
            .entry(fold_postcode(code))
            .or_default()
            .push(i);
        // The town a postcode belongs to is a place too ("Getafe" from its postcodes);
        // only when no other source knows that name in that country.
        let name = fold(&place.name);
        let known = self.names.get(&name).is_some_and(|is| {
            is.iter()
                .any(|&j| self.places[j as usize].country == place.country)
        });
        if !known {
            self.names.entry(name).or_default().push(i);
        }
        // "28001 Madrid", as a suggestion shows it and a search box sends it back.
        self.names
            .entry(fold(&format!("{code} {}", place.name)))
            .or_default()
            .push(i);
        self.places.push(Place {
            name: format!("{code} {}", place.name),
            ..place
        });
    }

    /// Adds the rows of a GeoNames export; returns how many were added.
    pub fn load_file(&mut self, path: &Path) -> Result<usize, GazetteerError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| GazetteerError::Read {
            path: shown.clone(),
            source,
        })?;
        self.load_text(&text)
            .map_err(|line| GazetteerError::Format { path: shown, line })
    }

    /// [`Self::load_file`] on text already read; the error is the 1-based bad line.
    pub fn load_text(&mut self, text: &str) -> Result<usize, usize> {
        let mut added = 0;
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            let coord = |lat: &str, lon: &str| -> Option<(f64, f64)> {
                let (lat, lon) = (lat.trim().parse().ok()?, lon.trim().parse().ok()?);
                ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon))
                    .then_some((lat, lon))
            };
            let region = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
            match cols.len() {
                // Postal codes: country, code, place, admin1 name, admin1 code, admin2
                // name, admin2 code, admin3 name, admin3 code, lat, lon, accuracy.
                12 => {
                    let (lat, lon) = coord(cols[9], cols[10]).ok_or(n + 1)?;
                    let code = cols[1].trim();
                    if code.is_empty() {
                        return Err(n + 1);
                    }
                    self.add_postcode(
                        code,
                        Place {
                            name: cols[2].trim().to_owned(),
                            region: region(cols[3]),
                            country: cols[0].trim().to_owned(),
                            lat,
                            lon,
                            population: 0,
                        },
                    );
                }
                // Places: id, name, ascii name, alternate names, lat, lon, feature class,
                // feature code, country, cc2, admin1..4 codes, population, … Only
                // populated places (class P) are places a patient would type.
                19 => {
                    if cols[6].trim() != "P" {
                        continue;
                    }
                    let (lat, lon) = coord(cols[4], cols[5]).ok_or(n + 1)?;
                    let place = Place {
                        name: cols[1].trim().to_owned(),
                        region: None,
                        country: cols[8].trim().to_owned(),
                        lat,
                        lon,
                        population: cols[14].trim().parse().unwrap_or(0),
                    };
                    let i = self.places.len() as u32;
                    // Also findable by the ASCII spelling and the names in other
                    // languages ("Saragossa"), folded like the main one.
                    let mut keys: Vec<String> = std::iter::once(cols[2])
                        .chain(cols[3].split(','))
                        .map(fold)
                        .filter(|k| !k.is_empty())
                        .collect();
                    keys.sort();
                    keys.dedup();
                    self.add(place);
                    let main = fold(&self.places[i as usize].name);
                    for k in keys.into_iter().filter(|k| *k != main) {
                        self.names.entry(k).or_default().push(i);
                    }
                }
                _ => return Err(n + 1),
            }
            added += 1;
        }
        Ok(added)
    }

    /// The place `query` names: a postcode or a place name, optionally followed by
    /// `, <country>` (name or code). `clinic` are the clinic's sites (lat, lon), used to
    /// choose between namesakes.
    pub fn resolve(&self, query: &str, clinic: &[(f64, f64)]) -> Result<&Place, PlaceError> {
        let query = query.trim();
        if query.is_empty() || query.chars().count() > MAX_QUERY {
            return Err(PlaceError::Empty);
        }
        // "Madrid, Spain" / "Madrid, ES": the part after the last comma names a country
        // when some place has that country; else the comma is part of the name.
        let (place, country) = match query.rsplit_once(',') {
            Some((p, c)) if self.countries.contains(&fold(c)) && !fold(p).is_empty() => {
                (p, Some(fold(c)))
            }
            _ => (query, None),
        };
        let in_country = |p: &&Place| country.as_ref().is_none_or(|c| fold(&p.country) == *c);
        let pick = |ids: Option<&Vec<u32>>| -> Vec<&Place> {
            ids.into_iter()
                .flatten()
                .map(|&i| &self.places[i as usize])
                .filter(in_country)
                .collect()
        };
        // A postcode match beats a name match.
        let mut candidates = pick(self.postcodes.get(&fold_postcode(place)));
        if candidates.is_empty() {
            candidates = pick(self.names.get(&fold(place)));
        }
        // Nearest to the clinic, then the larger place; `min_by` keeps the first of equals.
        let best = candidates.into_iter().min_by(|a, b| {
            nearest_site(clinic, a)
                .total_cmp(&nearest_site(clinic, b))
                .then(b.population.cmp(&a.population))
        });
        best.ok_or(PlaceError::Unknown)
    }

    /// Up to `limit` places whose name starts with `prefix` (folded), for a search box's
    /// suggestions: nearest to the clinic first, then larger.
    pub fn suggest<'a>(
        &'a self,
        prefix: &str,
        clinic: &[(f64, f64)],
        limit: usize,
    ) -> Vec<&'a Place> {
        let want = fold(prefix);
        if want.chars().count() < 2 {
            return vec![];
        }
        let want_code = fold_postcode(prefix);
        let starting = |index: &'a BTreeMap<String, Vec<u32>>, start: String| {
            index
                .range(start.clone()..)
                .take_while(move |(k, _)| k.starts_with(&start))
                .flat_map(|(_, is)| is.iter())
        };
        let mut found: Vec<&Place> = starting(&self.names, want)
            .chain(starting(&self.postcodes, want_code))
            .map(|&i| &self.places[i as usize])
            .collect();
        found.sort_by(|a, b| {
            nearest_site(clinic, a)
                .total_cmp(&nearest_site(clinic, b))
                .then(b.population.cmp(&a.population))
                .then(a.name.cmp(&b.name))
        });
        found.dedup_by(|a, b| std::ptr::eq(*a, *b));
        found.truncate(limit);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZARAGOZA_SITE: (f64, f64) = (41.6488, -0.8891);
    const BOGOTA_SITE: (f64, f64) = (4.711, -74.0721);

    #[test]
    fn folding_ignores_case_accents_and_punctuation() {
        assert_eq!(fold("  Alcalá de  Henares "), "alcala de henares");
        assert_eq!(fold("SAINT-ÉTIENNE"), "saint etienne");
        assert_eq!(fold("Ñuñoa"), "nunoa");
        assert_eq!(fold_postcode("SW1A 1AA"), "sw1a1aa");
    }

    #[test]
    fn bundled_cities_resolve_by_name_with_or_without_accents() {
        let g = Gazetteer::bundled();
        assert!(g.len() > 10_000, "{}", g.len());
        let z = g.resolve("zaragoza", &[]).unwrap();
        // Zaragoza in Spain is listed; Puebla de Zaragoza is another name entirely.
        assert_eq!(z.name, "Zaragoza");
        let a = g.resolve("Alcalá de Henares", &[]).unwrap();
        assert_eq!(
            (a.name.as_str(), a.country.as_str()),
            ("Alcala de Henares", "Spain")
        );
        assert!((a.lat - 40.48).abs() < 0.1 && (a.lon + 3.37).abs() < 0.1);
        assert_eq!(g.resolve("Nowhere-on-Sea", &[]), Err(PlaceError::Unknown));
        assert_eq!(g.resolve("   ", &[]), Err(PlaceError::Empty));
        assert_eq!(
            g.resolve(&"x".repeat(MAX_QUERY + 1), &[]),
            Err(PlaceError::Empty)
        );
    }

    #[test]
    fn namesakes_are_decided_by_the_country_named_then_the_clinic_nearby() {
        let g = Gazetteer::bundled();
        // Zaragoza is a city in Spain and in El Salvador.
        let es = g.resolve("Zaragoza", &[ZARAGOZA_SITE]).unwrap();
        assert_eq!(es.country, "Spain");
        let sv = g.resolve("Zaragoza", &[(13.69, -89.19)]).unwrap();
        assert_eq!(sv.country, "El Salvador");
        let named = g
            .resolve("Zaragoza, el salvador", &[ZARAGOZA_SITE])
            .unwrap();
        assert_eq!(named.country, "El Salvador");
        assert_eq!(
            g.resolve("Zaragoza, Atlantis", &[]),
            Err(PlaceError::Unknown),
            "an unknown country is part of the name, which matches nothing"
        );
    }

    // Rows in the GeoNames formats, written here (not copied from an export) to check
    // the parser; the values are approximate public coordinates.
    const POSTAL: &str = "ES\t28001\tMadrid\tComunidad de Madrid\tMD\tMadrid\tM\tMadrid\t28079\t40.4252\t-3.6833\t4\n\
        ES\t50001\tZaragoza\tAragon\tAR\tZaragoza\tZ\tZaragoza\t50297\t41.6545\t-0.8787\t4\n\
        ES\t28901\tGetafe\tComunidad de Madrid\tMD\tMadrid\tM\tGetafe\t28065\t40.3083\t-3.7327\t4\n\
        US\t50001\tAckworth\tIowa\tIA\tWarren\t181\t\t\t41.3669\t-93.4727\t4\n";
    const PLACES: &str = "1\tMadrid\tMadrid\tMadri,Madrit\t4.7325\t-74.2642\tP\tPPL\tCO\t\t33\t\t\t\t62436\t\t2554\tAmerica/Bogota\t2023-01-01\n\
        2\tMadrid\tMadrid\tMadri,Madrit,Madryt\t40.4165\t-3.7026\tP\tPPLC\tES\t\t29\tM\t28079\t\t3255944\t\t667\tEurope/Madrid\t2024-01-01\n\
        3\tRío Manzanares\tRio Manzanares\t\t40.3\t-3.7\tH\tSTM\tES\t\t29\t\t\t\t0\t\t600\tEurope/Madrid\t2024-01-01\n";

    #[test]
    fn geonames_postcodes_resolve_and_the_clinics_country_wins_a_shared_code() {
        let mut g = Gazetteer::default();
        assert_eq!(g.load_text(POSTAL), Ok(4));
        let m = g.resolve("28001", &[]).unwrap();
        assert_eq!(
            (m.name.as_str(), m.country.as_str()),
            ("28001 Madrid", "ES")
        );
        assert_eq!(m.region.as_deref(), Some("Comunidad de Madrid"));
        // 50001 is Zaragoza in Spain and Ackworth in Iowa.
        assert_eq!(g.resolve("50001", &[ZARAGOZA_SITE]).unwrap().country, "ES");
        assert_eq!(g.resolve("50001", &[(41.6, -93.6)]).unwrap().country, "US");
        assert_eq!(
            g.resolve("50001, US", &[ZARAGOZA_SITE]).unwrap().country,
            "US"
        );
        // The town of a postcode is found by its name too.
        assert_eq!(g.resolve("getafe", &[]).unwrap().name, "28901 Getafe");
        // A suggestion sent back as the search box shows it.
        assert_eq!(g.resolve("50001 Zaragoza, ES", &[]).unwrap().country, "ES");
    }

    #[test]
    fn geonames_places_resolve_by_any_name_and_only_populated_places_count() {
        let mut g = Gazetteer::default();
        assert_eq!(
            g.load_text(PLACES),
            Ok(2),
            "the river is not a place to search from"
        );
        // No clinic site: the larger Madrid.
        assert_eq!(g.resolve("Madrid", &[]).unwrap().country, "ES");
        assert_eq!(g.resolve("madryt", &[]).unwrap().country, "ES");
        // A clinic in Colombia: its Madrid.
        assert_eq!(g.resolve("Madrid", &[BOGOTA_SITE]).unwrap().country, "CO");
        assert_eq!(
            g.resolve("Madrid, es", &[BOGOTA_SITE]).unwrap().country,
            "ES"
        );
        assert_eq!(g.resolve("Rio Manzanares", &[]), Err(PlaceError::Unknown));
    }

    #[test]
    fn a_malformed_row_names_its_line() {
        let mut g = Gazetteer::default();
        assert_eq!(g.load_text("ES\t28001\tMadrid\n"), Err(1));
        let bad_lat = POSTAL.replace("40.4252", "north");
        assert_eq!(g.load_text(&bad_lat), Err(1));
        assert_eq!(
            g.load_text("# comment\n\nES\t\tMadrid\tx\tx\tx\tx\tx\tx\t1\t1\t1\n"),
            Err(3)
        );
    }

    #[test]
    fn suggestions_start_with_the_prefix_nearest_first() {
        let mut g = Gazetteer::bundled();
        g.load_text(POSTAL).unwrap();
        let names: Vec<String> = g
            .suggest("zarag", &[ZARAGOZA_SITE], 5)
            .into_iter()
            .map(|p| format!("{}|{}", p.name, p.country))
            .collect();
        assert!(
            names
                .first()
                .is_some_and(|n| n.ends_with("Zaragoza|Spain") || n.ends_with("Zaragoza|ES")),
            "{names:?}"
        );
        assert!(
            g.suggest("z", &[], 5).is_empty(),
            "one letter suggests nothing"
        );
        assert!(
            g.suggest("2800", &[], 5)
                .iter()
                .any(|p| p.name == "28001 Madrid"),
            "postcodes by prefix"
        );
    }
}
