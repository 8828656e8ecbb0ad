//! The fixtures every test uses: the demo shop in a real SQLite file and in a
//! real, throwaway PostgreSQL database, a real brisk server on port 0, and a
//! way to ask either database the same question directly in SQL.
//!
//! PostgreSQL tests skip (saying so) when the server is not reachable, unless
//! `TEST_REQUIRE_SERVICES=1`, which CI sets: then they fail.

use brisk::app::App;
use brisk::config::{Config, Overrides, Settings};
use brisk::dataset::{self, DemoSpec, Target};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The scale of the test shop: 1,000 users, 500 products, 10,000 orders.
pub const SCALE: f64 = 0.1;
pub const SEED: u64 = 42;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running brisk over one database, and direct SQL access to the same data.
pub struct Fixture {
    pub backend: Backend,
    /// The running app's state: its cache counters and statement count.
    pub state: std::sync::Arc<brisk::state::AppState>,
    pub base: String,
    pub client: reqwest::Client,
    pub db_url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[allow(clippy::disallowed_methods)] // the tests' own variables, not brisk's configuration
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into())
}

#[allow(clippy::disallowed_methods)] // the tests' own variables, not brisk's configuration
pub fn services_required() -> bool {
    std::env::var("TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1" || v == "true")
}

/// Runs async setup on its own runtime, so a `OnceLock` can hold its result
/// whichever test's runtime asks first.
fn block_on_fresh<T: Send + 'static>(
    future: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    })
    .join()
    .expect("fixture setup panicked")
}

/// The demo shop in a SQLite file of this test process.
pub fn sqlite_shop() -> &'static PathBuf {
    static SHOP: OnceLock<PathBuf> = OnceLock::new();
    SHOP.get_or_init(|| {
        let dir = std::env::temp_dir().join("brisk-tests");
        std::fs::create_dir_all(&dir).unwrap();
        remove_stale_files(&dir);
        let path = dir.join(format!("shop-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let load_path = path.clone();
        block_on_fresh(async move {
            dataset::load(
                Target::Sqlite(&load_path),
                DemoSpec {
                    scale: SCALE,
                    seed: SEED,
                },
                true,
            )
            .await
            .expect("loading the SQLite test shop")
        });
        path
    })
}

/// Removes test files left by processes that are gone.
fn remove_stale_files(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let pid = name
            .strip_prefix("shop-")
            .and_then(|rest| rest.split(['.', '-']).next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Creates a throwaway database named `brisk_test_<pid>_<tag>` and returns
/// its URL; `None` when PostgreSQL is not reachable and not required.
pub fn throwaway_postgres(tag: &str) -> Option<String> {
    let admin = postgres_admin_url();
    let name = format!("brisk_test_{}_{tag}", std::process::id());
    let created = block_on_fresh({
        let admin = admin.clone();
        let name = name.clone();
        async move {
            let (client, connection) =
                tokio_postgres::connect(&admin, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            drop_stale_databases(&client).await;
            client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
                .await?;
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await?;
            Ok::<_, tokio_postgres::Error>(())
        }
    });
    match created {
        Ok(()) => Some(replace_database(&admin, &name)),
        Err(error) if !services_required() => {
            // Written straight to stderr: the test harness hides eprintln!
            // output of passing tests, and a skip must be seen.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "skipped: tests on PostgreSQL ({tag}): not reachable at {admin} ({error}); \
                 TEST_REQUIRE_SERVICES=1 makes this a failure"
            );
            None
        }
        Err(error) => panic!(
            "PostgreSQL is required (TEST_REQUIRE_SERVICES) but not reachable at {admin}: {error}"
        ),
    }
}

/// Drops test databases whose process has exited.
async fn drop_stale_databases(client: &tokio_postgres::Client) {
    let Ok(rows) = client
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'brisk\\_test\\_%'",
            &[],
        )
        .await
    else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
                .await;
        }
    }
}

fn replace_database(url: &str, name: &str) -> String {
    let (base, _) = url
        .rsplit_once('/')
        .expect("a postgres URL ends with /database");
    format!("{base}/{name}")
}

/// The demo shop in this process's throwaway PostgreSQL database.
pub fn postgres_shop() -> Option<&'static String> {
    static SHOP: OnceLock<Option<String>> = OnceLock::new();
    SHOP.get_or_init(|| {
        let url = throwaway_postgres("shop")?;
        let load_url = url.clone();
        block_on_fresh(async move {
            dataset::load(
                Target::Postgres(&load_url),
                DemoSpec {
                    scale: SCALE,
                    seed: SEED,
                },
                true,
            )
            .await
            .expect("loading the PostgreSQL test shop")
        });
        Some(url)
    })
    .as_ref()
}

/// The URL of the shared test shop on `backend` (`on_both!` has checked
/// that PostgreSQL is there).
pub fn shop_url(backend: Backend) -> String {
    match backend {
        Backend::Sqlite => sqlite_shop().display().to_string(),
        Backend::Postgres => postgres_shop()
            .expect("on_both! runs PostgreSQL tests only when it is reachable")
            .clone(),
    }
}

impl Fixture {
    /// The shared test shop on `backend`, served with the default config.
    pub async fn shop(backend: Backend) -> Fixture {
        Fixture::serve(backend, &shop_url(backend), |_| {}).await
    }

    /// The shared test shop on `backend`, served with an adjusted config.
    pub async fn configured(backend: Backend, configure: impl FnOnce(&mut Config)) -> Fixture {
        Fixture::serve(backend, &shop_url(backend), configure).await
    }

    /// Read statements the server has run so far.
    pub fn statements(&self) -> u64 {
        self.state.db.statements_run()
    }

    /// GETs with extra request headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    /// Starts brisk over `db_url`, letting the test adjust the config.
    pub async fn serve(
        backend: Backend,
        db_url: &str,
        configure: impl FnOnce(&mut Config),
    ) -> Fixture {
        let mut config = Config::load(
            None,
            &Overrides {
                listen: Some("127.0.0.1:0".into()),
                database: Some(db_url.to_string()),
            },
        )
        .unwrap();
        config.database.pool_size = 4;
        configure(&mut config);
        let settings = Settings::from_config(config).unwrap();
        let app = App::build(&settings).await.expect("building the app");
        let state = app.state.clone();
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(app.serve(listener, async {
            let _ = rx.await;
        }));
        Fixture {
            backend,
            state,
            base,
            client: reqwest::Client::new(),
            db_url: db_url.to_string(),
            shutdown: Some(tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// GETs and parses a JSON body, asserting the status.
    pub async fn json(&self, path: &str, status: u16) -> Value {
        let response = self.get(path).await;
        self.json_of(response, status, path).await
    }

    /// Parses the JSON body of `response` to `path`, asserting the status.
    pub async fn json_of(&self, response: reqwest::Response, status: u16, path: &str) -> Value {
        let got = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(got, status, "GET {path} ({:?}): {text}", self.backend);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {text}"))
    }

    /// The `data` array of a collection answer.
    pub async fn data(&self, path: &str) -> Vec<Value> {
        match self.json(path, 200).await["data"].take() {
            Value::Array(rows) => rows,
            other => panic!("GET {path}: data is not an array: {other}"),
        }
    }

    /// Runs SQL directly on the fixture's database; rows as JSON objects.
    pub async fn sql(&self, query: &str) -> Vec<Map<String, Value>> {
        match self.backend {
            Backend::Sqlite => {
                let path = self.db_url.clone();
                let query = query.to_string();
                tokio::task::spawn_blocking(move || sqlite_rows(&path, &query))
                    .await
                    .unwrap()
            }
            Backend::Postgres => {
                let (client, connection) =
                    tokio_postgres::connect(&self.db_url, tokio_postgres::NoTls)
                        .await
                        .unwrap();
                tokio::spawn(connection);
                client
                    .query(
                        &format!("SELECT row_to_json(x)::text FROM ({query}) x"),
                        &[],
                    )
                    .await
                    .unwrap_or_else(|e| panic!("{query}: {e}"))
                    .iter()
                    .map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap())
                    .collect()
            }
        }
    }

    /// One column of a direct SQL query.
    pub async fn sql_column(&self, query: &str) -> Vec<Value> {
        self.sql(query)
            .await
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .next()
                    .map(|(_, v)| v)
                    .unwrap_or(Value::Null)
            })
            .collect()
    }
}

fn sqlite_rows(path: &str, query: &str) -> Vec<Map<String, Value>> {
    let connection = rusqlite::Connection::open(path).unwrap();
    let mut statement = connection
        .prepare(query)
        .unwrap_or_else(|e| panic!("{query}: {e}"));
    let names: Vec<String> = statement
        .column_names()
        .into_iter()
        .map(String::from)
        .collect();
    statement
        .query_map([], |row| {
            let mut object = Map::new();
            for (i, name) in names.iter().enumerate() {
                let value = match row.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => Value::Null,
                    rusqlite::types::ValueRef::Integer(n) => Value::from(n),
                    rusqlite::types::ValueRef::Real(f) => Value::from(f),
                    rusqlite::types::ValueRef::Text(t) => {
                        Value::from(String::from_utf8_lossy(t).to_string())
                    }
                    rusqlite::types::ValueRef::Blob(b) => Value::from(format!("{b:?}")),
                };
                object.insert(name.clone(), value);
            }
            Ok(object)
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A fresh, small demo shop of the test's own (it will be written to): a
/// SQLite file or a throwaway PostgreSQL database (`on_both!` has checked
/// that PostgreSQL is there).
/// The path of a new, empty SQLite file of this test run.
pub fn temp_sqlite(tag: &str) -> String {
    let dir = std::env::temp_dir().join("brisk-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("shop-{}-{tag}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path.display().to_string()
}

pub async fn writable_shop(backend: Backend, tag: &str) -> String {
    let url = match backend {
        Backend::Sqlite => temp_sqlite(tag),
        Backend::Postgres => {
            let tag = tag.to_string();
            tokio::task::spawn_blocking(move || throwaway_postgres(&tag))
                .await
                .unwrap()
                .expect("PostgreSQL is reachable")
        }
    };
    load_small_shop(backend, &url).await;
    url
}

/// Loads the small demo shop (scale 0.01) into `url`.
pub async fn load_small_shop(backend: Backend, url: &str) {
    let spec = DemoSpec {
        scale: 0.01,
        seed: 11,
    };
    let target = match backend {
        Backend::Sqlite => Target::Sqlite(url.as_ref()),
        Backend::Postgres => Target::Postgres(url),
    };
    dataset::load(target, spec, true).await.unwrap();
}

/// Runs SQL statements directly on a database (to set up what brisk
/// should then find).
pub async fn execute(backend: Backend, db_url: &str, sql: &str) {
    match backend {
        Backend::Sqlite => {
            let (path, sql) = (db_url.to_string(), sql.to_string());
            tokio::task::spawn_blocking(move || {
                rusqlite::Connection::open(&path)
                    .unwrap()
                    .execute_batch(&sql)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            })
            .await
            .unwrap();
        }
        Backend::Postgres => {
            let (client, connection) = tokio_postgres::connect(db_url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client
                .batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
}

impl Fixture {
    /// A server with writes on, over a shop of the test's own.
    pub async fn writable(
        backend: Backend,
        tag: &str,
        configure: impl FnOnce(&mut Config),
    ) -> Fixture {
        let url = writable_shop(backend, tag).await;
        Fixture::serve(backend, &url, |config| {
            config.writes = true;
            configure(config);
        })
        .await
    }

    /// Sends a JSON body with `method`, plus extra headers.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }
}

/// A free port on 127.0.0.1 (free when asked; tests use it at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `brisk serve` process, as a user starts it; killed on drop. Its log
/// goes to a file of the test's own.
pub struct BriskProcess {
    pub base: String,
    child: std::process::Child,
    log: PathBuf,
}

impl BriskProcess {
    /// Starts `brisk serve --db db_url` with `env` and waits until it is ready.
    pub async fn start(db_url: &str, env: &[(&str, &str)], name: &str) -> BriskProcess {
        static NEXT_LOG: AtomicUsize = AtomicUsize::new(0);
        let port = free_port();
        let log = std::env::temp_dir()
            .join("brisk-tests")
            // tests of both databases run at once in one process: a counter keeps their logs apart
            .join(format!(
                "{name}-{}-{}.log",
                std::process::id(),
                NEXT_LOG.fetch_add(1, Ordering::Relaxed)
            ));
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_brisk"));
        command
            .args([
                "serve",
                "--db",
                db_url,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let brisk = BriskProcess {
            base: format!("http://127.0.0.1:{port}"),
            child: command.spawn().unwrap(),
            log,
        };
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(response) = client.get(brisk.url("/readyz")).send().await
                && response.status() == 200
            {
                return brisk;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("brisk did not start: {}", brisk.log());
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM, as a service manager does, and waits for the exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        self.child.wait().unwrap()
    }
}

impl Drop for BriskProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Says, where the test harness cannot hide it, that a test did not run.
pub fn skipped(test: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {test}::postgres (PostgreSQL not reachable)"
    );
}

/// Numbers compared as numbers (12.5 and 12.50 are one value), the rest as is.
pub fn normalise(value: &Value) -> Value {
    match value {
        Value::Number(n) => Value::from(n.as_f64().unwrap()),
        Value::Array(items) => Value::Array(items.iter().map(normalise).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), normalise(v))).collect())
        }
        other => other.clone(),
    }
}

/// The one way to run a test on both databases: each
/// `async fn name(backend: Backend) { ... }` becomes the tests
/// `name::sqlite` and `name::postgres`. The PostgreSQL one says it is
/// skipped and passes when PostgreSQL is not reachable (and not required:
/// `TEST_REQUIRE_SERVICES=1`). `Fixture::shop(backend)` serves the shared
/// test shop; tests that write make their own (`Fixture::writable`).
#[macro_export]
macro_rules! on_both {
    ($(async fn $name:ident($backend:ident: Backend) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use $crate::support::*;

            async fn run($backend: Backend) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run(Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if postgres_shop().is_none() {
                    skipped(module_path!());
                    return;
                }
                run(Backend::Postgres).await;
            }
        }
    )*};
}

/// A response header as text.
pub fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

/// The `desc` of `Server-Timing`'s cache metric.
pub fn cache_status(response: &reqwest::Response) -> String {
    let timing = header(response, "server-timing").expect("Server-Timing on every answer");
    timing
        .split(',')
        .find_map(|m| m.trim().strip_prefix("cache;desc="))
        .unwrap_or_else(|| panic!("no cache metric in {timing}"))
        .to_string()
}

/// Runs `brisk install-triggers` as a user would, and returns what it said.
pub fn install_triggers(db: &str, remove: bool) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_brisk"));
    command.args(["install-triggers", "--db", db]);
    if remove {
        command.arg("--remove");
    }
    let output = command.env_remove("BRISK_DATABASE_URL").output().unwrap();
    let said = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "install-triggers failed: {said}");
    said
}

/// Asks `cases` random questions of the served API and of SQL, each a
/// `(url, sql)` pair that `question` makes from a generated case, and fails
/// on the first whose rows differ (numbers compared by value).
pub async fn random_reads_match_sql<S>(
    fixture: std::sync::Arc<Fixture>,
    strategy: S,
    cases: u32,
    question: impl Fn(&S::Value) -> (String, String) + Send + 'static,
) where
    S: proptest::strategy::Strategy + Send + 'static,
    S::Value: std::fmt::Debug,
{
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    // proptest drives the cases synchronously; each case awaits on this runtime
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&strategy, |case| {
                let (url, sql) = question(&case);
                let got: Vec<Value> = runtime
                    .block_on(fixture.data(&url))
                    .iter()
                    .map(normalise)
                    .collect();
                let want: Vec<Value> = runtime
                    .block_on(fixture.sql(&sql))
                    .into_iter()
                    .map(|row| normalise(&Value::Object(row)))
                    .collect();
                if got != want {
                    return Err(TestCaseError::fail(format!(
                        "{:?} {url}\nsql: {sql}\ngot {} rows, want {}\nfirst got: {:?}\nfirst want: {:?}",
                        fixture.backend,
                        got.len(),
                        want.len(),
                        got.first(),
                        want.first()
                    )));
                }
                Ok(())
            })
            .unwrap();
    })
    .await
    .unwrap();
}
