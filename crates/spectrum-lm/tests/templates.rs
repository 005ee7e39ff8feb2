//! Prompt templates: token ids, loss masks and output spans (METHOD.md §2),
//! checked against hand-written expectations.

mod common;

use common::tiny_tokenizer;
use spectrum_core::{Message, Role};
use spectrum_lm::template::{PromptFormat, render};

fn msg(role: Role, content: &str) -> Message {
    Message::new(role, content)
}

/// The text of the loss tokens of each output, decoded.
fn loss_texts(
    format: PromptFormat,
    messages: &[Message],
    template: Option<&str>,
) -> Vec<(String, bool)> {
    let tok = tiny_tokenizer(template);
    let r = render(&tok, format, messages, None).expect("render");
    // Loss flags agree with the spans.
    for (i, &l) in r.loss.iter().enumerate() {
        let in_loss_span = r
            .outputs
            .iter()
            .any(|s| s.loss && (s.start..s.end).contains(&i));
        assert_eq!(l, in_loss_span, "token {i}");
    }
    r.outputs
        .iter()
        .map(|s| (tok.decode(&r.ids[s.start..s.end]).expect("decode"), s.loss))
        .collect()
}

fn full_text(format: PromptFormat, messages: &[Message], template: Option<&str>) -> String {
    let tok = tiny_tokenizer(template);
    let r = render(&tok, format, messages, None).expect("render");
    tok.decode(&r.ids).expect("decode")
}

#[test]
fn spectrum_format_chatml() {
    let m = [
        msg(Role::Description, "Flip a coin."),
        msg(Role::Input, "Flip 1"),
        msg(Role::Output, "heads"),
        msg(Role::Input, "Flip 2"),
        msg(Role::Output, "tails"),
    ];
    assert_eq!(
        full_text(PromptFormat::Spectrum, &m, None),
        "<|im_start|>description\nFlip a coin.<|im_end|>\n<|im_start|>input\nFlip 1<|im_end|>\n<|im_start|>output\nheads<|im_end|>\n\
         <|im_start|>input\nFlip 2<|im_end|>\n<|im_start|>output\ntails<|im_end|>\n"
    );
    assert_eq!(
        loss_texts(PromptFormat::Spectrum, &m, None),
        [
            ("heads<|im_end|>".into(), true),
            ("tails<|im_end|>".into(), true)
        ]
    );
}

#[test]
fn without_a_description_the_first_output_has_no_loss_in_spectrum_only() {
    let m = [msg(Role::Output, "heads"), msg(Role::Output, "tails")];
    assert_eq!(
        loss_texts(PromptFormat::Spectrum, &m, None),
        [
            ("heads<|im_end|>".into(), false),
            ("tails<|im_end|>".into(), true)
        ]
    );
    // The colon format scores every output.
    assert_eq!(
        loss_texts(PromptFormat::Colon, &m, None),
        [(" heads\n\n".into(), true), (" tails\n\n".into(), true)]
    );
}

#[test]
fn colon_format_strips_outputs() {
    let m = [
        msg(Role::Description, "Roll a die."),
        msg(Role::Input, "d6"),
        msg(Role::Output, "  4 "),
    ];
    assert_eq!(
        full_text(PromptFormat::Colon, &m, None),
        "Description: Roll a die.\n\nInput: d6\n\nOutput: 4\n\n"
    );
    assert_eq!(
        loss_texts(PromptFormat::Colon, &m, None),
        [(" 4\n\n".into(), true)]
    );
}

#[test]
fn tokenisation_is_segment_by_segment() {
    // Each segment is tokenised on its own; the text is unchanged.
    let tok = tiny_tokenizer(None);
    let m = [msg(Role::Description, "he"), msg(Role::Output, "ad")];
    let r = render(&tok, PromptFormat::Colon, &m, None).expect("render");
    let joined = tok
        .encode("Description: he\n\nOutput: ad\n\n")
        .expect("encode");
    let separate: Vec<u32> = ["Description: he\n\n", "Output:", " ad\n\n"]
        .iter()
        .flat_map(|s| tok.encode(s).expect("encode"))
        .collect();
    assert_eq!(r.ids, separate);
    assert_eq!(
        tok.decode(&r.ids).expect("decode"),
        tok.decode(&joined).expect("decode")
    );
}

const CHATML_TEMPLATE: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

#[test]
fn chat_format_uses_the_models_template() {
    let m = [
        msg(Role::Description, "Name a colour."),
        msg(Role::Output, "red"),
        msg(Role::Output, "blue"),
    ];
    let text = full_text(PromptFormat::Chat, &m, Some(CHATML_TEMPLATE));
    assert!(
        text.starts_with("<|im_start|>system\nYou are tasked with generating outputs"),
        "{text}"
    );
    // The reference's prompt ends in a newline, then "\n\n" + the description.
    assert!(text.contains("told to \"Generate\".\n\n\nDescription: Name a colour.<|im_end|>\n<|im_start|>user\nGenerate<|im_end|>\n<|im_start|>assistant\nred<|im_end|>"), "{text}");
    assert_eq!(
        loss_texts(PromptFormat::Chat, &m, Some(CHATML_TEMPLATE)),
        [
            ("red<|im_end|>".into(), true),
            ("blue<|im_end|>".into(), true)
        ]
    );
    // Without a description the first output becomes an example in the system prompt.
    let m = [msg(Role::Output, "red"), msg(Role::Output, "blue")];
    let text = full_text(PromptFormat::Chat, &m, Some(CHATML_TEMPLATE));
    assert!(
        text.contains("\n\n\nExample Output: red<|im_end|>"),
        "{text}"
    );
    assert_eq!(
        loss_texts(PromptFormat::Chat, &m, Some(CHATML_TEMPLATE)),
        [("blue<|im_end|>".into(), true)]
    );
}

#[test]
fn a_bos_token_the_tokenizer_never_adds_stays_in_the_chat_text() {
    // SmolLM2-Instruct names `<|im_start|>` its bos_token but does not add BOS:
    // the template's leading `<|im_start|>` must stay.
    let json = spectrum_lm::tiny::tokenizer_json();
    let inner = tokenizers::Tokenizer::from_bytes(json.to_string().as_bytes()).expect("tokenizer");
    let config = spectrum_lm::tokenizer::TokenizerConfig {
        chat_template: Some(serde_json::Value::String(CHATML_TEMPLATE.into())),
        bos_token: Some(serde_json::Value::String("<|im_start|>".into())),
        eos_token: Some(serde_json::Value::String("<|im_end|>".into())),
        add_bos_token: Some(false),
    };
    let tok = spectrum_lm::tokenizer::TextTokenizer::new(inner, &config);
    assert_eq!(tok.bos, None);
    let m = [
        msg(Role::Description, "Name a colour."),
        msg(Role::Output, "red"),
    ];
    let r = render(&tok, PromptFormat::Chat, &m, None).expect("render");
    let text = tok.decode(&r.ids).expect("decode");
    assert!(text.starts_with("<|im_start|>system\n"), "{text}");
}

#[test]
fn budget_truncates_at_example_boundaries() {
    let tok = tiny_tokenizer(None);
    let m: Vec<Message> = std::iter::once(msg(Role::Description, "Pick a letter."))
        .chain((0..10).map(|i| msg(Role::Output, &"abcdefghij"[i..i + 1])))
        .collect();
    let full = render(&tok, PromptFormat::Spectrum, &m, None).expect("render");
    let budget = full.outputs[4].end + 1; // room for 5 examples and their newline
    let cut = render(&tok, PromptFormat::Spectrum, &m, Some(budget)).expect("render");
    assert_eq!(cut.outputs.len(), 5);
    assert_eq!(cut.truncated, 5);
    assert!(cut.ids.len() <= budget);
    assert_eq!(cut.ids[..], full.ids[..cut.ids.len()]);
}

/// Qwen3's template in miniature: an assistant turn after the last user turn
/// gets a think block, earlier ones lose theirs, so a conversation's text is
/// not a prefix of the next one's.
const QWEN3_LIKE_TEMPLATE: &str = "{% set ns = namespace(last=0) %}{% for m in messages %}{% if m.role == 'user' %}{% set ns.last = loop.index0 %}{% endif %}{% endfor %}{% for m in messages %}{% if m.role == 'assistant' %}<|im_start|>assistant\n{% if loop.index0 > ns.last %}<think>\n\n</think>\n\n{% endif %}{{ m.content }}<|im_end|>\n{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n\n</think>\n\n{% endif %}";

#[test]
fn templates_that_rewrite_earlier_turns_render_as_the_reference_does() {
    let m = [
        msg(Role::Description, "Name a colour."),
        msg(Role::Output, "red"),
        msg(Role::Output, "blue"),
    ];
    // Every assistant turn gets the empty think block, which carries no loss.
    let text = full_text(PromptFormat::Chat, &m, Some(QWEN3_LIKE_TEMPLATE));
    assert_eq!(
        text.matches("<|im_start|>assistant\n<think>\n\n</think>\n\n")
            .count(),
        2,
        "{text}"
    );
    assert_eq!(
        loss_texts(PromptFormat::Chat, &m, Some(QWEN3_LIKE_TEMPLATE)),
        [
            ("red<|im_end|>".into(), true),
            ("blue<|im_end|>".into(), true)
        ]
    );
    // Prompts (generation, distributions, validity) end in the think block.
    let tok = tiny_tokenizer(Some(QWEN3_LIKE_TEMPLATE));
    let p = spectrum_lm::template::generation_prompt(&tok, PromptFormat::Chat, &m).expect("prompt");
    let text = tok.decode(&p.ids).expect("decode");
    assert!(
        text.ends_with("blue<|im_end|>\n<|im_start|>user\nGenerate.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"),
        "{text}"
    );
    let p = spectrum_lm::template::distribution_prompt(
        &tok,
        PromptFormat::Chat,
        Some("A die."),
        Some("Roll it."),
        None,
    )
    .expect("prompt");
    let text = tok.decode(&p).expect("decode");
    assert!(
        text.ends_with(
            "<|im_start|>user\nRoll it.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
        ),
        "{text}"
    );
}

#[test]
fn examples_are_numbered_by_loss_runs() {
    let tok = tiny_tokenizer(Some(CHATML_TEMPLATE));
    let m = [
        msg(Role::Output, "a"),
        msg(Role::Output, "b"),
        msg(Role::Output, "c"),
    ];
    let examples = |format| {
        render(&tok, format, &m, None)
            .expect("render")
            .outputs
            .iter()
            .map(|o| (o.index, o.example))
            .collect::<Vec<_>>()
    };
    // Without a description the first output carries no loss in spectrum and
    // chat (in chat it is written into the system turn), so output j is
    // example j - 1 there; colon scores every output.
    assert_eq!(
        examples(PromptFormat::Spectrum),
        [(0, None), (1, Some(0)), (2, Some(1))]
    );
    assert_eq!(examples(PromptFormat::Chat), [(1, Some(0)), (2, Some(1))]);
    assert_eq!(
        examples(PromptFormat::Colon),
        [(0, Some(0)), (1, Some(1)), (2, Some(2))]
    );
}

/// A chat template that does not parse is refused with the template engine's
/// reason, said once; one that raises says what it raised.
#[test]
fn a_broken_chat_template_says_why() {
    let messages = [msg(Role::Input, "hi"), msg(Role::Output, "yo")];
    let tok = tiny_tokenizer(Some("{% for m in messages %}{{ m.content }"));
    let err = render(&tok, PromptFormat::Chat, &messages, None).expect_err("unparsable");
    let text = spectrum_core::chain(&err);
    assert!(
        text.starts_with("chat template: does not parse: "),
        "{text}"
    );
    assert_eq!(text.matches("syntax error").count(), 1, "{text}");
    let tok = tiny_tokenizer(Some("{{ raise_exception('no system turns') }}"));
    let err = render(&tok, PromptFormat::Chat, &messages, None).expect_err("raises");
    let text = spectrum_core::chain(&err);
    assert!(
        text.starts_with("chat template: failed to render: ") && text.contains("no system turns"),
        "{text}"
    );
}
