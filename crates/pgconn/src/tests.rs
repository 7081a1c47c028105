use super::*;

#[test]
fn tls_options_are_taken_out_of_both_forms() {
    let (rest, o) = split_tls_options(
        "postgres://u:p%40ss@db.example:6432/fin?sslmode=verify-full&sslrootcert=/ca.pem&application_name=sky",
    )
    .unwrap();
    assert_eq!(
        rest,
        "postgres://u:p%40ss@db.example:6432/fin?application_name=sky"
    );
    assert_eq!(o.sslmode.as_deref(), Some("verify-full"));
    assert_eq!(o.sslrootcert.as_deref(), Some("/ca.pem"));

    let (rest, o) = split_tls_options("postgresql://u@h/db?sslmode=require").unwrap();
    assert_eq!(rest, "postgresql://u@h/db");
    assert_eq!(o.sslmode.as_deref(), Some("require"));

    let (rest, o) = split_tls_options(
        "host=h user=u password='a b\\'c' sslmode = verify-ca sslrootcert='/my ca.pem' dbname=d",
    )
    .unwrap();
    assert_eq!(rest, "host=h user=u password='a b\\'c' dbname=d");
    assert_eq!(o.sslmode.as_deref(), Some("verify-ca"));
    assert_eq!(o.sslrootcert.as_deref(), Some("/my ca.pem"));
    // What tokio-postgres gets back still parses, password included.
    let c: tokio_postgres::Config = rest.parse().unwrap();
    assert_eq!(c.get_password(), Some(&b"a b'c"[..]));
}

#[test]
fn modes_map_onto_checks_and_errors_say_what_to_do() {
    let t = PgTarget::parse("postgres://u@h/db").unwrap();
    assert_eq!(t.config.get_ssl_mode(), SslMode::Prefer);
    assert_eq!(t.check, CertCheck::None);
    let t = PgTarget::parse("postgres://u@h/db?sslmode=disable").unwrap();
    assert_eq!(t.config.get_ssl_mode(), SslMode::Disable);
    let t = PgTarget::parse("postgres://u:secret@h/db?sslmode=require").unwrap();
    assert_eq!(
        (t.config.get_ssl_mode(), t.check),
        (SslMode::Require, CertCheck::None)
    );
    assert_eq!(t.shown, "postgres://u@h:5432/db");
    let t = PgTarget::parse("postgres://u@h/db?sslmode=verify-full&sslrootcert=system");
    // A machine without roots says so; with them the check is full.
    if let Ok(t) = t {
        assert_eq!(
            (t.config.get_ssl_mode(), t.check),
            (SslMode::Require, CertCheck::Full)
        );
    }

    let e = PgTarget::parse("postgres://u@h/db?sslmode=strict")
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("sslmode=strict is not one of"),
        "{e}"
    );
    let e = PgTarget::parse("postgres://u@h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem")
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .starts_with("sslrootcert=/nonexistent/ca.pem: "),
        "{e}"
    );
    let e = PgTarget::parse("postgres://u@h/db?sslcert=/c.pem")
        .err()
        .unwrap();
    assert!(e.to_string().contains("give both or neither"), "{e}");
    let e = PgTarget::parse("postgres://u:hunter2@h/db?nonsense=1")
        .err()
        .unwrap();
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let e = PgTarget::parse("mysql://u:hunter2@h/db").err().unwrap();
    assert!(e.to_string().contains("`mysql` is not postgres://"), "{e}");
    let e = PgTarget::parse("host=h hunter2!").err().unwrap();
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let e = PgTarget::parse("host=h user=u password='open")
        .err()
        .unwrap();
    assert!(e.to_string().contains("no closing quote"), "{e}");
}

#[test]
fn a_file_without_certificates_is_refused() {
    let dir = std::env::temp_dir().join(format!("pgconn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "nothing here\n").unwrap();
    let e = PgTarget::parse(&format!(
        "postgres://u@h/db?sslmode=verify-full&sslrootcert={}",
        empty.display()
    ))
    .err()
    .unwrap();
    assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The machine's PostgreSQL (127.0.0.1:5432, trust auth) with TLS on, and the certificate
/// it serves: Debian's snakeoil certificate, issued to `localhost`.
fn machine_pg(test: &str) -> Option<&'static str> {
    const CERT: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    if std::net::TcpStream::connect(("127.0.0.1", 5432)).is_err() {
        skymeter_testkit::tool::missing_tool(
            test,
            "no PostgreSQL on 127.0.0.1:5432 (these machines run one, trust auth, ssl = on)",
        );
        return None;
    }
    if !Path::new(CERT).is_file() {
        skymeter_testkit::tool::missing_tool(
            test,
            "PostgreSQL's certificate /etc/ssl/certs/ssl-cert-snakeoil.pem is missing (Debian's ssl-cert package)",
        );
        return None;
    }
    Some(CERT)
}

/// Connects and tells whether the session is encrypted.
async fn encrypted(url: &str) -> Result<bool, String> {
    let target = PgTarget::parse(url).map_err(|e| e.to_string())?;
    let (client, connection) = target
        .config
        .connect(target.tls)
        .await
        .map_err(|e| describe(&e))?;
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
            &[],
        )
        .await
        .map_err(|e| describe(&e))?;
    Ok(row.get(0))
}

#[tokio::test]
async fn every_sslmode_against_the_machines_postgresql() {
    let Some(cert) = machine_pg("every_sslmode_against_the_machines_postgresql") else {
        return;
    };
    let base = "postgres://postgres@127.0.0.1:5432/postgres";
    assert_eq!(
        encrypted(&format!("{base}?sslmode=disable")).await,
        Ok(false)
    );
    assert_eq!(
        encrypted(&format!("{base}?sslmode=require")).await,
        Ok(true)
    );
    assert_eq!(
        encrypted(base).await,
        Ok(true),
        "prefer takes TLS when offered"
    );
    // The chain holds; the name is not looked at.
    assert_eq!(
        encrypted(&format!("{base}?sslmode=verify-ca&sslrootcert={cert}")).await,
        Ok(true)
    );
    // The name is checked: the certificate names `localhost`, not 127.0.0.1.
    let local = "postgres://postgres@localhost:5432/postgres";
    assert_eq!(
        encrypted(&format!("{local}?sslmode=verify-full&sslrootcert={cert}")).await,
        Ok(true)
    );
    let e = encrypted(&format!("{base}?sslmode=verify-full&sslrootcert={cert}"))
        .await
        .unwrap_err();
    assert!(e.contains("not valid for name"), "{e}");

    // A root that did not sign the server's certificate.
    let dir = std::env::temp_dir().join(format!("pgconn-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let other_ca = dir.join("other-ca.pem");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(&other_ca, params.self_signed(&key).unwrap().pem()).unwrap();
    for mode in ["verify-ca", "verify-full", "require"] {
        let e = encrypted(&format!(
            "{local}?sslmode={mode}&sslrootcert={}",
            other_ca.display()
        ))
        .await
        .unwrap_err();
        assert!(
            e.contains("UnknownIssuer") || e.contains("unknown issuer"),
            "{mode}: {e}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
