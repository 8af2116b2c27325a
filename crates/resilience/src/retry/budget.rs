//! A retry budget: retries may be a fraction of requests, plus a small floor.

use std::sync::{Mutex, MutexGuard};

use tokio::time::Instant;

use crate::error::InvalidConfig;
use crate::striped::StripedCounters;

/// Tokens are counted in millionths, so every ratio down to 0.0001 % (one in a million) adds
/// up exactly: 0.04 % of 10,000 requests is 4 retries, not 0 or 10.
const MICRO: u64 = 1_000_000;

/// Limits retries to `ratio` of requests plus `min_per_sec` per second.
///
/// Every request deposits `ratio` of a token and every retry spends a whole one; on top of that
/// `min_per_sec` tokens accrue each second, so a client sending few requests can still retry.
/// Unspent tokens are capped (by default at 100), so a long healthy stretch cannot bank a burst
/// of retries for the next outage. Under a total outage, retries are therefore at most
/// `ratio × requests + min_per_sec × seconds + min_per_sec` (the first second's floor).
///
/// Deposits happen on every request and are per-thread counters (no shared write); the lock is
/// taken only when a retry is considered.
#[derive(Debug)]
pub struct RetryBudget {
    ratio_micro: u64,
    min_per_sec: u32,
    max_tokens_micro: u64,
    deposits: StripedCounters<1>,
    state: Mutex<BudgetState>,
}

#[derive(Debug)]
struct BudgetState {
    deposits_counted: u64,
    balance_micro: u64,
    refilled_at: Option<Instant>,
}

impl RetryBudget {
    /// Retries may be `ratio` (e.g. 0.2) of requests plus `min_per_sec` each second.
    ///
    /// The ratio is kept in millionths: it must be 0 or at least 0.000001 (0.0001 %), and is
    /// rounded to the nearest millionth.
    pub fn new(ratio: f64, min_per_sec: u32) -> Result<Self, InvalidConfig> {
        if !(ratio.is_finite() && (0.0..=1000.0).contains(&ratio)) {
            return Err(InvalidConfig::new(
                "retry budget",
                format!("the ratio of retries to requests must be between 0 and 1000, got {ratio}"),
            ));
        }
        let ratio_micro = (ratio * MICRO as f64).round() as u64;
        if ratio_micro == 0 && ratio > 0.0 {
            return Err(InvalidConfig::new(
                "retry budget",
                format!(
                    "a ratio of {ratio} is below the budget's resolution of 0.000001 (one retry per million requests); use 0 for no ratio"
                ),
            ));
        }
        Ok(Self {
            ratio_micro,
            min_per_sec,
            max_tokens_micro: 100 * MICRO,
            deposits: StripedCounters::new(),
            state: Mutex::new(BudgetState {
                deposits_counted: 0,
                balance_micro: u64::from(min_per_sec) * MICRO,
                refilled_at: None,
            }),
        })
    }

    /// Caps unspent tokens at `max` (at least 1) instead of 100.
    pub fn with_max_tokens(mut self, max: u32) -> Self {
        self.max_tokens_micro = u64::from(max.max(1)) * MICRO;
        self
    }

    /// Counts a request (not a retry).
    #[inline]
    pub fn deposit(&self) {
        self.deposits.increment(0);
    }

    /// Spends a token for one retry, if there is one.
    pub fn try_withdraw(&self) -> bool {
        let now = Instant::now();
        let mut state = self.state();
        let deposits = self.deposits.sum(0);
        let new_deposits = deposits.wrapping_sub(state.deposits_counted);
        state.deposits_counted = deposits;
        let mut balance = state
            .balance_micro
            .saturating_add(new_deposits.saturating_mul(self.ratio_micro));
        if let Some(refilled_at) = state.refilled_at {
            let elapsed = now.saturating_duration_since(refilled_at);
            let floor = elapsed
                .as_micros()
                .saturating_mul(u128::from(self.min_per_sec));
            balance = balance.saturating_add(u64::try_from(floor).unwrap_or(u64::MAX));
        }
        state.refilled_at = Some(now);
        balance = balance.min(self.max_tokens_micro);
        let granted = balance >= MICRO;
        if granted {
            balance -= MICRO;
        }
        state.balance_micro = balance;
        granted
    }

    fn state(&self) -> MutexGuard<'_, BudgetState> {
        // Every update leaves the state whole; a panic elsewhere cannot leave it half-written.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for RetryBudget {
    /// 20 % of requests plus 10 retries a second.
    fn default() -> Self {
        Self::new(0.2, 10).expect("0.2 is a valid ratio")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_are_a_fraction_of_requests() {
        let budget = RetryBudget::new(0.1, 0).unwrap();
        let mut granted = 0;
        for _ in 0..100 {
            budget.deposit();
            if budget.try_withdraw() {
                granted += 1;
            }
        }
        assert_eq!(granted, 10);
        assert!(!budget.try_withdraw(), "the tenth of the requests is spent");
    }

    #[tokio::test(start_paused = true)]
    async fn the_floor_refills_with_time() {
        let budget = RetryBudget::new(0.0, 2).unwrap();
        assert!(budget.try_withdraw());
        assert!(budget.try_withdraw());
        assert!(!budget.try_withdraw(), "the first second's floor is spent");
        tokio::time::advance(std::time::Duration::from_millis(500)).await;
        assert!(budget.try_withdraw(), "half a second earns one more");
        assert!(!budget.try_withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn unspent_tokens_are_capped() {
        let budget = RetryBudget::new(1.0, 0).unwrap().with_max_tokens(3);
        for _ in 0..1000 {
            budget.deposit();
        }
        let granted = (0..10).filter(|_| budget.try_withdraw()).count();
        assert_eq!(granted, 3);
    }

    fn granted_over(budget: &RetryBudget, requests: u32) -> u32 {
        let mut granted = 0;
        for _ in 0..requests {
            budget.deposit();
            if budget.try_withdraw() {
                granted += 1;
            }
        }
        granted
    }

    #[tokio::test(start_paused = true)]
    async fn small_ratios_are_exact() {
        let cases = [(0.006, 60), (0.0004, 4), (0.0015, 15), (0.0001, 1)];
        for (ratio, expected) in cases {
            let budget = RetryBudget::new(ratio, 0).unwrap();
            assert_eq!(granted_over(&budget, 10_000), expected, "ratio {ratio}");
        }
    }

    #[test]
    fn a_ratio_below_the_resolution_is_refused() {
        let error = RetryBudget::new(0.000_000_4, 0).unwrap_err();
        assert!(error.reason().contains("resolution"), "{error}");
        assert!(RetryBudget::new(0.0, 1).is_ok(), "0 means floor only");
        assert!(RetryBudget::new(0.000_001, 0).is_ok());
    }

    #[test]
    fn rejects_a_negative_ratio() {
        assert!(RetryBudget::new(-0.5, 1).is_err());
        assert!(RetryBudget::new(f64::NAN, 1).is_err());
    }
}
