//! A throwaway PostgreSQL server for the tests: a new cluster in a temporary
//! directory, listening only on a Unix socket in that directory, stopped and removed
//! when dropped. Real PostgreSQL, no mock (DESIGN.md §3, principle 4).
//!
//! - The binaries (`initdb`, `pg_ctl`) are found on `PATH`, else in Debian's
//!   `/usr/lib/postgresql/VERSION/bin` (the highest version). `.ci/run` installs
//!   Debian's `postgresql`.
//! - PostgreSQL refuses to run as root. As root (CI, this machine), the cluster is
//!   made and run as the unprivileged `nobody` through `runuser -u nobody --`
//!   (util-linux), the temporary directory handed to it first; as anyone else, as
//!   oneself.
//! - Without the binaries: [`PgCluster::start`] panics when `CI` is set (CI must run
//!   these tests) and otherwise says why on standard error and returns `None`: the
//!   test then returns early.
//!
//! The server runs with `fsync=off`: the tests are about concurrency and restarts
//! with a clean shutdown (`pg_ctl restart -m fast`), not about power cuts, and it keeps
//! 400-transaction tests fast on a shared disk.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::TempDir;

/// The port in the socket's name (`.s.PGSQL.PORT`): each cluster has its own socket
/// directory, so they never meet.
const PORT: u16 = 5433;

/// The cluster's superuser.
pub const USER: &str = "telepay";

/// A running throwaway cluster.
pub struct PgCluster {
    dir: TempDir,
    bin: PathBuf,
    /// `nobody` when running as root.
    run_as: Option<&'static str>,
    /// Whether the server syncs its commits to the disk (benchmarks), or not (tests).
    durable: bool,
}

/// Where `initdb` and `pg_ctl` are, if anywhere.
fn find_binaries() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    if on_path.is_some() {
        return on_path;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Whether this process runs as root (`id -u` is 0).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .is_some_and(|uid| uid.trim() == "0")
}

/// `nobody`'s user and group ids, from `id`.
fn nobody_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let output = Command::new("id")
            .args([flag, "nobody"])
            .output()
            .expect("`id nobody`");
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("a numeric id for nobody")
    };
    (id("-u"), id("-g"))
}

impl PgCluster {
    /// Makes and starts a new cluster (`initdb --auth=trust -U telepay`, then `pg_ctl
    /// start` on a Unix socket only). `None`, said on standard error, when PostgreSQL
    /// is not installed and `CI` is not set.
    ///
    /// # Panics
    /// When PostgreSQL is missing under CI, or cannot be started.
    pub fn start(name: &str) -> Option<PgCluster> {
        PgCluster::start_with(name, false)
    }

    /// As [`PgCluster::start`], the server syncing every commit to the disk (`fsync=on`,
    /// PostgreSQL's default): for benchmarks, where durability is part of the cost.
    pub fn start_durable(name: &str) -> Option<PgCluster> {
        PgCluster::start_with(name, true)
    }

    fn start_with(name: &str, durable: bool) -> Option<PgCluster> {
        let Some(bin) = find_binaries() else {
            let why = "PostgreSQL's initdb and pg_ctl are not on PATH nor in \
                       /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)";
            if std::env::var_os("CI").is_some() {
                panic!("{why}: CI must run the PostgreSQL tests");
            }
            eprintln!("skipping: {why}");
            return None;
        };
        let dir = TempDir::new(&format!("pg-{name}"));
        let run_as = if is_root() {
            let (uid, gid) = nobody_ids();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("handing the cluster's directory to nobody");
            Some("nobody")
        } else {
            None
        };
        let cluster = PgCluster {
            dir,
            bin,
            run_as,
            durable,
        };
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data().display().to_string(),
                "--auth=trust",
                "-U",
                USER,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        cluster.pg_ctl(&["start"]);
        Some(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.file("data")
    }

    /// The directory of the server's socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs one of the binaries as the cluster's owner, in its directory; panics with
    /// its output when it fails.
    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let mut command = match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&program);
                command
            }
            None => Command::new(&program),
        };
        let output = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|error| panic!("{}: {error}", program.display()));
        assert!(
            output.status.success(),
            "{} {args:?}: {}\n{}\n{}",
            program.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `pg_ctl ACTION` on the cluster, waiting for it to finish.
    fn pg_ctl(&self, action: &[&str]) {
        let data = self.data().display().to_string();
        let log = self.dir.file("server.log").display().to_string();
        let options = format!(
            "-k {} -c listen_addresses='' -p {PORT} -c fsync={}",
            self.dir.path().display(),
            if self.durable { "on" } else { "off" }
        );
        let mut args = vec!["-D", &data, "-l", &log, "-o", &options, "-w", "-m", "fast"];
        args.extend_from_slice(action);
        self.run("pg_ctl", &args);
    }

    /// Stops the server and starts it again (`pg_ctl restart -m fast`): every
    /// connection is cut.
    pub fn restart(&self) {
        self.pg_ctl(&["restart"]);
    }

    /// Stops the server (`pg_ctl stop -m fast`); [`PgCluster::start_again`] starts it.
    pub fn stop(&self) {
        self.pg_ctl(&["stop"]);
    }

    /// Crashes the server (`pg_ctl stop -m immediate`: every server process quits at
    /// once, without a checkpoint, transactions in flight cut off); the next start
    /// recovers from the write-ahead log. [`PgCluster::start_again`] starts it.
    pub fn crash(&self) {
        // The last `-m` given wins over the `-m fast` every action gets.
        self.pg_ctl(&["-m", "immediate", "stop"]);
    }

    /// Starts the server [`PgCluster::stop`] stopped.
    pub fn start_again(&self) {
        self.pg_ctl(&["start"]);
    }

    /// A new empty database named `name`; its address.
    pub fn create_database(&self, name: &str) -> String {
        let mut admin = ::postgres::Client::connect(&self.address("postgres"), ::postgres::NoTls)
            .expect("connecting to the cluster");
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .expect("CREATE DATABASE");
        self.address(name)
    }

    /// Records in the database at `address` a migration `version` named `name`, as a
    /// newer build would have applied it.
    pub fn record_migration(&self, address: &str, version: i64, name: &str) {
        let mut client = ::postgres::Client::connect(address, ::postgres::NoTls)
            .expect("connecting to the database");
        client
            .execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[&version, &name],
            )
            .expect("recording a migration");
    }

    /// The address of database `name`: user `telepay` over the cluster's Unix socket.
    pub fn address(&self, name: &str) -> String {
        format!(
            "postgres://{USER}@/{name}?host={}&port={PORT}",
            self.dir.path().display()
        )
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Not `run`: no panic while dropping (a test that failed is unwinding).
        let program = self.bin.join("pg_ctl");
        let data = self.data();
        let mut command = match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&program);
                command
            }
            None => Command::new(&program),
        };
        let _ = command
            .arg("-D")
            .arg(&data)
            .args(["-m", "fast", "-w", "stop"])
            .current_dir(self.dir.path())
            .output();
    }
}
