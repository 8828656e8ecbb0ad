//! The deterministic generator of the demo shop.
//!
//! Every row is a pure function of `(seed, scale, table, id)`: each row draws
//! from its own [`SplitMix64`] stream, derived from the seed, a per-table
//! stream constant and the row id. Nothing here depends on a crate's random
//! number generator, on floating point (beyond turning the scale into row
//! counts) or on the platform, so the rows never change with an upgrade.
//!
//! Both loaders (SQLite and PostgreSQL) consume the same iterators, so both
//! databases receive the same rows byte for byte.

use anyhow::{bail, ensure};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use super::DemoSpec;

// ---------------------------------------------------------------------------
// PRNG

/// The SplitMix64 generator (Steele, Lea and Flood, "Fast splittable
/// pseudorandom number generators", OOPSLA 2014), with the constants of
/// Sebastiano Vigna's reference implementation
/// (<https://prng.di.unimi.it/splitmix64.c>):
///
/// ```text
/// state += 0x9e3779b97f4a7c15
/// z = state
/// z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
/// z = (z ^ (z >> 27)) * 0x94d049bb133111eb
/// return z ^ (z >> 31)
/// ```
///
/// All arithmetic wraps modulo 2^64. This definition is frozen: changing it
/// changes the demo dataset.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// The SplitMix64 output function (a 64-bit finaliser, a bijection).
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl SplitMix64 {
    pub fn new(state: u64) -> Self {
        SplitMix64 { state }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix64(self.state)
    }

    /// A number in `0..n` (`n > 0`), by Lemire's multiply-shift: the high
    /// 64 bits of `next_u64() * n`. The bias is below n / 2^64, negligible
    /// for the small ranges used here, and no draw is ever rejected, so every
    /// call consumes exactly one output.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `lo..=hi` (`lo <= hi`).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(lo <= hi);
        let span = (hi - lo) as u64 + 1;
        lo + self.below(span) as i64
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Picks from `(item, weight)` pairs with integer weights.
    pub fn weighted<'a, T>(&mut self, items: &'a [(T, u64)]) -> &'a T {
        let total: u64 = items.iter().map(|(_, w)| w).sum();
        let mut x = self.below(total);
        for (item, w) in items {
            if x < *w {
                return item;
            }
            x -= w;
        }
        unreachable!("weights sum to total")
    }
}

/// Stream constants: one per kind of row (or per field drawn at random access).
const STREAM_USER: u64 = 1;
const STREAM_USER_CREATED: u64 = 2;
const STREAM_PRODUCT: u64 = 3;
const STREAM_PRODUCT_PRICE: u64 = 4;
const STREAM_ORDER: u64 = 5;
const STREAM_PRODUCT_NAMES: u64 = 6;

/// The generator of one row: `SplitMix64` seeded with
/// `mix64(mix64(seed ^ stream * GAMMA) ^ id)`.
fn row_rng(seed: u64, stream: u64, id: u64) -> SplitMix64 {
    SplitMix64::new(mix64(mix64(seed ^ stream.wrapping_mul(GOLDEN_GAMMA)) ^ id))
}

// ---------------------------------------------------------------------------
// Word lists (frozen: changing them changes the dataset)

const FIRST_NAMES: [&str; 50] = [
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "William",
    "Elizabeth",
    "David",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Daniel",
    "Nancy",
    "Matthew",
    "Lisa",
    "Anthony",
    "Betty",
    "Mark",
    "Sandra",
    "Paul",
    "Ashley",
    "Steven",
    "Emily",
    "Andrew",
    "Donna",
    "Kenneth",
    "Michelle",
    "Joshua",
    "Carol",
    "Kevin",
    "Amanda",
    "Brian",
    "Melissa",
    "Lucas",
    "Sofia",
    "Mateo",
    "Yuki",
    "Amara",
    "Lars",
    "Priya",
    "Omar",
];

const LAST_NAMES: [&str; 50] = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Tanaka",
    "Schmidt",
    "Rossi",
    "Dubois",
];

/// ISO 3166 alpha-2 codes with integer weights.
const COUNTRIES: [(&str, u64); 20] = [
    ("US", 20),
    ("GB", 8),
    ("DE", 8),
    ("FR", 7),
    ("CA", 6),
    ("JP", 6),
    ("BR", 5),
    ("IN", 5),
    ("AU", 4),
    ("ES", 4),
    ("IT", 4),
    ("NL", 3),
    ("SE", 3),
    ("MX", 3),
    ("PL", 3),
    ("KR", 3),
    ("CH", 2),
    ("NO", 2),
    ("IE", 2),
    ("NZ", 2),
];

/// The 10 categories of docs/dataset.md, in its order.
pub const CATEGORIES: [&str; 10] = [
    "electronics",
    "books",
    "home",
    "garden",
    "toys",
    "sports",
    "clothing",
    "beauty",
    "grocery",
    "automotive",
];

const ADJECTIVES: [&str; 50] = [
    "Classic",
    "Modern",
    "Compact",
    "Deluxe",
    "Essential",
    "Premium",
    "Rustic",
    "Sleek",
    "Vintage",
    "Portable",
    "Durable",
    "Elegant",
    "Smart",
    "Ultra",
    "Eco",
    "Bold",
    "Cozy",
    "Bright",
    "Silent",
    "Rapid",
    "Golden",
    "Silver",
    "Crimson",
    "Azure",
    "Midnight",
    "Arctic",
    "Solar",
    "Urban",
    "Nordic",
    "Royal",
    "Handy",
    "Mighty",
    "Gentle",
    "Fresh",
    "Lucky",
    "Nimble",
    "Sturdy",
    "Cosmic",
    "Tiny",
    "Grand",
    "Quiet",
    "Swift",
    "Vivid",
    "Wild",
    "Zesty",
    "Noble",
    "Simple",
    "Prime",
    "Velvet",
    "Hardy",
];

/// Product nouns, 5 per category; a product's noun decides its category.
const NOUNS: [(&str, usize); 50] = [
    ("Headphones", 0),
    ("Speaker", 0),
    ("Charger", 0),
    ("Keyboard", 0),
    ("Monitor", 0),
    ("Novel", 1),
    ("Cookbook", 1),
    ("Atlas", 1),
    ("Journal", 1),
    ("Anthology", 1),
    ("Lamp", 2),
    ("Blanket", 2),
    ("Kettle", 2),
    ("Vase", 2),
    ("Cushion", 2),
    ("Shovel", 3),
    ("Planter", 3),
    ("Hose", 3),
    ("Rake", 3),
    ("Birdhouse", 3),
    ("Puzzle", 4),
    ("Robot", 4),
    ("Kite", 4),
    ("Doll", 4),
    ("Blocks", 4),
    ("Racket", 5),
    ("Yoga Mat", 5),
    ("Football", 5),
    ("Dumbbell", 5),
    ("Helmet", 5),
    ("Jacket", 6),
    ("Sneakers", 6),
    ("Scarf", 6),
    ("Hoodie", 6),
    ("Backpack", 6),
    ("Serum", 7),
    ("Lotion", 7),
    ("Shampoo", 7),
    ("Perfume", 7),
    ("Lip Balm", 7),
    ("Coffee", 8),
    ("Olive Oil", 8),
    ("Granola", 8),
    ("Honey", 8),
    ("Tea", 8),
    ("Wiper Blades", 9),
    ("Floor Mats", 9),
    ("Tire Inflator", 9),
    ("Car Wax", 9),
    ("Seat Cover", 9),
];

/// Words for product descriptions (lower case).
const WORDS: [&str; 116] = [
    "quality",
    "design",
    "comfort",
    "everyday",
    "durable",
    "material",
    "crafted",
    "perfect",
    "gift",
    "home",
    "travel",
    "lightweight",
    "premium",
    "simple",
    "easy",
    "clean",
    "use",
    "build",
    "finish",
    "smooth",
    "soft",
    "strong",
    "reliable",
    "practical",
    "stylish",
    "natural",
    "fresh",
    "modern",
    "classic",
    "feature",
    "made",
    "with",
    "and",
    "for",
    "the",
    "a",
    "your",
    "every",
    "day",
    "season",
    "family",
    "friends",
    "work",
    "weekend",
    "outdoor",
    "indoor",
    "kitchen",
    "garden",
    "office",
    "style",
    "color",
    "size",
    "fit",
    "warranty",
    "tested",
    "designed",
    "carefully",
    "built",
    "to",
    "last",
    "years",
    "of",
    "value",
    "this",
    "is",
    "our",
    "best",
    "selling",
    "favorite",
    "new",
    "improved",
    "version",
    "customers",
    "love",
    "it",
    "keeps",
    "you",
    "ready",
    "anywhere",
    "storage",
    "compact",
    "space",
    "saving",
    "solution",
    "sustainable",
    "sourced",
    "packaging",
    "recycled",
    "energy",
    "efficient",
    "performance",
    "power",
    "battery",
    "long",
    "lasting",
    "gentle",
    "care",
    "wash",
    "dry",
    "quick",
    "setup",
    "no",
    "tools",
    "needed",
    "includes",
    "accessories",
    "manual",
    "support",
    "service",
    "fast",
    "shipping",
    "returns",
    "free",
    "guaranteed",
    "satisfaction",
    "today",
];

const STATUSES: [(&str, u64); 5] = [
    ("pending", 10),
    ("paid", 15),
    ("shipped", 20),
    ("delivered", 45),
    ("cancelled", 10),
];

// ---------------------------------------------------------------------------
// Time

/// 2020-01-01T00:00:00Z.
pub const START: i64 = 1_577_836_800;
/// 2025-12-31T23:59:59Z.
pub const END: i64 = 1_767_225_599;

const DAY: i64 = 86_400;

const RFC3339: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// A timestamp rendered as `YYYY-MM-DDTHH:MM:SSZ`, on the stack.
pub struct Ts {
    buf: [u8; 20],
}

impl Ts {
    pub fn new(epoch_seconds: i64) -> Ts {
        let mut buf = [0u8; 20];
        let dt = OffsetDateTime::from_unix_timestamp(epoch_seconds)
            .expect("demo timestamps lie in 2020..2026");
        let mut out: &mut [u8] = &mut buf;
        let n = dt
            .format_into(&mut out, RFC3339)
            .expect("a 4-digit-year timestamp fits 20 bytes");
        debug_assert_eq!(n, 20);
        Ts { buf }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf).expect("ascii")
    }
}

/// `epoch_seconds` as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(epoch_seconds: i64) -> String {
    Ts::new(epoch_seconds).as_str().to_owned()
}

/// Cents as a decimal with two digits: 12345 -> "123.45".
pub fn cents(c: i64) -> String {
    let mut s = String::with_capacity(12);
    write_cents(&mut s, c);
    s
}

pub fn write_cents(out: &mut impl std::fmt::Write, c: i64) {
    debug_assert!(c >= 0);
    write!(out, "{}.{:02}", c / 100, c % 100).expect("writing to memory");
}

/// A time for `updated_at`: `created` itself with probability
/// `equal_num / equal_den` (or when `created` is already `END`), else
/// `created + 1..=min(max_delay, END - created)` seconds.
fn later(r: &mut SplitMix64, created: i64, equal_num: u64, equal_den: u64, max_delay: i64) -> i64 {
    if r.chance(equal_num, equal_den) || created >= END {
        return created;
    }
    created + r.range(1, max_delay.min(END - created))
}

// ---------------------------------------------------------------------------
// Rows

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub profile_picture: Option<String>,
    pub country: &'static str,
    /// Epoch seconds (UTC).
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub category: &'static str,
    pub price_cents: i64,
    pub stock: i64,
    pub description: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: i64,
    pub user_id: i64,
    pub status: &'static str,
    pub total_cents: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// The order's items, with ids sequential across all orders.
    pub items: Vec<OrderItem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderItem {
    pub id: i64,
    pub order_id: i64,
    pub product_id: i64,
    pub quantity: i64,
    pub unit_price_cents: i64,
}

// ---------------------------------------------------------------------------
// The shop

/// The largest accepted scale: every id, including about 5 * 100,000 * scale
/// order items at worst, must fit PostgreSQL's `integer`.
pub const MAX_SCALE: f64 = 4000.0;

/// The generator: row counts plus the few per-row values needed at random
/// access (user creation times, product prices).
#[derive(Debug, Clone)]
pub struct Shop {
    pub seed: u64,
    pub users: u64,
    pub products: u64,
    pub orders: u64,
    /// `created_at` of user `id` at index `id - 1`.
    user_created: Vec<i64>,
    /// Price in cents of product `id` at index `id - 1`.
    product_price: Vec<i64>,
    /// Product names: (adjective, noun) combination `k = (mul * i + add) mod C`
    /// for product index `i mod C`, a permutation since `gcd(mul, C) = 1`.
    name_mul: u64,
    name_add: u64,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `round(base * scale)`, at least 1.
fn count(base: f64, scale: f64) -> u64 {
    ((base * scale).round() as u64).max(1)
}

impl Shop {
    pub fn new(spec: DemoSpec) -> anyhow::Result<Shop> {
        let DemoSpec { scale, seed } = spec;
        if !(scale.is_finite() && scale > 0.0) {
            bail!("scale must be a positive number, got {scale}");
        }
        ensure!(
            scale <= MAX_SCALE,
            "scale {scale} is too large (at most {MAX_SCALE}, so that ids fit PostgreSQL integer columns)"
        );
        let users = count(10_000.0, scale);
        let products = count(5_000.0, scale);
        let orders = count(100_000.0, scale);

        let user_created = (1..=users)
            .map(|id| row_rng(seed, STREAM_USER_CREATED, id).range(START, END))
            .collect();
        let product_price = (1..=products)
            .map(|id| price_cents(&mut row_rng(seed, STREAM_PRODUCT_PRICE, id)))
            .collect();

        let combos = (ADJECTIVES.len() * NOUNS.len()) as u64;
        let mut r = row_rng(seed, STREAM_PRODUCT_NAMES, 0);
        let name_add = r.below(combos);
        let name_mul = loop {
            let m = 1 + r.below(combos - 1);
            if gcd(m, combos) == 1 {
                break m;
            }
        };

        Ok(Shop {
            seed,
            users,
            products,
            orders,
            user_created,
            product_price,
            name_mul,
            name_add,
        })
    }

    pub fn user(&self, id: u64) -> User {
        let mut r = row_rng(self.seed, STREAM_USER, id);
        let first = *r.pick(&FIRST_NAMES);
        let last = *r.pick(&LAST_NAMES);
        let profile_picture = if r.chance(1, 5) {
            None
        } else {
            Some(format!("https://img.example.com/u/{id}.jpg"))
        };
        let country = *r.weighted(&COUNTRIES);
        let created_at = self.user_created[(id - 1) as usize];
        let updated_at = later(&mut r, created_at, 1, 4, 2 * 365 * DAY);
        User {
            id: id as i64,
            name: format!("{first} {last}"),
            email: format!(
                "{}.{}.{id}@example.com",
                first.to_ascii_lowercase(),
                last.to_ascii_lowercase()
            ),
            profile_picture,
            country,
            created_at,
            updated_at,
        }
    }

    pub fn product(&self, id: u64) -> Product {
        let mut r = row_rng(self.seed, STREAM_PRODUCT, id);
        let combos = (ADJECTIVES.len() * NOUNS.len()) as u64;
        let i = id - 1;
        let k = (self.name_mul * (i % combos) + self.name_add) % combos;
        let adjective = ADJECTIVES[(k / NOUNS.len() as u64) as usize];
        let (noun, category) = NOUNS[(k % NOUNS.len() as u64) as usize];
        let round = i / combos;
        let name = if round == 0 {
            format!("{adjective} {noun}")
        } else {
            format!("{adjective} {noun} {}", round + 1)
        };
        let stock = if r.chance(1, 20) { 0 } else { r.range(1, 500) };
        let description = description(&mut r);
        let created_at = r.range(START, END);
        let updated_at = later(&mut r, created_at, 1, 4, 365 * DAY);
        Product {
            id: id as i64,
            name,
            category: CATEGORIES[category],
            price_cents: self.product_price[i as usize],
            stock,
            description,
            created_at,
            updated_at,
        }
    }

    /// Order `id` with its items; `first_item_id` is the id of its first item.
    pub fn order(&self, id: u64, first_item_id: i64) -> Order {
        let mut r = row_rng(self.seed, STREAM_ORDER, id);
        let user_id = 1 + r.below(self.users);
        let user_created = self.user_created[(user_id - 1) as usize];
        let created_at = r.range(user_created, END);
        let status = *r.weighted(&STATUSES);
        let updated_at = if status == "pending" {
            created_at
        } else {
            later(&mut r, created_at, 0, 1, 30 * DAY)
        };
        let n = 1 + r.below(5) as usize;
        let mut items: Vec<OrderItem> = Vec::with_capacity(n);
        let mut total_cents = 0;
        for k in 0..n {
            // Distinct products within an order whenever there are enough.
            let product_id = loop {
                let p = 1 + r.below(self.products) as i64;
                if self.products < 5 || items.iter().all(|it| it.product_id != p) {
                    break p;
                }
            };
            let quantity = r.range(1, 5);
            let unit_price_cents = self.product_price[(product_id - 1) as usize];
            total_cents += quantity * unit_price_cents;
            items.push(OrderItem {
                id: first_item_id + k as i64,
                order_id: id as i64,
                product_id,
                quantity,
                unit_price_cents,
            });
        }
        Order {
            id: id as i64,
            user_id: user_id as i64,
            status,
            total_cents,
            created_at,
            updated_at,
            items,
        }
    }

    pub fn users(&self) -> impl Iterator<Item = User> + '_ {
        (1..=self.users).map(|id| self.user(id))
    }

    pub fn products(&self) -> impl Iterator<Item = Product> + '_ {
        (1..=self.products).map(|id| self.product(id))
    }

    /// All orders in id order, each with its items.
    pub fn orders(&self) -> Orders<'_> {
        Orders {
            shop: self,
            next_id: 1,
            next_item_id: 1,
        }
    }

    /// All order items in id order.
    pub fn order_items(&self) -> impl Iterator<Item = OrderItem> + '_ {
        self.orders().flat_map(|o| o.items)
    }
}

pub struct Orders<'a> {
    shop: &'a Shop,
    next_id: u64,
    next_item_id: i64,
}

impl Iterator for Orders<'_> {
    type Item = Order;

    fn next(&mut self) -> Option<Order> {
        if self.next_id > self.shop.orders {
            return None;
        }
        let order = self.shop.order(self.next_id, self.next_item_id);
        self.next_id += 1;
        self.next_item_id += order.items.len() as i64;
        Some(order)
    }
}

/// A price in cents in 1.00..=999.99, skewed towards cheap items: 30% under
/// 10.00, 35% under 50.00, 25% under 200.00, 10% up to 999.99.
fn price_cents(r: &mut SplitMix64) -> i64 {
    const BANDS: [((i64, i64), u64); 4] = [
        ((100, 999), 30),
        ((1_000, 4_999), 35),
        ((5_000, 19_999), 25),
        ((20_000, 99_999), 10),
    ];
    let (lo, hi) = *r.weighted(&BANDS);
    r.range(lo, hi)
}

/// 200 to 600 characters of sentences: a target length in 200..=600, then
/// whole sentences (6 to 14 words, capitalised, a comma now and then, ending
/// with a period) while the text is shorter than the target and the next
/// sentence still fits in 600. A sentence is at most ~200 characters, so the
/// text always reaches 200.
fn description(r: &mut SplitMix64) -> String {
    const MIN: usize = 200;
    const MAX: usize = 600;
    let target = r.range(MIN as i64, MAX as i64) as usize;
    let mut text = String::with_capacity(MAX);
    let mut sentence = String::with_capacity(200);
    while text.len() < target {
        sentence.clear();
        let words = r.range(6, 14);
        let comma_after = if r.chance(1, 3) {
            r.range(3, words - 2)
        } else {
            0
        };
        for w in 1..=words {
            let word = *r.pick(&WORDS);
            if w == 1 {
                let mut chars = word.chars();
                let head = chars.next().expect("non-empty word");
                sentence.push(head.to_ascii_uppercase());
                sentence.push_str(chars.as_str());
            } else {
                sentence.push(' ');
                sentence.push_str(word);
            }
            if w == comma_after {
                sentence.push(',');
            }
        }
        sentence.push('.');
        let sep = usize::from(!text.is_empty());
        if text.len() + sep + sentence.len() > MAX {
            break;
        }
        if sep == 1 {
            text.push(' ');
        }
        text.push_str(&sentence);
    }
    debug_assert!((MIN..=MAX).contains(&text.len()), "{}", text.len());
    text
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn spec(scale: f64, seed: u64) -> DemoSpec {
        DemoSpec { scale, seed }
    }

    #[test]
    fn splitmix64_matches_reference() {
        // First outputs of Vigna's splitmix64.c seeded with 1234567.
        let mut r = SplitMix64::new(1_234_567);
        let got: Vec<u64> = (0..5).map(|_| r.next_u64()).collect();
        assert_eq!(
            got,
            [
                6457827717110365317,
                3203168211198807973,
                9817491932198370423,
                4593380528125082431,
                16408922859458223821
            ]
        );
    }

    #[test]
    fn counts_follow_scale() {
        let s = Shop::new(spec(1.0, 42)).unwrap();
        assert_eq!((s.users, s.products, s.orders), (10_000, 5_000, 100_000));
        let s = Shop::new(spec(0.01, 42)).unwrap();
        assert_eq!((s.users, s.products, s.orders), (100, 50, 1_000));
        assert_eq!(s.users().count(), 100);
        assert_eq!(s.products().count(), 50);
        let orders: Vec<Order> = s.orders().collect();
        assert_eq!(orders.len(), 1_000);
        let items: usize = orders.iter().map(|o| o.items.len()).sum();
        assert!((2_500..=3_500).contains(&items), "{items} items");
        let s = Shop::new(spec(0.00001, 42)).unwrap();
        assert_eq!((s.users, s.products, s.orders), (1, 1, 1));
        assert!(Shop::new(spec(0.0, 1)).is_err());
        assert!(Shop::new(spec(-1.0, 1)).is_err());
        assert!(Shop::new(spec(f64::NAN, 1)).is_err());
        assert!(Shop::new(spec(1e9, 1)).is_err());
    }

    #[test]
    fn deterministic_and_seed_dependent() {
        let a = Shop::new(spec(0.01, 7)).unwrap();
        let b = Shop::new(spec(0.01, 7)).unwrap();
        let c = Shop::new(spec(0.01, 8)).unwrap();
        assert_eq!(a.users().collect::<Vec<_>>(), b.users().collect::<Vec<_>>());
        assert_eq!(
            a.products().collect::<Vec<_>>(),
            b.products().collect::<Vec<_>>()
        );
        assert_eq!(
            a.orders().collect::<Vec<_>>(),
            b.orders().collect::<Vec<_>>()
        );
        assert_ne!(a.users().collect::<Vec<_>>(), c.users().collect::<Vec<_>>());
        assert_ne!(
            a.products().collect::<Vec<_>>(),
            c.products().collect::<Vec<_>>()
        );
        assert_ne!(
            a.orders().collect::<Vec<_>>(),
            c.orders().collect::<Vec<_>>()
        );
    }

    /// Pins a few values, so that an accidental change of the generator shows.
    #[test]
    fn golden_rows() {
        let s = Shop::new(spec(1.0, 42)).unwrap();
        let u = s.user(1);
        let p = s.product(1);
        let o = s.order(1, 1);
        let got = format!(
            "{} <{}> {} {} | {} {} {} | {} {} {} {}",
            u.name,
            u.email,
            u.country,
            rfc3339(u.created_at),
            p.name,
            p.category,
            cents(p.price_cents),
            o.user_id,
            o.status,
            cents(o.total_cents),
            o.items.len()
        );
        assert_eq!(got, GOLDEN);
    }
    const GOLDEN: &str = "David Jones <david.jones.1@example.com> JP 2023-04-17T16:59:05Z | Arctic Dumbbell sports 127.89 | 3650 shipped 186.70 2";

    #[test]
    fn totals_are_sums_of_items_and_ids_sequential() {
        let s = Shop::new(spec(0.01, 3)).unwrap();
        let mut next_item = 1;
        for o in s.orders() {
            assert!((1..=5).contains(&o.items.len()));
            let sum: i64 = o
                .items
                .iter()
                .map(|i| i.quantity * i.unit_price_cents)
                .sum();
            assert_eq!(o.total_cents, sum);
            assert!(o.user_id >= 1 && o.user_id as u64 <= s.users);
            for it in &o.items {
                assert_eq!(it.id, next_item);
                assert_eq!(it.order_id, o.id);
                next_item += 1;
                assert!((1..=5).contains(&it.quantity));
                let p = s.product(it.product_id as u64);
                assert_eq!(it.unit_price_cents, p.price_cents);
            }
            let distinct: HashSet<i64> = o.items.iter().map(|i| i.product_id).collect();
            assert_eq!(distinct.len(), o.items.len());
        }
        assert_eq!(s.order_items().count() as i64, next_item - 1);
    }

    #[test]
    fn products_are_well_formed() {
        let s = Shop::new(spec(0.1, 11)).unwrap();
        let mut names = HashSet::new();
        for p in s.products() {
            let len = p.description.len();
            assert!((200..=600).contains(&len), "description of {len} chars");
            assert!(p.description.ends_with('.'));
            assert!(p.description.chars().next().unwrap().is_ascii_uppercase());
            assert!((100..=99_999).contains(&p.price_cents));
            assert!((0..=500).contains(&p.stock));
            assert!(CATEGORIES.contains(&p.category));
            assert!(names.insert(p.name.clone()), "duplicate name {}", p.name);
            assert!(p.updated_at >= p.created_at);
        }
        // Names stay unique past the 2,500 adjective-noun combinations.
        let big = Shop::new(spec(1.0, 11)).unwrap();
        let names: HashSet<String> = big.products().map(|p| p.name).collect();
        assert_eq!(names.len(), 5_000);
    }

    #[test]
    fn users_are_well_formed() {
        let s = Shop::new(spec(0.1, 5)).unwrap();
        let mut emails = HashSet::new();
        let mut no_picture = 0;
        let mut equal = 0;
        for u in s.users() {
            assert!(emails.insert(u.email.clone()), "duplicate {}", u.email);
            assert_eq!(u.email, u.email.to_lowercase());
            assert!(u.email.ends_with(&format!(".{}@example.com", u.id)));
            assert_eq!(u.name.split(' ').count(), 2);
            match &u.profile_picture {
                None => no_picture += 1,
                Some(url) => assert_eq!(url, &format!("https://img.example.com/u/{}.jpg", u.id)),
            }
            assert!(u.created_at >= START && u.updated_at <= END);
            assert!(u.updated_at >= u.created_at);
            if u.updated_at == u.created_at {
                equal += 1;
            }
        }
        // About 20% without a picture, about 25% never updated.
        assert!((120..=280).contains(&no_picture), "{no_picture}");
        assert!((150..=350).contains(&equal), "{equal}");
    }

    #[test]
    fn timestamps_are_well_formed() {
        assert_eq!(rfc3339(START), "2020-01-01T00:00:00Z");
        assert_eq!(rfc3339(END), "2025-12-31T23:59:59Z");
        assert_eq!(rfc3339(1_680_674_828), "2023-04-05T06:07:08Z");
        let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
        let s = Shop::new(spec(0.01, 9)).unwrap();
        let check = |created: i64, updated: i64| {
            assert!(updated >= created);
            for t in [created, updated] {
                let text = rfc3339(t);
                assert_eq!(text.len(), 20);
                let back = time::PrimitiveDateTime::parse(&text, &fmt)
                    .unwrap()
                    .assume_utc()
                    .unix_timestamp();
                assert_eq!(back, t);
                assert!((START..=END).contains(&t));
            }
        };
        for u in s.users() {
            check(u.created_at, u.updated_at);
        }
        for p in s.products() {
            check(p.created_at, p.updated_at);
        }
        for o in s.orders() {
            check(o.created_at, o.updated_at);
            assert!(o.created_at >= s.user(o.user_id as u64).created_at);
        }
    }

    #[test]
    fn cents_render_with_two_decimals() {
        assert_eq!(cents(100), "1.00");
        assert_eq!(cents(99_999), "999.99");
        assert_eq!(cents(1_205), "12.05");
        assert_eq!(cents(123_456_789), "1234567.89");
    }
}
