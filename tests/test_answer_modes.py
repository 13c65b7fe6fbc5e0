"""Answer modes: the decided pipeline ships the mode whose answers measure best on the tuning split.

The generator is a real tiny Llama run through the real `generate` path whose logits are scripted for given
prompts (`ScriptedLM`): a model whose answers after the forced lead are known to be better than the extracted
sentence (it writes the gold answer), or known to be worse (it copies the chunk's metadata line, as the
10-step CPU adapter did).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from answering.answer import forced_lead
from answering.decision import Decision, DecisionThreshold
from dataset_builder.contract import REFUSAL, Chunk, chat_messages, contexts_from_column, format_answer, render_prompt_text
from helpers import build_tiny_model, build_tokenizer

# Each chunk holds a distractor sentence that shares more question words than the answer sentence, so the
# extracted mode (most shared question words) picks the wrong sentence; a model that reads can do better.
CASES = [
    ("Wie viele ECTS hat das Modul Statistik?", "Statistik",
     "Das Modul Statistik hat viele Übungen. Es bringt 6 ECTS.", "Es bringt 6 ECTS", "6 ECTS"),
    ("Wann findet die Prüfung im Modul Datenbanken statt?", "Datenbanken",
     "Die Prüfung im Modul Datenbanken findet schriftlich statt. Termin ist der 3. Februar.",
     "Termin ist der 3. Februar", "3. Februar"),
    ("Wer leitet das Modul Analysis?", "Analysis",
     "Das Modul Analysis leitet in die Mathematik ein. Verantwortlich ist Frau Weber.",
     "Verantwortlich ist Frau Weber", "Frau Weber"),
]


def case_rows() -> list[dict]:
    rows = []
    for k, (question, title, text, sentence, span) in enumerate(CASES):
        chunks = [Chunk(id=f"c{k}", text=text, title=title),
                  Chunk(id=f"d{k}", text="Die Mensa öffnet um acht Uhr.", title="Mensa")]
        answer = format_answer(sentence, 1, title)
        rows.append({"id": f"q{k}", "question": question, "contexts": [c.to_record() for c in chunks],
                     "answer": answer, "answerable": True, "gold_chunk_id": f"c{k}", "gold_span": span,
                     "messages": chat_messages(question, chunks, answer)})
    chunks = [Chunk(id="m", text="Die Mensa öffnet um acht Uhr.", title="Mensa")]
    rows.append({"id": "q-refuse", "question": "Wer ist die Dekanin?", "contexts": [c.to_record() for c in chunks],
                 "answer": REFUSAL, "answerable": False, "gold_chunk_id": None, "gold_span": "",
                 "messages": chat_messages("Wer ist die Dekanin?", chunks, REFUSAL)})
    return rows


def scripted_model(tokenizer, script: dict[str, str]):
    """A tiny Llama whose greedy continuation of each scripted prompt text is the scripted text (then EOS);
    other prompts get its random logits. Generation runs through transformers' own `generate` (no KV cache,
    so every step sees the whole sequence)."""
    import torch
    from transformers import LlamaForCausalLM

    class ScriptedLM(LlamaForCausalLM):
        def forward(self, input_ids=None, attention_mask=None, **kwargs):
            out = super().forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
            for row in range(input_ids.shape[0]):
                ids = input_ids[row][attention_mask[row].bool()].tolist() if attention_mask is not None \
                    else input_ids[row].tolist()
                for prefix, target in self.script.items():
                    if tuple(ids[:len(prefix)]) == prefix and len(ids) >= len(prefix):
                        done = len(ids) - len(prefix)
                        token = target[done] if done < len(target) else tokenizer.eos_token_id
                        out.logits[row, -1] = -1e4
                        out.logits[row, -1, token] = 1e4
            return out

    base = build_tiny_model(tokenizer)
    model = ScriptedLM(base.config).eval()
    model.load_state_dict(base.state_dict())
    model.generation_config = base.generation_config
    model.generation_config.use_cache = False
    encode = lambda text: tuple(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    model.script = {encode(prompt): list(encode(prompt + " " + text))[len(encode(prompt)):]
                    for prompt, text in script.items()}
    with torch.no_grad():
        model.lm_head.weight[tokenizer.eos_token_id].zero_()
    return model


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def setup(tokenizer, writes, rows=None):
    """Rows, prompts, the decisions (cite chunk 1, refuse the refusal row) and a model scripted by `writes`."""
    rows = rows or case_rows()
    prompts = [render_prompt_text(tokenizer, r["question"], contexts_from_column(r["contexts"])) for r in rows]
    decisions = [Decision(-1.0 if r["answerable"] else 1.0, [0.0, -1.0][:len(r["contexts"])]) for r in rows]
    script = {}
    for row, prompt in zip(rows, prompts):
        if row["answerable"]:
            chunk = contexts_from_column(row["contexts"])[0]
            script[prompt + forced_lead(1, chunk)] = writes(row, chunk)
    return rows, prompts, decisions, scripted_model(tokenizer, script)


def test_forced_lead_is_the_dataset_answer_form_up_to_the_colon():
    chunk = Chunk(id="a", text="x", title="DS-101 Statistik")
    assert forced_lead(2, chunk) == "Laut Abschnitt [2] (DS-101 Statistik):"
    assert format_answer("Es sind 5 ECTS.", 2, chunk.title).startswith(forced_lead(2, chunk) + " ")
    assert forced_lead(1, Chunk(id="b", text="x")) == "Laut Abschnitt [1]:"


def test_a_better_generator_ships_generated(tokenizer):
    from evaluation.answer_modes import measure_modes

    rows, prompts, decisions, model = setup(tokenizer, lambda row, chunk: row["answer"].split(": ", 1)[1])
    mode, figures = measure_modes(["generated", "extracted", "free"], lambda: model, tokenizer, rows, prompts,
                                  decisions, 0.0, max_new_tokens=24, batch_size=2)
    assert figures["generated"]["gold_span_recall"] == 1.0
    assert figures["extracted"]["gold_span_recall"] == 0.0          # the distractor sentences win on overlap
    assert figures["free"]["f1_gr"] < figures["generated"]["f1_gr"]  # free text never refuses here
    assert mode == "generated"


def test_extraction_wins_over_a_generator_that_copies_metadata(tokenizer):
    from evaluation.answer_modes import measure_modes

    # without the distractor sentence the extracted mode finds the answer sentence
    rows = case_rows()
    for row in rows:
        if row["answerable"]:
            contexts = contexts_from_column(row["contexts"])
            contexts[0].text = row["answer"].split(": ", 1)[1]
            row["contexts"] = [c.to_record() for c in contexts]
    rows, prompts, decisions, model = setup(tokenizer, lambda row, chunk: f"Titel: {chunk.title}", rows)
    mode, figures = measure_modes(["generated", "extracted"], lambda: model, tokenizer, rows, prompts, decisions,
                                  0.0, max_new_tokens=24, batch_size=2)
    assert figures["extracted"]["gold_span_recall"] == 1.0 and figures["generated"]["gold_span_recall"] == 0.0
    assert mode == "extracted"


def test_ties_go_to_the_extracted_sentence():
    from evaluation.answer_modes import choose_mode

    same = {"score": 0.8}
    assert choose_mode({"generated": same, "extracted": same, "free": same}) == "extracted"
    assert choose_mode({"generated": {"score": 0.81}, "extracted": same}) == "generated"
    with pytest.raises(ValueError, match="unknown answer modes"):
        choose_mode({"beam": same})


def test_training_records_the_chosen_mode_in_the_decision_file(tokenizer, tmp_path):
    from answering.decision import load_threshold
    from training_space.config import TrainConfig
    from training_space.train import choose_answer_mode

    rows, prompts, decisions, model = setup(tokenizer, lambda row, chunk: row["answer"].split(": ", 1)[1])
    config = TrainConfig()
    config.training.answer_max_new_tokens = 24
    decision = DecisionThreshold(refusal_threshold=0.0, tuned_on="tiny [validation]", mode="lead")
    choose_answer_mode(SimpleNamespace(model=model, processing_class=tokenizer), config, decision, rows, decisions,
                       "tiny [validation]")
    decision.save(tmp_path)
    shipped = load_threshold(str(tmp_path))
    assert shipped.answer_mode == "generated"
    assert set(shipped.answer_modes) == {"generated", "extracted", "free"}
    assert shipped.answer_modes["generated"]["gold_span_recall"] == 1.0


def test_decision_file_answer_mode_is_checked(tmp_path):
    assert DecisionThreshold.from_dict({"refusal_threshold": 0.1, "tuned_on": "x"}).answer_mode == "extracted"
    with pytest.raises(ValueError, match="unknown answer mode 'beam'"):
        DecisionThreshold.from_dict({"refusal_threshold": 0.1, "tuned_on": "x", "answer_mode": "beam"})
