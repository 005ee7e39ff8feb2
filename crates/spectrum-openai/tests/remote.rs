//! The remote backend against `spectrum serve` on loopback: the same numbers
//! as the local model, work split across endpoints, retries, clear errors.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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
    let (url, count, _) = canned_bodies(responses);
    (url, count)
}

/// [`canned`], also keeping the request bodies.
fn canned_bodies(
    responses: Vec<(u16, String)>,
) -> (String, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
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
            if let Ok(mut kept) = kept.lock() {
                kept.push(String::from_utf8_lossy(&body).into_owned());
            }
            let i = seen.fetch_add(1, Ordering::SeqCst);
            let (status, text) = &responses[i.min(responses.len() - 1)];
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\nretry-after: 0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (url, count, bodies)
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

/// An echo answer as llama-cpp-python's server (0.3.36) gives it for `seq`:
/// every token but `left_out` as text, the first entry null, `lp(p)` the
/// log-probability and top entries of token `p`.
fn llama_cpp_echo(
    tok: &spectrum_lm::tokenizer::TextTokenizer,
    seq: &[u32],
    left_out: u32,
    lp: impl Fn(usize) -> (f64, serde_json::Value),
) -> String {
    let kept: Vec<usize> = (0..seq.len()).filter(|&p| seq[p] != left_out).collect();
    let tokens: Vec<String> = kept
        .iter()
        .map(|&p| tok.inner().decode(&[seq[p]], true).expect("decode"))
        .collect();
    let (mut own, mut top) = (Vec::new(), Vec::new());
    for (e, &p) in kept.iter().enumerate() {
        let (l, t) = lp(p);
        own.push(if e == 0 {
            serde_json::Value::Null
        } else {
            l.into()
        });
        top.push(if e == 0 { serde_json::Value::Null } else { t });
    }
    serde_json::json!({"choices": [{"index": 0, "text": "", "finish_reason": "length",
        "logprobs": {"tokens": tokens, "token_logprobs": own, "top_logprobs": top,
                     "text_offset": vec![0; kept.len()]}}]})
    .to_string()
}

/// A completion of one token whose top entries are `top`.
fn one_token(top: serde_json::Value) -> String {
    serde_json::json!({"choices": [{"index": 0, "text": "x", "finish_reason": "length",
        "logprobs": {"tokens": ["x"], "token_logprobs": [-0.1], "top_logprobs": [top],
                     "text_offset": [0]}}]})
    .to_string()
}

/// What llama-cpp-python's server (0.3.36) answers, recorded: a model list
/// without `created`; a token-id prompt refused with HTTP 500 and a
/// validation error (not retried); a text prompt echoed without its BOS
/// token (here `<|im_start|>`), the first entry null. The client sends text
/// from then on, checks the echoed tokens against its own, and checks once
/// that the echo is aligned: the distribution echoed for the last token is
/// the one predicted from the tokens before it. A shifted echo (what the
/// server gives for a prompt that does not start with BOS) is refused with
/// the way out.
#[test]
fn a_server_that_takes_text_prompts_only_gets_text_and_its_echo_is_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tok = tiny(dir.path()).tokenizer;
    let models = r#"{"object":"list","data":[{"id":"tiny","object":"model","owned_by":"me","permissions":[]}]}"#;
    let refused = r#"{"error":{"message":"2 validation errors:\n  {'type': 'string_type', 'loc': ('body', 'prompt', 'str'), 'msg': 'Input should be a valid string', 'input': [1, 2]}\n","type":"internal_server_error","param":null,"code":null}}"#;
    let seq = tok
        .encode("<|im_start|>user\nabc<|im_end|>")
        .expect("encode");
    let bos = seq[0];
    let top = |p: usize| serde_json::json!({ format!("t{p}"): -0.25, "u": -2.0 - p as f64 });
    let lp = |p: usize| (-0.5 - p as f64, top(p));
    let echo = llama_cpp_echo(&tok, &seq, bos, lp);
    let last = seq.len() - 1;
    let (url, count, bodies) = canned_bodies(vec![
        (200, models.into()),
        (500, refused.into()),
        (200, echo.clone()),
        (200, one_token(top(last))),
    ]);
    let mut s = spec(&[url], 1);
    s.retries = 3;
    let mut remote = RemoteModel::new(s, tok.clone());
    remote
        .check()
        .expect("a model list without `created` is read");
    let got = remote
        .score_tokens(std::slice::from_ref(&seq))
        .expect("scores");
    assert_eq!(
        count.load(Ordering::SeqCst),
        4,
        "the refusal is not retried"
    );
    let bodies = bodies.lock().expect("bodies");
    let sent: serde_json::Value = serde_json::from_str(&bodies[2]).expect("json");
    assert_eq!(sent["prompt"], tok.decode(&seq).expect("decode"));
    assert_eq!(sent["max_tokens"], 1, "0 reads as no limit there");
    let probe: serde_json::Value = serde_json::from_str(&bodies[3]).expect("json");
    assert_eq!(probe["prompt"], tok.decode(&seq[..last]).expect("decode"));
    // Token 1 came back null (the API's convention for the first entry).
    assert!(got[0].logprobs[0].is_nan());
    for p in 2..seq.len() {
        assert_eq!(
            got[0].logprobs[p - 1],
            (-0.5 - p as f64) as f32,
            "token {p}"
        );
    }
    drop(bodies);

    // The same server when the echo is shifted: the prediction of the last
    // token is not what the echo gives for it.
    let (url, _, _) = canned_bodies(vec![
        (500, refused.into()),
        (200, echo),
        (200, one_token(top(last - 1))),
    ]);
    let mut remote = RemoteModel::new(spec(&[url], 1), tok.clone());
    let err = remote
        .score_tokens(std::slice::from_ref(&seq))
        .expect_err("shifted");
    assert!(err.to_string().contains("shifted by one position"), "{err}");
    assert!(fix_text(&err).contains("--template chat"), "{err}");

    // A server that tokenised the text otherwise is named with the token.
    let mut other = seq.clone();
    other[2] = tok.encode("z").expect("encode")[0];
    let (url, _, _) = canned_bodies(vec![
        (500, refused.into()),
        (200, llama_cpp_echo(&tok, &other, bos, lp)),
    ]);
    let mut remote = RemoteModel::new(spec(&[url], 1), tok.clone());
    let err = remote.score_tokens(&[seq]).expect_err("other tokens");
    assert!(
        err.to_string().contains("tokenised the text differently")
            && err.to_string().contains("token 2"),
        "{err}"
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
    let (url, _, bodies) = canned_bodies(vec![
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
    // Asked with 0 once, then with 1 only; the third request is the
    // alignment check (a one-token completion of the first two tokens).
    let sent: Vec<serde_json::Value> = bodies
        .lock()
        .expect("bodies")
        .iter()
        .map(|b| serde_json::from_str(b).expect("json"))
        .collect();
    let asked: Vec<(bool, u64)> = sent
        .iter()
        .map(|b| {
            (
                b["echo"] == true,
                b["max_tokens"].as_u64().expect("max_tokens"),
            )
        })
        .collect();
    assert_eq!(asked, [(true, 0), (true, 1), (false, 1), (true, 1)]);
    assert_eq!(sent[2]["prompt"], serde_json::json!([5, 6]));
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

/// llama-cpp-python's server answers one choice whatever `n` asks and
/// ignores `stop_token_ids`: the client asks again for each missing sample,
/// seeded as that sample of one request would be, and cuts each sample at
/// its first stop token.
#[test]
fn a_server_that_answers_one_choice_is_asked_once_per_sample() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tok = tiny(dir.path()).tokenizer;
    let one = r#"{"choices":[{"index":0,"text":"ab<|im_end|>cd","finish_reason":"length"}]}"#;
    let (url, _, bodies) = canned_bodies(vec![(200, one.into())]);
    let mut remote = RemoteModel::new(spec(&[url], 1), tok.clone());
    let params = SamplingParams {
        n: 3,
        seed: 7,
        max_tokens: 4,
        stop_ids: tok.eos.clone(),
        ..SamplingParams::default()
    };
    let prompt = tok.encode("x").expect("encode");
    let samples = remote.sample(&prompt, &params).expect("samples");
    let texts: Vec<String> = samples
        .iter()
        .map(|s| tok.decode(s).expect("decode"))
        .collect();
    assert_eq!(texts, ["ab", "ab", "ab"]);
    let asked: Vec<(u64, u64)> = bodies
        .lock()
        .expect("bodies")
        .iter()
        .map(|b| {
            let v: serde_json::Value = serde_json::from_str(b).expect("json");
            (
                v["n"].as_u64().expect("n"),
                v["seed"].as_u64().expect("seed"),
            )
        })
        .collect();
    let stride = 0x9E37_79B9u64;
    assert_eq!(asked, [(3, 7), (1, 7 + stride), (1, 7 + 2 * stride)]);
}
