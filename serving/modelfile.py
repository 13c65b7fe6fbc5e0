"""The Ollama `Modelfile` for an exported GGUF: the project's system prompt, template and stop tokens.

The TEMPLATE is not typed by hand: the model's own chat template (the one training and evaluation render)
is rendered once with marker strings for system, user and answer, and the markers are replaced by Ollama's
`{{ .System }}`, `{{ .Prompt }}` and `{{ .Response }}`. So Ollama builds, for the contract's single-turn
prompt (system prompt + the user turn with numbered chunks and the question), exactly the text the adapter
was trained on.
"""

from __future__ import annotations

from dataset_builder.contract import SYSTEM_PROMPT
from serving.config import ExportError

MARKS = {"system": "RAGDESYSTEMMARK", "user": "RAGDEUSERMARK", "answer": "RAGDEANSWERMARK"}


def ollama_template(tokenizer) -> str:
    """The chat template as an Ollama Go template for one system + user turn and the answer."""
    turns = [{"role": "system", "content": MARKS["system"]}, {"role": "user", "content": MARKS["user"]}]
    prompt = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(turns + [{"role": "assistant", "content": MARKS["answer"]}], tokenize=False)
    if any(mark not in full for mark in MARKS.values()) or not full.startswith(prompt):
        raise ExportError("the chat template does not render system, user and assistant turns one after the "
                          "other, the tokenizer's chat_template, write the Modelfile's TEMPLATE by hand "
                          "(--modelfile false)")
    tail = full[full.index(MARKS["answer"]) + len(MARKS["answer"]):]
    text = prompt.replace("{{", '{{ "{{" }}')
    text = text.replace(MARKS["system"], "{{ .System }}").replace(MARKS["user"], "{{ .Prompt }}")
    return text + "{{ .Response }}" + tail


def stop_tokens(tokenizer, eos_ids: list[int]) -> list[str]:
    """The end-of-turn token the project trains the model to emit, then every other EOS id as text."""
    from training_space.data import end_of_turn_token

    stops = [end_of_turn_token(tokenizer)]
    for token in tokenizer.convert_ids_to_tokens(list(eos_ids)):
        if token and token not in stops:
            stops.append(token)
    return stops


def _quoted(value: str, what: str) -> str:
    if '"""' in value:
        raise ExportError(f'the {what} contains """, the Modelfile, remove the triple quote')
    return f'"""{value}"""'


def render_modelfile(tokenizer, gguf_name: str, eos_ids: list[int], temperature: float, num_ctx: int,
                     system_prompt: str = SYSTEM_PROMPT) -> str:
    lines = [
        "# Ollama Modelfile written by `rag-de export gguf` (spaces-rag-de).",
        "# The user message is the contract's user turn: the numbered context chunks, then the question",
        "# (dataset_builder.contract.render_user_turn); the answer cites `[n]` or is the refusal sentence.",
        "#   ollama create rag-de -f Modelfile && ollama run rag-de",
        f"FROM ./{gguf_name}",
        f"TEMPLATE {_quoted(ollama_template(tokenizer), 'chat template')}",
        f"SYSTEM {_quoted(system_prompt, 'system prompt')}",
    ]
    lines += [f'PARAMETER stop "{token}"' for token in stop_tokens(tokenizer, eos_ids)]
    lines += [f"PARAMETER temperature {temperature:g}", f"PARAMETER num_ctx {num_ctx}"]
    return "\n".join(lines) + "\n"
