//! The paper's synthetic flight-preference task (reference:
//! icl_dataset_classes/synth_flight_prefs.py, after Appendix A.1 of
//! arXiv 2503.17523): each individual weighs departure time, duration, price
//! and stops; each example shows three flights and the one the individual
//! prefers. Generated with our random stream; the texts are written exactly
//! as the reference writes the same flights (tests/paper_flight.rs).

use serde_json::{Map, Value};
use spectrum_core::{Message, Role};

use super::engine::BuildConfig;
use crate::{Rng, Sequence};

/// The task's name, and the name the reference gives its rows.
pub const TASK: &str = "flight";
pub const REFERENCE_NAME: &str = "flight_prefs_individual";

/// The reference's only description (its individual descriptions are off).
pub const DESCRIPTION: &str = "The following express flight preferences for the same individual among a set of flights. Predict which flight the indvidual prefers.";

/// Individuals (`max_inds`), examples per individual (`n_iter`) and flights
/// per example, as the reference generates them.
pub const INDIVIDUALS: usize = 200;
pub const EXAMPLES: usize = 20;
pub const FLIGHTS: usize = 3;

/// One flight: departure time, duration and price on a grid of 100 steps in
/// [0, 1], stops in {0, 0.5, 1}.
pub type Flight = [f64; 4];

/// Weights of departure time, duration, price and stops: each in
/// {-1, -0.5, 0, 0.5}, not all zero (`rng.integers(-2, 2) / 2`).
pub fn profile(rng: &mut Rng) -> [f64; 4] {
    loop {
        let p = [0; 4].map(|_: i32| rng.range(-2, 1) as f64 / 2.0);
        if p.iter().any(|w| *w != 0.0) {
            return p;
        }
    }
}

/// numpy's `linspace(0, 1, n)[i]`.
fn grid(i: u64, n: u64) -> f64 {
    if i + 1 == n {
        1.0
    } else {
        i as f64 * (1.0 / (n - 1) as f64)
    }
}

pub fn flights(rng: &mut Rng, n: usize) -> Vec<Flight> {
    (0..n)
        .map(|_| {
            let mut f = [0.0; 4];
            for x in f.iter_mut().take(3) {
                *x = grid(rng.below(100), 100);
            }
            f[3] = grid(rng.below(3), 3);
            f
        })
        .collect()
}

/// The preferred flight: the first of the highest score (`argmax`).
pub fn best(flights: &[Flight], profile: &[f64; 4]) -> usize {
    let score = |f: &Flight| f.iter().zip(profile).map(|(x, w)| x * w).sum::<f64>();
    let mut best = 0;
    for (i, f) in flights.iter().enumerate() {
        if score(f) > score(&flights[best]) {
            best = i;
        }
    }
    best
}

/// `timedelta(microseconds=span) * x`, rounded as Python rounds it: the
/// exact product, to the nearest microsecond, halves to even.
fn scaled_micros(span: u64, x: f64) -> u64 {
    if x <= 0.0 {
        return 0;
    }
    let bits = x.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    let mantissa = if exponent == 0 {
        (bits & ((1 << 52) - 1)) << 1
    } else {
        (bits & ((1 << 52) - 1)) | (1 << 52)
    };
    // x = mantissa * 2^shift
    let shift = exponent.max(1) - 1075;
    let product = u128::from(span) * u128::from(mantissa);
    if shift >= 0 {
        return (product << shift) as u64;
    }
    let down = (-shift) as u32;
    if down >= 128 {
        return 0;
    }
    let whole = product >> down;
    let rest = product - (whole << down);
    let half = 1u128 << (down - 1);
    let up = rest > half || (rest == half && whole & 1 == 1);
    (whole + u128::from(up)) as u64
}

/// Python's `a // b` for positive floats.
fn floor_div(a: f64, b: f64) -> f64 {
    let m = a % b;
    let div = (a - m) / b;
    if div == 0.0 {
        return 0.0;
    }
    let mut floor = div.floor();
    if div - floor > 0.5 {
        floor += 1.0;
    }
    floor
}

/// The flights as the reference's `get_flights_str` writes them.
pub fn flights_text(flights: &[Flight]) -> String {
    const MICROS: u64 = 1_000_000;
    let mut out = String::new();
    for (i, f) in flights.iter().enumerate() {
        // 05:00 plus up to 19 hours, seconds dropped.
        let depart = 5 * 3600 * MICROS + scaled_micros(19 * 3600 * MICROS, f[0]);
        let minutes = (depart / MICROS / 60) % (24 * 60);
        let (hour, minute) = (minutes / 60, minutes % 60);
        let (hour12, half) = match hour {
            0 => (12, "AM"),
            1..=11 => (hour, "AM"),
            12 => (12, "PM"),
            _ => (hour - 12, "PM"),
        };
        // 00:45 plus up to 15 h 15 min.
        let duration = 45 * 60 * MICROS + scaled_micros((15 * 60 + 15) * 60 * MICROS, f[1]);
        let duration_minutes = duration / MICROS / 60;
        let price = 10.0 * (50.0 + floor_div(1450.0 * f[2], 10.0));
        let stops = (f[3] * 2.0) as i64;
        out.push_str(&format!(
            "Flight {}:\nDeparture Time: {hour12:02}:{minute:02} {half}, Duration: {} hr {} min, Number of Stops: {stops}, Price: ${price:.2}\n",
            i + 1,
            (duration_minutes / 60) % 24,
            duration_minutes % 60,
        ));
    }
    out.trim().to_string()
}

/// The task's sequences: one per individual, of `EXAMPLES` choices each.
pub fn sequences(config: &BuildConfig) -> Vec<Sequence> {
    let mut rng = Rng::derive(config.seed, TASK);
    let mut out = Vec::with_capacity(INDIVIDUALS);
    for individual in 0..INDIVIDUALS {
        let weights = profile(&mut rng);
        let mut messages = Vec::with_capacity(2 * EXAMPLES + 1);
        if rng.bernoulli(config.description_prob) {
            messages.push(Message::new(Role::Description, DESCRIPTION.to_string()));
        }
        for _ in 0..EXAMPLES {
            let shown = flights(&mut rng, FLIGHTS);
            messages.push(Message::new(Role::Input, flights_text(&shown)));
            messages.push(Message::new(
                Role::Output,
                (best(&shown, &weights) + 1).to_string(),
            ));
        }
        let mut metadata = Map::new();
        metadata.insert(
            "individual".into(),
            Value::String(format!("flight/{individual:03}")),
        );
        out.push(Sequence {
            task: TASK.into(),
            messages,
            metadata,
        });
    }
    super::engine::keep_at_most(&mut out, config.max_sequences, &mut rng);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_and_flights_stay_on_the_references_grid() {
        let mut rng = Rng::new(3);
        for _ in 0..500 {
            let p = profile(&mut rng);
            assert!(p.iter().all(|w| [-1.0, -0.5, 0.0, 0.5].contains(w)));
            assert!(p.iter().any(|w| *w != 0.0));
            for f in flights(&mut rng, 3) {
                assert!(f[..3].iter().all(|x| (0.0..=1.0).contains(x)));
                assert!([0.0, 0.5, 1.0].contains(&f[3]));
            }
        }
        assert_eq!(grid(99, 100), 1.0);
        assert_eq!(grid(1, 3), 0.5);
    }

    #[test]
    fn sequences_have_one_individual_and_twenty_choices() {
        let seqs = sequences(&BuildConfig {
            max_sequences: Some(5),
            ..BuildConfig::default()
        });
        assert_eq!(seqs.len(), 5);
        for s in &seqs {
            assert_eq!(s.examples(), EXAMPLES);
            assert!(
                s.messages
                    .iter()
                    .filter(|m| m.role == Role::Output)
                    .all(|m| ["1", "2", "3"].contains(&m.content.as_str()))
            );
        }
    }

    #[test]
    fn python_rounding_of_scaled_time() {
        // timedelta(hours=19) * 0.5 is exactly 9.5 hours.
        assert_eq!(scaled_micros(19 * 3600 * 1_000_000, 0.5), 34_200_000_000);
        assert_eq!(scaled_micros(7, 0.5), 4, "3.5 rounds to even");
        assert_eq!(scaled_micros(5, 0.5), 2, "2.5 rounds to even");
        assert_eq!(floor_div(1450.0, 10.0), 145.0);
    }
}
