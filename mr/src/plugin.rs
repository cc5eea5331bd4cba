//! The plugin host: loads an app library once (it is never unloaded: Rust
//! thread-locals inside it would dangle) and calls it through the C ABI of
//! [`mrapp::abi`]. Nothing but `#[repr(C)]` values and function pointers cross over.

use mrapp::abi::{
    AbiVersionFn, MapFnPtr, MrBytes, MrEmit, MrSink, RawOutputFn, ReduceFnPtr, MR_ABI_VERSION,
    MR_OK, SYM_ABI_VERSION, SYM_COMBINE, SYM_MAP, SYM_RAW_OUTPUT, SYM_REDUCE,
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
    #[error("{path} was built for mr app ABI version {found}, this host speaks version {expected}; rebuild the app against this mrapp")]
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

    /// Runs map over `contents`, calling `emit(key, value)` for every pair.
    /// `emit` must not panic (it is called from inside the app).
    pub fn map<F: FnMut(&[u8], &[u8])>(
        &self,
        filename: &str,
        contents: &str,
        mut emit: F,
    ) -> Result<(), AppError> {
        unsafe extern "C" fn trampoline<G: FnMut(&[u8], &[u8])>(
            ctx: *mut c_void,
            key: MrBytes,
            value: MrBytes,
        ) {
            // SAFETY: ctx is the `&mut F` passed below, alive for the whole map call.
            let f = unsafe { &mut *(ctx as *mut G) };
            // SAFETY: the app passes slices valid for this call.
            unsafe { f(key.as_slice(), value.as_slice()) }
        }
        let mut err = String::new();
        let emit = MrEmit {
            ctx: &mut emit as *mut F as *mut c_void,
            call: trampoline::<F>,
        };
        // SAFETY: arguments follow the ABI; the borrowed data outlives the call.
        let rc = unsafe {
            (self.map)(
                MrBytes::from_slice(filename.as_bytes()),
                MrBytes::from_slice(contents.as_bytes()),
                emit,
                string_sink(&mut err),
            )
        };
        result(rc, err)
    }

    /// Runs reduce for one key group, appending the result to `out`.
    pub fn reduce(&self, key: &[u8], values: &[&[u8]], out: &mut Vec<u8>) -> Result<(), AppError> {
        call_reduce(self.reduce, key, values, out)
    }

    /// Runs the combiner for one key group, if the app has one.
    pub fn combine(&self, key: &[u8], values: &[&[u8]], out: &mut Vec<u8>) -> Result<(), AppError> {
        match self.combine {
            Some(f) => call_reduce(f, key, values, out),
            None => Err(AppError("the app has no combiner".into())),
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

fn call_reduce(
    f: ReduceFnPtr,
    key: &[u8],
    values: &[&[u8]],
    out: &mut Vec<u8>,
) -> Result<(), AppError> {
    thread_local! {
        // The slices handed to the app, their allocation kept from call to call (a sort
        // calls reduce once per record).
        static RAW: std::cell::Cell<Vec<MrBytes>> = const { std::cell::Cell::new(Vec::new()) };
    }
    let mut raw = RAW.take();
    raw.clear();
    raw.extend(values.iter().map(|v| MrBytes::from_slice(v)));
    let mut err = String::new();
    // SAFETY: arguments follow the ABI; the borrowed data outlives the call.
    let rc = unsafe {
        f(
            MrBytes::from_slice(key),
            raw.as_ptr(),
            raw.len(),
            bytes_sink(out),
            string_sink(&mut err),
        )
    };
    // No pointer into `values` is kept past the call.
    raw.clear();
    RAW.set(raw);
    result(rc, err)
}
