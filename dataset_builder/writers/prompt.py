"""The instruction a generating writer (local LM or HTTP endpoint) gets to turn a gold span into an answer.

It shows the same numbered chunks as the training prompt (rendered by the contract), then names the
gold chunk and span, and asks for a short, grounded, cited German answer.
"""

from __future__ import annotations

from dataset_builder.contract import render_user_turn
from dataset_builder.writers.base import WriteRequest

WRITER_SYSTEM_PROMPT = (
    "Du schreibst Musterantworten für einen deutschen Frage-Antwort-Datensatz. Du bekommst nummerierte "
    "Kontextabschnitte, eine Frage und die richtige Antwort als wörtlichen Auszug aus einem der Abschnitte. "
    "Formuliere daraus eine kurze, vollständige Antwort in ganzen deutschen Sätzen. Die Antwort muss den "
    "Auszug enthalten, darf nur Informationen aus diesem Abschnitt verwenden und nennt die Nummer des "
    "Abschnitts in eckigen Klammern, zum Beispiel [2]. Gib nur die Antwort aus. (Die Quellenangabe am "
    "Anfang der Antwort wird danach einheitlich ergänzt.)"
)


def writer_messages(request: WriteRequest) -> list[dict[str, str]]:
    hint = (f"Richtige Antwort (Auszug aus Abschnitt [{request.gold_number}]): „{request.gold_span}“\n"
            f"Schreibe die Antwort und zitiere Abschnitt [{request.gold_number}].")
    return [
        {"role": "system", "content": WRITER_SYSTEM_PROMPT},
        {"role": "user", "content": render_user_turn(request.question, request.contexts) + "\n\n" + hint},
    ]
