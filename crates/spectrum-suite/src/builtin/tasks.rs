//! The tasks of the built-in suite. Each task is a [`TaskSpec`]: its definition
//! and a function that draws an *episode* (one setting of the task's parameters,
//! such as a coin's bias) from which a sequence's outputs are sampled.

use crate::model::{Split, TaskDef, TaskKind};
use crate::validity::ValidityRule;
use spectrum_core::Rng;

const US_STATES: &str = include_str!("../../../../assets/wordlists/us_states.txt");
const ELEMENT_SYMBOLS: &str = include_str!("../../../../assets/wordlists/element_symbols.txt");
const COLOURS: &str = include_str!("../../../../assets/wordlists/colours.txt");
const FIRST_NAMES: &str = include_str!("../../../../assets/wordlists/first_names.txt");
const LAST_NAMES: &str = include_str!("../../../../assets/wordlists/last_names.txt");
const EMAIL_DOMAINS: &str = include_str!("../../../../assets/wordlists/email_domains.txt");
const FRUITS: &str = include_str!("../../../../assets/wordlists/fruits.txt");
const WEEKDAYS: &str = "Monday\nTuesday\nWednesday\nThursday\nFriday\nSaturday\nSunday";
const MONTHS: &str = "January\nFebruary\nMarch\nApril\nMay\nJune\nJuly\nAugust\nSeptember\nOctober\nNovember\nDecember";

fn words(list: &str) -> Vec<String> {
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

type Draw = Box<dyn Fn(&mut Rng) -> (Option<String>, String)>;

/// How an episode produces outputs.
pub(super) enum Sampler {
    /// A distribution over labelled options: also the target of a distribution item.
    Categorical {
        options: Vec<String>,
        probs: Vec<f64>,
    },
    /// Anything else, possibly with an input per output.
    Draw(Draw),
}

pub(super) struct Episode {
    pub params: Vec<(&'static str, String)>,
    pub sampler: Sampler,
}

impl Episode {
    fn categorical(
        params: Vec<(&'static str, String)>,
        options: Vec<String>,
        weights: &[f64],
    ) -> Episode {
        let total: f64 = weights.iter().sum();
        let probs = weights.iter().map(|w| w / total).collect();
        Episode {
            params,
            sampler: Sampler::Categorical { options, probs },
        }
    }

    fn draw_fn(
        params: Vec<(&'static str, String)>,
        f: impl Fn(&mut Rng) -> (Option<String>, String) + 'static,
    ) -> Episode {
        Episode {
            params,
            sampler: Sampler::Draw(Box::new(f)),
        }
    }

    pub fn draw(&self, rng: &mut Rng) -> (Option<String>, String) {
        match &self.sampler {
            Sampler::Categorical { options, probs } => (None, options[rng.weighted(probs)].clone()),
            Sampler::Draw(f) => f(rng),
        }
    }

    pub fn target(&self) -> Option<(Vec<String>, Vec<f64>)> {
        match &self.sampler {
            Sampler::Categorical { options, probs } => Some((options.clone(), probs.clone())),
            Sampler::Draw(_) => None,
        }
    }
}

pub(super) struct TaskSpec {
    pub name: &'static str,
    pub category: &'static str,
    pub split: Split,
    pub kind: TaskKind,
    pub descriptions: &'static [&'static str],
    /// The input of a distribution item's prompt.
    pub prompt: Option<&'static str>,
    pub ordinal: bool,
    pub episode: fn(&mut Rng) -> Episode,
    pub rule: Option<fn() -> ValidityRule>,
}

impl TaskSpec {
    pub fn definition(&self) -> TaskDef {
        TaskDef {
            task: self.name.into(),
            category: self.category.into(),
            split: self.split,
            kind: self.kind,
            descriptions: self.descriptions.iter().map(|d| d.to_string()).collect(),
        }
    }
}

const fn seq(
    name: &'static str,
    category: &'static str,
    split: Split,
    descriptions: &'static [&'static str],
    episode: fn(&mut Rng) -> Episode,
) -> TaskSpec {
    TaskSpec {
        name,
        category,
        split,
        kind: TaskKind::Sequence,
        descriptions,
        prompt: None,
        ordinal: false,
        episode,
        rule: None,
    }
}

const fn dist(
    name: &'static str,
    split: Split,
    ordinal: bool,
    prompt: &'static str,
    descriptions: &'static [&'static str],
    episode: fn(&mut Rng) -> Episode,
) -> TaskSpec {
    TaskSpec {
        name,
        category: "urns",
        split,
        kind: TaskKind::Distribution,
        descriptions,
        prompt: Some(prompt),
        ordinal,
        episode,
        rule: None,
    }
}

const fn valid(
    name: &'static str,
    split: Split,
    descriptions: &'static [&'static str],
    episode: fn(&mut Rng) -> Episode,
    rule: fn() -> ValidityRule,
) -> TaskSpec {
    TaskSpec {
        name,
        category: "diverse_valid",
        split,
        kind: TaskKind::DiverseValid,
        descriptions,
        prompt: None,
        ordinal: false,
        episode,
        rule: Some(rule),
    }
}

const NR: &str = "numbers_random";
const IO: &str = "input_output";
use Split::{HeldOut, Train};

/// Every task of the built-in suite, in a fixed order.
pub(super) fn all() -> Vec<TaskSpec> {
    vec![
        // Random generation and numbers.
        seq(
            "coin_flip",
            NR,
            Train,
            &[
                "Flip a coin that lands heads {heads}% of the time.",
                "A biased coin comes up heads with probability {p}. Report each flip as heads or tails.",
                "Toss a weighted coin: heads {heads}%, tails {tails}%.",
            ],
            coin_flip,
        ),
        seq(
            "fair_die",
            NR,
            Train,
            &[
                "Roll a fair {n}-sided die.",
                "Report the result of rolling a d{n}.",
                "Throw a fair die with faces numbered 1 to {n}.",
            ],
            fair_die,
        ),
        seq(
            "loaded_die",
            NR,
            Train,
            &[
                "Roll a six-sided die loaded so that {face} comes up {pct}% of the time; the other faces are equally likely.",
                "A crooked die shows {face} with probability {p}. Roll it.",
            ],
            loaded_die,
        ),
        seq(
            "playing_card",
            NR,
            Train,
            &[
                "Draw a card from a shuffled standard 52-card deck, then put it back.",
                "Name a card drawn at random from a full deck (with replacement).",
            ],
            playing_card,
        ),
        seq(
            "fruit_basket",
            NR,
            Train,
            &[
                "Pick a fruit from a basket holding {contents}.",
                "A basket contains {contents}. Take one fruit at random and name it.",
            ],
            fruit_basket,
        ),
        seq(
            "binomial_heads",
            NR,
            Train,
            &[
                "Count the heads in {n} flips of a coin that lands heads {heads}% of the time.",
                "Flip a coin with heads probability {p} {n} times and report how many heads came up.",
            ],
            binomial,
        ),
        seq(
            "poisson_arrivals",
            NR,
            Train,
            &[
                "Customers arrive at an average rate of {lambda} per minute. Report how many arrive in one minute.",
                "Sample from a Poisson distribution with mean {lambda}.",
            ],
            poisson,
        ),
        seq(
            "geometric_trials",
            NR,
            HeldOut,
            &[
                "Each attempt succeeds with probability {p}. Report how many attempts it takes to succeed.",
                "Sample from a geometric distribution (trials until the first success) with success probability {p}.",
            ],
            geometric,
        ),
        seq(
            "zipf_rank",
            NR,
            HeldOut,
            &[
                "Draw a rank from 1 to {n} following Zipf's law with exponent {s}.",
                "Pick a word rank between 1 and {n}; rank k is chosen with probability proportional to 1/k^{s}.",
            ],
            zipf,
        ),
        seq(
            "normal_sample",
            NR,
            Train,
            &[
                "Sample a number from a normal distribution with mean {mu} and standard deviation {sigma}, rounded to one decimal place.",
                "Draw from N({mu}, {sigma}^2) and write the result with one decimal.",
            ],
            normal,
        ),
        seq(
            "uniform_integer",
            NR,
            Train,
            &[
                "Pick a whole number between {lo} and {hi} (inclusive) uniformly at random.",
                "Choose a random integer from {lo} to {hi}, each equally likely.",
            ],
            uniform_integer,
        ),
        seq(
            "random_letter",
            NR,
            Train,
            &[
                "Pick a random uppercase letter of the English alphabet.",
                "Choose one of the 26 letters A to Z at random.",
            ],
            random_letter,
        ),
        // Input/output tasks.
        seq(
            "die_by_sides",
            IO,
            Train,
            &[
                "Roll the die named in each input and report the result.",
                "Each input names a die such as d6; answer with a fair roll of it.",
            ],
            die_by_sides,
        ),
        seq(
            "number_between",
            IO,
            HeldOut,
            &[
                "Answer each input with a whole number chosen uniformly at random in the given range.",
                "Pick a random integer in the range each input asks for.",
            ],
            number_between,
        ),
        seq(
            "pick_from_list",
            IO,
            Train,
            &[
                "Pick one item at random from each list.",
                "Each input is a comma-separated list; answer with one of its items, each equally likely.",
            ],
            pick_from_list,
        ),
        seq(
            "sum_of_dice",
            IO,
            HeldOut,
            &[
                "Roll the dice in each input (for example 2d6 is two six-sided dice) and report their total.",
                "Answer each dice expression with the sum of a fair roll.",
            ],
            sum_of_dice,
        ),
        seq(
            "coin_with_bias",
            IO,
            Train,
            &[
                "Each input gives a coin's chance of heads; flip that coin and answer heads or tails.",
                "Flip a coin with the stated bias and report the side it lands on.",
            ],
            coin_with_bias,
        ),
        // Urns and other distributions with known targets.
        dist(
            "urn_colour",
            Train,
            false,
            "Draw one ball.",
            &[
                "An urn holds {contents}. Draw one ball at random and say its colour.",
                "Pick a ball blindly from an urn containing {contents}; name its colour.",
            ],
            urn_colour,
        ),
        dist(
            "urn_red_count",
            HeldOut,
            true,
            "How many red balls did you draw?",
            &[
                "An urn holds {red} red and {blue} blue balls. Draw {k} balls without replacement and report how many are red.",
                "Take {k} balls at once from an urn with {red} red and {blue} blue balls; count the red ones.",
            ],
            urn_red_count,
        ),
        dist(
            "dice_total",
            Train,
            true,
            "Roll them.",
            &[
                "Roll two fair {n}-sided dice and report their sum.",
                "Throw a pair of d{n} and give the total.",
            ],
            dice_total,
        ),
        dist(
            "spinner",
            HeldOut,
            false,
            "Spin it.",
            &[
                "A spinner is divided into sectors: {sectors}. Spin it and report the sector it stops on.",
                "Spin a wheel with sectors {sectors} and name where it lands.",
            ],
            spinner,
        ),
        // Diverse and valid.
        valid(
            "number_1_100",
            Train,
            &[
                "Name a whole number from 1 to 100.",
                "Give any integer between 1 and 100, written without leading zeros.",
            ],
            |_| Episode::draw_fn(vec![], |r| (None, r.range(1, 100).to_string())),
            || ValidityRule::IntegerRange { min: 1, max: 100 },
        ),
        valid(
            "prime_under_100",
            Train,
            &[
                "Name a prime number less than 100.",
                "Give a prime below 100.",
            ],
            |_| {
                let primes: Vec<String> = (2..100u64)
                    .filter(|&n| crate::validity::is_prime(n))
                    .map(|n| n.to_string())
                    .collect();
                Episode::categorical(vec![], primes.clone(), &vec![1.0; primes.len()])
            },
            || ValidityRule::Prime {
                min: None,
                max: Some(99),
            },
        ),
        valid(
            "us_state",
            Train,
            &[
                "Name a US state.",
                "Give the name of one of the fifty United States.",
            ],
            |_| closed(US_STATES),
            || closed_rule(US_STATES),
        ),
        valid(
            "weekday",
            Train,
            &[
                "Name a day of the week.",
                "Give one weekday name, in English.",
            ],
            |_| closed(WEEKDAYS),
            || closed_rule(WEEKDAYS),
        ),
        valid(
            "month",
            Train,
            &[
                "Name a month of the year.",
                "Give the English name of a calendar month.",
            ],
            |_| closed(MONTHS),
            || closed_rule(MONTHS),
        ),
        valid(
            "colour_name",
            Train,
            &[
                "Name a colour.",
                "Give a common English colour word in lowercase.",
            ],
            |_| closed(COLOURS),
            || closed_rule(COLOURS),
        ),
        valid(
            "number_1_10",
            Train,
            &[
                "Say a number from 1 to 10.",
                "Pick an integer between 1 and 10.",
            ],
            |_| closed("1\n2\n3\n4\n5\n6\n7\n8\n9\n10"),
            || closed_rule("1\n2\n3\n4\n5\n6\n7\n8\n9\n10"),
        ),
        valid(
            "element_symbol",
            HeldOut,
            &[
                "Give the symbol of a chemical element.",
                "Name a chemical element by its periodic-table symbol.",
            ],
            |_| closed(ELEMENT_SYMBOLS),
            || closed_rule(ELEMENT_SYMBOLS),
        ),
        valid(
            "email_address",
            Train,
            &[
                "Write a made-up e-mail address.",
                "Invent a plausible e-mail address.",
            ],
            |_| Episode::draw_fn(vec![], |r| (None, email(r))),
            || ValidityRule::Email,
        ),
        valid(
            "phone_number",
            HeldOut,
            &[
                "Write a made-up phone number.",
                "Invent a phone number in a common format.",
            ],
            |_| Episode::draw_fn(vec![], |r| (None, phone(r))),
            || ValidityRule::Phone,
        ),
    ]
}

fn pct(p: f64) -> String {
    format!("{}", (p * 100.0).round())
}

fn coin_flip(r: &mut Rng) -> Episode {
    let heads = r.range(1, 19) * 5;
    let p = heads as f64 / 100.0;
    let params = vec![
        ("heads", heads.to_string()),
        ("tails", (100 - heads).to_string()),
        ("p", format!("{p}")),
    ];
    Episode::categorical(params, vec!["heads".into(), "tails".into()], &[p, 1.0 - p])
}

fn fair_die(r: &mut Rng) -> Episode {
    let n = *r.choose(&[4, 6, 8, 10, 12, 20]);
    Episode::categorical(
        vec![("n", n.to_string())],
        (1..=n).map(|k| k.to_string()).collect(),
        &vec![1.0; n],
    )
}

fn loaded_die(r: &mut Rng) -> Episode {
    let face = r.range(1, 6) as usize;
    let p = r.range(25, 60) as f64 / 100.0;
    let weights: Vec<f64> = (1..=6)
        .map(|k| if k == face { p } else { (1.0 - p) / 5.0 })
        .collect();
    let params = vec![
        ("face", face.to_string()),
        ("pct", pct(p)),
        ("p", format!("{p}")),
    ];
    Episode::categorical(params, (1..=6).map(|k| k.to_string()).collect(), &weights)
}

fn playing_card(_: &mut Rng) -> Episode {
    let ranks = [
        "Ace", "2", "3", "4", "5", "6", "7", "8", "9", "10", "Jack", "Queen", "King",
    ];
    let suits = ["Clubs", "Diamonds", "Hearts", "Spades"];
    let cards: Vec<String> = suits
        .iter()
        .flat_map(|s| ranks.iter().map(move |r| format!("{r} of {s}")))
        .collect();
    let weights = vec![1.0; cards.len()];
    Episode::categorical(vec![], cards, &weights)
}

/// Picks `k` distinct items of `list` with random integer weights, described as "3 apples, 1 pear".
fn weighted_items(r: &mut Rng, list: &str, k: usize, max_weight: i64) -> (Vec<String>, Vec<f64>) {
    let mut items = words(list);
    r.shuffle(&mut items);
    items.truncate(k);
    let weights = items
        .iter()
        .map(|_| r.range(1, max_weight) as f64)
        .collect();
    (items, weights)
}

/// "3 red balls, 1 blue ball" (with a unit) or "apple: 3, pear: 1" (without).
fn describe_counts(items: &[String], weights: &[f64], unit: &str) -> String {
    let part = |(item, w): (&String, &f64)| match unit {
        "" => format!("{item}: {w}"),
        _ if *w == 1.0 => format!("1 {item} {unit}"),
        _ => format!("{w} {item} {unit}s"),
    };
    items
        .iter()
        .zip(weights)
        .map(part)
        .collect::<Vec<_>>()
        .join(", ")
}

fn fruit_basket(r: &mut Rng) -> Episode {
    let k = r.range(2, 5) as usize;
    let (items, weights) = weighted_items(r, FRUITS, k, 6);
    let contents = describe_counts(&items, &weights, "");
    Episode::categorical(vec![("contents", contents)], items, &weights)
}

fn binomial(r: &mut Rng) -> Episode {
    let n = r.range(3, 20);
    let heads = r.range(1, 9) * 10;
    let p = heads as f64 / 100.0;
    let params = vec![
        ("n", n.to_string()),
        ("heads", heads.to_string()),
        ("p", format!("{p}")),
    ];
    Episode::draw_fn(params, move |r| {
        (None, (0..n).filter(|_| r.bernoulli(p)).count().to_string())
    })
}

fn poisson(r: &mut Rng) -> Episode {
    let lambda = r.range(1, 16) as f64 / 2.0;
    Episode::draw_fn(vec![("lambda", format!("{lambda}"))], move |r| {
        // Knuth's method: fine for the small rates used here.
        let limit = (-lambda).exp();
        let (mut k, mut prod) = (0u32, r.f64());
        while prod > limit {
            k += 1;
            prod *= r.f64();
        }
        (None, k.to_string())
    })
}

fn geometric(r: &mut Rng) -> Episode {
    let p = r.range(1, 9) as f64 / 10.0;
    Episode::draw_fn(vec![("p", format!("{p}"))], move |r| {
        let mut trials = 1u32;
        while !r.bernoulli(p) {
            trials += 1;
        }
        (None, trials.to_string())
    })
}

fn zipf(r: &mut Rng) -> Episode {
    let n = *r.choose(&[10usize, 20, 50, 100]);
    let s = *r.choose(&[1.0f64, 1.5, 2.0]);
    let weights: Vec<f64> = (1..=n).map(|k| 1.0 / (k as f64).powf(s)).collect();
    Episode::categorical(
        vec![("n", n.to_string()), ("s", format!("{s}"))],
        (1..=n).map(|k| k.to_string()).collect(),
        &weights,
    )
}

fn normal(r: &mut Rng) -> Episode {
    let mu = r.range(-20, 100);
    let sigma = *r.choose(&[0.5f64, 1.0, 2.0, 5.0, 10.0]);
    Episode::draw_fn(
        vec![("mu", mu.to_string()), ("sigma", format!("{sigma}"))],
        move |r| {
            let x = mu as f64 + sigma * r.normal();
            // Round first so that -0.04 prints as 0.0, not -0.0.
            let rounded = (x * 10.0).round() / 10.0;
            (
                None,
                format!("{:.1}", if rounded == 0.0 { 0.0 } else { rounded }),
            )
        },
    )
}

fn uniform_integer(r: &mut Rng) -> Episode {
    let lo = r.range(0, 50);
    let hi = lo + r.range(5, 100);
    Episode::draw_fn(
        vec![("lo", lo.to_string()), ("hi", hi.to_string())],
        move |r| (None, r.range(lo, hi).to_string()),
    )
}

fn random_letter(_: &mut Rng) -> Episode {
    let letters: Vec<String> = ('A'..='Z').map(String::from).collect();
    Episode::categorical(vec![], letters, &[1.0; 26])
}

fn die_by_sides(_: &mut Rng) -> Episode {
    Episode::draw_fn(vec![], |r| {
        let n = *r.choose(&[4i64, 6, 8, 10, 12, 20, 100]);
        (Some(format!("d{n}")), r.range(1, n).to_string())
    })
}

fn number_between(_: &mut Rng) -> Episode {
    Episode::draw_fn(vec![], |r| {
        let lo = r.range(-10, 50);
        let hi = lo + r.range(1, 50);
        (
            Some(format!("between {lo} and {hi}")),
            r.range(lo, hi).to_string(),
        )
    })
}

fn pick_from_list(_: &mut Rng) -> Episode {
    Episode::draw_fn(vec![], |r| {
        let mut items = words(if r.bernoulli(0.5) { FRUITS } else { COLOURS });
        r.shuffle(&mut items);
        items.truncate(r.range(2, 6) as usize);
        let pick = r.choose(&items).clone();
        (Some(items.join(", ")), pick)
    })
}

fn sum_of_dice(_: &mut Rng) -> Episode {
    Episode::draw_fn(vec![], |r| {
        let k = r.range(1, 4);
        let n = *r.choose(&[4i64, 6, 8, 10, 12]);
        let total: i64 = (0..k).map(|_| r.range(1, n)).sum();
        (Some(format!("{k}d{n}")), total.to_string())
    })
}

fn coin_with_bias(_: &mut Rng) -> Episode {
    Episode::draw_fn(vec![], |r| {
        let heads = r.range(0, 10) * 10;
        let side = if r.bernoulli(heads as f64 / 100.0) {
            "heads"
        } else {
            "tails"
        };
        (Some(format!("{heads}% heads")), side.into())
    })
}

fn urn_colour(r: &mut Rng) -> Episode {
    let k = r.range(2, 4) as usize;
    let (colours, weights) = weighted_items(r, "red\nblue\ngreen\nyellow\nwhite\nblack", k, 5);
    let contents = describe_counts(&colours, &weights, "ball");
    Episode::categorical(vec![("contents", contents)], colours, &weights)
}

fn urn_red_count(r: &mut Rng) -> Episode {
    let red = r.range(1, 6) as u64;
    let blue = r.range(1, 6) as u64;
    let k = r.range(1, 3.min(red + blue) as i64) as u64;
    // Hypergeometric: P(X = x) = C(red, x) C(blue, k - x) / C(red + blue, k).
    let weights: Vec<f64> = (0..=k)
        .map(|x| (choose(red, x) * choose(blue, k - x)) as f64)
        .collect();
    let params = vec![
        ("red", red.to_string()),
        ("blue", blue.to_string()),
        ("k", k.to_string()),
    ];
    Episode::categorical(params, (0..=k).map(|x| x.to_string()).collect(), &weights)
}

fn choose(n: u64, k: u64) -> u64 {
    if k > n {
        return 0;
    }
    (0..k).fold(1, |acc, i| acc * (n - i) / (i + 1))
}

fn dice_total(r: &mut Rng) -> Episode {
    let n = *r.choose(&[4usize, 6, 8]);
    let mut weights = vec![0.0; 2 * n - 1];
    for a in 1..=n {
        for b in 1..=n {
            weights[a + b - 2] += 1.0;
        }
    }
    Episode::categorical(
        vec![("n", n.to_string())],
        (2..=2 * n).map(|s| s.to_string()).collect(),
        &weights,
    )
}

fn spinner(r: &mut Rng) -> Episode {
    let k = r.range(3, 5) as usize;
    let (labels, weights) = weighted_items(r, "A\nB\nC\nD\nE", k, 4);
    let total: f64 = weights.iter().sum();
    let sectors = labels
        .iter()
        .zip(&weights)
        .map(|(l, w)| format!("{l} ({}%)", pct(w / total)))
        .collect::<Vec<_>>()
        .join(", ");
    // Targets follow the rounded percentages the description states.
    let stated: Vec<f64> = weights
        .iter()
        .map(|w| (w / total * 100.0).round())
        .collect();
    Episode::categorical(vec![("sectors", sectors)], labels, &stated)
}

fn closed(list: &str) -> Episode {
    let items = words(list);
    let weights = vec![1.0; items.len()];
    Episode::categorical(vec![], items, &weights)
}

fn closed_rule(list: &str) -> ValidityRule {
    ValidityRule::ClosedSet {
        values: words(list),
        case_sensitive: true,
    }
}

fn email(r: &mut Rng) -> String {
    let (first, last, domain) = (words(FIRST_NAMES), words(LAST_NAMES), words(EMAIL_DOMAINS));
    let (f, l, d) = (r.choose(&first), r.choose(&last), r.choose(&domain));
    match r.below(3) {
        0 => format!("{f}.{l}@{d}"),
        1 => format!("{f}{}@{d}", r.range(1, 99)),
        _ => format!("{}{l}@{d}", &f[..1]),
    }
}

fn phone(r: &mut Rng) -> String {
    let (a, b, c) = (r.range(200, 989), r.range(200, 999), r.range(0, 9999));
    match r.below(3) {
        0 => format!("({a}) {b}-{c:04}"),
        1 => format!("{a}-{b}-{c:04}"),
        _ => format!("+1 {a} {b} {c:04}"),
    }
}
