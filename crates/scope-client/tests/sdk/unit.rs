//! Pure tests: configuration, backoff, Retry-After, cache keys, the
//! PromptVersion type and rendering. No network.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::SeedableRng;
use scope_client::{
    cache_key, is_retryable_status, parse_retry_after, ClientBuilder, ClientCredentials, Error, PromptStatus,
    PromptType, PromptVersion, RetryPolicy, Selector,
};
use serde::Deserialize;

use crate::support::{env_map, mistyped_secret, prompt_json, secret, KEY, ORG};

fn base_env() -> HashMap<String, String> {
    env_map(&[("SCOPE_ORG_ID", ORG), ("SCOPE_API_KEY", KEY), ("SCOPE_API_SECRET", &secret())])
}

fn builder(env: &HashMap<String, String>) -> Result<ClientBuilder, Error> {
    ClientBuilder::from_lookup(|k| env.get(k).cloned())
}

fn config_variable(e: Error) -> Option<String> {
    match e {
        Error::Config(c) => c.variable,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

mod config {
    use super::*;

    #[test]
    fn reads_every_variable() {
        let mut env = base_env();
        env.insert("SCOPE_API_URL".into(), "https://scope.example.com/".into());
        env.insert("SCOPE_AUTH_API_URL".into(), "https://auth.example.com".into());
        env.insert("SCOPE_ENVIRONMENT".into(), "staging".into());
        env.insert("SCOPE_TOKEN_REFRESH_BUFFER".into(), "15".into());
        let client = builder(&env).unwrap().build().unwrap();
        assert_eq!(client.api_base_url(), "https://scope.example.com/api/v1");
        assert_eq!(client.token_url(), "https://auth.example.com/v1/auth/applications/login");
        assert_eq!(client.org_id(), ORG);
        assert_eq!(client.key_id(), KEY);
        let dbg = format!("{client:?}");
        assert!(dbg.contains("staging"), "{dbg}");
    }

    #[test]
    fn defaults_auth_url_to_api_url_and_accepts_api_suffix() {
        let mut env = base_env();
        env.insert("SCOPE_API_URL".into(), "http://127.0.0.1:9000/api/v1/".into());
        let client = builder(&env).unwrap().build().unwrap();
        assert_eq!(client.api_base_url(), "http://127.0.0.1:9000/api/v1");
        assert_eq!(client.token_url(), "http://127.0.0.1:9000/v1/auth/applications/login");
    }

    #[test]
    fn defaults_to_local_server() {
        let client = builder(&base_env()).unwrap().build().unwrap();
        assert_eq!(client.api_base_url(), "http://localhost:8080/api/v1");
    }

    #[test]
    fn client_id_and_secret_are_accepted_and_win() {
        let other_key = "key_01JD8X4B7V9W0K2M4N6P8R0T3A";
        let env = env_map(&[
            ("SCOPE_ORG_ID", ORG),
            ("SCOPE_API_KEY", KEY),
            ("SCOPE_CLIENT_ID", other_key),
            ("SCOPE_CLIENT_SECRET", &secret()),
        ]);
        let creds = ClientCredentials::from_lookup(|k| env.get(k).cloned()).unwrap();
        assert_eq!(creds.key_id(), other_key);
        assert_eq!(creds.key_source(), "SCOPE_CLIENT_ID");
        assert_eq!(creds.org_id(), ORG);
        let env = env_map(&[("SCOPE_ORG_ID", ORG), ("SCOPE_API_KEY", KEY), ("SCOPE_API_SECRET", &secret())]);
        let creds = ClientCredentials::from_lookup(|k| env.get(k).cloned()).unwrap();
        assert_eq!(creds.key_source(), "SCOPE_API_KEY");
    }

    #[test]
    fn missing_variables_are_named() {
        for (drop, expected) in [
            ("SCOPE_ORG_ID", "SCOPE_ORG_ID"),
            ("SCOPE_API_KEY", "SCOPE_API_KEY"),
            ("SCOPE_API_SECRET", "SCOPE_API_SECRET"),
        ] {
            let mut env = base_env();
            env.remove(drop);
            let err = builder(&env).unwrap_err();
            assert_eq!(config_variable(err).as_deref(), Some(expected));
        }
        // Blank counts as unset.
        let mut env = base_env();
        env.insert("SCOPE_ORG_ID".into(), "   ".into());
        assert_eq!(config_variable(builder(&env).unwrap_err()).as_deref(), Some("SCOPE_ORG_ID"));
    }

    #[test]
    fn malformed_values_are_named() {
        let cases = [
            ("SCOPE_ORG_ID", "acme"),
            ("SCOPE_API_KEY", "key_notaulid"),
            ("SCOPE_API_URL", "not a url"),
            ("SCOPE_API_URL", "ftp://scope.example.com"),
            ("SCOPE_AUTH_API_URL", "http://"),
            ("SCOPE_TOKEN_REFRESH_BUFFER", "soon"),
            ("SCOPE_TOKEN_REFRESH_BUFFER", "-5"),
            ("SCOPE_ENVIRONMENT", "bad\nvalue"),
        ];
        for (var, value) in cases {
            let mut env = base_env();
            env.insert(var.into(), value.into());
            let err = builder(&env).unwrap_err();
            let msg = err.to_string();
            assert_eq!(config_variable(err).as_deref(), Some(var), "{var}={value:?}: {msg}");
            assert!(msg.contains(var), "{msg}");
        }
    }

    #[test]
    fn bad_checksum_is_rejected_without_echoing_the_secret() {
        let bad = mistyped_secret();
        let mut env = base_env();
        env.insert("SCOPE_API_SECRET".into(), bad.clone());
        let err = builder(&env).unwrap_err();
        let msg = err.to_string();
        assert!(!msg.contains(&bad), "secret leaked in {msg}");
        assert!(msg.contains("checksum"), "{msg}");
        assert_eq!(config_variable(err).as_deref(), Some("SCOPE_API_SECRET"));

        let err = ClientCredentials::new(ORG, KEY, bad.clone()).unwrap_err();
        assert_eq!(err.variable.as_deref(), Some("secret"));
        // Truncated and wrong-prefix secrets too.
        let good = secret();
        assert!(ClientCredentials::new(ORG, KEY, &good[..good.len() - 1]).is_err());
        assert!(ClientCredentials::new(ORG, KEY, good.replacen("secret_", "sekret_", 1)).is_err());
        assert!(ClientCredentials::new(ORG, KEY, good).is_ok());
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let s = secret();
        let creds = ClientCredentials::new(ORG, KEY, s.clone()).unwrap();
        let dbg = format!("{creds:?}");
        assert!(!dbg.contains(&s) && dbg.contains("redacted") && dbg.contains(KEY), "{dbg}");
        let b = builder(&base_env()).unwrap();
        assert!(!format!("{b:?}").contains(&s));
        let client = b.build().unwrap();
        assert!(!format!("{client:?}").contains(&s));
        assert!(!format!("{:#?}", scope_client::blocking::Client::new(client).unwrap()).contains(&s));
    }

    #[test]
    fn builder_rejects_nonsense_options() {
        let b = || ClientBuilder::new().credentials(ClientCredentials::new(ORG, KEY, secret()).unwrap());
        let var = |r: Result<scope_client::Client, Error>| config_variable(r.unwrap_err());
        assert_eq!(var(b().timeout(Duration::ZERO).build()).as_deref(), Some("timeout"));
        assert_eq!(var(b().background_refresh_at(1.5).build()).as_deref(), Some("background_refresh_at"));
        assert_eq!(var(b().api_url("mailto:x@y").build()).as_deref(), Some("api_url"));
        assert_eq!(var(ClientBuilder::new().build()).as_deref(), Some("credentials"));
    }
}

mod retry {
    use super::*;

    #[test]
    fn backoff_ceiling_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_retries, 3);
        let ms: Vec<u128> = (0..9).map(|n| p.backoff_ceiling(n).as_millis()).collect();
        assert_eq!(ms, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
        // No overflow for absurd retry numbers.
        assert_eq!(p.backoff_ceiling(u32::MAX), Duration::from_secs(30));
        assert_eq!(p.backoff_ceiling(64), Duration::from_secs(30));
    }

    #[test]
    fn full_jitter_stays_within_the_ceiling_and_varies() {
        let p = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(7);
        for retry in 0..6 {
            let ceiling = p.backoff_ceiling(retry);
            let samples: Vec<Duration> = (0..500).map(|_| p.backoff(retry, &mut rng)).collect();
            assert!(samples.iter().all(|d| *d <= ceiling));
            let min = samples.iter().min().copied().unwrap_or_default();
            let max = samples.iter().max().copied().unwrap_or_default();
            // Full jitter spreads over the whole range.
            assert!(min < ceiling / 10 && max > ceiling * 9 / 10, "retry {retry}: {min:?}..{max:?}");
        }
    }

    #[test]
    fn delay_honours_retry_after_and_the_retry_budget() {
        let p = RetryPolicy::new(2, RetryPolicy::default().base_delay, RetryPolicy::default().max_delay);
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(p.delay(0, Some(Duration::from_secs(7)), &mut rng), Some(Duration::from_secs(7)));
        assert_eq!(p.delay(1, Some(Duration::ZERO), &mut rng), Some(Duration::ZERO));
        // Longer than max_delay: give up and let the caller see retry_after.
        assert_eq!(p.delay(0, Some(Duration::from_secs(31)), &mut rng), None);
        assert!(p.delay(1, None, &mut rng).is_some());
        assert_eq!(p.delay(2, None, &mut rng), None);
        assert_eq!(RetryPolicy::none().delay(0, None, &mut rng), None);
    }

    #[test]
    fn retryable_statuses() {
        for s in [429, 500, 502, 503, 504] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 409, 413, 422, 501, 505] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }

    #[test]
    fn parses_retry_after() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470); // 2015-10-21T07:27:50Z
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("1.5", now), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), Some(Duration::from_secs(10)));
        // A date in the past means "now".
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(Duration::ZERO));
        for bad in ["", "soon", "-1", "NaN", "inf", "1e99"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }
}

mod prompt {
    use super::*;

    fn version(content: &str) -> PromptVersion {
        serde_json::from_value(prompt_json("greeting", 3, content)).unwrap()
    }

    #[test]
    fn cache_key_pattern() {
        assert_eq!(cache_key("greeting", Selector::PRODUCTION), "prompt:greeting:production");
        assert_eq!(cache_key("greeting", Selector::LATEST), "prompt:greeting:latest");
        assert_eq!(
            cache_key("greeting", Selector::Version("v_01JD8X3Q7V9W0K2M4N6P8R0T2V")),
            "prompt:greeting:v_01JD8X3Q7V9W0K2M4N6P8R0T2V"
        );
        assert_eq!(Selector::default(), Selector::PRODUCTION);
    }

    #[test]
    fn deserializes_every_field_and_ignores_extras() {
        let v = version("Hello {{name}}");
        assert_eq!(v.name, "greeting");
        assert_eq!(v.version, 3);
        assert_eq!(v.prompt_id, "pmt_01JD8X3Q7V9W0K2M4N6P8R0T2V");
        assert!(v.version_id.starts_with("v_"));
        assert_eq!(v.variables, ["name"]);
        assert_eq!(v.status, PromptStatus::Published);
        assert!(v.is_production && v.is_published() && !v.is_draft() && !v.is_archived());
        assert_eq!(v.prompt_type, PromptType::Text);
        assert!(!v.is_chat());
        assert_eq!(v.tags, ["greeting"]);
        assert_eq!(v.created_at.to_rfc3339(), "2025-01-02T03:04:05+00:00");
        assert!(v.promoted_at.is_some());
        assert_eq!(v.promoted_by.as_deref(), Some("usr_01JD8X3Q7V9W0K2M4N6P8R0T2V"));
    }

    #[test]
    fn tolerates_nulls_missing_optionals_and_new_enum_values() {
        let json = serde_json::json!({
            "prompt_id": "pmt_1", "version_id": "v_1", "name": "n", "version": 1, "content": "x",
            "status": "draft", "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00.123Z",
            "promoted_at": null, "promoted_by": null, "prompt_type": "chat"
        });
        let v: PromptVersion = serde_json::from_value(json).unwrap();
        assert!(v.is_draft() && v.is_chat() && !v.is_production);
        assert!(v.metadata.is_empty() && v.tags.is_empty() && v.variables.is_empty());
        assert!(v.promoted_at.is_none());

        let mut json = prompt_json("n", 1, "x");
        json["status"] = "retired".into();
        json["prompt_type"] = "image".into();
        let v: PromptVersion = serde_json::from_value(json).unwrap();
        assert_eq!(v.status, PromptStatus::Unknown);
        assert_eq!(v.prompt_type, PromptType::Unknown);
    }

    #[test]
    fn status_helpers() {
        for (s, d, p, a) in
            [("draft", true, false, false), ("published", false, true, false), ("archived", false, false, true)]
        {
            let mut json = prompt_json("n", 1, "x");
            json["status"] = s.into();
            let v: PromptVersion = serde_json::from_value(json).unwrap();
            assert_eq!((v.is_draft(), v.is_published(), v.is_archived()), (d, p, a), "{s}");
        }
    }

    #[test]
    fn typed_metadata() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct Model {
            model: String,
            temperature: f64,
            #[serde(default)]
            max_tokens: Option<u32>,
        }
        let v = version("x");
        assert_eq!(v.metadata_str("model"), Some("gpt-4o"));
        assert_eq!(v.metadata_str("temperature"), None);
        assert_eq!(v.metadata_value::<f64>("temperature").unwrap(), Some(0.2));
        assert_eq!(v.metadata_value::<f64>("absent").unwrap(), None);
        assert!(matches!(v.metadata_value::<u32>("model"), Err(Error::Decode(_))));
        assert_eq!(
            v.metadata_as::<Model>().unwrap(),
            Model { model: "gpt-4o".into(), temperature: 0.2, max_tokens: None }
        );
    }

    #[test]
    fn equality_ignores_the_parsed_template() {
        let a = version("Hi {{x}}");
        let b = a.clone();
        let _ = a.render(&HashMap::from([("x", "1")]));
        assert_eq!(a, b);
        // Round-trips through JSON.
        let back: PromptVersion = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back, a);
    }
}

mod render {
    use super::*;

    fn version(content: &str) -> PromptVersion {
        serde_json::from_value(prompt_json("greeting", 1, content)).unwrap()
    }

    #[test]
    fn substitutes_in_a_single_pass() {
        let v = version("{{greeting}}, {{name}}! {{name}} again.");
        let vars = HashMap::from([("greeting", "Hello"), ("name", "{{greeting}}")]);
        assert_eq!(v.render(&vars).unwrap(), "Hello, {{greeting}}! {{greeting}} again.");
        // Rendering twice (with the cached parse) gives the same text.
        assert_eq!(v.render(&vars).unwrap(), v.render(&vars).unwrap());
        // Owned keys and values work too.
        let owned: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(v.render(&owned).unwrap(), v.render(&vars).unwrap());
    }

    #[test]
    fn takes_any_collection_of_pairs() {
        let v = version("{{a}}-{{b}}");
        assert_eq!(v.render([("a", "1"), ("b", "2")]).unwrap(), "1-2");
        assert_eq!(v.render(vec![("a".to_owned(), "1".to_owned()), ("b".to_owned(), "2".to_owned())]).unwrap(), "1-2");
        let tree = std::collections::BTreeMap::from([("a", "x"), ("b", "y")]);
        assert_eq!(v.render(&tree).unwrap(), "x-y");
        assert_eq!(v.render(tree.iter().map(|(k, v)| (*k, v.to_uppercase()))).unwrap(), "X-Y");
        // A name given twice: the last value wins.
        assert_eq!(v.render([("a", "1"), ("b", "2"), ("a", "3")]).unwrap(), "3-2");
        // Many pairs (past the linear-scan size) behave the same.
        let many: Vec<(String, String)> = (0..40).map(|i| (format!("v{i}"), i.to_string())).collect();
        let wide = version("{{v0}}+{{v39}}");
        assert_eq!(wide.render(many.iter().map(|(k, v)| (k, v))).unwrap(), "0+39");
        let mut doubled = many.clone();
        doubled.push(("v0".to_owned(), "last".to_owned()));
        assert_eq!(wide.render(doubled.clone()).unwrap(), "last+39");
        // Strict mode names each unused variable once, sorted.
        match v.render_strict([("a", "1"), ("b", "2"), ("z", "3"), ("y", "4"), ("z", "5")]) {
            Err(Error::UnknownVariables { variables }) => assert_eq!(variables, ["y", "z"]),
            other => panic!("{other:?}"),
        }
        match wide.render_strict(doubled) {
            Err(Error::UnknownVariables { variables }) => assert_eq!(variables.len(), 38),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lists_every_missing_variable() {
        let v = version("{{a}} {{b}} {{c}} {{a}}");
        match v.render(&HashMap::from([("b", "1")])) {
            Err(Error::MissingVariables { variables }) => assert_eq!(variables, ["a", "c"]),
            other => panic!("{other:?}"),
        }
        let err = v.render(&HashMap::<&str, &str>::new()).unwrap_err();
        assert_eq!(err.to_string(), "missing variables: a, b, c");
    }

    #[test]
    fn strict_mode_rejects_unknown_variables() {
        let v = version("Hi {{name}}");
        let vars = HashMap::from([("name", "Ada"), ("zeta", "1"), ("alpha", "2")]);
        assert_eq!(v.render(&vars).unwrap(), "Hi Ada");
        match v.render_strict(&vars) {
            Err(Error::UnknownVariables { variables }) => assert_eq!(variables, ["alpha", "zeta"]),
            other => panic!("{other:?}"),
        }
        assert_eq!(v.render_strict(&HashMap::from([("name", "Ada")])).unwrap(), "Hi Ada");
    }

    #[test]
    fn literal_braces_are_kept() {
        let v = version("{{ spaced }} {{}} {x} {{{name}}} {{unclosed");
        assert_eq!(v.render(&HashMap::from([("name", "N")])).unwrap(), "{{ spaced }} {{}} {x} {N} {{unclosed");
    }
}
