use super::*;
use crate::common::testing::{batch, build_error, config_err, ts, with_raw};
use skymeter_model::{ChargeCategory, Cost, Resource};
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
fn config_mistakes_are_named() {
    let err = |text: &str| build_error(text, build);
    assert!(err("url = \"postgres://u@h:notaport/db\"").contains("url"));
    assert!(err("url = \"postgres://u@h/db\"\nschema = \"Drop Table\"").contains("schema"));
    // The message never repeats the URL (it may hold a password; the snippet is the
    // user's own line, shown as for any key).
    let e = config_err(with_raw("url = \"postgres://u:sekret@h:x/db\"", |raw| {
        build(raw, &BuildContext::one_shot("t"))
    }));
    assert!(!e.message.contains("sekret"), "{}", e.message);
}

/// A TCP relay to PostgreSQL on 5432 that can be cut: the database "goes away" and comes
/// back without touching the machine's PostgreSQL.
struct Relay {
    port: u16,
    open: Arc<AtomicBool>,
}

impl Relay {
    async fn start() -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let gate = open.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !gate.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused in effect
                }
                let gate = gate.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect("127.0.0.1:5432").await
                    else {
                        return;
                    };
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    let cut = async {
                        while gate.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! { _ = copy => {}, _ = cut => {} }
                });
            }
        });
        Relay { port, open }
    }
}

async fn direct() -> tokio_postgres::Client {
    let (client, conn) = "host=127.0.0.1 port=5432 user=postgres dbname=test"
        .parse::<tokio_postgres::Config>()
        .unwrap()
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

fn resource(name: &str, at: &str) -> Resource {
    let mut r: Resource = serde_json::from_value(serde_json::json!({
        "provider": "aws", "account": "111122223333", "region": "eu-west-1",
        "kind": "compute.instance", "native_type": "AWS::EC2::Instance", "id": "i-0abc",
        "name": name, "tags": {"team": "core"}, "attributes": {"instance_type": "m5.large"},
        "observed_at": at
    }))
    .unwrap();
    r.name = name.into();
    r
}

fn cost(amount: f64) -> Cost {
    Cost {
        resource_id: Some("i-0abc".into()),
        sub_account_id: Some("111122223333".into()),
        ..Cost::billed(
            "AWS",
            ChargeCategory::Usage,
            amount,
            amount,
            "USD".into(),
            ts("2026-11-22T10:00:00Z"),
            ts("2026-11-22T11:00:00Z"),
            "Amazon Elastic Compute Cloud".into(),
        )
    }
}

#[tokio::test]
async fn batches_written_while_the_database_is_away_arrive_whole_once_it_is_back() {
    let test = "batches_written_while_the_database_is_away_arrive_whole_once_it_is_back";
    if std::net::TcpStream::connect(("127.0.0.1", 5432)).is_err() {
        skymeter_testkit::tool::missing_tool(
            test,
            "no PostgreSQL on 127.0.0.1:5432 (these machines run one, trust auth, database `test`)",
        );
        return;
    }
    let relay = Relay::start().await;
    let schema = format!("t_{}", uuid_like());
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "url = \"postgres://postgres@127.0.0.1:{}/test\"\nschema = \"{schema}\"\ntimeout = \"3s\"\n\
         retry = {{ initial = \"50ms\", max = \"200ms\" }}\nbuffer = {{ dir = {:?} }}",
        relay.port,
        dir.path().join("buffer").display().to_string()
    );
    let mut publisher =
        with_raw(&text, |raw| build(raw, &BuildContext::one_shot("agent-1"))).unwrap();
    let db = direct().await;
    let count = |table: &'static str| {
        let db = &db;
        let schema = schema.clone();
        async move {
            db.query_one(&format!("SELECT count(*) FROM {schema}.{table}"), &[])
                .await
                .map(|r| r.get::<_, i64>(0))
                .unwrap_or(-1)
        }
    };

    let mut a = batch(vec![]);
    a.resources = vec![resource("web-1", "2026-11-22T10:00:00Z")];
    a.costs = vec![cost(1.25), cost(0.5)];
    publisher.publish(&a).await.unwrap();
    for _ in 0..200 {
        if count("skymeter_cost_lines").await == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count("skymeter_cost_lines").await, 2);
    assert_eq!(count("skymeter_resources").await, 1);

    // The database goes away: batches wait in the buffer.
    relay.open.store(false, Ordering::SeqCst);
    let mut b = batch(vec![]);
    b.resources = vec![resource("web-1-renamed", "2026-11-22T11:00:00Z")];
    b.costs = vec![cost(2.0)];
    let mut c = batch(vec![]);
    c.costs = vec![cost(3.0)];
    publisher.publish(&b).await.unwrap();
    publisher.publish(&c).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(count("skymeter_cost_lines").await, 2);
    relay.open.store(true, Ordering::SeqCst);
    for _ in 0..200 {
        if count("skymeter_cost_lines").await == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publisher.flush().await.unwrap();
    assert_eq!(count("skymeter_cost_lines").await, 4);
    let row = db
        .query_one(
            &format!("SELECT name, tags->>'team', attributes->>'instance_type' FROM {schema}.skymeter_resources"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "web-1-renamed");
    assert_eq!(row.get::<_, String>(1), "core");
    assert_eq!(row.get::<_, String>(2), "m5.large");
    let total: f64 = db
        .query_one(
            &format!("SELECT sum(billed_cost) FROM {schema}.skymeter_cost_lines WHERE service_name = 'Amazon Elastic Compute Cloud' AND x_source = 'billed'"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, 6.75);

    // A batch delivered twice (its commit acknowledgement lost) changes nothing; an older
    // record of a resource does not replace a newer one.
    // Straight to the database this time, TLS required (the machine's PostgreSQL has it on;
    // the relayed deliveries above took it too, as `prefer` does when the server offers it).
    let target =
        skymeter_pgconn::PgTarget::parse("postgres://postgres@127.0.0.1:5432/test?sslmode=require")
            .unwrap();
    let database = Database {
        config: target.config,
        tls: target.tls,
        shown: target.shown,
        schema: schema.clone(),
        timeout: Duration::from_secs(5),
    };
    database.write(&a).await.unwrap();
    assert_eq!(count("skymeter_cost_lines").await, 4);
    let name: String = db
        .query_one(
            &format!("SELECT name FROM {schema}.skymeter_resources"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "web-1-renamed");
    db.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// A lower-case unique suffix for the test's schema.
fn uuid_like() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}
