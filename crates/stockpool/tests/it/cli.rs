//! The CLI commands an operator types first, run as the real binary: `demo` (the README's
//! first command), `user create` with its password prompt, `sync now`, and `inbox replay`.

use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use stockpool_store::{system_clock, Storage};

const BIN: &str = env!("CARGO_BIN_EXE_stockpool");

/// Kills the child when dropped, so a failed test leaves no server behind.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn demo_serves_a_seeded_shop_with_a_working_login_and_shoppers_that_order() {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(BIN)
        .args(["demo", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("STOCKPOOL_LOG", "warn")
        .env_remove("STOCKPOOL_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting stockpool demo");
    let mut child = Killed(child);
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut base, mut token, mut login) = (None, None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while token.is_none() {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("demo prints its login");
        if let Some(url) = line.trim().strip_prefix("dashboard:") {
            base = Some(url.trim().trim_end_matches('/').to_string());
        } else if let Some(l) = line.trim().strip_prefix("login:") {
            login = Some(l.trim().split(" / ").map(str::to_string).collect::<Vec<_>>());
        } else if let Some(t) = line.trim().strip_prefix("API token:") {
            token = Some(t.trim().to_string());
        }
    }
    let (base, token, login) = (base.expect("a dashboard URL"), token.unwrap(), login.expect("a login"));
    assert!(dir.path().join("stockpool-demo.db").exists(), "the demo runs on its own SQLite file");

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let get = |path: &str| http.get(format!("{base}{path}")).bearer_auth(&token).send();
        let listings: serde_json::Value = get("/api/v1/listings").await.unwrap().json().await.unwrap();
        assert_eq!(listings["data"].as_array().unwrap().len(), 20, "4 SKUs on 5 stores");
        // The printed login works on the dashboard.
        let form = http.get(format!("{base}/login")).send().await.unwrap();
        let cookie = form.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
        let page = form.text().await.unwrap();
        let at = page.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
        let csrf = page[at..].split('"').next().unwrap().to_string();
        let body =
            serde_urlencoded::to_string([("email", &login[0]), ("password", &login[1]), ("csrf", &csrf)]).unwrap();
        let res = http
            .post(format!("{base}/login"))
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
        let session = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("sp_session="))
            .expect("a session cookie")
            .split(';')
            .next()
            .unwrap()
            .to_string();

        // Both emulated webhook shops, the emulated Shopify shop and the emulated WooCommerce
        // shop take pushes through their channel's API, and the dashboard shows each store's
        // last ones.
        let deadline = Instant::now() + Duration::from_secs(30);
        for shop in ["site", "market", "shopify", "woo"] {
            loop {
                let r: serde_json::Value =
                    get(&format!("/api/v1/sync-records?store={shop}&result=ok")).await.unwrap().json().await.unwrap();
                if r["data"].as_array().is_some_and(|d| d.len() >= 4) {
                    break;
                }
                assert!(Instant::now() < deadline, "{shop} took no push of each of its 4 listings within 30 s: {r}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let page = http.get(format!("{base}/")).header("cookie", &session).send().await.unwrap().text().await.unwrap();
        let pushes = &page[page.find("<h2>Last pushes</h2>").expect("a Last pushes section")..];
        assert!(pushes.contains("<h3>site</h3><table>") && pushes.contains("<td>ok</td>"), "{pushes}");

        // The shoppers order what their shop shows: webhook orders come in signed, and none
        // of the demo's orders is oversold.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let orders: serde_json::Value = get("/api/v1/orders?limit=1000").await.unwrap().json().await.unwrap();
            let orders = orders["data"].as_array().unwrap();
            let oversold: Vec<&serde_json::Value> =
                orders.iter().filter(|o| o["status"] == "needs_attention").collect();
            assert!(oversold.is_empty(), "an emulated shopper bought what was not shown: {oversold:?}");
            let by_webhook = orders.iter().any(|o| {
                let ext = o["external_id"].as_str().unwrap_or("");
                ((o["store"] == "site" || o["store"] == "market") && ext.starts_with("DEMO-"))
                    || ((o["store"] == "shopify" || o["store"] == "woo") && ext.starts_with("700"))
            });
            if by_webhook {
                break;
            }
            assert!(Instant::now() < deadline, "no webhook shopper ordered within 60 s: {orders:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
}

#[test]
fn user_create_prompts_for_the_password_and_the_user_can_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("u.db").display());
    let mut child = Command::new(BIN)
        .args(["user", "create", "--database", &url, "--workspace", "shop", "--email", "potter@example.com"])
        .env("STOCKPOOL_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"clay and glaze\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("password"), "it prompts: {stderr}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (store, _writer) = Storage::open(&url, system_clock()).await.unwrap();
        let ws = store.ensure_workspace("shop").await.unwrap();
        assert_eq!(store.verify_user("potter@example.com", "clay and glaze").await.unwrap(), Some(ws));
        assert_eq!(store.verify_user("potter@example.com", "wrong").await.unwrap(), None);
    });
    // A short password is refused with a sentence and a non-zero exit.
    let out = Command::new(BIN)
        .args([
            "user",
            "create",
            "--database",
            &url,
            "--workspace",
            "shop",
            "--email",
            "b@example.com",
            "--password",
            "short",
        ])
        .env("STOCKPOOL_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 8 characters"));
}

fn cmd<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

#[test]
fn sync_now_queues_a_push_for_every_listing_of_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (store, writer) = Storage::open(&url, system_clock()).await.unwrap();
        let ws = store.ensure_workspace("default").await.unwrap();
        use stockpool_store::Command as C;
        let commands = vec![
            C::CreateWarehouse(cmd(json!({"code":"main","name":"Main"}))),
            C::CreateItem(cmd(json!({"sku":"A"}))),
            C::CreateItem(cmd(json!({"sku":"B"}))),
            C::CreateStore(cmd(json!({"code":"etsy","name":"Etsy","channel":"etsy"}))),
            C::CreateStore(cmd(json!({"code":"shop","name":"Shop","channel":"shopify"}))),
            C::CreateListings(cmd(json!([
                {"store":"etsy","external_id":"1","sku":"A"},{"store":"etsy","external_id":"2","sku":"B"},
                {"store":"shop","external_id":"3","sku":"A"}
            ]))),
        ];
        store.execute(ws, C::Batch(commands)).await.unwrap();
        drop(store);
        writer.await.unwrap();
    });
    let out = Command::new(BIN)
        .args(["sync", "now", "--database", &url, "--store", "etsy"])
        .env("STOCKPOOL_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply, json!({"queued": 2}));
    let out = Command::new(BIN).args(["sync", "now", "--database", &url, "--store", "nope"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

/// `inbox replay` applies what a crash left kept but unapplied, once, and says so per
/// delivery; `inbox list` shows each delivery's outcome.
#[test]
fn inbox_replay_applies_a_kept_delivery_once() {
    use stockpool_store::inbox::{NewDelivery, Received};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let kept = rt.block_on(async {
        let (store, writer) = Storage::open(&url, system_clock()).await.unwrap();
        let ws = store.ensure_workspace("default").await.unwrap();
        use stockpool_store::Command as C;
        let commands = vec![
            C::CreateWarehouse(cmd(json!({"code":"main","name":"Main"}))),
            C::CreateItem(cmd(json!({"sku":"A"}))),
            C::Adjust(cmd(json!({"sku":"A","warehouse":"main","delta":5}))),
            C::CreateStore(cmd(
                json!({"code":"site","name":"Site","channel":"webhook","url":"http://127.0.0.1:9/","secret":"s"}),
            )),
            C::CreateListings(cmd(json!([{"store":"site","external_id":"1","store_sku":"A-1","sku":"A"}]))),
        ];
        store.execute(ws, C::Batch(commands)).await.unwrap();
        let (_, site) = store.stores_by_code("site").await.unwrap()[0];
        let body = json!({"external_id": "W-1", "lines": [{"store_sku": "A-1", "quantity": 2}]});
        let delivery = NewDelivery {
            ws,
            store: site,
            channel: "webhook".into(),
            delivery_id: Some("d-1".into()),
            headers: vec![],
            body: body.to_string().into_bytes(),
        };
        let Received::New(id) = store.inbox_receive(&delivery).await.unwrap() else { panic!("a new delivery") };
        drop(store);
        writer.await.unwrap();
        id
    });
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).env("STOCKPOOL_LOG", "warn").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let listed = run(&["inbox", "list", "--database", &url]);
    assert!(listed.starts_with(&format!("{kept}\tsite\twebhook\td-1\tpending\t-")), "{listed}");

    let replayed = run(&["inbox", "replay", "--database", &url]);
    assert!(
        replayed.starts_with(&format!("delivery {kept} (webhook store site): pending -> applied, order ")),
        "{replayed}"
    );
    assert_eq!(run(&["inbox", "replay", "--database", &url]).trim(), "inbox replay: nothing to replay");
    let by_id = run(&["inbox", "replay", "--database", &url, "--id", &kept.to_string()]);
    assert!(by_id.contains("applied -> applied") && by_id.contains("nothing to do"), "{by_id}");

    let listed = run(&["inbox", "list", "--database", &url]);
    assert!(listed.contains("\tapplied\t"), "{listed}");
    rt.block_on(async {
        let (store, _) = Storage::open(&url, system_clock()).await.unwrap();
        let ws = store.ensure_workspace("default").await.unwrap();
        let orders = store.read(ws, |w| w.state.orders().count()).await.unwrap();
        assert_eq!(orders, 1, "replayed twice, taken once");
        assert!(store.check().await.unwrap().is_empty());
    });

    let help = Command::new(BIN).args(["inbox", "replay", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--id"));
}
