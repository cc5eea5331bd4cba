//! The plugin host: loads an app library once (it is never unloaded: Rust
//! thread-locals inside it would dangle) and calls it through the C ABI of
//! [`mrapp::abi`]. Nothing but `#[repr(C)]` values and function pointers cross over.

use crate::task::Counters;
use mrapp::abi::{
    AbiVersionFn, MapFnPtr, MrBytes, MrCounters, MrEmit, MrPair, MrSink, MrValues, RawOutputFn,
    ReduceFnPtr, MR_ABI_VERSION, MR_OK, SYM_ABI_VERSION, SYM_COMBINE, SYM_MAP, SYM_RAW_OUTPUT,
    SYM_REDUCE,
};
use std::ffi::c_void;
use std::path::{Path, PathBuf};

/// Why an app library cannot be used. Each message names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// No file at the path.
    #[error("app library {0} not found (build the apps with `cargo build --release`; they are target/release/lib<app>.so)")]
    NotFound(PathBuf),
    /// The file exists but the dynamic loader refused it.
    #[error("{path} is not a loadable shared library ({detail}); pass the .so built from an mr app crate")]
    NotALibrary {
        /// The file.
        path: PathBuf,
        /// The loader's message.
        detail: String,
    },
    /// A library, but without the mr entry points.
    #[error("{path} is not an mr app: it does not export `{symbol}` (export map and reduce with mrapp::export_app!)")]
    NotAnApp {
        /// The library.
        path: PathBuf,
        /// The missing symbol.
        symbol: &'static str,
    },
    /// Built against another version of the ABI.
    #[error("{path} was built for mr app ABI version {found}, this host speaks version {expected}; rebuild the app against this mrapp (`cargo build --release` in its crate)")]
    AbiMismatch {
        /// The library.
        path: PathBuf,
        /// What the library reports.
        found: u32,
        /// What this host speaks.
        expected: u32,
    },
}

/// A failure inside the app (a caught panic), with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AppError(pub String);

/// A loaded app.
pub struct App {
    path: PathBuf,
    map: MapFnPtr,
    reduce: ReduceFnPtr,
    combine: Option<ReduceFnPtr>,
    raw_output: bool,
}

fn sym_name(sym: &'static [u8]) -> &'static str {
    std::str::from_utf8(&sym[..sym.len() - 1]).unwrap_or("?")
}

impl App {
    /// Loads and checks the library at `path`.
    pub fn load(path: &Path) -> Result<App, PluginError> {
        if !path.is_file() {
            return Err(PluginError::NotFound(path.to_path_buf()));
        }
        // A bare file name would make dlopen search the system paths instead.
        let load_path = if path.components().count() == 1 {
            Path::new(".").join(path)
        } else {
            path.to_path_buf()
        };
        // SAFETY: loading runs the library's initialisers; that is the point of a plugin.
        let lib = unsafe { libloading::Library::new(&load_path) }.map_err(|e| {
            PluginError::NotALibrary {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }
        })?;
        // Never unloaded: the function pointers below stay valid for the process.
        let lib: &'static libloading::Library = Box::leak(Box::new(lib));
        let not_app = |symbol| PluginError::NotAnApp {
            path: path.to_path_buf(),
            symbol: sym_name(symbol),
        };
        // SAFETY: the symbols' types are fixed by the ABI, checked by the version below.
        unsafe {
            let version: AbiVersionFn = *lib
                .get::<AbiVersionFn>(SYM_ABI_VERSION)
                .map_err(|_| not_app(SYM_ABI_VERSION))?;
            let found = version();
            if found != MR_ABI_VERSION {
                return Err(PluginError::AbiMismatch {
                    path: path.to_path_buf(),
                    found,
                    expected: MR_ABI_VERSION,
                });
            }
            let map: MapFnPtr = *lib.get::<MapFnPtr>(SYM_MAP).map_err(|_| not_app(SYM_MAP))?;
            let reduce: ReduceFnPtr = *lib
                .get::<ReduceFnPtr>(SYM_REDUCE)
                .map_err(|_| not_app(SYM_REDUCE))?;
            let combine = lib.get::<ReduceFnPtr>(SYM_COMBINE).ok().map(|s| *s);
            let raw_output = match lib.get::<RawOutputFn>(SYM_RAW_OUTPUT) {
                Ok(f) => f() != 0,
                Err(_) => false,
            };
            Ok(App {
                path: path.to_path_buf(),
                map,
                reduce,
                combine,
                raw_output,
            })
        }
    }

    /// The library's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether reduce's results are the output's bytes as they are (the app writes its
    /// own lines), rather than `key result` lines.
    pub fn raw_output(&self) -> bool {
        self.raw_output
    }

    /// Whether the app exports a combiner.
    pub fn has_combiner(&self) -> bool {
        self.combine.is_some()
    }

    /// Runs map over `contents`, calling `emit(key, value)` for every pair and adding
    /// the app's counts to `counters`. `emit` must not panic (it is called from inside
    /// the app).
    pub fn map<F: FnMut(&[u8], &[u8])>(
        &self,
        filename: &str,
        contents: &str,
        counters: &mut Counters,
        mut emit: F,
    ) -> Result<(), AppError> {
        unsafe extern "C" fn trampoline<G: FnMut(&[u8], &[u8])>(
            ctx: *mut c_void,
            pairs: *const MrPair,
            n: usize,
        ) {
            // SAFETY: ctx is the `&mut F` passed below, alive for the whole map call.
            let f = unsafe { &mut *(ctx as *mut G) };
            if n == 0 {
                return;
            }
            // SAFETY: the app passes `n` pairs valid for this call.
            let pairs = unsafe { std::slice::from_raw_parts(pairs, n) };
            for p in pairs {
                // SAFETY: as above.
                unsafe { f(p.key.as_slice(), p.value.as_slice()) }
            }
        }
        let mut err = String::new();
        let emit = MrEmit {
            ctx: &mut emit as *mut F as *mut c_void,
            call: trampoline::<F>,
        };
        let mut sink = CounterSink::new(counters);
        // SAFETY: arguments follow the ABI; the borrowed data outlives the call.
        let rc = unsafe {
            (self.map)(
                MrBytes::from_slice(filename.as_bytes()),
                MrBytes::from_slice(contents.as_bytes()),
                emit,
                sink.abi(),
                string_sink(&mut err),
            )
        };
        sink.finish()?;
        result(rc, err)
    }

    /// Runs reduce for one key group whose values are all in `values`, appending the
    /// result to `out`.
    pub fn reduce(
        &self,
        key: &[u8],
        values: &[&[u8]],
        counters: &mut Counters,
        out: &mut Vec<u8>,
    ) -> Result<(), AppError> {
        call_reduce(self.reduce, key, values, None, counters, out)
    }

    /// Runs reduce for one key group whose values are `first`, then every batch `rest`
    /// yields: the app reads them as it goes, so they need not fit in memory at once.
    pub fn reduce_stream(
        &self,
        key: &[u8],
        first: &[&[u8]],
        rest: &mut dyn ValueBatches,
        counters: &mut Counters,
        out: &mut Vec<u8>,
    ) -> Result<(), AppError> {
        call_reduce(self.reduce, key, first, Some(rest), counters, out)
    }

    /// Runs the combiner for one key group, if the app has one.
    pub fn combine(
        &self,
        key: &[u8],
        values: &[&[u8]],
        counters: &mut Counters,
        out: &mut Vec<u8>,
    ) -> Result<(), AppError> {
        match self.combine {
            Some(f) => call_reduce(f, key, values, None, counters, out),
            None => Err(AppError("the app has no combiner".into())),
        }
    }

    /// [`App::combine`] of values already in the ABI's form: the batch is handed to the
    /// app as it is, not copied (the combine buffer calls this once per 256 values of a
    /// frequent key, so a copy per value was a tenth of a word count's instructions).
    pub fn combine_values(
        &self,
        key: &[u8],
        values: &[ValueRef<'_>],
        counters: &mut Counters,
        out: &mut Vec<u8>,
    ) -> Result<(), AppError> {
        match self.combine {
            Some(f) => call_reduce_raw(f, key, ValueRef::as_raw(values), None, counters, out),
            None => Err(AppError("the app has no combiner".into())),
        }
    }
}

/// A value borrowed for a call into the app, laid out as the ABI's [`MrBytes`], so
/// that a slice of them crosses the boundary without a copy.
#[repr(transparent)]
#[derive(Clone, Copy, Debug)]
pub struct ValueRef<'a> {
    raw: MrBytes,
    _bytes: std::marker::PhantomData<&'a [u8]>,
}

impl<'a> ValueRef<'a> {
    /// The bytes.
    pub fn as_bytes(self) -> &'a [u8] {
        // SAFETY: `raw` was made from a `&'a [u8]` (see `From`).
        unsafe { self.raw.as_slice() }
    }

    /// `raw` as values.
    ///
    /// # Safety
    /// Every entry of `raw` points to bytes that stay readable and unchanged for `'a`.
    pub(crate) unsafe fn from_raw(raw: &'a [MrBytes]) -> &'a [ValueRef<'a>] {
        // SAFETY: `ValueRef` is a transparent `MrBytes`; the bytes outlive `'a` (above).
        unsafe { std::slice::from_raw_parts(raw.as_ptr().cast::<ValueRef<'a>>(), raw.len()) }
    }

    fn as_raw<'s>(values: &'s [ValueRef<'_>]) -> &'s [MrBytes] {
        // SAFETY: `ValueRef` is a transparent `MrBytes` (its other field is zero-sized).
        unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<MrBytes>(), values.len()) }
    }
}

impl<'a> From<&'a [u8]> for ValueRef<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        ValueRef {
            raw: MrBytes::from_slice(bytes),
            _bytes: std::marker::PhantomData,
        }
    }
}

/// More values of the key a streaming reduce is reading, batch after batch.
pub trait ValueBatches {
    /// The next batch (never empty), or `None` when the key has no more values. The
    /// batch before it is not used again.
    fn next_batch(&mut self) -> Option<ValueBatch<'_>>;
}

/// A batch of values: value `i` is `arena[ends[i - 1]..ends[i]]` (from 0 for the first).
#[derive(Debug, Clone, Copy)]
pub struct ValueBatch<'a> {
    /// The values' bytes, one after the other.
    pub arena: &'a [u8],
    /// Where each value ends in `arena`.
    pub ends: &'a [usize],
}

impl<'a> ValueBatch<'a> {
    /// The values in order.
    pub fn iter(self) -> impl Iterator<Item = &'a [u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let v = &self.arena[start..end];
            start = end;
            v
        })
    }
}

/// Distinct counter names one attempt may use (Hadoop's `mapreduce.job.counters.max`
/// is 120): counters are a few totals, and each name travels in every report.
pub const MAX_COUNTERS: usize = 1000;

/// Counter names are cut to this many bytes.
const MAX_COUNTER_NAME: usize = 200;

/// The host side of [`MrCounters`]: adds to an attempt's counters, and notes the first
/// name past [`MAX_COUNTERS`] (the call then fails when it returns).
struct CounterSink<'a> {
    counters: &'a mut Counters,
    too_many: Option<String>,
}

impl<'a> CounterSink<'a> {
    fn new(counters: &'a mut Counters) -> Self {
        CounterSink {
            counters,
            too_many: None,
        }
    }

    fn abi(&mut self) -> MrCounters {
        unsafe extern "C" fn add(ctx: *mut c_void, name: MrBytes, delta: u64) {
            // SAFETY: ctx is the `CounterSink` of this call.
            let sink = unsafe { &mut *(ctx as *mut CounterSink<'_>) };
            // SAFETY: the app passes a slice valid for this call.
            let name = unsafe { name.as_slice() };
            let name = &name[..name.len().min(MAX_COUNTER_NAME)];
            let name = String::from_utf8_lossy(name);
            if !sink.counters.add_within(&name, delta, MAX_COUNTERS) && sink.too_many.is_none() {
                sink.too_many = Some(name.into_owned());
            }
        }
        MrCounters {
            ctx: self as *mut CounterSink<'_> as *mut c_void,
            add,
        }
    }

    fn finish(self) -> Result<(), AppError> {
        match self.too_many {
            None => Ok(()),
            Some(name) => Err(AppError(format!(
                "the app used more than {MAX_COUNTERS} counter names (one more was {name:?}); \
                 counters are for a few totals, not for data per key"
            ))),
        }
    }
}

unsafe extern "C" fn append_bytes(ctx: *mut c_void, bytes: MrBytes) {
    // SAFETY: ctx is the `&mut Vec<u8>` given to `bytes_sink`.
    let out = unsafe { &mut *(ctx as *mut Vec<u8>) };
    // SAFETY: the app passes a slice valid for this call.
    out.extend_from_slice(unsafe { bytes.as_slice() });
}

unsafe extern "C" fn append_string(ctx: *mut c_void, bytes: MrBytes) {
    // SAFETY: ctx is the `&mut String` given to `string_sink`.
    let out = unsafe { &mut *(ctx as *mut String) };
    // SAFETY: the app passes a slice valid for this call.
    out.push_str(&String::from_utf8_lossy(unsafe { bytes.as_slice() }));
}

fn bytes_sink(out: &mut Vec<u8>) -> MrSink {
    MrSink {
        ctx: out as *mut Vec<u8> as *mut c_void,
        call: append_bytes,
    }
}

fn string_sink(out: &mut String) -> MrSink {
    MrSink {
        ctx: out as *mut String as *mut c_void,
        call: append_string,
    }
}

fn result(rc: i32, err: String) -> Result<(), AppError> {
    if rc == MR_OK {
        Ok(())
    } else if err.is_empty() {
        Err(AppError(format!("app failed with code {rc}")))
    } else {
        Err(AppError(err))
    }
}

/// The host side of [`MrValues`] beyond the first batch.
struct Stream<'a, 'b> {
    rest: &'a mut dyn ValueBatches,
    raw: &'b mut Vec<MrBytes>,
}

unsafe extern "C" fn next_values(
    ctx: *mut c_void,
    values: *mut *const MrBytes,
    n: *mut usize,
) -> u32 {
    // SAFETY: ctx is the `Stream` of this reduce call.
    let s = unsafe { &mut *(ctx as *mut Stream<'_, '_>) };
    s.raw.clear();
    match s.rest.next_batch() {
        Some(batch) => {
            s.raw.extend(batch.iter().map(MrBytes::from_slice));
            // SAFETY: the app passes pointers to two writable locals.
            unsafe {
                *values = s.raw.as_ptr();
                *n = s.raw.len();
            }
            1
        }
        None => 0,
    }
}

unsafe extern "C" fn no_more_values(
    _ctx: *mut c_void,
    _values: *mut *const MrBytes,
    _n: *mut usize,
) -> u32 {
    0
}

fn call_reduce(
    f: ReduceFnPtr,
    key: &[u8],
    first: &[&[u8]],
    rest: Option<&mut dyn ValueBatches>,
    counters: &mut Counters,
    out: &mut Vec<u8>,
) -> Result<(), AppError> {
    thread_local! {
        // The slices handed to the app, their allocation kept from call to call (a sort
        // calls reduce once per record).
        static RAW: std::cell::Cell<Vec<MrBytes>> = const { std::cell::Cell::new(Vec::new()) };
    }
    let mut raw = RAW.take();
    raw.clear();
    raw.extend(first.iter().map(|v| MrBytes::from_slice(v)));
    let done = call_reduce_raw(f, key, &raw, rest, counters, out);
    // No pointer into `first` is kept past the call.
    raw.clear();
    RAW.set(raw);
    done
}

/// Calls reduce (or combine) `f` with the first batch `first` as the app will see it.
fn call_reduce_raw(
    f: ReduceFnPtr,
    key: &[u8],
    first: &[MrBytes],
    rest: Option<&mut dyn ValueBatches>,
    counters: &mut Counters,
    out: &mut Vec<u8>,
) -> Result<(), AppError> {
    let mut later = Vec::new();
    let mut stream = rest.map(|rest| Stream {
        rest,
        raw: &mut later,
    });
    let values = MrValues {
        ctx: stream.as_mut().map_or(std::ptr::null_mut(), |s| {
            s as *mut Stream<'_, '_> as *mut c_void
        }),
        first: first.as_ptr(),
        n_first: first.len(),
        more: u32::from(stream.is_some()),
        next: if stream.is_some() {
            next_values
        } else {
            no_more_values
        },
    };
    let mut err = String::new();
    let mut sink = CounterSink::new(counters);
    // SAFETY: arguments follow the ABI; the borrowed data outlives the call.
    let rc = unsafe {
        f(
            MrBytes::from_slice(key),
            values,
            bytes_sink(out),
            sink.abi(),
            string_sink(&mut err),
        )
    };
    sink.finish()?;
    result(rc, err)
}
