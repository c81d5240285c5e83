//! Patient-experience arithmetic, pure so it can be checked by hand: Net Promoter Score,
//! percentiles of waiting times, the no-show rate.

use serde::Serialize;

/// Experience figures over a set of visits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperienceStats {
    /// Percent of promoters (9–10) minus percent of detractors (0–6), -100..=100;
    /// `None` without answers.
    pub nps: Option<f64>,
    pub answers: u64,
    pub promoters: u64,
    pub passives: u64,
    pub detractors: u64,
    /// Over visits with a known wait (see `VisitRecord::wait_secs`).
    pub median_wait_secs: Option<f64>,
    pub p90_wait_secs: Option<f64>,
    /// No-shows among visits that reached a final state; `None` if none did.
    pub no_show_rate: Option<f64>,
    /// Visits matching the filter.
    pub visits: u64,
}

/// Survey counts by NPS band.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NpsCounts {
    pub promoters: u64,
    pub passives: u64,
    pub detractors: u64,
}

impl NpsCounts {
    pub fn from_scores(scores: &[i64]) -> Self {
        let mut c = NpsCounts::default();
        for &s in scores {
            match s {
                9..=10 => c.promoters += 1,
                7..=8 => c.passives += 1,
                _ => c.detractors += 1,
            }
        }
        c
    }

    pub fn answers(&self) -> u64 {
        self.promoters + self.passives + self.detractors
    }

    /// Percent promoters minus percent detractors; `None` with no answers.
    pub fn nps(&self) -> Option<f64> {
        let n = self.answers();
        if n == 0 {
            return None;
        }
        Some(100.0 * (self.promoters as f64 - self.detractors as f64) / n as f64)
    }
}

/// The `p`-th quantile (0.0..=1.0) by linear interpolation between closest ranks
/// (the usual "type 7" definition: rank `p·(n-1)` over the sorted values). `None` if empty.
pub fn quantile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = p.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    Some(v[lo] + (v[hi] - v[lo]) * (rank - lo as f64))
}

pub fn median(values: &[f64]) -> Option<f64> {
    quantile(values, 0.5)
}

pub fn p90(values: &[f64]) -> Option<f64> {
    quantile(values, 0.9)
}

/// `part / whole`, `None` when `whole` is 0.
pub fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nps_of_all_promoters_is_100() {
        assert_eq!(NpsCounts::from_scores(&[9, 10, 10]).nps(), Some(100.0));
    }

    #[test]
    fn nps_of_all_detractors_is_minus_100() {
        assert_eq!(NpsCounts::from_scores(&[0, 3, 6]).nps(), Some(-100.0));
    }

    #[test]
    fn nps_without_answers_is_none() {
        assert_eq!(NpsCounts::from_scores(&[]).nps(), None);
    }

    #[test]
    fn nps_of_a_mixed_set() {
        // 10, 9, 9 promoters (3); 8, 7 passives (2); 6, 5, 0 detractors (3) of 8 answers:
        // 37.5 % - 37.5 % = 0.
        let c = NpsCounts::from_scores(&[10, 9, 9, 8, 7, 6, 5, 0]);
        assert_eq!((c.promoters, c.passives, c.detractors), (3, 2, 3));
        assert_eq!(c.nps(), Some(0.0));
        // 10, 10, 9 promoters; 7 passive; 2 detractor, 5 answers: 60 % - 20 % = 40.
        assert_eq!(NpsCounts::from_scores(&[10, 2, 7, 10, 9]).nps(), Some(40.0));
    }

    #[test]
    fn median_and_p90_by_hand() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[42.0]), Some(42.0));
        assert_eq!(p90(&[42.0]), Some(42.0));
        // Odd count: the middle value, whatever the input order.
        assert_eq!(median(&[30.0, 10.0, 20.0]), Some(20.0));
        // Even count: halfway between the two middle values.
        assert_eq!(median(&[10.0, 20.0, 30.0, 40.0]), Some(25.0));
        // 1..=10: rank 0.9·9 = 8.1 → 9 + 0.1·(10 - 9) = 9.1.
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        let p = p90(&v).unwrap();
        assert!((p - 9.1).abs() < 1e-9, "{p}");
        // 0, 100 (ranks 0, 1): p90 = 90.
        assert_eq!(p90(&[100.0, 0.0]), Some(90.0));
    }

    #[test]
    fn rates() {
        assert_eq!(rate(1, 4), Some(0.25));
        assert_eq!(rate(0, 0), None);
    }
}
