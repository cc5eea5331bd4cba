//! What [`export_app!`](crate::export_app) expands to: the app side of the C ABI.
//! Converts ABI slices to `&str`, calls the author's function inside `catch_unwind`,
//! and reports a panic as a failure message instead of unwinding into the host.

use crate::abi::{MrBytes, MrEmit, MrSink, MR_FAILED, MR_OK};
use crate::KeyValue;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Hands map output to the framework one pair at a time, without building a `Vec`.
pub struct Emitter {
    emit: MrEmit,
}

impl Emitter {
    /// Emits one intermediate pair. The framework copies the bytes before returning.
    pub fn emit(&mut self, key: &str, value: &str) {
        // SAFETY: `call` and `ctx` come from the host for this map call, and the
        // slices outlive the call.
        unsafe {
            (self.emit.call)(
                self.emit.ctx,
                MrBytes::from_slice(key.as_bytes()),
                MrBytes::from_slice(value.as_bytes()),
            )
        }
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
}

/// The two shapes a reduce (or combine) function may have; `M` lets both coexist.
pub trait ReduceFn<M> {
    /// Runs reduce for one key, sending the result to `out`.
    fn run(&self, key: &str, values: &[&str], out: &mut Output);
}

/// Marker: `fn(&str, &[&str]) -> String`.
pub struct ReturnsString;
/// Marker: `fn(&str, &[&str], &mut Output)`.
pub struct UsesOutput;

impl<F: Fn(&str, &[&str]) -> String> ReduceFn<ReturnsString> for F {
    fn run(&self, key: &str, values: &[&str], out: &mut Output) {
        out.write(&self(key, values));
    }
}

impl<F: Fn(&str, &[&str], &mut Output)> ReduceFn<UsesOutput> for F {
    fn run(&self, key: &str, values: &[&str], out: &mut Output) {
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
    // SAFETY: the host guarantees `b` is readable for the duration of the call.
    let bytes = unsafe { b.as_slice() };
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

/// Runs `f` with panics caught; a panic becomes [`MR_FAILED`] with its message on `err`.
fn guarded(err: MrSink, f: impl FnOnce()) -> i32 {
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
    err: MrSink,
) -> i32 {
    guarded(err, || {
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
/// `values` must point to `n_values` valid [`MrBytes`].
pub unsafe fn reduce_entry<M>(
    reduce: &impl ReduceFn<M>,
    key: MrBytes,
    values: *const MrBytes,
    n_values: usize,
    out: MrSink,
    err: MrSink,
) -> i32 {
    guarded(err, || {
        let key = utf8("key", key);
        let raw = if n_values == 0 {
            &[][..]
        } else {
            // SAFETY: the caller guarantees `values` holds `n_values` entries.
            unsafe { std::slice::from_raw_parts(values, n_values) }
        };
        thread_local! {
            // The values' slices, their allocation kept from call to call (a sort calls
            // reduce once per record).
            static VALUES: std::cell::Cell<Vec<&'static str>> =
                const { std::cell::Cell::new(Vec::new()) };
        }
        let mut values = recycle(VALUES.take());
        values.extend(raw.iter().map(|v| utf8("value", *v)));
        reduce.run(key, &values, &mut Output { out });
        VALUES.set(recycle(values));
    })
}
