//! The prefetch cache (single-flight, expiry) and the demo patients of `serve --demo`.

use async_trait::async_trait;
use examroom::config::Settings;
use examroom::ids::{PatientRef, VisitId};
use examroom::records::summary::VitalKind;
use examroom::records::{PanelCache, PanelSummary, RecordSource, RecordsError};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A source that takes 100 ms per panel and counts fetches; `fail` makes it fail.
struct Slow {
    inner: Arc<dyn RecordSource>,
    fetches: AtomicUsize,
    fail: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl RecordSource for Slow {
    async fn summary(&self, p: &PatientRef) -> Result<PanelSummary, RecordsError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        if self.fail.load(Ordering::SeqCst) {
            return Err(RecordsError::Unavailable {
                cause: "test".into(),
            });
        }
        self.inner.summary(p).await
    }
    async fn ready(&self) -> Result<(), RecordsError> {
        Ok(())
    }
}

/// The embedded source as `serve --demo` opens it, on an empty data dir.
async fn demo_source() -> (Arc<dyn RecordSource>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.server.data_dir = dir.path().to_owned();
    settings.records.demo = true;
    (examroom::records::open(&settings).await.unwrap(), dir)
}

fn p(id: &str) -> PatientRef {
    PatientRef::parse(id).unwrap()
}

#[tokio::test]
async fn demo_mode_has_patients_with_a_penicillin_allergy_and_abnormal_labs_and_writes_nothing() {
    let (src, dir) = demo_source().await;
    assert!(
        !dir.path().join("records").exists(),
        "demo patients are held in memory, never written into the store"
    );
    src.ready().await.unwrap();
    let s = src.summary(&p("demo-patient-1")).await.unwrap();
    let first = &s.allergies.items()[0];
    assert_eq!(
        (first.substance.text.as_str(), first.criticality.as_deref()),
        ("Penicillin", Some("high"))
    );
    assert_eq!(
        s.demographics.preferred_language.as_ref().unwrap().text,
        "Spanish"
    );
    let meds: Vec<_> = s
        .medications
        .items()
        .iter()
        .map(|m| m.medication.text.as_str())
        .collect();
    assert_eq!(meds.len(), 3, "{meds:?}");
    assert!(
        meds.contains(&"metformin hydrochloride 500 MG Oral Tablet"),
        "contained Medication resolved"
    );
    assert_eq!(
        s.problems.items().len(),
        2,
        "resolved bronchitis is not an active problem"
    );
    let bp = s
        .vital_signs
        .items()
        .iter()
        .find(|v| v.kind == VitalKind::BloodPressure)
        .unwrap();
    assert_eq!(bp.trend.len(), 12);
    let lab = |code: &str| {
        let labs = s.labs.items();
        labs.iter()
            .find(|l| l.test.code.as_deref() == Some(code))
            .unwrap()
    };
    let a1c = lab("4548-4");
    assert!(a1c.abnormal);
    assert_eq!(a1c.flag.as_ref().unwrap().source, "interpretation");
    let glucose = lab("2345-7");
    assert_eq!(
        glucose.flag.as_ref().map(|f| (f.code.as_str(), f.source)),
        Some(("H", "computed"))
    );
    assert_eq!(glucose.reference_range.as_deref(), Some("70–99 mg/dL"));

    let none = src.summary(&p("demo-patient-2")).await.unwrap();
    let json = serde_json::to_value(&none).unwrap();
    assert_eq!(json["allergies"]["status"], "none_recorded");
    assert_eq!(json["allergies"]["items"], serde_json::json!([]));
    assert_eq!(json["allergies"]["notes"], serde_json::json!([]));
    assert_eq!(json["labs"]["status"], "none_recorded");
    assert!(matches!(
        src.summary(&p("nobody")).await,
        Err(RecordsError::NotFound)
    ));
}

fn visit(n: u32) -> VisitId {
    VisitId::parse(&format!("v-cache-test-{n}")).unwrap()
}

fn slow(inner: Arc<dyn RecordSource>) -> Arc<Slow> {
    Arc::new(Slow {
        inner,
        fetches: AtomicUsize::new(0),
        fail: Default::default(),
    })
}

/// A cache of `bound` panels kept for `ttl` over the demo source, counting its fetches.
async fn counted_cache(
    ttl: Duration,
    bound: usize,
) -> (Arc<PanelCache>, Arc<Slow>, tempfile::TempDir) {
    let (inner, dir) = demo_source().await;
    let slow = slow(inner);
    (PanelCache::new(slow.clone(), ttl, bound), slow, dir)
}

#[tokio::test]
async fn two_gets_for_one_visit_make_one_fetch_and_prefetch_warms_the_cache() {
    let (cache, slow, _dir) = counted_cache(Duration::from_secs(600), 100).await;
    let one = p("demo-patient-1");
    let v1 = visit(1);
    let (a, b) = tokio::join!(cache.get(&v1, &one, false), cache.get(&v1, &one, false));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(Arc::ptr_eq(&a.summary, &b.summary));
    assert_eq!(slow.fetches.load(Ordering::SeqCst), 1);

    cache.prefetch(&visit(2), &p("demo-patient-2"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let joined = cache
        .get(&visit(2), &p("demo-patient-2"), false)
        .await
        .unwrap();
    let cached = cache
        .get(&visit(2), &p("demo-patient-2"), false)
        .await
        .unwrap();
    assert!(cached.cached && joined.cached);
    assert_eq!(slow.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_new_visit_and_a_refresh_read_the_source_anew() {
    let (cache, slow, _dir) = counted_cache(Duration::from_secs(600), 100).await;
    let one = p("demo-patient-1");
    let first = cache.get(&visit(1), &one, false).await.unwrap();
    assert!(!first.cached, "the first read is not from the cache");
    assert!(cache.get(&visit(1), &one, false).await.unwrap().cached);
    assert_eq!(slow.fetches.load(Ordering::SeqCst), 1);

    // The same patient's next visit never sees the earlier visit's panel.
    let next_visit = cache.get(&visit(2), &one, false).await.unwrap();
    assert!(!next_visit.cached);
    assert_eq!(slow.fetches.load(Ordering::SeqCst), 2);

    // "Refresh" / "Try again" reads the source even when the cache is fresh.
    let refreshed = cache.get(&visit(1), &one, true).await.unwrap();
    assert!(!refreshed.cached);
    assert!(refreshed.summary.fetched_at > first.summary.fetched_at);
    assert_eq!(slow.fetches.load(Ordering::SeqCst), 3);
    // …and what it read is what the cache serves next.
    let after = cache.get(&visit(1), &one, false).await.unwrap();
    assert!(Arc::ptr_eq(&after.summary, &refreshed.summary));
}

#[tokio::test]
async fn the_cache_holds_at_most_its_bound_dropping_the_oldest() {
    let (cache, _, _dir) = counted_cache(Duration::from_secs(600), 2).await;
    for n in 1..=3 {
        cache
            .get(&visit(n), &p("demo-patient-1"), false)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(cache.len(), 2);
    // Visit 1 was the oldest: read again; visit 3 is still cached.
    assert!(
        !cache
            .get(&visit(1), &p("demo-patient-1"), false)
            .await
            .unwrap()
            .cached
    );
    assert!(
        cache
            .get(&visit(3), &p("demo-patient-1"), false)
            .await
            .unwrap()
            .cached
    );
}

#[tokio::test]
async fn entries_expire_and_failures_are_not_cached() {
    let (cache, slow, _dir) = counted_cache(Duration::from_millis(300), 100).await;
    let v1 = visit(1);
    let get = |n: &str| {
        let (cache, v1, patient) = (cache.clone(), v1.clone(), p(n));
        async move { cache.get(&v1, &patient, false).await }
    };
    get("demo-patient-1").await.unwrap();
    get("demo-patient-1").await.unwrap();
    assert_eq!(slow.fetches.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(350)).await;
    get("demo-patient-1").await.unwrap();
    assert_eq!(
        slow.fetches.load(Ordering::SeqCst),
        2,
        "expired entry fetched again"
    );

    slow.fail.store(true, Ordering::SeqCst);
    assert!(get("demo-patient-3").await.is_err());
    slow.fail.store(false, Ordering::SeqCst);
    assert!(
        get("demo-patient-3").await.is_ok(),
        "a failure is retried on the next get"
    );
    assert_eq!(slow.fetches.load(Ordering::SeqCst), 4);
}
