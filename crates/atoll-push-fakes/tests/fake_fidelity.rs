//! The fakes themselves: raw requests a correct client never sends must get
//! the vendor's documented errors, or the fakes would hide client bugs.

mod common;

use atoll_push_fakes::{FakeApns, FakeFcm, FakeHms};
use atoll_push_vendors::jwt::{Es256Signer, Rs256Signer};
use common::{hex_token, now_ms};
use serde_json::{json, Value};

const TOPIC: &str = "com.example.atoll";

struct Apns {
    fake: FakeApns,
    client: reqwest::Client,
    signer: Es256Signer,
    creds: Value,
}

impl Apns {
    async fn new() -> Apns {
        let fake = FakeApns::start().await;
        let creds = fake.credentials(TOPIC);
        let client = reqwest::Client::builder()
            .http2_prior_knowledge()
            .add_root_certificate(reqwest::Certificate::from_pem(fake.ca_pem().as_bytes()).unwrap())
            .build()
            .unwrap();
        let signer = Es256Signer::from_pem(creds["private_key_pem"].as_str().unwrap()).unwrap();
        Apns {
            fake,
            client,
            signer,
            creds,
        }
    }

    fn jwt(&self, iat: i64) -> String {
        self.signer
            .sign(
                &json!({"alg": "ES256", "kid": self.creds["key_id"]}),
                &json!({"iss": self.creds["team_id"], "iat": iat}),
            )
            .unwrap()
    }

    /// Sends with a valid token and alert headers, changed by `headers`
    /// (`None` removes one); answers (status, reason).
    async fn send(
        &self,
        token: &str,
        headers: &[(&str, Option<&str>)],
        body: &str,
    ) -> (u16, Option<String>) {
        let jwt = self.jwt(now_ms() / 1000);
        let mut all: Vec<(String, String)> = vec![
            ("authorization".into(), format!("bearer {jwt}")),
            ("apns-topic".into(), TOPIC.into()),
            ("apns-push-type".into(), "alert".into()),
            ("apns-priority".into(), "10".into()),
        ];
        for (name, value) in headers {
            all.retain(|(n, _)| n != name);
            if let Some(v) = value {
                all.push((name.to_string(), v.to_string()));
            }
        }
        let mut req = self
            .client
            .post(format!("{}/3/device/{token}", self.fake.url()))
            .body(body.to_string());
        for (n, v) in all {
            req = req.header(n, v);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        let status = resp.status().as_u16();
        let reason = resp
            .json::<Value>()
            .await
            .ok()
            .and_then(|v| v["reason"].as_str().map(str::to_string));
        (status, reason)
    }
}

const ALERT: &str = r#"{"aps":{"alert":{"title":"t","body":"b"}}}"#;

#[tokio::test]
async fn apns_fake_checks_headers_auth_and_payload() {
    let a = Apns::new().await;
    let t = hex_token(1);
    let r = |s: u16, reason: &str| (s, Some(reason.to_string()));
    assert_eq!(a.send(&t, &[], ALERT).await, (200, None));
    assert_eq!(
        a.send(&t, &[("authorization", None)], ALERT).await,
        r(403, "MissingProviderToken")
    );
    assert_eq!(
        a.send(&t, &[("authorization", Some("bearer a.b.c"))], ALERT)
            .await,
        r(403, "InvalidProviderToken")
    );
    assert_eq!(
        a.send(&t, &[("apns-topic", None)], ALERT).await,
        r(400, "MissingTopic")
    );
    assert_eq!(
        a.send(&t, &[("apns-topic", Some("com.evil"))], ALERT).await,
        r(400, "TopicDisallowed")
    );
    assert_eq!(
        a.send(&t, &[("apns-push-type", Some("shout"))], ALERT)
            .await,
        r(400, "InvalidPushType")
    );
    assert_eq!(
        a.send(&t, &[("apns-priority", Some("7"))], ALERT).await,
        r(400, "BadPriority")
    );
    assert_eq!(
        a.send(
            &t,
            &[("apns-push-type", Some("background"))],
            r#"{"aps":{"content-available":1}}"#
        )
        .await,
        r(400, "BadPriority")
    );
    assert_eq!(
        a.send(&t, &[("apns-expiration", Some("tomorrow"))], ALERT)
            .await,
        r(400, "BadExpirationDate")
    );
    let long = "c".repeat(65);
    assert_eq!(
        a.send(&t, &[("apns-collapse-id", Some(&long))], ALERT)
            .await,
        r(400, "BadCollapseId")
    );
    assert_eq!(
        a.send(&t, &[("apns-id", Some("123"))], ALERT).await,
        r(400, "BadMessageId")
    );
    assert_eq!(a.send("abc", &[], ALERT).await, r(400, "BadDeviceToken"));
    assert_eq!(a.send(&t, &[], "").await, r(400, "PayloadEmpty"));
    let big = format!(r#"{{"aps":{{"alert":"{}"}}}}"#, "x".repeat(4100));
    assert_eq!(a.send(&t, &[], &big).await, r(413, "PayloadTooLarge"));
    assert_eq!(a.fake.stats().accepted, 1);
}

#[tokio::test]
async fn apns_fake_refuses_tokens_minted_too_often_and_expired_ones() {
    let a = Apns::new().await;
    let now = now_ms() / 1000;
    let send = |jwt: String| {
        let a = &a;
        async move {
            a.client
                .post(format!("{}/3/device/{}", a.fake.url(), hex_token(1)))
                .header("authorization", format!("bearer {jwt}"))
                .header("apns-topic", TOPIC)
                .header("apns-push-type", "alert")
                .body(ALERT)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(send(a.jwt(now - 1300)).await, 200);
    // A second token a minute after the first: too early.
    assert_eq!(send(a.jwt(now - 1240)).await, 429);
    // 20 minutes after the first is fine.
    assert_eq!(send(a.jwt(now)).await, 200);
    assert_eq!(send(a.jwt(now - 3700)).await, 403);
    assert_eq!(a.fake.stats().rejected["TooManyProviderTokenUpdates"], 1);
    assert_eq!(a.fake.stats().rejected["ExpiredProviderToken"], 1);
}

async fn fcm_access_token(fake: &FakeFcm, client: &reqwest::Client) -> String {
    let creds = fake.credentials();
    let signer = Rs256Signer::from_pem(creds["private_key"].as_str().unwrap()).unwrap();
    let iat = now_ms() / 1000;
    let assertion = signer
        .sign(
            &json!({"alg": "RS256", "typ": "JWT", "kid": creds["private_key_id"]}),
            &json!({
                "iss": creds["client_email"],
                "scope": "https://www.googleapis.com/auth/firebase.messaging",
                "aud": creds["token_uri"], "iat": iat, "exp": iat + 3600
            }),
        )
        .unwrap();
    let resp: Value = client
        .post(creds["token_uri"].as_str().unwrap())
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &assertion),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    resp["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn fcm_fake_checks_the_message() {
    let fake = FakeFcm::start().await;
    let client = reqwest::Client::new();
    let access = fcm_access_token(&fake, &client).await;
    let url = format!(
        "{}/v1/projects/{}/messages:send",
        fake.url(),
        fake.project_id()
    );
    let send = |message: Value, bearer: Option<String>| {
        let (client, url) = (&client, &url);
        async move {
            let mut req = client.post(url).json(&json!({ "message": message }));
            if let Some(b) = bearer {
                req = req.bearer_auth(b);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            (status, body)
        }
    };
    let ok = json!({"token": "t", "notification": {"title": "a", "body": "b"}, "data": {"k": "v"}});
    assert_eq!(send(ok.clone(), Some(access.clone())).await.0, 200);
    let (status, body) = send(ok.clone(), None).await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    for bad in [
        json!({"token": "t", "data": {"k": 1}}),
        json!({"token": "t", "data": {"from": "x"}}),
        json!({"token": "t", "topic": "news", "data": {}}),
        json!({"token": "t", "bogus": 1}),
        json!({"token": "t", "android": {"priority": "URGENT"}}),
        json!({"token": "t", "android": {"ttl": "3600"}}),
        json!({"token": "t", "data": {"k": "x".repeat(5000)}}),
    ] {
        let (status, body) = send(bad.clone(), Some(access.clone())).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["error"]["status"], "INVALID_ARGUMENT", "{bad}");
    }
}

#[tokio::test]
async fn hms_fake_checks_the_message() {
    let fake = FakeHms::start().await;
    let client = reqwest::Client::new();
    let creds = fake.credentials();
    let token: Value = client
        .post(creds["token_url"].as_str().unwrap())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", creds["app_id"].as_str().unwrap()),
            ("client_secret", creds["client_secret"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().unwrap().to_string();
    let url = format!(
        "{}/v1/{}/messages:send",
        fake.url(),
        creds["app_id"].as_str().unwrap()
    );
    let send = |message: Value| {
        let (client, url, access) = (&client, &url, &access);
        async move {
            let resp = client
                .post(url)
                .bearer_auth(access)
                .json(&json!({"validate_only": false, "message": message}))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            (
                status,
                body["code"].as_str().unwrap_or_default().to_string(),
                body,
            )
        }
    };
    let notification = |extra: Value| {
        let mut n = json!({"title": "a", "body": "b", "click_action": {"type": 3}});
        atoll_merge(&mut n, extra);
        json!({"token": ["t1"], "android": {"notification": n}})
    };
    assert_eq!(send(notification(json!({}))).await.1, "80000000");
    for (bad, code) in [
        (json!({"token": ["t1"], "data": {"k": "v"}}), "80100003"),
        (
            json!({"token": ["t1"], "android": {"notification": {"title": "a", "body": "b"}}}),
            "80100003",
        ),
        (notification(json!({"style": 1})), "80100003"),
        (
            notification(json!({"click_action": {"type": 2, "url": "http://x"}})),
            "80100003",
        ),
        (
            json!({"token": ["t1"], "data": "{}", "android": {"collapse_key": 200}}),
            "80100003",
        ),
        (
            json!({"token": ["t1"], "data": "x".repeat(5000)}),
            "80300008",
        ),
    ] {
        let (status, got, body) = send(bad.clone()).await;
        assert_eq!((status, got.as_str()), (400, code), "{bad} -> {body}");
    }
    fake.dead_token("t2");
    let (status, code, body) = send(json!({"token": ["t1", "t2"], "data": "{}"})).await;
    assert_eq!((status, code.as_str()), (200, "80100000"));
    let detail: Value = serde_json::from_str(body["msg"].as_str().unwrap()).unwrap();
    assert_eq!(detail["illegal_tokens"], json!(["t2"]));
}

#[tokio::test]
async fn the_fakes_credentials_validate() {
    use atoll_protocol::device::PushChannel;
    use atoll_push_vendors::validate_credentials;
    let apns = FakeApns::start().await;
    let fcm = FakeFcm::start().await;
    let hms = FakeHms::start().await;
    validate_credentials(PushChannel::Apns, &apns.credentials(TOPIC)).unwrap();
    validate_credentials(PushChannel::Fcm, &fcm.credentials()).unwrap();
    validate_credentials(PushChannel::Hms, &hms.credentials()).unwrap();
    // The nested form of the FCM credentials works as well.
    let mut sa = fcm.credentials();
    let api_base = sa.as_object_mut().unwrap().remove("api_base").unwrap();
    validate_credentials(
        PushChannel::Fcm,
        &json!({"service_account": sa, "api_base": api_base}),
    )
    .unwrap();
}

fn atoll_merge(target: &mut Value, extra: Value) {
    if let (Some(t), Value::Object(e)) = (target.as_object_mut(), extra) {
        t.extend(e);
    }
}
