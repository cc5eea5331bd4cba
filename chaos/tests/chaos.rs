//! Runs `mr-chaos --seeds 5` against the release binaries, building them first.

use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn five_seeds_of_chaos() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tool = std::env::var_os("MR_CORPUS_TOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../tools/make-corpus"));
    assert!(
        tool.is_file(),
        "the corpus tool {} is missing: the chaos test cannot run without it \
         (it is tools/make-corpus in the repository; or set MR_CORPUS_TOOL)",
        tool.display()
    );
    // The one harness builds the release binaries (mr-chaos among them) and finds them.
    let exe = mr_tests::bins().join("mr-chaos");
    let out = Command::new(&exe)
        .args(["--seeds", "5"])
        .env("MR_CORPUS_TOOL", &tool)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "mr-chaos failed ({}):\n{stdout}",
        out.status
    );
    assert_eq!(stdout.matches(": PASS ").count(), 5, "{stdout}");
}
