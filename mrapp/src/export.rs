//! What [`export_app!`](crate::export_app) expands to: the app side of the C ABI.
//! Converts ABI slices to `&str`, batches map's pairs, streams reduce's values, calls
//! the author's function inside `catch_unwind`, and reports a panic as a failure message
//! instead of unwinding into the host.

use crate::abi::{MrBytes, MrCounters, MrEmit, MrPair, MrSink, MrValues, MR_FAILED, MR_OK};
use crate::KeyValue;
use std::any::Any;
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    /// The counters of the call this thread is in, for [`count`](crate::count).
    static COUNTERS: Cell<Option<MrCounters>> = const { Cell::new(None) };
}

/// Adds `delta` to the counter `name` of the call in progress on this thread.
pub(crate) fn count(name: &str, delta: u64) {
    if let Some(c) = COUNTERS.get() {
        // SAFETY: set only for the duration of a host call, from that call's arguments.
        unsafe { (c.add)(c.ctx, MrBytes::from_slice(name.as_bytes()), delta) }
    }
}

/// Makes `counters` those of [`count`](crate::count) until the guard drops (also on a
/// panic, so that a later call on this thread never reaches a stale host context).
struct CountersGuard(Option<MrCounters>);

impl CountersGuard {
    fn set(counters: MrCounters) -> Self {
        CountersGuard(COUNTERS.replace(Some(counters)))
    }
}

impl Drop for CountersGuard {
    fn drop(&mut self) {
        COUNTERS.set(self.0.take());
    }
}

/// Hands map output to the framework one pair at a time, without building a `Vec`.
///
/// The ABI takes pairs in batches, but the SDK hands over one per call: buffering them
/// here measured slower than the direct call it saves (docs/performance.md, "ABI 2").
pub struct Emitter {
    emit: MrEmit,
}

impl Emitter {
    /// Emits one intermediate pair. The framework copies the bytes before returning.
    #[inline]
    pub fn emit(&mut self, key: &str, value: &str) {
        let pair = MrPair {
            key: MrBytes::from_slice(key.as_bytes()),
            value: MrBytes::from_slice(value.as_bytes()),
        };
        // SAFETY: `call` and `ctx` come from the host for this map call, and the pair
        // outlives the call.
        unsafe { (self.emit.call)(self.emit.ctx, &pair, 1) };
    }

    /// Adds `delta` to the counter `name` (see [`count`](crate::count)).
    pub fn count(&mut self, name: &str, delta: u64) {
        count(name, delta)
    }
}

/// The two shapes a map function may have; `M` is a marker that lets both coexist.
pub trait MapFn<M> {
    /// Runs map, sending every pair to `out`.
    fn run(&self, filename: &str, contents: &str, out: &mut Emitter);
}

/// Marker: `fn(&str, &str) -> Vec<KeyValue>`.
pub struct ReturnsVec;
/// Marker: `fn(&str, &str, &mut Emitter)`.
pub struct UsesEmitter;

impl<F: Fn(&str, &str) -> Vec<KeyValue>> MapFn<ReturnsVec> for F {
    fn run(&self, filename: &str, contents: &str, out: &mut Emitter) {
        for kv in self(filename, contents) {
            out.emit(&kv.key, &kv.value);
        }
    }
}

impl<F: Fn(&str, &str, &mut Emitter)> MapFn<UsesEmitter> for F {
    fn run(&self, filename: &str, contents: &str, out: &mut Emitter) {
        self(filename, contents, out)
    }
}

/// Hands a reduce result to the framework in pieces, as they are made, without building
/// a `String` (the sort app writes each record back as key, value, newline).
pub struct Output {
    out: MrSink,
}

impl Output {
    /// Appends `s` to the result.
    pub fn write(&mut self, s: &str) {
        send(self.out, s.as_bytes());
    }

    /// Adds `delta` to the counter `name` (see [`count`](crate::count)).
    pub fn count(&mut self, name: &str, delta: u64) {
        count(name, delta)
    }
}

/// The values of one key as a stream: the framework reads them from its merge as
/// `next` asks, so a key may have more values than fit in memory (the paper's
/// iterator, §2.1). Each value lives until the next call of `next`.
pub struct Values {
    src: MrValues,
    batch: *const MrBytes,
    n: usize,
    pos: usize,
    more: bool,
}

impl Values {
    fn new(src: MrValues) -> Self {
        Values {
            src,
            batch: src.first,
            n: src.n_first,
            pos: 0,
            more: src.more != 0,
        }
    }

    /// The next value, or `None` when every value has been read.
    #[allow(clippy::should_implement_trait)] // a lending iterator: each value borrows `self`
    pub fn next(&mut self) -> Option<&str> {
        while self.pos == self.n {
            if !self.more || !self.next_batch() {
                return None;
            }
        }
        // SAFETY: `pos < n`, and the batch lives until the next `next_batch`.
        let v = unsafe { *self.batch.add(self.pos) };
        self.pos += 1;
        Some(utf8("value", v))
    }

    /// Replaces the batch with the next one; false at the end.
    fn next_batch(&mut self) -> bool {
        let (mut at, mut n) = (std::ptr::null(), 0usize);
        // SAFETY: `next` and `ctx` come from the host for this call.
        let got = unsafe { (self.src.next)(self.src.ctx, &mut at, &mut n) };
        if got == 0 {
            self.more = false;
            self.n = 0;
            self.pos = 0;
            return false;
        }
        self.batch = at;
        self.n = n;
        self.pos = 0;
        true
    }

    /// Calls `f` with every value at once: without a copy when the host passed them in
    /// one batch (nearly always), else gathered into memory first.
    fn with_slice<R>(&mut self, f: impl FnOnce(&[&str]) -> R) -> R {
        thread_local! {
            // The values' slices, their allocation kept from call to call (a sort calls
            // reduce once per record).
            static VALUES: Cell<Vec<&'static str>> = const { Cell::new(Vec::new()) };
        }
        // Declared first so that it outlives the slices into it.
        let mut arena = String::new();
        let mut values = recycle(VALUES.take());
        let done = if !self.more && self.pos == 0 {
            let raw = if self.n == 0 {
                &[][..]
            } else {
                // SAFETY: the host passed `n` values at `batch`, alive for this call.
                unsafe { std::slice::from_raw_parts(self.batch, self.n) }
            };
            values.extend(raw.iter().map(|v| utf8("value", *v)));
            f(&values)
        } else {
            // More than one batch: copy them all (the slice form holds every value).
            let mut ends = Vec::new();
            while let Some(v) = self.next() {
                arena.push_str(v);
                ends.push(arena.len());
            }
            let mut start = 0;
            for end in ends {
                values.push(&arena[start..end]);
                start = end;
            }
            let r = f(&values);
            values.clear();
            r
        };
        VALUES.set(recycle(values));
        done
    }
}

/// The shapes a reduce (or combine) function may have; `M` lets them coexist.
pub trait ReduceFn<M> {
    /// Runs reduce for one key, sending the result to `out`.
    fn run(&self, key: &str, values: &mut Values, out: &mut Output);
}

/// Marker: `fn(&str, &[&str]) -> String`.
pub struct ReturnsString;
/// Marker: `fn(&str, &[&str], &mut Output)`.
pub struct UsesOutput;
/// Marker: `fn(&str, &mut Values) -> String`.
pub struct StreamsToString;
/// Marker: `fn(&str, &mut Values, &mut Output)`.
pub struct Streams;

impl<F: Fn(&str, &[&str]) -> String> ReduceFn<ReturnsString> for F {
    fn run(&self, key: &str, values: &mut Values, out: &mut Output) {
        let result = values.with_slice(|vs| self(key, vs));
        out.write(&result);
    }
}

impl<F: Fn(&str, &[&str], &mut Output)> ReduceFn<UsesOutput> for F {
    fn run(&self, key: &str, values: &mut Values, out: &mut Output) {
        values.with_slice(|vs| self(key, vs, out))
    }
}

impl<F: Fn(&str, &mut Values) -> String> ReduceFn<StreamsToString> for F {
    fn run(&self, key: &str, values: &mut Values, out: &mut Output) {
        out.write(&self(key, values));
    }
}

impl<F: Fn(&str, &mut Values, &mut Output)> ReduceFn<Streams> for F {
    fn run(&self, key: &str, values: &mut Values, out: &mut Output) {
        self(key, values, out)
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

fn send(sink: MrSink, bytes: &[u8]) {
    // SAFETY: the sink comes from the host for this call.
    unsafe { (sink.call)(sink.ctx, MrBytes::from_slice(bytes)) }
}

fn utf8<'a>(what: &str, b: MrBytes) -> &'a str {
    debug_assert!(
        !b.ptr.is_null(),
        "mr host passed a {what} with a null pointer"
    );
    // SAFETY: the host's bytes are readable for the duration of the call, and their
    // pointer is never null (see `MrBytes::ptr`). Without the test for an empty value
    // that `as_slice` makes, copying a batch of values into slices is a plain copy.
    let bytes = unsafe { std::slice::from_raw_parts(b.ptr, b.len) };
    // The ABI guarantees UTF-8 (the host decodes input lossily, and every key and
    // value it passes back was emitted by an app as a `&str`); checking it again here,
    // once per value, would cost more than the combiner itself. Debug builds check.
    debug_assert!(
        std::str::from_utf8(bytes).is_ok(),
        "mr host passed a {what} that is not UTF-8"
    );
    // SAFETY: valid UTF-8 by the ABI contract above.
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

/// Runs `f` with panics caught and `counters` current; a panic becomes [`MR_FAILED`]
/// with its message on `err`.
fn guarded(counters: MrCounters, err: MrSink, f: impl FnOnce()) -> i32 {
    let _current = CountersGuard::set(counters);
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => MR_OK,
        Err(payload) => {
            send(
                err,
                format!("app panicked: {}", panic_message(&*payload)).as_bytes(),
            );
            MR_FAILED
        }
    }
}

/// The body of `mr_map`.
pub fn map_entry<M>(
    map: &impl MapFn<M>,
    filename: MrBytes,
    contents: MrBytes,
    emit: MrEmit,
    counters: MrCounters,
    err: MrSink,
) -> i32 {
    guarded(counters, err, || {
        let filename = utf8("filename", filename);
        let contents = utf8("input", contents);
        map.run(filename, contents, &mut Emitter { emit });
    })
}

/// An empty vector of another lifetime in `v`'s allocation (a collect from an empty
/// iterator of same-sized items reuses it): no borrow outlives a call.
fn recycle<'a, 'b>(mut v: Vec<&'a str>) -> Vec<&'b str> {
    v.clear();
    v.into_iter().map(|_| -> &'b str { "" }).collect()
}

/// The body of `mr_reduce` and `mr_combine`.
///
/// # Safety
/// `values` must follow [`MrValues`]'s contract.
pub unsafe fn reduce_entry<M>(
    reduce: &impl ReduceFn<M>,
    key: MrBytes,
    values: MrValues,
    out: MrSink,
    counters: MrCounters,
    err: MrSink,
) -> i32 {
    guarded(counters, err, || {
        let key = utf8("key", key);
        reduce.run(key, &mut Values::new(values), &mut Output { out });
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::c_void;

    /// A host's side of one reduce call: its values in batches, its output and counters.
    struct Host {
        batches: Vec<Vec<&'static str>>,
        next: usize,
        raw: Vec<MrBytes>,
        out: Vec<u8>,
        counted: Vec<(String, u64)>,
    }

    unsafe extern "C" fn next(ctx: *mut c_void, values: *mut *const MrBytes, n: *mut usize) -> u32 {
        let h = unsafe { &mut *(ctx as *mut Host) };
        let Some(b) = h.batches.get(h.next) else {
            return 0;
        };
        h.next += 1;
        h.raw = b
            .iter()
            .map(|v| MrBytes::from_slice(v.as_bytes()))
            .collect();
        unsafe {
            *values = h.raw.as_ptr();
            *n = h.raw.len();
        }
        1
    }

    unsafe extern "C" fn write(ctx: *mut c_void, b: MrBytes) {
        let h = unsafe { &mut *(ctx as *mut Host) };
        h.out.extend_from_slice(unsafe { b.as_slice() });
    }

    unsafe extern "C" fn add(ctx: *mut c_void, name: MrBytes, delta: u64) {
        let h = unsafe { &mut *(ctx as *mut Host) };
        let name = String::from_utf8(unsafe { name.as_slice() }.to_vec()).unwrap();
        h.counted.push((name, delta));
    }

    /// Runs `f` as the host would, with `batches` as the key's values.
    fn reduce_via_abi<M>(f: &impl ReduceFn<M>, batches: &[&[&'static str]]) -> Host {
        let mut h = Host {
            batches: batches.iter().map(|b| b.to_vec()).collect(),
            next: 1,
            raw: Vec::new(),
            out: Vec::new(),
            counted: Vec::new(),
        };
        let first: Vec<MrBytes> = batches[0]
            .iter()
            .map(|v| MrBytes::from_slice(v.as_bytes()))
            .collect();
        let ctx = &mut h as *mut Host as *mut c_void;
        let values = MrValues {
            ctx,
            first: first.as_ptr(),
            n_first: first.len(),
            more: u32::from(batches.len() > 1),
            next,
        };
        let sink = MrSink { ctx, call: write };
        let counters = MrCounters { ctx, add };
        let rc =
            unsafe { reduce_entry(f, MrBytes::from_slice(b"k"), values, sink, counters, sink) };
        assert_eq!(rc, MR_OK, "{}", String::from_utf8_lossy(&h.out));
        h
    }

    fn joined(_key: &str, values: &[&str]) -> String {
        crate::count("calls", 1);
        values.join(",")
    }

    fn streamed(_key: &str, values: &mut Values) -> String {
        let mut all = Vec::new();
        while let Some(v) = values.next() {
            all.push(v.to_string());
        }
        crate::count("values", all.len() as u64);
        all.join(",")
    }

    #[test]
    fn the_slice_form_sees_every_batch_in_order() {
        let h = reduce_via_abi(&joined, &[&["a", "b"], &["c"], &[], &["d", "e"]]);
        assert_eq!(String::from_utf8(h.out).unwrap(), "a,b,c,d,e");
        assert_eq!(h.counted, [("calls".to_string(), 1)]);
        let h = reduce_via_abi(&joined, &[&["only"]]);
        assert_eq!(String::from_utf8(h.out).unwrap(), "only");
    }

    #[test]
    fn the_stream_form_reads_batch_after_batch() {
        let h = reduce_via_abi(&streamed, &[&["a"], &["b", "c"], &["d"]]);
        assert_eq!(String::from_utf8(h.out).unwrap(), "a,b,c,d");
        assert_eq!(h.counted, [("values".to_string(), 4)]);
        let h = reduce_via_abi(&streamed, &[&[]]);
        assert_eq!(String::from_utf8(h.out).unwrap(), "");
    }

    unsafe extern "C" fn collect(ctx: *mut c_void, pairs: *const MrPair, n: usize) {
        let got = unsafe { &mut *(ctx as *mut Vec<(usize, String, String)>) };
        let pairs = unsafe { std::slice::from_raw_parts(pairs, n) };
        for p in pairs {
            let s = |b: MrBytes| String::from_utf8(unsafe { b.as_slice() }.to_vec()).unwrap();
            got.push((n, s(p.key), s(p.value)));
        }
    }

    fn many(_filename: &str, contents: &str, out: &mut Emitter) {
        for (i, w) in contents.split(' ').enumerate() {
            // A borrowed key and a value made on the spot, dropped before the flush.
            out.emit(w, &i.to_string());
        }
    }

    #[test]
    fn map_hands_over_every_pair_in_order() {
        let words: Vec<String> = (0..2500).map(|i| format!("w{i}")).collect();
        let contents = words.join(" ");
        let mut got: Vec<(usize, String, String)> = Vec::new();
        let emit = MrEmit {
            ctx: &mut got as *mut _ as *mut c_void,
            call: collect,
        };
        unsafe extern "C" fn ignore(_: *mut c_void, _: MrBytes) {}
        unsafe extern "C" fn no_count(_: *mut c_void, _: MrBytes, _: u64) {}
        let err = MrSink {
            ctx: std::ptr::null_mut(),
            call: ignore,
        };
        let counters = MrCounters {
            ctx: std::ptr::null_mut(),
            add: no_count,
        };
        let rc = map_entry(
            &many,
            MrBytes::from_slice(b"f"),
            MrBytes::from_slice(contents.as_bytes()),
            emit,
            counters,
            err,
        );
        assert_eq!(rc, MR_OK);
        let pairs: Vec<(String, String)> =
            got.iter().map(|(_, k, v)| (k.clone(), v.clone())).collect();
        let want: Vec<(String, String)> = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i.to_string()))
            .collect();
        assert_eq!(pairs, want);
    }

    #[test]
    fn counting_outside_a_call_does_nothing() {
        crate::count("nowhere", 1);
        assert!(COUNTERS.get().is_none());
    }
}
