//! The input of every run: a wc corpus made by `tools/make-corpus` from the bundled books
//! in a temp dir (once per invocation), and the reference answer computed once by
//! `mrsequential`.

use crate::Bins;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// The seed given to make-corpus; fixed, so that a chaos seed replays the same run.
const CORPUS_SEED: u64 = 1;
/// How many files the corpus is cut into.
const CORPUS_FILES: u32 = 8;

/// The repository's root.
fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Where make-corpus lives: `$MR_CORPUS_TOOL`, else the repository's `tools/make-corpus`.
pub fn default_tool() -> PathBuf {
    match std::env::var_os("MR_CORPUS_TOOL") {
        Some(p) => PathBuf::from(p),
        None => repo().join("tools/make-corpus"),
    }
}

/// A generated corpus and its expected output.
pub struct Corpus {
    /// Holds the files; removed on drop.
    _dir: TempDir,
    /// The input files, absolute.
    pub files: Vec<PathBuf>,
    /// The sorted lines of `mrsequential`'s output.
    pub reference: Vec<u8>,
}

/// Generates `mb` MiB of corpus with `tool` and runs `mrsequential` over it.
pub fn prepare(tool: &Path, mb: u32, bins: &Bins) -> Result<Corpus> {
    if !tool.is_file() {
        bail!(
            "corpus tool {} is missing (set MR_CORPUS_TOOL to its path)",
            tool.display()
        );
    }
    let dir = tempfile::Builder::new()
        .prefix("mr-chaos-corpus-")
        .tempdir()
        .context("cannot create the corpus temp dir")?;
    let out = dir.path().join("corpus");
    let made = Command::new("python3")
        .arg(tool)
        .args(["--out".as_ref(), out.as_os_str()])
        .args(["--total-mb", &mb.to_string()])
        .args(["--files", &CORPUS_FILES.to_string()])
        .args(["--seed", &CORPUS_SEED.to_string()])
        .args(["--src".as_ref(), repo().join("data").as_os_str()])
        .output()
        .with_context(|| format!("cannot run python3 {}", tool.display()))?;
    if !made.status.success() {
        bail!(
            "{} failed ({}): {}",
            tool.display(),
            made.status,
            String::from_utf8_lossy(&made.stderr).trim()
        );
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&out)
        .with_context(|| format!("cannot list {}", out.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.sort();
    if files.is_empty() {
        bail!("{} produced no files in {}", tool.display(), out.display());
    }
    let ref_path = dir.path().join("reference.txt");
    let status = Command::new(&bins.mrsequential)
        .arg("--output")
        .arg(&ref_path)
        .arg(&bins.wc)
        .args(&files)
        .status()
        .with_context(|| format!("cannot run {}", bins.mrsequential.display()))?;
    if !status.success() {
        bail!("mrsequential failed: {status}");
    }
    let reference =
        std::fs::read(&ref_path).with_context(|| format!("cannot read {}", ref_path.display()))?;
    Ok(Corpus {
        _dir: dir,
        files,
        reference: sorted_lines([reference.as_slice()]),
    })
}

/// The lines of all `parts` sorted bytewise and joined, each ending in `\n`: the
/// canonical form two outputs are compared in.
pub fn sorted_lines<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut lines: Vec<&[u8]> = parts
        .into_iter()
        .flat_map(|p| p.split(|&b| b == b'\n'))
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort_unstable();
    let mut out = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}
