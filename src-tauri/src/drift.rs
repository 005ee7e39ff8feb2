//! The UI calls commands by name with named arguments (`ui/src/lib/api.ts`);
//! the types of those arguments are generated, their names and the command
//! list are not. This test reads every list (the commands defined in
//! commands.rs, registered in lib.rs, allowed by build.rs and the
//! capability file, called by api.ts) and fails on any difference, without
//! a browser.

use std::collections::BTreeMap;

/// A command: its arguments as the UI names them (camelCase, as Tauri
/// expects), and whether it reports on a channel (a job).
#[derive(Debug, PartialEq, Eq)]
struct Signature {
    args: Vec<String>,
    job: bool,
}

fn camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits `text` at commas outside `<...>`, `(...)`, `{...}` and `[...]`.
fn split_top(text: &str) -> Vec<&str> {
    let (mut depth, mut start, mut parts) = (0i32, 0, Vec::new());
    for (i, c) in text.char_indices() {
        match c {
            '<' | '(' | '{' | '[' => depth += 1,
            '>' | ')' | '}' | ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// The text between the bracket at `text[at]` and the one that closes it.
fn enclosed(text: &str, at: usize) -> &str {
    let (open, close) = match text.as_bytes()[at] {
        b'(' => ('(', ')'),
        b'[' => ('[', ']'),
        b'{' => ('{', '}'),
        other => panic!("no bracket at byte {at}: {:?}", other as char),
    };
    let mut depth = 0;
    for (i, c) in text[at..].char_indices() {
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return &text[at + 1..at + i];
            }
        }
    }
    panic!("unbalanced {open} at byte {at}");
}

/// `#[tauri::command]` functions of commands.rs.
fn defined(source: &str) -> BTreeMap<String, Signature> {
    let mut out = BTreeMap::new();
    for piece in source.split("#[tauri::command]").skip(1) {
        let at = piece.find("fn ").expect("a command is a fn") + 3;
        let name_end = at + piece[at..].find('(').expect("its parameters");
        let name = piece[at..name_end].trim().to_string();
        let mut args = Vec::new();
        let mut job = false;
        for param in split_top(enclosed(piece, name_end)) {
            let (arg, ty) = param.split_once(':').expect("name: type");
            let ty = ty.trim();
            if ty.starts_with("Channel") {
                job = true;
            } else if !(ty.starts_with("State") || ty.starts_with("AppHandle")) {
                args.push(camel(arg.trim().trim_start_matches("mut ")));
            }
        }
        out.insert(name, Signature { args, job });
    }
    out
}

/// Commands registered in lib.rs's `generate_handler!`.
fn registered(lib: &str) -> Vec<String> {
    let at = lib.find("generate_handler![").expect("generate_handler!") + 17;
    let mut names: Vec<String> = split_top(enclosed(lib, at))
        .into_iter()
        .map(|p| p.trim_start_matches("commands::").to_string())
        .collect();
    names.sort();
    names
}

/// The quoted names of build.rs's `COMMANDS`.
fn allowed(build: &str) -> Vec<String> {
    let at = build.find("const COMMANDS").expect("COMMANDS");
    let list = &build[at..build[at..].find("];").map_or(build.len(), |e| at + e)];
    let mut names: Vec<String> = list
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

/// Our commands the capability grants (`allow-NAME`, dashes for underscores).
fn granted(capability: &str) -> Vec<String> {
    let mut names: Vec<String> = capability
        .split('"')
        .filter_map(|s| s.strip_prefix("allow-"))
        .map(|s| s.replace('-', "_"))
        .collect();
    names.sort();
    names
}

/// What api.ts calls: `call<T>("name", { a, b })`, `job("name", {...}, ...)`,
/// `valueJob("name", {...}, ...)`.
fn called(api: &str) -> BTreeMap<String, Signature> {
    let mut out = BTreeMap::new();
    for (helper, job) in [("call<", false), ("job(\"", true), ("valueJob(\"", true)] {
        let mut rest = api;
        while let Some(i) = rest.find(helper) {
            let after = &rest[i + helper.len()..];
            rest = after;
            // `call<T>(` then the name; the job helpers start with the name.
            let after = if job {
                after
            } else {
                match after.find(">(\"") {
                    Some(j) if !after[..j].contains('\n') => &after[j + 3..],
                    _ => continue,
                }
            };
            let Some(end) = after.find('"') else { continue };
            let name = after[..end].to_string();
            let tail = after[end + 1..].trim_start();
            let args = match tail.strip_prefix(',').map(str::trim_start) {
                Some(object) if object.starts_with('{') => split_top(enclosed(object, 0))
                    .into_iter()
                    .map(|p| p.split(':').next().unwrap_or(p).trim().to_string())
                    .collect(),
                _ => Vec::new(),
            };
            out.insert(name, Signature { args, job });
        }
    }
    out
}

#[test]
fn the_ui_calls_exactly_the_commands_the_shell_defines() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read =
        |p: &str| std::fs::read_to_string(dir.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let defined = defined(&read("src/commands.rs"));
    let registered = registered(&read("src/lib.rs"));
    let called = called(&read("../ui/src/lib/api.ts"));
    assert!(defined.len() > 20, "found {} commands", defined.len());
    let names: Vec<String> = defined.keys().cloned().collect();
    assert_eq!(names, registered, "commands.rs defines, lib.rs registers");
    assert_eq!(
        names,
        allowed(&read("build.rs")),
        "commands.rs defines, build.rs allows"
    );
    assert_eq!(
        names,
        granted(&read("capabilities/default.json")),
        "commands.rs defines, capabilities/default.json grants"
    );
    for (name, signature) in &defined {
        let Some(call) = called.get(name) else {
            panic!("api.ts never calls {name}");
        };
        let mut want = signature.args.clone();
        let mut got = call.args.clone();
        want.sort();
        got.sort();
        assert_eq!(got, want, "the arguments api.ts gives {name}");
        assert_eq!(
            call.job, signature.job,
            "{name}: a command with a channel is called as a job, others with call()"
        );
    }
    for name in called.keys() {
        assert!(
            defined.contains_key(name),
            "api.ts calls {name}, which commands.rs does not define"
        );
    }
}

#[test]
fn the_readers_see_what_is_written() {
    let rust = "#[tauri::command]\npub async fn pick_save(app: AppHandle, file_name: String, mut x: Vec<(u8, u8)>) -> Res<()> {}\n#[tauri::command]\npub fn train(shell: State<'_, Shell>, request: TrainRequest, channel: Channel<JobEvent>) -> Res<u64> {}";
    let d = defined(rust);
    assert_eq!(d["pick_save"].args, ["fileName", "x"]);
    assert!(!d["pick_save"].job);
    assert_eq!(d["train"].args, ["request"]);
    assert!(d["train"].job);
    let ts = r#"a: (f: string) => call<string | null>("pick_save", { fileName: f, x }),
  b: (r: T, on: P) => valueJob("train", { request: r }, on, "train"),
  c: () => call<AppInfo>("app_info"),"#;
    let c = called(ts);
    assert_eq!(c["pick_save"].args, ["fileName", "x"]);
    assert_eq!(c["train"].args, ["request"]);
    assert!(c["train"].job && !c["app_info"].job && c["app_info"].args.is_empty());
    assert_eq!(
        registered("tauri::generate_handler![\n commands::a,\n commands::b,\n]"),
        ["a", "b"]
    );
    assert_eq!(
        allowed("const COMMANDS: &[&str] = &[\"b\", \"a_c\"];"),
        ["a_c", "b"]
    );
    assert_eq!(
        granted(r#"["core:event:allow-listen", "allow-pick-save", "allow-jobs"]"#),
        ["jobs", "pick_save"]
    );
}
