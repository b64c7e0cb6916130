//! Event ids: order, canonical text, strict parsing, and the generator's monotonicity.

use pushcore::sse::id::{self, EventId, IdError, IdGenerator, MAX_LEN};

fn id(ms: u64, seq: u64) -> EventId {
    EventId::new(ms, seq)
}

#[test]
fn order_is_ms_then_seq() {
    let sorted = [
        EventId::ZERO,
        id(0, 1),
        id(0, u64::MAX),
        id(1, 0),
        id(1, 1),
        id(1_732_406_400_000, 0),
        id(1_732_406_400_000, 9),
        id(1_732_406_400_000, 10),
        id(1_732_406_400_001, 0),
        id(u64::MAX, 0),
        EventId::MAX,
    ];
    for pair in sorted.windows(2) {
        assert!(pair[0] < pair[1], "{} < {}", pair[0], pair[1]);
    }
    assert_eq!(EventId::default(), EventId::ZERO);
}

#[test]
fn display_and_write_to() {
    let cases: &[(EventId, &str)] = &[
        (EventId::ZERO, "0-0"),
        (id(1, 0), "1-0"),
        (id(9, 10), "9-10"),
        (id(10, 99), "10-99"),
        (id(100, 100), "100-100"),
        (id(1_732_406_400_000, 0), "1732406400000-0"),
        (id(1_732_406_400_000, 12_345), "1732406400000-12345"),
        (EventId::MAX, "18446744073709551615-18446744073709551615"),
    ];
    for &(value, text) in cases {
        assert_eq!(value.to_string(), text);
        let mut out = b"prefix ".to_vec();
        value.write_to(&mut out);
        assert_eq!(out, format!("prefix {text}").as_bytes());
        assert_eq!(value.text_len(), text.len());
    }
    assert_eq!(EventId::MAX.to_string().len(), MAX_LEN);
    assert_eq!(format!("{:>8}", id(1, 2)), "     1-2");
}

#[test]
fn write_to_matches_fmt_on_every_digit_count() {
    let mut n: u64 = 1;
    let mut values = vec![0, u64::MAX, u64::MAX - 1];
    for _ in 0..20 {
        values.extend([n - 1, n, n + 1, n.wrapping_mul(7) / 3]);
        n = n.saturating_mul(10);
    }
    for &ms in &values {
        for &seq in &values {
            let value = id(ms, seq);
            let mut out = Vec::new();
            value.write_to(&mut out);
            assert_eq!(out, format!("{ms}-{seq}").as_bytes());
            assert_eq!(value.text_len(), out.len());
            assert_eq!(id::parse(&out), Ok(value));
        }
    }
}

#[test]
fn parse_accepts_canonical_ids() {
    let cases: &[(&str, EventId)] = &[
        ("0-0", EventId::ZERO),
        ("0-1", id(0, 1)),
        ("1-0", id(1, 0)),
        ("10-20", id(10, 20)),
        ("1732406400000-0", id(1_732_406_400_000, 0)),
        ("1732406400000-42", id(1_732_406_400_000, 42)),
        ("18446744073709551615-0", id(u64::MAX, 0)),
        ("18446744073709551615-18446744073709551615", EventId::MAX),
    ];
    for &(text, value) in cases {
        assert_eq!(text.parse::<EventId>(), Ok(value), "{text:?}");
        assert_eq!(id::parse(text.as_bytes()), Ok(value), "{text:?}");
        assert_eq!(value.to_string(), text, "round trip of {text:?}");
    }
}

#[test]
fn parse_rejects_everything_else() {
    use IdError::*;
    let cases: &[(&[u8], IdError)] = &[
        (b"", Empty),
        (b"-", Malformed),
        (b"1-", Malformed),
        (b"-1", Malformed),
        (b"1", Malformed), // a bare ms (Redis reads it as 1-0): refused
        (b"1732406400000", Malformed),
        (b"+1-0", Malformed),
        (b"1-+0", Malformed),
        (b"-1-0", Malformed),
        (b"1--0", Malformed),
        (b"1-0-0", Malformed),
        (b"1-0-", Malformed),
        (b" 1-0", Malformed),
        (b"1-0 ", Malformed),
        (b"1 -0", Malformed),
        (b"1- 0", Malformed),
        (b"1-0\n", Malformed),
        (b"1-0\0", Malformed),
        (b"\t1-0", Malformed),
        (b"a-0", Malformed),
        (b"0-a", Malformed),
        (b"0x1-0", Malformed),
        (b"1e3-0", Malformed),
        (b"1.0-0", Malformed),
        (b"1_000-0", Malformed),
        (b"1:0", Malformed),
        (b"1/0", Malformed),
        (b"01-0", Malformed), // leading zeros: a second spelling of 1-0
        (b"0-00", Malformed),
        (b"00-0", Malformed),
        (b"1-01", Malformed),
        (b"\xd9\xa1-0", Malformed), // ARABIC-INDIC DIGIT ONE
        (b"\xef\xbc\x91-\xef\xbc\x90", Malformed), // FULLWIDTH DIGIT ONE, ZERO
        (b"\xff-0", Malformed),
        (b"18446744073709551616-0", Overflow), // u64::MAX + 1
        (b"0-18446744073709551616", Overflow),
        (b"99999999999999999999-0", Overflow),
        (b"100000000000000000000-0", Overflow), // 21 digits, still within MAX_LEN
        (b"x-100000000000000000000", Malformed), // shape is checked before size
        (b"18446744073709551615-184467440737095516150", TooLong), // 42 bytes
        (b"1-00000000000000000000000000000000000000000", TooLong),
    ];
    for &(text, ref error) in cases {
        assert_eq!(
            id::parse(text),
            Err(error.clone()),
            "{:?}",
            String::from_utf8_lossy(text)
        );
        if let Ok(text) = std::str::from_utf8(text) {
            assert_eq!(text.parse::<EventId>(), Err(error.clone()), "{text:?}");
        }
    }
    let huge = "1".repeat(1 << 20);
    assert_eq!(id::parse(huge.as_bytes()), Err(TooLong));
}

#[test]
fn errors_say_what_is_wrong() {
    for error in [
        IdError::Empty,
        IdError::TooLong,
        IdError::Malformed,
        IdError::Overflow,
    ] {
        let text = error.to_string();
        assert!(text.starts_with("event id "), "{text}");
        let _: &dyn std::error::Error = &error;
    }
}

#[test]
fn successor_is_the_next_id() {
    assert_eq!(EventId::ZERO.successor(), id(0, 1));
    assert_eq!(id(5, 7).successor(), id(5, 8));
    assert_eq!(id(5, u64::MAX).successor(), id(6, 0));
    assert_eq!(EventId::MAX.successor(), EventId::MAX);
    for value in [id(0, 0), id(3, 9), id(3, u64::MAX), id(u64::MAX, 1)] {
        assert!(value.successor() > value);
    }
}

#[test]
fn generator_follows_the_clock_when_it_moves_forward() {
    let mut ids = IdGenerator::new(EventId::ZERO);
    assert_eq!(ids.last(), EventId::ZERO);
    assert_eq!(ids.next(1_000), id(1_000, 0));
    assert_eq!(ids.next(1_001), id(1_001, 0));
    assert_eq!(ids.next(5_000), id(5_000, 0)); // a jump forward
    assert_eq!(ids.last(), id(5_000, 0));
}

#[test]
fn generator_counts_within_a_millisecond() {
    let mut ids = IdGenerator::new(EventId::ZERO);
    assert_eq!(ids.next(7), id(7, 0));
    assert_eq!(ids.next(7), id(7, 1));
    assert_eq!(ids.next(7), id(7, 2));
    assert_eq!(ids.next(8), id(8, 0));
}

#[test]
fn generator_never_goes_back_with_the_clock() {
    let mut ids = IdGenerator::new(EventId::ZERO);
    assert_eq!(ids.next(1_000), id(1_000, 0));
    assert_eq!(ids.next(900), id(1_000, 1)); // clock stepped back: borrow the last ms
    assert_eq!(ids.next(999), id(1_000, 2));
    assert_eq!(ids.next(1_000), id(1_000, 3));
    assert_eq!(ids.next(1_001), id(1_001, 0));
}

#[test]
fn generator_starts_above_its_floor() {
    // A restart whose clock is behind the previous run's last id.
    let floor = id(2_000, 5);
    let mut ids = IdGenerator::new(floor);
    assert_eq!(ids.last(), floor);
    assert_eq!(ids.next(1_500), id(2_000, 6));
    assert_eq!(ids.next(2_000), id(2_000, 7));

    let mut ids = IdGenerator::new(EventId::ZERO);
    assert_eq!(ids.next(0), id(0, 1), "0-0 is never issued");
}

#[test]
fn generator_rolls_over_a_full_sequence() {
    let mut ids = IdGenerator::new(id(10, u64::MAX - 1));
    assert_eq!(ids.next(10), id(10, u64::MAX));
    assert_eq!(ids.next(10), id(11, 0));
    assert_eq!(ids.next(10), id(11, 1));
}

/// xorshift64*: a tiny deterministic generator, enough to drive a clock.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn generator_is_strictly_increasing_under_a_random_clock() {
    for seed in 1..=20u64 {
        let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let floor = id(rng.next() % 1_000, rng.next() % 3);
        let mut ids = IdGenerator::new(floor);
        let mut clock: u64 = 1_000;
        let mut previous = floor;
        for _ in 0..20_000 {
            // Mostly small forward steps, often standing still, sometimes back, rarely a jump.
            clock = match rng.next() % 16 {
                0..=5 => clock,
                6..=11 => clock + rng.next() % 3,
                12 | 13 => clock.saturating_sub(rng.next() % 50),
                14 => clock.saturating_sub(rng.next() % 100_000),
                _ => clock + rng.next() % 100_000,
            };
            let next = ids.next(clock);
            assert!(next > previous, "seed {seed}: {next} after {previous}");
            assert_eq!(ids.last(), next);
            // Never behind the clock, never ahead of it unless it stepped back.
            assert!(next.ms >= clock);
            if next.ms > clock {
                assert_eq!(next.ms, previous.ms, "only a borrowed ms runs ahead");
            }
            if clock > previous.ms {
                assert_eq!(next, id(clock, 0));
            }
            previous = next;
        }
    }
}

#[test]
fn unix_ms_now_is_plausible() {
    let now = id::unix_ms_now();
    assert!(now > 1_700_000_000_000, "{now}"); // after November 2023
    assert!(id::unix_ms_now() >= now);
}
