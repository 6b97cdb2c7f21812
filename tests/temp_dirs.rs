//! The tests' folders do not outlive their test (runs used to leave gigabytes of simulated maps
//! in /tmp): `tempdir`'s guard removes the folder when the test ends, also when it panics, and
//! keeps it when `EDXS_KEEP_TEST_DIRS` asks. One test function, because the variable is
//! process-wide and would keep the folders of tests running beside it.

use edxs_suite::{tempdir, KEEP_TEST_DIRS};
use std::path::PathBuf;

/// Makes a folder holding a file and a subfolder, as a test's outputs would, and returns its
/// path once the guard is gone.
fn used_and_dropped(name: &str) -> PathBuf {
    let dir = tempdir(name);
    std::fs::create_dir_all(dir.join("out/maps")).unwrap();
    std::fs::write(dir.join("out/maps/H.npy"), b"maps").unwrap();
    assert!(dir.join("out/maps/H.npy").is_file());
    dir.to_path_buf()
}

#[test]
fn test_folders_are_removed_at_the_end_even_on_panic_unless_kept() {
    std::env::remove_var(KEEP_TEST_DIRS);

    let path = used_and_dropped("guard-drop");
    assert!(!path.exists(), "{} left behind", path.display());

    // A failing test: the guard drops while the panic unwinds.
    let mut seen = None;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let dir = tempdir("guard-panic");
        std::fs::write(dir.join("counts.npy"), b"counts").unwrap();
        seen = Some(dir.to_path_buf());
        panic!("the test failed");
    }));
    assert!(r.is_err());
    let path = seen.expect("the folder was made");
    assert!(!path.exists(), "{} left behind by a panic", path.display());

    // A fresh folder each time: what a previous run left under the same name is gone.
    let dir = tempdir("guard-fresh");
    std::fs::write(dir.join("stale"), b"old").unwrap();
    drop(dir);
    let dir = tempdir("guard-fresh");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    drop(dir);

    // "0" and "" do not keep; any other value does.
    for off in ["0", ""] {
        std::env::set_var(KEEP_TEST_DIRS, off);
        let path = used_and_dropped("guard-off");
        assert!(
            !path.exists(),
            "{KEEP_TEST_DIRS}={off:?} kept {}",
            path.display()
        );
    }
    std::env::set_var(KEEP_TEST_DIRS, "1");
    let path = used_and_dropped("guard-keep");
    let kept = path.join("out/maps/H.npy").is_file();
    std::env::remove_var(KEEP_TEST_DIRS);
    std::fs::remove_dir_all(&path).unwrap();
    assert!(kept, "{KEEP_TEST_DIRS}=1 did not keep {}", path.display());
}
