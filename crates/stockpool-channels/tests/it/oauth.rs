//! The refresh-token grant every OAuth channel shares (`oauth.rs`): a token is fetched once
//! and reused, a 401 refreshes it once, rotated refresh tokens are kept and handed back as
//! the store's credentials, a refused refresh is final and says why.

use serde_json::json;
use stockpool_channels::http_client;
use stockpool_channels::oauth::{Grant, TokenCache};
use stockpool_channels::ChannelError;

use crate::receiver::{Receiver, Reply, GENEROUS_TIMEOUT};

fn grant(receiver: &Receiver, basic: bool) -> Grant {
    Grant {
        channel: "etsy",
        store: "crafts".into(),
        token_url: format!("{}/v3/public/oauth/token", receiver.base),
        form: vec![("client_id", "key123".into())],
        basic: basic.then(|| ("id".to_string(), "secret".to_string())),
    }
}

fn token(access: &str, refresh: Option<&str>) -> Reply {
    let mut body = json!({"access_token": access, "token_type": "Bearer", "expires_in": 3600});
    if let Some(r) = refresh {
        body["refresh_token"] = r.into();
    }
    Reply::status(200).header("content-type", "application/json").body(body.to_string())
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8(body.to_vec())
        .unwrap()
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[tokio::test]
async fn a_token_is_fetched_once_and_reused_until_a_401_and_rotated_refresh_tokens_are_kept() {
    let receiver = Receiver::start(vec![token("at-1", Some("rt-2")), token("at-2", Some("rt-3"))]).await;
    let credentials = json!({"shop_id": 7, "refresh_token": "rt-1"});
    let cache = TokenCache::new(grant(&receiver, false), &credentials, GENEROUS_TIMEOUT).unwrap();
    let client = http_client().unwrap();
    assert_eq!(cache.rotated_credentials(), None, "nothing changed before the first refresh");

    assert_eq!(cache.access_token(&client).await.unwrap(), "at-1");
    assert_eq!(cache.access_token(&client).await.unwrap(), "at-1", "reused, not fetched again");
    assert_eq!(receiver.requests().len(), 1);
    let first = &receiver.requests()[0];
    assert_eq!(first.path, "/v3/public/oauth/token");
    assert_eq!(first.header("content-type"), "application/x-www-form-urlencoded");
    assert_eq!(
        form(&first.body),
        vec![
            ("grant_type".into(), "refresh_token".into()),
            ("refresh_token".into(), "rt-1".into()),
            ("client_id".into(), "key123".into())
        ]
    );
    assert_eq!(
        cache.rotated_credentials(),
        Some(json!({"shop_id": 7, "refresh_token": "rt-2", "access_token": "at-1"})),
        "the rotated refresh token replaces the spent one, other fields kept"
    );

    // A 401 with a token that was already replaced refreshes nothing.
    cache.invalidate("at-0");
    assert_eq!(cache.access_token(&client).await.unwrap(), "at-1");
    cache.invalidate("at-1");
    assert_eq!(cache.access_token(&client).await.unwrap(), "at-2");
    let second = &receiver.requests()[1];
    assert!(form(&second.body).contains(&("refresh_token".into(), "rt-2".into())), "the rotated one is spent next");
    assert_eq!(cache.rotated_credentials().unwrap()["refresh_token"], "rt-3");
}

#[tokio::test]
async fn callers_that_all_find_no_token_share_one_refresh() {
    let receiver = Receiver::start(vec![token("at-1", Some("rt-2")), token("at-2", Some("rt-3"))]).await;
    let cache = std::sync::Arc::new(
        TokenCache::new(grant(&receiver, true), &json!({"refresh_token": "rt-1"}), GENEROUS_TIMEOUT).unwrap(),
    );
    let client = http_client().unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (cache, client) = (cache.clone(), client.clone());
        tasks.spawn(async move { cache.access_token(&client).await.unwrap() });
    }
    while let Some(got) = tasks.join_next().await {
        assert_eq!(got.unwrap(), "at-1");
    }
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "one refresh for eight callers");
    // eBay's way: client credentials in HTTP Basic.
    assert_eq!(requests[0].header("authorization"), "Basic aWQ6c2VjcmV0");
}

#[tokio::test]
async fn a_refused_refresh_is_final_and_says_why_while_a_5xx_is_passing() {
    let receiver = Receiver::start(vec![
        Reply::status(503),
        Reply::status(400).body(r#"{"error":"invalid_grant","error_description":"refresh token revoked"}"#),
    ])
    .await;
    let cache = TokenCache::new(grant(&receiver, false), &json!({"refresh_token": "rt-1"}), GENEROUS_TIMEOUT).unwrap();
    let client = http_client().unwrap();
    let passing = cache.access_token(&client).await.unwrap_err();
    assert!(matches!(passing, ChannelError::Unavailable { .. }), "{passing}");
    assert_eq!(cache.refused(), None);

    let refused = cache.access_token(&client).await.unwrap_err();
    assert!(matches!(refused, ChannelError::AuthRefused { .. }), "{refused}");
    assert!(refused.to_string().contains("refresh token revoked"), "{refused}");
    assert!(refused.to_string().contains("store crafts"), "{refused}");
    assert!(cache.refused().unwrap().contains("(400)"));
    // Final: no third call to the token host.
    assert!(matches!(cache.access_token(&client).await, Err(ChannelError::AuthRefused { .. })));
    assert_eq!(receiver.requests().len(), 2);
}

#[test]
fn a_store_without_a_refresh_token_cannot_be_connected() {
    let grant = Grant {
        channel: "ebay",
        store: "bay".into(),
        token_url: "http://127.0.0.1:9/t".into(),
        form: vec![],
        basic: None,
    };
    let error = TokenCache::new(grant, &json!({"client_id": "x"}), GENEROUS_TIMEOUT).unwrap_err();
    assert_eq!(
        error.to_string(),
        "store bay's ebay credentials lack refresh_token; connect the store again to get one"
    );
}
