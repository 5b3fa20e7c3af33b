//! `scripts/demo-cluster` from a fresh checkout: every role its own process (one
//! provider, two card acquirers on one journal, a wallet acquirer, two front-ends, the
//! telecollection centre), terminals buying through both front-ends, then a cut-off and
//! a remittance — and the totals of the terminals, the journal and the centre agree.

mod common;
use common::TempDir;

#[test]
fn the_demo_cluster_runs_and_every_side_counts_the_same() {
    let dir = TempDir::new("demo-cluster");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = std::process::Command::new("bash")
        .arg(root.join("scripts/demo-cluster"))
        .args(["3", "2"])
        .env("TELEPAY", env!("CARGO_BIN_EXE_telepay"))
        .env("DEMO_DIR", dir.path())
        .env("DEMO_PORT", "27400")
        .output()
        .expect("bash runs the script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("totals match on every side"), "{stdout}");
    assert!(
        stdout.contains("'FE1'") && stdout.contains("'FE2'"),
        "{stdout}"
    );
}
