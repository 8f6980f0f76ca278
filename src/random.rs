//! Randomness: UUID bits straight from the OS (`getrandom`, buffered so one system call serves
//! many ids) and a fast per-thread generator, seeded from the OS, for sampling, span ids and
//! jitter.

use std::cell::{Cell, RefCell};

use crate::rt;

const BUF: usize = 4000;

struct OsBytes {
    buf: [u8; BUF],
    pos: usize,
}

thread_local! {
    static OS: RefCell<Box<OsBytes>> = RefCell::new(Box::new(OsBytes { buf: [0; BUF], pos: BUF }));
    static FAST: Cell<u64> = const { Cell::new(0) };
}

/// Bits from the operating system's generator for UUIDv7s, taken from this thread's buffer
/// (see [`with_uuid_bits`]).
pub(crate) struct UuidBits<'a>(std::cell::RefMut<'a, Box<OsBytes>>);

impl UuidBits<'_> {
    /// Ten bytes: the first eight as a little-endian word, the last two as a half-word (read
    /// as numbers, so they reach the id's formatting in registers).
    #[inline]
    pub(crate) fn next(&mut self) -> (u64, u16) {
        let os = &mut *self.0;
        if os.pos + 10 > BUF {
            rt::fill_random(&mut os.buf);
            os.pos = 0;
        }
        let at = os.pos;
        os.pos += 10;
        let mut word = [0u8; 8];
        word.copy_from_slice(&os.buf[at..at + 8]);
        let mut half = [0u8; 2];
        half.copy_from_slice(&os.buf[at + 8..at + 10]);
        (u64::from_le_bytes(word), u16::from_le_bytes(half))
    }
}

/// Runs `f` with this thread's buffer of OS random bytes, so many ids take one visit to it.
pub(crate) fn with_uuid_bits<R>(f: impl FnOnce(&mut UuidBits<'_>) -> R) -> R {
    OS.with(|os| f(&mut UuidBits(os.borrow_mut())))
}

/// A fast pseudo-random `u64` (wyrand), seeded per thread from the OS.
pub(crate) fn u64() -> u64 {
    FAST.with(|s| {
        let mut state = s.get();
        let v = wyrand(&mut state);
        s.set(state);
        v
    })
}

/// `N` fast pseudo-random `u64`s from one visit to the thread's generator.
#[inline]
fn u64s<const N: usize>() -> [u64; N] {
    FAST.with(|s| {
        let mut state = s.get();
        // A plain loop: `array::from_fn` went through a closure call per element.
        let mut out = [0; N];
        for x in &mut out {
            *x = wyrand(&mut state);
        }
        s.set(state);
        out
    })
}

/// One wyrand step; a zero state is seeded from the OS first.
#[inline(always)]
fn wyrand(state: &mut u64) -> u64 {
    if *state == 0 {
        let mut seed = [0u8; 8];
        rt::fill_random(&mut seed);
        *state = u64::from_le_bytes(seed) | 1;
    }
    *state = state.wrapping_add(0xa076_1d64_78bd_642f);
    let t = (*state as u128).wrapping_mul((*state ^ 0xe703_7ed1_a0b4_28db) as u128);
    ((t >> 64) as u64) ^ (t as u64)
}

/// A uniform float in `[0, 1)`.
pub(crate) fn unit_f64() -> f64 {
    (u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Whether to keep an item sampled at `rate` (1 keeps all, 0 none).
pub(crate) fn keep(rate: f64) -> bool {
    rate >= 1.0 || (rate > 0.0 && unit_f64() < rate)
}

/// A non-zero random 64-bit span id.
#[inline]
pub(crate) fn span_id() -> u64 {
    loop {
        let v = u64();
        if v != 0 {
            return v;
        }
    }
}

/// Non-zero random ids for a root span: a 128-bit trace id and a 64-bit span id.
#[inline]
pub(crate) fn trace_and_span_id() -> (u128, u64) {
    loop {
        let [a, b, c] = u64s::<3>();
        let trace = u128::from(a) << 64 | u128::from(b);
        if trace != 0 && c != 0 {
            return (trace, c);
        }
    }
}
