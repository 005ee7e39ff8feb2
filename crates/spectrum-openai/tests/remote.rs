//! The remote backend against `spectrum serve` on loopback: the same numbers
//! as the local model, work split across endpoints, retries, clear errors.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use spectrum_core::{Explain, Fix};
use spectrum_lm::{DeviceSpec, LanguageModel, LocalModel, SamplingParams};
use spectrum_openai::{RemoteModel, RemoteSpec, ServeOptions, ServedModel, Server};

fn tiny(dir: &Path) -> LocalModel {
    spectrum_lm::tiny::write_model(dir, 32, 2, 3).expect("tiny model");
    spectrum_lm::load_local(dir, DeviceSpec::Cpu).expect("load")
}

fn serve(dir: &Path, options: ServeOptions) -> Server {
    let model = tiny(dir);
    Server::start(
        vec![ServedModel {
            name: "tiny".into(),
            dir: dir.to_path_buf(),
            model,
        }],
        &ServeOptions { port: 0, ..options },
    )
    .expect("server starts")
}

fn spec(urls: &[String], concurrency: usize) -> RemoteSpec {
    let mut spec = RemoteSpec::parse(&format!("openai:{}#tiny", urls.join(","))).expect("spec");
    spec.concurrency = concurrency;
    spec.retries = 1;
    spec
}

#[test]
fn remote_scores_and_samples_equal_the_local_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(dir.path(), ServeOptions::default());
    let url = format!("http://{}/v1", server.addr());
    let mut local = tiny(dir.path());
    let tok = local.tokenizer.clone();
    let mut remote = RemoteModel::new(spec(&[url], 1), tok.clone());
    remote.check().expect("the server serves tiny");

    let batch: Vec<Vec<u32>> = ["one two three", "a", "the quick brown fox jumps"]
        .iter()
        .map(|t| tok.encode(t).expect("encode"))
        .collect();
    let (want, got) = (
        local.score_tokens(&batch).expect("local"),
        remote.score_tokens(&batch).expect("remote"),
    );
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(w.logprobs, g.logprobs);
        assert_eq!(w.hits, g.hits);
        assert_eq!(w.top_logprobs, g.top_logprobs);
    }

    let prompt = tok.encode("colour:").expect("encode");
    let options: Vec<Vec<u32>> = [" red", " green blue", ""]
        .iter()
        .map(|t| tok.encode(t).expect("encode"))
        .collect();
    let want = local.option_logprobs(&prompt, &options).expect("local");
    let got = remote.option_logprobs(&prompt, &options).expect("remote");
    assert_eq!(got[2], 0.0);
    for (w, g) in want.iter().zip(&got) {
        // The local path scores options from the prompt's KV cache, the server
        // in one pass: the same sums up to float rounding.
        assert!((w - g).abs() < 1e-4, "{w} vs {g}");
    }

    let params = SamplingParams {
        n: 5,
        temperature: 1.0,
        seed: 42,
        max_tokens: 10,
        stop_ids: tok.eos.clone(),
        ..SamplingParams::default()
    };
    let want: Vec<String> = local
        .sample(&prompt, &params)
        .expect("local")
        .iter()
        .map(|s| tok.decode(s).expect("decode"))
        .collect();
    let got: Vec<String> = remote
        .sample(&prompt, &params)
        .expect("remote")
        .iter()
        .map(|s| tok.decode(s).expect("decode"))
        .collect();
    assert_eq!(want, got);
    server.stop().expect("clean stop");
}

#[test]
fn work_splits_across_endpoints_and_concurrent_requests_batch() {
    let (a, b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let (sa, sb) = (
        serve(a.path(), ServeOptions::default()),
        serve(b.path(), ServeOptions::default()),
    );
    let urls = [
        format!("http://{}/v1", sa.addr()),
        format!("http://{}/v1", sb.addr()),
    ];
    let mut local = tiny(a.path());
    let tok = local.tokenizer.clone();
    let mut remote = RemoteModel::new(spec(&urls, 3), tok.clone());
    let batch: Vec<Vec<u32>> = (0..24)
        .map(|i| {
            tok.encode(&format!("sequence number {i} {}", "x".repeat(i)))
                .expect("encode")
        })
        .collect();
    let want = local.score_tokens(&batch).expect("local");
    let got = remote.score_tokens(&batch).expect("remote");
    assert_eq!(want.len(), got.len());
    for (w, g) in want.iter().zip(&got) {
        for (x, y) in w.logprobs.iter().zip(&g.logprobs) {
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }
    }
    // 12 samples in parts across 6 slots: the shifted seeds give the rows of one request.
    let prompt = tok.encode("hi").expect("encode");
    let params = SamplingParams {
        n: 12,
        seed: 7,
        max_tokens: 6,
        ..SamplingParams::default()
    };
    // Compared as text: that is what crosses the wire (and what evaluation reads).
    let text = |samples: Vec<Vec<u32>>| -> Vec<String> {
        samples
            .iter()
            .map(|s| tok.decode(s).expect("decode"))
            .collect()
    };
    assert_eq!(
        text(local.sample(&prompt, &params).expect("local")),
        text(remote.sample(&prompt, &params).expect("remote"))
    );
    sa.stop().expect("stop a");
    sb.stop().expect("stop b");
}

/// A one-route HTTP server that answers each request with the next canned
/// response (status, body), counting requests: a stand-in for servers we
/// cannot run here (one without log-probabilities, one that is overloaded).
fn canned(responses: Vec<(u16, String)>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/v1", listener.local_addr().expect("addr"));
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let i = seen.fetch_add(1, Ordering::SeqCst);
            let (status, text) = &responses[i.min(responses.len() - 1)];
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\nretry-after: 0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (url, count)
}

#[test]
fn a_server_without_prompt_logprobs_gets_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tok = tiny(dir.path()).tokenizer;
    // What llama.cpp's server answers: text, no log-probabilities.
    let body = r#"{"choices":[{"index":0,"text":"hello","finish_reason":"length"}]}"#;
    let (url, _) = canned(vec![(200, body.into())]);
    let mut remote = RemoteModel::new(spec(&[url], 1), tok.clone());
    let err = remote
        .score_tokens(&[tok.encode("abc").expect("encode")])
        .expect_err("no logprobs");
    assert!(err.to_string().contains("no log-probabilities"), "{err}");
    assert!(fix_text(&err).contains("llama.cpp"), "{err}");
}

/// What llama-cpp-python's server (0.3.36) answers, recorded: a model list
/// without `created`, and a token-id prompt refused with HTTP 500 and a
/// validation error. The list is read; the refusal is not retried and says
/// what to use instead.
#[test]
fn a_server_that_takes_text_prompts_only_is_named_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tok = tiny(dir.path()).tokenizer;
    let models = r#"{"object":"list","data":[{"id":"tiny","object":"model","owned_by":"me","permissions":[]}]}"#;
    let refused = r#"{"error":{"message":"2 validation errors:\n  {'type': 'string_type', 'loc': ('body', 'prompt', 'str'), 'msg': 'Input should be a valid string', 'input': [1, 2]}\n","type":"internal_server_error","param":null,"code":null}}"#;
    let (url, count) = canned(vec![(200, models.into()), (500, refused.into())]);
    let mut s = spec(&[url], 1);
    s.retries = 3;
    let mut remote = RemoteModel::new(s, tok.clone());
    remote
        .check()
        .expect("a model list without `created` is read");
    let err = remote
        .score_tokens(&[tok.encode("abc").expect("encode")])
        .expect_err("refused");
    assert!(err.to_string().contains("text prompts only"), "{err}");
    assert!(fix_text(&err).contains("llama-cpp-python"), "{err}");
    assert_eq!(
        count.load(Ordering::SeqCst),
        2,
        "the refusal is not retried"
    );
}

#[test]
fn overloaded_answers_are_retried_and_client_errors_are_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tok = tiny(dir.path()).tokenizer;
    let ok = r#"{"choices":[{"index":0,"text":"ab","finish_reason":"stop"}]}"#;
    let busy = r#"{"error":{"message":"busy","type":"server_error"}}"#;
    let (url, count) = canned(vec![
        (429, busy.into()),
        (503, busy.into()),
        (200, ok.into()),
    ]);
    let mut s = spec(&[url], 1);
    s.retries = 3;
    let mut remote = RemoteModel::new(s, tok.clone());
    let prompt = tok.encode("x").expect("encode");
    let out = remote
        .sample(&prompt, &SamplingParams::default())
        .expect("succeeds on the third try");
    assert_eq!(tok.decode(&out[0]).expect("decode"), "ab");
    assert_eq!(count.load(Ordering::SeqCst), 3);

    let bad = r#"{"error":{"message":"max_tokens is too large","type":"invalid_request_error"}}"#;
    let (url, count) = canned(vec![(400, bad.into())]);
    let mut remote = RemoteModel::new(spec(&[url], 1), tok.clone());
    let err = remote
        .sample(&prompt, &SamplingParams::default())
        .expect_err("400")
        .to_string();
    assert!(err.contains("HTTP 400: max_tokens is too large"), "{err}");
    assert_eq!(count.load(Ordering::SeqCst), 1, "a 400 is not retried");
}

/// The way out an error names, in words.
fn fix_text(err: &spectrum_lm::LmError) -> String {
    match err.fix() {
        Some(Fix::Say { text }) => text,
        other => panic!("expected a fix in words for {err}, got {other:?}"),
    }
}

#[test]
fn unreachable_servers_and_bad_specs_say_what_to_fix() {
    for bad in [
        "openai:http://localhost:1/v1",
        "openai:#model",
        "openai:ftp://x/v1#m",
        "http://x/v1#m",
    ] {
        let err = RemoteSpec::parse(bad).expect_err(bad);
        let text = fix_text(&err);
        assert!(
            text.contains("openai:http://HOST:PORT/v1#MODEL"),
            "{bad}: {text}"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let tok = tiny(dir.path()).tokenizer;
    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut s = spec(&[format!("http://127.0.0.1:{port}/v1")], 1);
    s.retries = 0;
    let remote = RemoteModel::new(s, tok);
    let err = remote.check().expect_err("nothing listens");
    assert!(
        fix_text(&err).contains("check that the server runs"),
        "{err}"
    );
}

#[test]
fn the_server_speaks_the_api_and_refuses_bad_requests_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(
        dir.path(),
        ServeOptions {
            api_key: Some("sekrit".into()),
            ..ServeOptions::default()
        },
    );
    let url = format!("http://{}/v1", server.addr());
    let post =
        |path: &str, key: &str, body: serde_json::Value| match ureq::post(&format!("{url}{path}"))
            .set("Authorization", &format!("Bearer {key}"))
            .send_json(body)
        {
            Ok(r) => (200, r.into_json::<serde_json::Value>().expect("json")),
            Err(ureq::Error::Status(code, r)) => (code, r.into_json().expect("json")),
            Err(e) => panic!("{e}"),
        };
    let (code, body) = post(
        "/completions",
        "wrong",
        serde_json::json!({"model": "tiny", "prompt": "a"}),
    );
    assert_eq!(code, 401, "{body}");
    let (code, body) = post(
        "/completions",
        "sekrit",
        serde_json::json!({"model": "nope", "prompt": "a"}),
    );
    assert_eq!(code, 404);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("serves tiny")
    );
    let (code, body) = post(
        "/completions",
        "sekrit",
        serde_json::json!({"model": "tiny", "prompt": [[999999]]}),
    );
    assert_eq!(code, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("beyond the vocabulary")
    );
    let (code, body) = post(
        "/completions",
        "sekrit",
        serde_json::json!({"model": "tiny", "prompt": "a", "stream": true}),
    );
    assert_eq!(code, 400, "{body}");

    // Text prompts, two of them, n = 2, echo + logprobs: four choices.
    let (code, body) = post(
        "/completions",
        "sekrit",
        serde_json::json!({"model": "tiny", "prompt": ["ab", "cde"], "n": 2, "max_tokens": 3,
                           "echo": true, "logprobs": 1, "seed": 1, "prompt_logprobs": 1}),
    );
    assert_eq!(code, 200, "{body}");
    let choices = body["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 4);
    for c in choices {
        let lp = &c["logprobs"];
        let n = lp["tokens"].as_array().expect("tokens").len();
        assert_eq!(lp["token_logprobs"].as_array().expect("lps").len(), n);
        assert!(lp["token_logprobs"][0].is_null());
        assert!(
            c["text"]
                .as_str()
                .expect("text")
                .starts_with(if c["index"].as_u64() < Some(2) {
                    "ab"
                } else {
                    "cde"
                })
        );
        assert!(c["prompt_logprobs"][0].is_null());
    }
    assert!(body["usage"]["total_tokens"].as_u64() > Some(0));

    // Unseeded requests differ; seeded ones repeat.
    let draw = |seed: Option<u64>| {
        let mut body = serde_json::json!({"model": "tiny", "prompt": "a", "max_tokens": 12});
        if let Some(s) = seed {
            body["seed"] = s.into();
        }
        let (code, out) = post("/completions", "sekrit", body);
        assert_eq!(code, 200, "{out}");
        out["choices"][0]["text"].clone()
    };
    assert_ne!(draw(None), draw(None));
    assert_eq!(draw(Some(5)), draw(Some(5)));

    let (code, body) = post(
        "/chat/completions",
        "sekrit",
        serde_json::json!({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    server.stop().expect("stop");
}

#[test]
fn a_server_that_never_answers_times_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tok = tiny(dir.path()).tokenizer;
    // Accepts connections, reads nothing, answers nothing.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/v1", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(4).collect();
        std::thread::sleep(std::time::Duration::from_secs(30));
        drop(held);
    });
    let mut s = spec(&[url], 1);
    s.timeout_s = 1;
    s.retries = 1;
    let mut remote = RemoteModel::new(s, tok.clone());
    let started = std::time::Instant::now();
    let err = remote
        .sample(
            &tok.encode("x").expect("encode"),
            &SamplingParams::default(),
        )
        .expect_err("timeout")
        .to_string();
    assert!(err.contains("after 2 attempts"), "{err}");
    assert!(started.elapsed().as_secs() < 10);
}

#[test]
fn a_server_that_refuses_max_tokens_0_is_asked_for_one_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tok = tiny(dir.path()).tokenizer;
    // vLLM: "max_tokens must be at least 1"; then prompt + 1 generated token.
    let refused =
        r#"{"error":{"message":"max_tokens must be at least 1, got 0.","type":"BadRequestError"}}"#;
    let echoed = r#"{"choices":[{"index":0,"text":"abcd","logprobs":{
        "tokens":["a","b","c","d"],"token_logprobs":[null,-1.5,-0.25,-3.0],
        "top_logprobs":[null,{"b":-1.5},{"x":-0.125},{"y":-0.5}],"text_offset":[0,1,2,3]}}]}"#;
    let (url, count) = canned(vec![
        (400, refused.into()),
        (200, echoed.into()),
        (200, echoed.into()),
    ]);
    let mut remote = RemoteModel::new(spec(&[url], 1), tok);
    for _ in 0..2 {
        let s = remote.score_tokens(&[vec![5, 6, 7]]).expect("scores");
        assert_eq!(s[0].logprobs, vec![-1.5, -0.25]);
        assert_eq!(s[0].hits, vec![true, false]);
    }
    assert_eq!(
        count.load(Ordering::SeqCst),
        3,
        "asked with 0 once, then with 1 only"
    );
}

#[test]
fn an_overloaded_server_answers_503_and_the_client_retries_through_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(
        dir.path(),
        ServeOptions {
            max_queue: 1,
            ..ServeOptions::default()
        },
    );
    let url = format!("http://{}/v1", server.addr());
    // Many simultaneous requests against a queue of one: some are turned away.
    let codes: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let url = &url;
                scope.spawn(move || {
                    let body = serde_json::json!({"model": "tiny", "prompt": "go", "n": 8,
                                                  "max_tokens": 64, "seed": i});
                    match ureq::post(&format!("{url}/completions")).send_json(body) {
                        Ok(r) => r.status(),
                        Err(ureq::Error::Status(code, r)) => {
                            assert_eq!(r.header("retry-after"), Some("1"));
                            code
                        }
                        Err(e) => panic!("{e}"),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client"))
            .collect()
    });
    assert!(codes.contains(&200), "{codes:?}");
    assert!(codes.contains(&503), "{codes:?}");
    // Our client waits and retries: every sample arrives.
    let mut local = tiny(dir.path());
    let tok = local.tokenizer.clone();
    let mut s = spec(&[url], 4);
    s.retries = 20;
    let mut remote = RemoteModel::new(s, tok.clone());
    let batch: Vec<Vec<u32>> = (0..8)
        .map(|i| tok.encode(&format!("text {i}")).expect("encode"))
        .collect();
    assert_eq!(
        remote.score_tokens(&batch).expect("remote").len(),
        local.score_tokens(&batch).expect("local").len()
    );
    server.stop().expect("stop");
}
