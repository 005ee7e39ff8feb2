//! Prompt templates (METHOD.md §2): a sequence of description/input/output
//! messages becomes token ids and a loss mask.
//!
//! Sequences (training, steerability scoring) are tokenised segment by segment
//! (never the joined string), only the first segment gets BOS (if the
//! tokenizer adds one at all), and each output's loss tokens are recorded as a
//! span so per-output losses come from one pass. Prompts to generate from or
//! to score options after ([`generation_prompt`], [`distribution_prompt`],
//! [`validity_prompt`]) are tokenised as one string, as the reference does.

use minijinja::{Environment, context};
use serde::{Deserialize, Serialize};
use spectrum_suite::{Message, Role};

use crate::tokenizer::TextTokenizer;
use crate::{LmError, Result};

/// The three prompt formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum PromptFormat {
    /// The trained format: turns named description/input/output with the model's turn tokens.
    Spectrum,
    /// `Description: ...\n\nInput: ...\n\nOutput: ...` for pretrained baselines.
    Colon,
    /// The model's own chat template, for instruct baselines.
    Chat,
}

impl PromptFormat {
    pub fn parse(s: &str) -> Option<PromptFormat> {
        match s {
            "spectrum" => Some(PromptFormat::Spectrum),
            "colon" => Some(PromptFormat::Colon),
            "chat" => Some(PromptFormat::Chat),
            _ => None,
        }
    }
}

/// The token range of one output's loss segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OutputSpan {
    /// Index of the output in the sequence (0-based, counting outputs only).
    pub index: usize,
    /// Token positions `start..end` of the output's loss segment.
    pub start: usize,
    pub end: usize,
    /// Whether the output carries loss (the first output of a spectrum-format
    /// sequence without a description does not).
    pub loss: bool,
}

/// A rendered sequence: token ids, a per-token loss flag, and output spans.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub ids: Vec<u32>,
    /// `loss[i]`: token `i` is a training target.
    pub loss: Vec<bool>,
    pub outputs: Vec<OutputSpan>,
    /// Outputs dropped because they did not fit the token budget.
    pub truncated: usize,
}

impl Rendered {
    pub fn loss_tokens(&self) -> usize {
        self.loss.iter().filter(|&&l| l).count()
    }
}

/// The system prompt of the chat format: it explains the roles to an instruct model.
pub const CHAT_SYSTEM_PROMPT: &str = "You simulate a data-generating process. The description below says what it is. \
Each user message is an input (\"Generate\" when there is none); reply with one output, and nothing else.";

#[derive(Debug, Clone)]
struct Segment {
    text: String,
    loss: bool,
    /// The output this segment carries loss for.
    output: Option<usize>,
    /// Segments of one example share a group; truncation keeps whole groups.
    group: usize,
}

/// Turn markers of the spectrum format, chosen from the tokenizer's special tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turns {
    ChatMl,
    Gemma,
    Llama3,
}

impl Turns {
    fn detect(tok: &TextTokenizer) -> Result<Turns> {
        let has = |t: &str| tok.token_id(t).is_some();
        if has("<|im_start|>") && has("<|im_end|>") {
            Ok(Turns::ChatMl)
        } else if has("<start_of_turn>") && has("<end_of_turn>") {
            Ok(Turns::Gemma)
        } else if has("<|start_header_id|>") && has("<|eot_id|>") {
            Ok(Turns::Llama3)
        } else {
            Err(LmError::Template(
                "the tokenizer has no ChatML, Gemma or Llama-3 turn tokens for the spectrum format \
                 (fix: use the colon format, or `spectrum model add-tokens` to add them)"
                    .into(),
            ))
        }
    }

    /// (header, end of turn, separator after the turn).
    fn parts(self, role: &str) -> (String, &'static str, &'static str) {
        match self {
            Turns::ChatMl => (format!("<|im_start|>{role}\n"), "<|im_end|>", "\n"),
            Turns::Gemma => (format!("<start_of_turn>{role}\n"), "<end_of_turn>", "\n"),
            Turns::Llama3 => (
                format!("<|start_header_id|>{role}<|end_header_id|>\n\n"),
                "<|eot_id|>",
                "",
            ),
        }
    }
}

/// Whether the tokenizer has the turn tokens of the spectrum format (ChatML,
/// Gemma or Llama 3); models without them get them added for training
/// ([`crate::added_tokens`]).
pub fn has_turn_tokens(tok: &TextTokenizer) -> bool {
    Turns::detect(tok).is_ok()
}

/// Renders `messages` (validated: METHOD.md §1) in `format`. With a `budget`,
/// keeps the description and as many whole examples as fit in that many tokens.
pub fn render(
    tok: &TextTokenizer,
    format: PromptFormat,
    messages: &[Message],
    budget: Option<usize>,
) -> Result<Rendered> {
    let segments = match format {
        PromptFormat::Spectrum => spectrum_segments(Turns::detect(tok)?, messages),
        PromptFormat::Colon => colon_segments(messages),
        PromptFormat::Chat => chat_segments(tok, messages)?,
    };
    tokenize(tok, &segments, budget)
}

/// A sequence's parts. Groups: 0 for the description, then one per example
/// (its input and output); a trailing input without its output (the question
/// of a generation prompt) is a group of its own after them.
struct Parts<'a> {
    description: Option<&'a str>,
    examples: Vec<(Option<&'a str>, &'a str)>,
    pending: Option<&'a str>,
}

fn parts(messages: &[Message]) -> Parts<'_> {
    let mut parts = Parts {
        description: None,
        examples: Vec::new(),
        pending: None,
    };
    for m in messages {
        match m.role {
            Role::Description => parts.description = Some(m.content.as_str()),
            Role::Input => parts.pending = Some(m.content.as_str()),
            Role::Output => parts
                .examples
                .push((parts.pending.take(), m.content.as_str())),
        }
    }
    parts
}

fn seg(text: String, loss: bool, output: Option<usize>, group: usize) -> Segment {
    Segment {
        text,
        loss,
        output,
        group,
    }
}

fn spectrum_segments(turns: Turns, messages: &[Message]) -> Vec<Segment> {
    let Parts {
        description,
        examples,
        pending,
    } = parts(messages);
    let mut s = Vec::new();
    if let Some(d) = description {
        let (h, end, sep) = turns.parts("description");
        s.push(seg(format!("{h}{d}{end}{sep}"), false, None, 0));
    }
    for (j, (input, output)) in examples.iter().enumerate() {
        let g = j + 1;
        if let Some(x) = input {
            let (h, end, sep) = turns.parts("input");
            s.push(seg(format!("{h}{x}{end}{sep}"), false, None, g));
        }
        let (h, end, sep) = turns.parts("output");
        s.push(seg(h, false, None, g));
        // Nothing steers the first output when there is no description.
        let loss = description.is_some() || j > 0;
        s.push(seg(format!("{output}{end}"), loss, Some(j), g));
        if !sep.is_empty() {
            s.push(seg(sep.to_string(), false, None, g));
        }
    }
    if let Some(x) = pending {
        let (h, end, sep) = turns.parts("input");
        s.push(seg(
            format!("{h}{x}{end}{sep}"),
            false,
            None,
            examples.len() + 1,
        ));
    }
    s
}

fn colon_segments(messages: &[Message]) -> Vec<Segment> {
    let Parts {
        description,
        examples,
        pending,
    } = parts(messages);
    let mut s = Vec::new();
    if let Some(d) = description {
        s.push(seg(format!("Description: {d}\n\n"), false, None, 0));
    }
    for (j, (input, output)) in examples.iter().enumerate() {
        let g = j + 1;
        if let Some(x) = input {
            s.push(seg(format!("Input: {x}\n\n"), false, None, g));
        }
        s.push(seg("Output:".into(), false, None, g));
        s.push(seg(format!(" {}\n\n", output.trim()), true, Some(j), g));
    }
    if let Some(x) = pending {
        s.push(seg(
            format!("Input: {x}\n\n"),
            false,
            None,
            examples.len() + 1,
        ));
    }
    s
}

/// The chat format: the model's own template renders system, user and assistant
/// turns; each assistant turn's content and end-of-turn marker carry loss. The
/// spans are found by rendering growing prefixes of the conversation.
/// A model's chat template (`tokenizer_config.json`), compiled once.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
}

impl ChatTemplate {
    pub fn new(tok: &TextTokenizer) -> Result<ChatTemplate> {
        let template = tok.chat_template.clone().ok_or_else(|| {
            LmError::Template("the model has no chat template (tokenizer_config.json chat_template); use the spectrum or colon format".into())
        })?;
        let mut env = Environment::new();
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_function("strftime_now", |_fmt: String| -> String { String::new() });
        env.add_template_owned("chat", template)
            .map_err(|e| LmError::Template(format!("chat template does not parse: {e}")))?;
        Ok(ChatTemplate {
            env,
            bos: tok.bos_token.clone().unwrap_or_default(),
            eos: tok.eos_token.clone().unwrap_or_default(),
        })
    }

    /// The conversation (`{"role", "content"}` objects) as text, with the
    /// assistant's turn opened when `add_generation_prompt`.
    pub fn render(
        &self,
        messages: &[serde_json::Value],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let tmpl = self
            .env
            .get_template("chat")
            .map_err(|e| LmError::Template(e.to_string()))?;
        tmpl.render(context! { messages => messages, add_generation_prompt => add_generation_prompt, bos_token => &self.bos, eos_token => &self.eos })
            .map_err(|e| LmError::Template(format!("chat template failed: {e}")))
    }
}

fn chat_segments(tok: &TextTokenizer, messages: &[Message]) -> Result<Vec<Segment>> {
    // A trailing input is never pending here: a generation prompt adds a
    // placeholder answer after it (`generation_prompt`).
    let Parts {
        description,
        examples,
        ..
    } = parts(messages);
    let mut system = CHAT_SYSTEM_PROMPT.to_string();
    let mut first_scored = 0;
    match description {
        Some(d) => system.push_str(&format!("\n\nDescription: {d}")),
        None => {
            // No description: the first output becomes an example in the system prompt.
            if let Some((input, output)) = examples.first() {
                match input {
                    Some(x) => system
                        .push_str(&format!("\n\nExample input: {x}\nExample output: {output}")),
                    None => system.push_str(&format!("\n\nExample output: {output}")),
                }
                first_scored = 1;
            }
        }
    }
    let chat = ChatTemplate::new(tok)?;
    let render = |msgs: &[serde_json::Value], generation: bool| chat.render(msgs, generation);
    let mut conversation = vec![serde_json::json!({"role": "system", "content": system})];
    let mut segments = Vec::new();
    let mut done = String::new();
    for (j, (input, output)) in examples.iter().enumerate().skip(first_scored) {
        conversation
            .push(serde_json::json!({"role": "user", "content": input.unwrap_or("Generate")}));
        let prompt = render(&conversation, true)?;
        conversation.push(serde_json::json!({"role": "assistant", "content": output}));
        let with_answer = render(&conversation, false)?;
        let (Some(before), Some(after)) = (
            prompt.strip_prefix(done.as_str()),
            with_answer.strip_prefix(prompt.as_str()),
        ) else {
            return Err(LmError::Template(
                "the chat template is not prefix-stable (a later turn rewrites earlier text)"
                    .into(),
            ));
        };
        // Trailing whitespace after the end-of-turn marker carries no loss.
        let answer = after.trim_end();
        let g = j + 1;
        // BOS (if the template writes it) is added by the tokenizer step instead,
        // when the tokenizer adds one; otherwise the text stays (SmolLM2 names
        // `<|im_start|>` its bos_token but never adds it).
        let before = if done.is_empty() && tok.bos.is_some() {
            before
                .strip_prefix(tok.bos_token.as_deref().unwrap_or("\u{0}"))
                .unwrap_or(before)
        } else {
            before
        };
        segments.push(seg(
            before.to_string(),
            false,
            None,
            if done.is_empty() { 0 } else { g },
        ));
        segments.push(seg(answer.to_string(), true, Some(j), g));
        let tail = &after[answer.len()..];
        if !tail.is_empty() {
            segments.push(seg(tail.to_string(), false, None, g));
        }
        done = with_answer;
    }
    Ok(segments)
}

fn tokenize(tok: &TextTokenizer, segments: &[Segment], budget: Option<usize>) -> Result<Rendered> {
    let mut r = Rendered {
        ids: Vec::new(),
        loss: Vec::new(),
        outputs: Vec::new(),
        truncated: 0,
    };
    if let Some(bos) = tok.bos {
        r.ids.push(bos);
        r.loss.push(false);
    }
    let limit = budget.unwrap_or(usize::MAX);
    let mut i = 0;
    while i < segments.len() {
        // Tokenise one group (the description, or one example) and keep it only if it fits.
        let group = segments[i].group;
        let mut ids = Vec::new();
        let mut loss = Vec::new();
        let mut spans = Vec::new();
        while i < segments.len() && segments[i].group == group {
            let s = &segments[i];
            let t = tok.encode(&s.text)?;
            let start = r.ids.len() + ids.len();
            if let Some(index) = s.output {
                spans.push(OutputSpan {
                    index,
                    start,
                    end: start + t.len(),
                    loss: s.loss,
                });
            }
            loss.extend(std::iter::repeat_n(s.loss, t.len()));
            ids.extend(t);
            i += 1;
        }
        if r.ids.len() + ids.len() > limit {
            r.truncated = segments[i..].iter().filter(|s| s.output.is_some()).count() + spans.len();
            break;
        }
        r.ids.extend(ids);
        r.loss.extend(loss);
        r.outputs.extend(spans);
    }
    Ok(r)
}

/// The text that follows a [`generation_prompt`] for an output `y` in `format`,
/// without its end marker: what option scoring scores after the prompt.
pub fn output_text(format: PromptFormat, output: &str) -> String {
    match format {
        PromptFormat::Colon => format!(" {}", output.trim()),
        PromptFormat::Spectrum | PromptFormat::Chat => output.to_string(),
    }
}

/// The reference's system prompt for distributional prompts in the chat format
/// (tsor13/spectrum `eval_distributional.py`).
pub const DIST_CHAT_PROMPT: &str =
    "Given the description and an input, respond with just an output.";

/// The prompt a distribution item's options are scored after, as the reference
/// builds it (METHOD.md §6): the description and the input (never dropped),
/// then the opened output.
/// - spectrum: the generation prompt of `[description, input]`;
/// - colon: the generation prompt with the label on the line after the input
///   (`"\n\nOutput:"` becomes `"\n{output_name}:"`; `Output` when the task
///   names none). The reference rewrites every `Output` in the text, inside a
///   description or input too; only the label is rewritten here;
/// - chat: a system turn [`DIST_CHAT_PROMPT`] + `"\n\nDescription: d"` and a
///   user turn with the input; with no description the input moves into the
///   system turn as `"\n\nExample Input: x"` and the user turn is empty, as in
///   the reference.
pub fn distribution_prompt(
    tok: &TextTokenizer,
    format: PromptFormat,
    description: Option<&str>,
    input: Option<&str>,
    output_name: Option<&str>,
) -> Result<Vec<u32>> {
    let mut messages = Vec::new();
    if let Some(d) = description {
        messages.push(Message::new(Role::Description, d));
    }
    if let Some(x) = input {
        messages.push(Message::new(Role::Input, x));
    }
    match format {
        PromptFormat::Spectrum => Ok(generation_prompt(tok, format, &messages)?.ids),
        PromptFormat::Colon => {
            // The last part ends in "\n\n": the label follows on the next line.
            let text = joined(&colon_segments(&messages));
            let mut text = text.trim_end_matches('\n').to_string();
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&format!("{}:", output_name.unwrap_or("Output")));
            whole_text_ids(tok, &text)
        }
        PromptFormat::Chat => {
            let (system, user) = match (description, input) {
                (Some(d), x) => (
                    format!("{DIST_CHAT_PROMPT}\n\nDescription: {d}"),
                    x.unwrap_or(""),
                ),
                (None, Some(x)) => (format!("{DIST_CHAT_PROMPT}\n\nExample Input: {x}"), ""),
                (None, None) => (DIST_CHAT_PROMPT.to_string(), ""),
            };
            system_user_prompt(tok, &system, user)
        }
    }
}

/// The reference's system prompt for validity prompts in the chat format
/// (tsor13/spectrum `eval_diverse_valid.py`).
pub const VALID_CHAT_PROMPT: &str = "Respond with JUST the requested output, nothing else.";

/// The prompt a diverse-valid task samples from, as the reference builds it
/// (METHOD.md §6): spectrum and colon render the description (if shown) and
/// the examples (if shown) as outputs, then open the next output; chat writes
/// ONE system turn, [`VALID_CHAT_PROMPT`] + `"\n\n{description}"` + one
/// `"\n\nExample Output: {e}"` per example, and one user turn that depends on
/// what is shown.
pub fn validity_prompt(
    tok: &TextTokenizer,
    format: PromptFormat,
    description: Option<&str>,
    examples: &[&str],
) -> Result<GenerationPrompt> {
    if format != PromptFormat::Chat {
        let mut messages: Vec<Message> = description
            .map(|d| Message::new(Role::Description, d))
            .into_iter()
            .collect();
        messages.extend(examples.iter().map(|e| Message::new(Role::Output, *e)));
        return generation_prompt(tok, format, &messages);
    }
    let mut system = VALID_CHAT_PROMPT.to_string();
    if let Some(d) = description {
        system.push_str(&format!("\n\n{d}"));
    }
    for e in examples {
        system.push_str(&format!("\n\nExample Output: {e}"));
    }
    let user = match (description.is_some(), !examples.is_empty()) {
        (true, true) => "Now generate an output based on the description and examples.",
        (true, false) => "Generate something that fits this description.",
        _ => "Generate an output like the provided examples.",
    };
    Ok(GenerationPrompt {
        ids: system_user_prompt(tok, &system, user)?,
        stop_ids: tok.eos.clone(),
        stop_strings: vec!["\n".into()],
    })
}

/// One system turn and one user turn through the model's chat template, the
/// assistant's turn opened: the reference's chat prompts for dist and valid.
fn system_user_prompt(tok: &TextTokenizer, system: &str, user: &str) -> Result<Vec<u32>> {
    let conversation = [
        serde_json::json!({"role": "system", "content": system}),
        serde_json::json!({"role": "user", "content": user}),
    ];
    let text = ChatTemplate::new(tok)?.render(&conversation, true)?;
    whole_text_ids(tok, &text)
}

/// The texts of `segments`, joined.
fn joined(segments: &[Segment]) -> String {
    segments.iter().map(|s| s.text.as_str()).collect()
}

/// A prompt's ids, tokenised as ONE string as the reference tokenises what it
/// generates from or scores options after (`tokenizer(gen_str)`): across a
/// part boundary the two can differ (`"...\n\n" + "Input:"` is 1116 + ... as
/// parts, 198 198 ... as one string with SmolLM2's tokenizer). The template's
/// BOS text, if any, becomes the tokenizer's BOS id (added once, never twice).
fn whole_text_ids(tok: &TextTokenizer, text: &str) -> Result<Vec<u32>> {
    let mut ids: Vec<u32> = tok.bos.into_iter().collect();
    let text = match (tok.bos, tok.bos_token.as_deref()) {
        (Some(_), Some(b)) => text.strip_prefix(b).unwrap_or(text),
        _ => text,
    };
    ids.extend(tok.encode(text)?);
    Ok(ids)
}

/// A prompt that asks for the next output after `messages`, and how that
/// output ends: the tokens to feed, the stop token ids and stop strings.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationPrompt {
    pub ids: Vec<u32>,
    pub stop_ids: Vec<u32>,
    pub stop_strings: Vec<String>,
}

/// Renders `messages` (which may hold no output yet) and opens the next output.
pub fn generation_prompt(
    tok: &TextTokenizer,
    format: PromptFormat,
    messages: &[Message],
) -> Result<GenerationPrompt> {
    let mut eos = tok.eos.clone();
    match format {
        PromptFormat::Spectrum => {
            let turns = Turns::detect(tok)?;
            let (header, end, _) = turns.parts("output");
            let text = joined(&spectrum_segments(turns, messages)) + &header;
            let mut stop_ids: Vec<u32> = tok.encode(end)?;
            stop_ids.append(&mut eos);
            Ok(GenerationPrompt {
                ids: whole_text_ids(tok, &text)?,
                stop_ids,
                stop_strings: vec!["\n".into()],
            })
        }
        PromptFormat::Colon => {
            let text = joined(&colon_segments(messages)) + "Output:";
            Ok(GenerationPrompt {
                ids: whole_text_ids(tok, &text)?,
                stop_ids: eos,
                stop_strings: vec!["\n".into()],
            })
        }
        PromptFormat::Chat => {
            // The chat renderer needs an assistant turn to find spans: render the
            // conversation with a placeholder answer and keep what precedes it.
            let mut with_answer = messages.to_vec();
            with_answer.push(Message::new(Role::Output, "\u{2063}"));
            let segments = chat_segments(tok, &with_answer)?;
            let last = segments
                .iter()
                .rposition(|s| s.loss)
                .ok_or_else(|| LmError::Template("nothing to prompt".into()))?;
            Ok(GenerationPrompt {
                ids: whole_text_ids(tok, &joined(&segments[..last]))?,
                stop_ids: eos,
                stop_strings: vec!["\n".into()],
            })
        }
    }
}
