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
use serde::Serialize;
use spectrum_core::{Message, Role};

use spectrum_core::Problem;

use crate::tokenizer::TextTokenizer;
use crate::{LmError, Result};

spectrum_core::closed_set! {
    /// The three prompt formats.
    PromptFormat {
        /// The trained format: turns named description/input/output with the model's turn tokens.
        Spectrum => "spectrum",
        /// `Description: ...\n\nInput: ...\n\nOutput: ...` for pretrained baselines.
        Colon => "colon",
        /// The model's own chat template, for instruct baselines.
        Chat => "chat",
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
    /// The reference's example number: the k-th contiguous run of loss tokens
    /// is example k (tsor13/spectrum `add_example_inds`); `None` without loss.
    /// Without a description the first output of the spectrum and chat formats
    /// has no loss, so there output j is example j - 1.
    pub example: Option<usize>,
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

/// The system prompt of the chat format for steerability sequences and
/// generation: the reference's `default_chat_prompt` (tsor13/spectrum
/// `format_utils.py`), word for word, its final newline included.
pub const CHAT_SYSTEM_PROMPT: &str = "You are tasked with generating outputs from a particular, potentially stochastic, generative process. You will be given some combination of:
- Description: A natural description of the generative process / data distribution
- Input: An input on which to condition the generative process.
- Example outputs: Example outputs from the process, either in a user message or as prior generations from a chat message. You may assume that any given outputs are exchangeable with one another (order-invariant) and generated from the same process (roughly i.i.d.). If the output data pertains to a single object, it just contains the output. If it contains multiple objects, use json formatting with keys for the name of the output variable.
You will be provided at least either a description or an example output.

Given these components, your job is to generate JUST the output in your response, roughly approximating the underlying generative process, maintaining any underlying stochasticity (if any is present). If you are asked to generate again, you will either be given an additional input to condition on, or will just be told to \"Generate\".
";

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
            Err(Problem::setting(
                "the tokenizer has no ChatML, Gemma or Llama-3 turn tokens for the spectrum format",
                "template",
                "the colon format, or add the turn tokens to the model (add-tokens)",
            )
            .into())
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
            Problem::setting(
                "the model has no chat template (tokenizer_config.json chat_template)",
                "template",
                "the spectrum or colon format",
            )
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
            .map_err(|source| LmError::Template {
                what: "does not parse",
                source,
            })?;
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
            .map_err(|source| LmError::Template {
                what: "is missing",
                source,
            })?;
        tmpl.render(context! { messages => messages, add_generation_prompt => add_generation_prompt, bos_token => &self.bos, eos_token => &self.eos })
            .map_err(|source| LmError::Template {
                what: "failed to render",
                source,
            })
    }
}

/// How the chat format writes a sequence as a conversation: the system
/// prompt, how a description is introduced, and whether every example goes
/// into the system turn (the validity prompts) or later outputs become
/// assistant turns (steerability, distributions).
#[derive(Debug, Clone, Copy)]
struct ChatStyle<'a> {
    system: &'a str,
    describe: fn(&str) -> String,
    all_in_system: bool,
}

impl ChatStyle<'_> {
    const SEQUENCES: ChatStyle<'static> = ChatStyle {
        system: CHAT_SYSTEM_PROMPT,
        describe: |d| format!("Description: {d}"),
        all_in_system: false,
    };
}

/// The conversation the reference builds from a sequence
/// (`messages_to_chat_loss_texts`): the system turn is the prompt, then
/// `"\n\n" + "Description: d"`; without a description the first input and
/// output are written into it as `Example Input:` / `Example Output:`. Later
/// inputs are user turns, outputs assistant turns (after a user turn
/// `Generate` when the task has no inputs). A conversation with no turn yet
/// gets the system turn and an empty user turn; with `start_generation`, one
/// ending in an assistant turn gets the user turn `Generate.`.
fn chat_conversation(
    messages: &[Message],
    style: ChatStyle<'_>,
    start_generation: bool,
) -> Vec<serde_json::Value> {
    let turn = |role: &str, content: &str| serde_json::json!({"role": role, "content": content});
    let mut system = style.system.to_string();
    let mut chat = Vec::new();
    if style.all_in_system {
        let (mut described, mut examples) = (false, false);
        for m in messages {
            match m.role {
                Role::Description => {
                    system += &format!("\n\n{}", (style.describe)(&m.content));
                    described = true;
                }
                Role::Input => {
                    system += &format!("\n\nExample Input: {}", m.content);
                    examples = true;
                }
                Role::Output => {
                    system += &format!("\n\nExample Output: {}", m.content);
                    examples = true;
                }
            }
        }
        chat.push(turn("system", system.trim()));
        chat.push(turn(
            "user",
            match (described, examples) {
                (true, true) => "Now generate an output based on the description and examples.",
                (true, false) => "Generate something that fits this description.",
                _ => "Generate an output like the provided examples.",
            },
        ));
    } else {
        let (mut opened, mut has_input) = (false, false);
        for m in messages {
            match m.role {
                Role::Description => {
                    system += &format!("\n\n{}", (style.describe)(&m.content));
                    chat.push(turn("system", system.trim()));
                    opened = true;
                }
                Role::Input => {
                    has_input = true;
                    if opened {
                        chat.push(turn("user", &m.content));
                    } else {
                        system += &format!("\n\nExample Input: {}", m.content);
                    }
                }
                Role::Output if !opened => {
                    system += &format!("\n\nExample Output: {}", m.content);
                    chat.push(turn("system", system.trim()));
                    opened = true;
                }
                Role::Output => {
                    if !has_input {
                        chat.push(turn("user", "Generate"));
                    }
                    chat.push(turn("assistant", &m.content));
                }
            }
        }
    }
    if chat.is_empty() {
        chat.push(turn("system", system.trim()));
    }
    if chat.len() == 1 {
        chat.push(turn("user", ""));
    }
    if start_generation && chat.last().is_some_and(|t| t["role"] == "assistant") {
        chat.push(turn("user", "Generate."));
    }
    chat
}

/// Where an assistant turn starts and ends in a template's text.
#[derive(Debug, Clone)]
struct ChatMarkers {
    start: String,
    end: String,
    /// Qwen3: every assistant turn gets an empty think block, as the
    /// reference writes it (its template keeps one only after the last
    /// user turn, which rewrites earlier turns as a conversation grows).
    think: bool,
}

const EMPTY_THINK: &str = "<think>\n\n</think>\n\n";

impl ChatMarkers {
    fn of(tok: &TextTokenizer, chat: &ChatTemplate) -> Result<ChatMarkers> {
        let think = tok
            .chat_template
            .as_deref()
            .is_some_and(|t| t.contains("<think>"));
        let (start, end) = match Turns::detect(tok) {
            Ok(Turns::ChatMl) => (
                "<|im_start|>assistant\n".to_string(),
                "<|im_end|>".to_string(),
            ),
            Ok(Turns::Gemma) => ("<start_of_turn>model\n".into(), "<end_of_turn>".into()),
            Ok(Turns::Llama3) => (
                "<|start_header_id|>assistant<|end_header_id|>\n\n".into(),
                "<|eot_id|>".into(),
            ),
            Err(_) => {
                // Another template: the assistant header is what the generation
                // prompt adds; the turn ends with the end-of-sequence token.
                let probe = [serde_json::json!({"role": "user", "content": "x"})];
                let with = chat.render(&probe, true)?;
                let without = chat.render(&probe, false)?;
                let start = with
                    .strip_prefix(without.as_str())
                    .unwrap_or("")
                    .to_string();
                let end = tok.eos_token.clone().unwrap_or_default();
                if start.trim().is_empty() || end.is_empty() {
                    return Err(Problem::setting(
                        "cannot find where the chat template's assistant turns start and end",
                        "template",
                        "the spectrum or colon format",
                    )
                    .into());
                }
                (start, end)
            }
        };
        let think = think && start.ends_with("assistant\n");
        Ok(ChatMarkers { start, end, think })
    }

    fn header(&self) -> String {
        if self.think {
            format!("{}{EMPTY_THINK}", self.start)
        } else {
            self.start.clone()
        }
    }
}

/// The conversation through the model's chat template, as the reference
/// post-processes it: Qwen3's think blocks made uniform, and a BOS the
/// tokenizer adds itself removed from the text.
fn chat_text(
    tok: &TextTokenizer,
    conversation: &[serde_json::Value],
    start_generation: bool,
) -> Result<(String, ChatMarkers)> {
    let chat = ChatTemplate::new(tok)?;
    let markers = ChatMarkers::of(tok, &chat)?;
    let mut text = chat.render(conversation, start_generation)?;
    if markers.think {
        let full = markers.header();
        text = text
            .replace(&full, &markers.start)
            .replace(&markers.start, &full);
    }
    if let (Some(_), Some(b)) = (tok.bos, tok.bos_token.as_deref())
        && let Some(rest) = text.strip_prefix(b)
    {
        text = rest.to_string();
    }
    Ok((text, markers))
}

/// The chat format: the whole conversation rendered once, then split as the
/// reference splits it: text up to and including each assistant header
/// carries no loss, the answer up to and including the end-of-turn marker
/// does. Templates that rewrite earlier turns (Qwen3) work, since nothing
/// assumes one conversation's text is a prefix of the next.
fn chat_segments(tok: &TextTokenizer, messages: &[Message]) -> Result<Vec<Segment>> {
    let conversation = chat_conversation(messages, ChatStyle::SEQUENCES, false);
    let (text, markers) = chat_text(tok, &conversation, false)?;
    // Outputs before the first assistant turn went into the system prompt.
    let answers = conversation
        .iter()
        .filter(|t| t["role"] == "assistant")
        .count();
    let outputs = messages.iter().filter(|m| m.role == Role::Output).count();
    let first = outputs - answers;
    let header = markers.header();
    let mut segments = Vec::new();
    let mut rest = text.as_str();
    let mut j = 0;
    while let Some(at) = rest.find(&header) {
        let (before, after) = rest.split_at(at + header.len());
        let end = after
            .find(&markers.end)
            .map_or(after.len(), |e| e + markers.end.len());
        let g = if segments.is_empty() {
            0
        } else {
            first + j + 1
        };
        segments.push(seg(before.to_string(), false, None, g));
        if end > 0 {
            segments.push(seg(
                after[..end].to_string(),
                true,
                Some(first + j),
                first + j + 1,
            ));
        }
        rest = &after[end..];
        j += 1;
    }
    if !rest.is_empty() {
        segments.push(seg(rest.to_string(), false, None, first + j + 1));
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
                    example: None,
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
        for mut span in spans {
            // Loss runs never touch: a header or separator lies between outputs.
            if span.loss && span.end > span.start {
                span.example = Some(r.outputs.iter().filter(|o| o.example.is_some()).count());
            }
            r.outputs.push(span);
        }
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
            let style = ChatStyle {
                system: DIST_CHAT_PROMPT,
                ..ChatStyle::SEQUENCES
            };
            chat_prompt_ids(tok, &chat_conversation(&messages, style, true))
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
    let mut messages: Vec<Message> = description
        .map(|d| Message::new(Role::Description, d))
        .into_iter()
        .collect();
    messages.extend(examples.iter().map(|e| Message::new(Role::Output, *e)));
    if format != PromptFormat::Chat {
        return generation_prompt(tok, format, &messages);
    }
    let style = ChatStyle {
        system: VALID_CHAT_PROMPT,
        describe: str::to_string,
        all_in_system: true,
    };
    Ok(GenerationPrompt {
        ids: chat_prompt_ids(tok, &chat_conversation(&messages, style, true))?,
        stop_ids: tok.eos.clone(),
        stop_strings: vec!["\n".into()],
    })
}

/// A conversation through the chat template with the assistant's turn
/// opened, tokenised as one string.
fn chat_prompt_ids(tok: &TextTokenizer, conversation: &[serde_json::Value]) -> Result<Vec<u32>> {
    whole_text_ids(tok, &chat_text(tok, conversation, true)?.0)
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
        PromptFormat::Chat => Ok(GenerationPrompt {
            ids: chat_prompt_ids(
                tok,
                &chat_conversation(messages, ChatStyle::SEQUENCES, true),
            )?,
            stop_ids: eos,
            stop_strings: vec!["\n".into()],
        }),
    }
}
