//! The physician directory (issue 22): admins and physicians write profiles; the public
//! searches them and sees only what each physician published.

use crate::kit::{EVERY_DAY, TestApp, open_all_day};
use examroom::identity::Role;
use examroom::ids::StaffId;
use serde_json::{Value, json};

fn profile(name: &str, listed: bool, publish: Value) -> Value {
    json!({
        "display_name": name,
        "specialties": ["Family medicine"],
        "bio": format!("{name} trained in Seville."),
        "sites": [{"name": "Centro de Salud Sol", "address": "Calle Mayor 1, Madrid", "lat": 40.4168, "lon": -3.7038}],
        "visit_types": ["video"],
        "accepting_new": true,
        "listed": listed,
        "publish": publish,
    })
}

const ALL: &str = r#"{"gender": true, "languages": true, "sites": true, "bio": true}"#;

/// `token`'s PUT of `body` as their own profile.
async fn put_profile(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    app.call_json("PUT", "/api/my/profile", Some(token), Some(body))
        .await
}

/// The holder of `token` (an admin, to succeed) writes `staff`'s profile.
async fn put_profile_of(app: &TestApp, token: &str, staff: &StaffId, body: Value) -> (u16, Value) {
    let path = format!("/api/staff/{staff}/profile");
    app.call_json("PUT", &path, Some(token), Some(body)).await
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|l| l["display_name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn the_public_finds_listed_physicians_by_language_gender_specialty_and_distance() {
    search_by_every_filter(TestApp::spawn().await).await;
}

/// The same search against a server whose durable store is PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_search_on_postgresql() {
    crate::kit::services::on_fresh_postgres(|pg| async move {
        let app = TestApp::spawn_with(|s| s.database.url = pg.database.url).await;
        search_by_every_filter(app).await;
    })
    .await;
}

async fn search_by_every_filter(app: TestApp) {
    let (_, admin) = app.admin().await;
    let ana = app.physician_speaking("Ana", &["es", "en"], "female").await;
    let ben = app.physician_speaking("Ben", &["en"], "male").await;
    let all: Value = serde_json::from_str(ALL).unwrap();
    let (s, _) = put_profile_of(
        &app,
        &admin,
        &ana,
        profile("Dr Ana Ruiz", true, all.clone()),
    )
    .await;
    assert_eq!(s, 200);
    // Ben writes his own, with a site in Barcelona.
    let ben_token = app.staff_token(&ben, vec![Role::Physician]).await;
    let mut own = profile("Dr Ben Cole", true, all);
    own["sites"] = json!([{"name": "Eixample", "address": "", "lat": 41.3874, "lon": 2.1686}]);
    own["specialties"] = json!(["Cardiology"]);
    let (s, body) = put_profile(&app, &ben_token, own).await;
    assert_eq!(s, 200, "{body}");

    let search = |q: &'static str| {
        let app = &app;
        async move {
            let (s, body) = app
                .call_json("GET", &format!("/api/directory{q}"), None, None)
                .await;
            assert_eq!(s, 200, "{q}: {body}");
            body
        }
    };
    assert_eq!(names(&search("").await), ["Dr Ana Ruiz", "Dr Ben Cole"]);
    assert_eq!(names(&search("?language=es").await), ["Dr Ana Ruiz"]);
    assert_eq!(names(&search("?gender=male").await), ["Dr Ben Cole"]);
    assert_eq!(
        names(&search("?specialty=cardiology").await),
        ["Dr Ben Cole"]
    );
    // From Zaragoza Barcelona is nearer than Madrid; within 260 km only Ben.
    let near = search("?near=41.6488,-0.8891").await;
    assert_eq!(names(&near), ["Dr Ben Cole", "Dr Ana Ruiz"]);
    assert!(near[0]["distance_km"].as_f64().unwrap() < near[1]["distance_km"].as_f64().unwrap());
    assert_eq!(
        names(&search("?near=41.6488,-0.8891&within_km=260").await),
        ["Dr Ben Cole"]
    );
    // The same by the city's name, as a patient types it, resolved offline.
    assert_eq!(
        names(&search("?place=zaragoza&within_km=260").await),
        ["Dr Ben Cole"]
    );
    let from_name = search("?place=Zaragoza").await;
    assert_eq!(names(&from_name), ["Dr Ben Cole", "Dr Ana Ruiz"]);
    assert!((240.0..270.0).contains(&from_name[0]["distance_km"].as_f64().unwrap()));
    for (q, code) in [
        ("?place=Nowhere%20on%20Sea", "unknown_place"),
        ("?place=Zaragoza&near=41.6,-0.8", "invalid_field"),
    ] {
        let (s, body) = app
            .call_json("GET", &format!("/api/directory{q}"), None, None)
            .await;
        assert_eq!(
            (s, body["error"].as_str(), body["field"].as_str()),
            (422, Some(code), Some("place")),
            "{q}"
        );
    }
    // One listing by id.
    let (s, one) = app
        .call_json("GET", &format!("/api/directory/{ana}"), None, None)
        .await;
    assert_eq!(
        (s, one["display_name"].as_str()),
        (200, Some("Dr Ana Ruiz"))
    );

    // Deactivated: gone from the directory at once.
    let (s, _) = app
        .call_json(
            "PATCH",
            &format!("/api/staff/{ben}"),
            Some(&admin),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(names(&search("").await), ["Dr Ana Ruiz"]);
    let (s, _) = app
        .call_json("GET", &format!("/api/directory/{ben}"), None, None)
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn unpublished_fields_never_leave_the_server() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let quiet = app.physician_speaking("Quinn", &["eu"], "nonbinary").await;
    let hidden = app.physician("Hidden").await;
    let nothing = json!({"gender": false, "languages": false, "sites": false, "bio": false});
    for (id, name, listed) in [(&quiet, "Dr Quinn", true), (&hidden, "Dr Hidden", false)] {
        let (s, _) = put_profile_of(&app, &admin, id, profile(name, listed, nothing.clone())).await;
        assert_eq!(s, 200);
    }
    // Dr Quinn also takes appointments online: the booking list follows the same choice.
    let room = app
        .room("Quinn", examroom::visit::RoomKind::Physician, &[&quiet])
        .await;
    let weekly = json!({"mon": ["09:00-12:00"]});
    let schedule = json!({"room": room.id, "zone": "UTC", "weekly": weekly, "visit_mins": 30});
    let (s, body) = app
        .call_json(
            "PUT",
            &format!("/api/schedules/{quiet}"),
            Some(&admin),
            Some(schedule),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    // Every public answer, searched every way, raw text.
    let mut seen = String::new();
    for q in ["", "?gender=nonbinary", "?language=eu"] {
        let r = app
            .call("GET", &format!("/api/booking{q}"), None, None)
            .await;
        assert_eq!(r.status(), 200);
        seen.push_str(&r.text().await.unwrap());
    }
    let (_, booking) = app.call_json("GET", "/api/booking", None, None).await;
    assert!(
        booking.to_string().contains(&quiet.to_string()),
        "Dr Quinn is bookable: {booking}"
    );
    let (_, by_gender) = app
        .call_json("GET", "/api/booking?gender=nonbinary", None, None)
        .await;
    assert!(
        !by_gender.to_string().contains(&quiet.to_string()),
        "{by_gender}"
    );
    for q in [
        "",
        "?gender=nonbinary",
        "?language=eu",
        "?near=40.4168,-3.7038",
        "?specialty=family%20medicine",
    ] {
        let r = app
            .call("GET", &format!("/api/directory{q}"), None, None)
            .await;
        assert_eq!(r.status(), 200);
        seen.push_str(&r.text().await.unwrap());
    }
    for path in [
        format!("/api/directory/{quiet}"),
        format!("/api/directory/{hidden}"),
    ] {
        seen.push_str(
            &app.call("GET", &path, None, None)
                .await
                .text()
                .await
                .unwrap(),
        );
    }
    for secret in [
        "nonbinary",
        "\"eu\"",
        "Centro de Salud",
        "Calle Mayor",
        "40.41",
        "Seville",
        "Dr Hidden",
    ] {
        assert!(!seen.contains(secret), "{secret} left the server: {seen}");
    }
    assert!(
        seen.contains("Dr Quinn"),
        "the listed profile is there: {seen}"
    );
    // Filters on unpublished fields match nobody rather than tell.
    let (_, by_gender) = app
        .call_json("GET", "/api/directory?gender=nonbinary", None, None)
        .await;
    assert_eq!(by_gender, json!([]));
    // Its editors still see every field.
    let (s, full) = app
        .call_json(
            "GET",
            &format!("/api/staff/{quiet}/profile"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        (s, full["sites"][0]["name"].as_str()),
        (200, Some("Centro de Salud Sol"))
    );
}

#[tokio::test]
async fn profiles_are_edited_only_by_admins_and_their_physician_and_bad_input_writes_nothing() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let doc = app.physician("Doc").await;
    let other = app.physician("Other").await;
    let doc_token = app.staff_token(&doc, vec![Role::Physician]).await;
    let body = profile("Dr Doc", true, json!({}));
    // A physician cannot write another physician's profile through the admin route.
    let (s, e) = put_profile_of(&app, &doc_token, &other, body.clone()).await;
    assert_eq!((s, e["error"].as_str()), (403, Some("not_admin")));
    // No credentials: 401 with a reason.
    let (s, e) = app
        .call_json("PUT", "/api/my/profile", None, Some(body.clone()))
        .await;
    assert_eq!(s, 401, "{e}");
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    // An admin without the physician role has no own profile.
    let (s, _) = put_profile(&app, &admin, body.clone()).await;
    assert_eq!(s, 403);
    // Bad input names the field and writes nothing.
    let cases = [
        ("display_name", json!({"display_name": " "})),
        (
            "bio",
            json!({"display_name": "Dr Doc", "bio": "x".repeat(1001)}),
        ),
        (
            "sites",
            json!({"display_name": "Dr Doc", "sites": [{"name": "Pole", "address": "", "lat": 95.0, "lon": 0.0}]}),
        ),
        (
            "specialties",
            json!({"display_name": "Dr Doc", "specialties": vec!["Surgery"; 11]}),
        ),
    ];
    for (field, bad) in cases {
        let (s, e) = put_profile(&app, &doc_token, bad).await;
        assert_eq!((s, e["field"].as_str()), (422, Some(field)), "{e}");
    }
    let (s, e) = put_profile(
        &app,
        &doc_token,
        json!({"display_name": "Dr Doc", "shoe_size": 44}),
    )
    .await;
    assert_eq!(s, 422, "unknown fields are refused: {e}");
    let (s, _) = app
        .call_json("GET", "/api/my/profile", Some(&doc_token), None)
        .await;
    assert_eq!(s, 404, "nothing was written");
    // Malformed searches get a clear error.
    for (q, field) in [
        ("?near=north", "near"),
        ("?near=91,0", "near"),
        ("?within_km=5", "within_km"),
    ] {
        let (s, e) = app
            .call_json("GET", &format!("/api/directory{q}"), None, None)
            .await;
        assert_eq!((s, e["field"].as_str()), (422, Some(field)), "{q}: {e}");
    }
    // And the right one works.
    let (s, _) = put_profile(&app, &doc_token, body).await;
    assert_eq!(s, 200);
    let (s, mine) = app
        .call_json("GET", "/api/my/profile", Some(&doc_token), None)
        .await;
    assert_eq!((s, mine["display_name"].as_str()), (200, Some("Dr Doc")));
}

#[tokio::test]
async fn physicians_who_take_appointments_show_their_next_free_slot_and_sort_earliest() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let open = app.physician("Open").await;
    let busy = app.physician("Busy").await;
    let none = app.physician("None").await;
    for (id, name) in [(&open, "Dr Open"), (&busy, "Dr Busy"), (&none, "Dr None")] {
        let (s, _) = put_profile_of(&app, &admin, id, profile(name, true, json!({}))).await;
        assert_eq!(s, 200);
    }
    // Dr Open works every day, all day; Dr Busy only on the weekday
    // three days from now; Dr None takes no appointments.
    let in_three_days = (chrono::Utc::now() + chrono::Duration::days(3))
        .format("%a")
        .to_string()
        .to_lowercase();
    for (id, days) in [
        (&open, EVERY_DAY.to_vec()),
        (&busy, vec![&in_three_days[..3]]),
    ] {
        let room = app
            .room(
                &format!("Room {id}"),
                examroom::visit::RoomKind::Physician,
                &[id],
            )
            .await;
        let weekly = open_all_day(&days);
        let (s, body) = app
            .call_json(
                "PUT",
                &format!("/api/schedules/{id}"),
                Some(&admin),
                Some(json!({"room": room.id, "zone": "UTC", "weekly": weekly, "visit_mins": 30})),
            )
            .await;
        assert_eq!(s, 200, "{body}");
    }
    let (s, list) = app
        .call_json("GET", "/api/directory?sort=earliest", None, None)
        .await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(names(&list), ["Dr Open", "Dr Busy", "Dr None"]);
    let now = chrono::Utc::now().timestamp_millis();
    let open_next = list[0]["next_free_at"].as_i64().unwrap();
    assert!(
        open_next > now && open_next < now + 3_600_000,
        "within the hour: {open_next}"
    );
    assert!(list[1]["next_free_at"].as_i64().unwrap() > open_next);
    assert!(list[2].get("next_free_at").is_none() && list[2].get("book_url").is_none());
    assert!(
        list[0]["book_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/book?physician={open}"))
    );
    // Free within the next hour: only Dr Open.
    let (_, soon) = app
        .call_json(
            "GET",
            &format!("/api/directory?free_before={}", now + 3_600_000),
            None,
            None,
        )
        .await;
    assert_eq!(names(&soon), ["Dr Open"]);
    let (s, e) = app
        .call_json("GET", "/api/directory?sort=cheapest", None, None)
        .await;
    assert_eq!((s, e["field"].as_str()), (422, Some("sort")));
}

/// A clinic that loads a GeoNames postal-code export finds physicians near a postcode,
/// and the search box's suggestions prefer places near the clinic.
#[tokio::test]
async fn a_postcode_from_the_clinics_geonames_file_is_searched_from() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ES.txt");
    // Rows in the GeoNames postal-code format (12 tab-separated columns), written here.
    std::fs::write(
        &file,
        "ES\t50001\tZaragoza\tAragon\tAR\tZaragoza\tZ\tZaragoza\t50297\t41.6545\t-0.8787\t4\n\
         ES\t08001\tBarcelona\tCataluna\tCT\tBarcelona\tB\tBarcelona\t08019\t41.3802\t2.1734\t4\n\
         US\t50001\tAckworth\tIowa\tIA\tWarren\t181\t\t\t41.3669\t-93.4727\t4\n",
    )
    .unwrap();
    let path = file.clone();
    let app = TestApp::spawn_with(move |s| s.directory.places_files = vec![path]).await;
    let (_, admin) = app.admin().await;
    let ana = app.physician("Ana").await;
    let all: Value = serde_json::from_str(ALL).unwrap();
    let (s, _) = put_profile_of(&app, &admin, &ana, profile("Dr Ana Ruiz", true, all)).await;
    assert_eq!(s, 200);
    // 08001 is central Barcelona: Madrid is about 505 km away.
    let (s, found) = app
        .call_json("GET", "/api/directory?place=08001", None, None)
        .await;
    assert_eq!(s, 200, "{found}");
    let km = found[0]["distance_km"].as_f64().unwrap();
    assert!((490.0..520.0).contains(&km), "{km}");
    // 50001 is also a ZIP code in Iowa; a clinic in Madrid means Zaragoza.
    let (_, places) = app
        .call_json("GET", "/api/places?q=50001", None, None)
        .await;
    assert_eq!(places[0]["country"], "ES", "{places}");
    assert_eq!(places[0]["name"], "50001 Zaragoza");
    assert!(
        places
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["country"] == "US"),
        "the other 50001 is offered too: {places}"
    );
    let (_, places) = app
        .call_json("GET", "/api/places?q=50001,%20US", None, None)
        .await;
    assert_eq!(places[0]["name"], "50001 Ackworth");
    // Suggestions as the patient types; a bundled city needs no file.
    let (_, places) = app
        .call_json("GET", "/api/places?q=sevil", None, None)
        .await;
    assert!(
        places
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "Sevilla" || p["name"] == "Seville"),
        "{places}"
    );
    let (s, body) = app.call_json("GET", "/api/places?q=", None, None).await;
    assert_eq!((s, body["field"].as_str()), (422, Some("q")));
}

/// A bad places file stops the start with the file and line, rather than searching from
/// half a gazetteer.
#[test]
fn a_malformed_places_file_stops_the_start_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.txt");
    std::fs::write(&file, "ES\t50001\tZaragoza\n").unwrap();
    let mut settings = crate::kit::test_settings(dir.path());
    settings.directory.places_files = vec![file];
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(examroom::app::build(settings))
        .err()
        .expect("the start is refused")
        .to_string();
    assert!(err.contains("bad.txt") && err.contains("line 1"), "{err}");
}

/// A physician's photo: only JPEG, PNG or WebP up to 256 KiB is taken; it is public only
/// while published, and gone when removed.
#[tokio::test]
async fn a_published_photo_is_served_and_nothing_but_an_image_is_taken() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let ana = app.physician("Ana").await;
    let token = app.staff_token(&ana, vec![Role::Physician]).await;
    let mut publish: Value = serde_json::from_str(ALL).unwrap();
    let (s, _) = put_profile(&app, &token, profile("Dr Ana Ruiz", true, publish.clone())).await;
    assert_eq!(s, 200);
    let put = |who: &str, path: String, bytes: Vec<u8>| {
        let req = app
            .api(reqwest::Method::PUT, &path, who)
            .header("content-type", "image/png")
            .body(bytes);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // A 1×1 PNG made here: signature, IHDR, IDAT, IEND.
    let png: Vec<u8> = [
        &b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89"[..],
        b"\0\0\0\rIDATx\x9cc\xf8\x0f\0\0\x01\x01\0\x05\x18\xd8N\0\0\0\0IEND\xaeB`\x82",
    ]
    .concat();
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>".to_vec();
    let (s, body) = put(&token, "/api/my/profile/photo".into(), svg).await;
    assert_eq!((s, body["field"].as_str()), (422, Some("photo")), "{body}");
    let mut big = png.clone();
    big.resize(300 * 1024, 0);
    let (s, body) = put(&token, "/api/my/profile/photo".into(), big).await;
    assert_eq!((s, body["error"].as_str()), (413, Some("too_large")));
    let (s, _) = put(&token, "/api/my/profile/photo".into(), png.clone()).await;
    assert_eq!(s, 204);
    // Not published yet: no link, and the photo is not served.
    let (_, one) = app
        .call_json("GET", &format!("/api/directory/{ana}"), None, None)
        .await;
    assert!(one.get("photo_url").is_none(), "{one}");
    let res = app.get(&format!("/api/directory/{ana}/photo")).await;
    assert_eq!(res.status(), 404);
    // Published: linked and served as the image it is.
    publish["photo"] = json!(true);
    let (s, _) = put_profile(&app, &token, profile("Dr Ana Ruiz", true, publish.clone())).await;
    assert_eq!(s, 200);
    let (_, one) = app
        .call_json("GET", &format!("/api/directory/{ana}"), None, None)
        .await;
    let url = one["photo_url"].as_str().expect("a photo link").to_owned();
    let res = app.get(&url).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.bytes().await.unwrap().to_vec(), png);
    // Unlisted: the photo goes with the listing.
    let (s, _) = put_profile(&app, &token, profile("Dr Ana Ruiz", false, publish.clone())).await;
    assert_eq!(s, 200);
    assert_eq!(app.get(&url).await.status(), 404);
    // An admin removes it; a second removal says there is none.
    let path = format!("/api/staff/{ana}/profile/photo");
    let res = app
        .api(reqwest::Method::DELETE, &path, &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = app
        .api(reqwest::Method::DELETE, &path, &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // Another physician cannot set someone else's.
    let ben = app.physician("Ben").await;
    let ben_token = app.staff_token(&ben, vec![Role::Physician]).await;
    let (s, _) = put(&ben_token, path, png).await;
    assert_eq!(s, 403);
}
