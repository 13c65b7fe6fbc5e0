"""The training Space: a Gradio form that starts `rag-de train` in a subprocess, streams its log, plots the
loss and links the pushed adapter.

The job is the same command a user runs locally (printed in the log), so a Space run and a laptop run
differ only in hardware. Defaults come from the Space variables RAG_DE_DATASET, RAG_DE_BASE_MODEL,
RAG_DE_HUB_MODEL_ID and RAG_DE_TRAIN_CONFIG; the write token is the Space secret HF_TOKEN, which the
subprocess inherits and nothing prints. Run locally: `python -m training_space.app`.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rag_de.base_model import EMBEDDED_MODEL_ID
from training_space.config import PRESETS

JOBS_DIR = Path(os.environ.get("RAG_DE_JOBS_DIR", "jobs"))
POLL_S = 2.0


@dataclass
class JobRequest:
    """What the form asks for; every field maps to one `rag-de train` flag."""

    dataset: str
    base_model: str
    preset: str
    hub_model_id: str = ""
    learning_rate: float | None = None
    max_steps: int | None = None
    batch_size: int | None = None
    lora_r: int | None = None
    lora_alpha: int | None = None
    max_length: int | None = None
    packing: bool | None = None
    extra: list[str] = field(default_factory=list)

    def command(self, run_dir: Path) -> list[str]:
        preset = PRESETS.get(self.preset, Path(self.preset))
        cmd = [sys.executable, "-m", "rag_de", "train", "--config", str(preset), "--output-dir", str(run_dir)]
        if self.dataset:
            cmd += ["--dataset", self.dataset]
        if self.base_model:
            cmd += ["--base-model", self.base_model]
        if self.hub_model_id:
            cmd += ["--hub-model-id", self.hub_model_id]
        flags = {"training.learning_rate": self.learning_rate, "training.max_steps": self.max_steps,
                 "training.per_device_train_batch_size": self.batch_size, "lora.r": self.lora_r,
                 "lora.alpha": self.lora_alpha, "data.max_length": self.max_length, "data.packing": self.packing}
        for flag, value in flags.items():
            if value is not None and value != "":
                cmd += [f"--{flag}", str(value).lower() if isinstance(value, bool) else str(value)]
        return cmd + list(self.extra)


class Job:
    """One `rag-de train` subprocess with its log file and run folder."""

    def __init__(self, request: JobRequest, root: Path = JOBS_DIR):
        self.request = request
        self.dir = Path(root) / time.strftime("%Y%m%d-%H%M%S")
        self.run_dir = self.dir / "run"
        self.log_path = self.dir / "train.log"
        self.dir.mkdir(parents=True, exist_ok=True)
        cmd = request.command(self.run_dir)
        with open(self.log_path, "w", encoding="utf-8") as log:
            log.write("$ rag-de " + " ".join(cmd[3:]) + "\n")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(cmd, stdout=open(self.log_path, "a", encoding="utf-8"),
                                        stderr=subprocess.STDOUT, env=env, start_new_session=True)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.running:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)

    def log_tail(self, max_chars: int = 20000) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        # tqdm redraws with carriage returns: keep the last state of each line
        lines = [line.split("\r")[-1] for line in text.split("\n")]
        return "\n".join(lines)[-max_chars:]

    def status(self) -> str:
        if self.running:
            return "läuft"
        return "fertig" if self.process.returncode == 0 else f"fehlgeschlagen (Exit-Code {self.process.returncode})"


def losses_from_log(text: str) -> list[dict]:
    """Trainer log lines (`{'loss': '0.52', ..., 'epoch': '0.1'}`) -> [{step, loss, kind}] in order."""
    points, step = [], 0
    for line in text.replace("\r", "\n").splitlines():
        start = line.find("{'")
        if start < 0:
            continue
        try:
            row = ast.literal_eval(line[start:line.rindex("}") + 1])
        except (ValueError, SyntaxError):
            continue
        if "loss" in row:
            step += 1
            points.append({"step": step, "loss": float(row["loss"]), "kind": "train"})
        elif "eval_loss" in row:
            points.append({"step": step, "loss": float(row["eval_loss"]), "kind": "eval"})
    return points


def losses_from_state(run_dir: Path) -> list[dict]:
    """The exact curve from trainer_state.json (final, else the newest checkpoint's)."""
    candidates = [run_dir / "trainer_state.json"] + sorted(
        run_dir.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[-1]),
        reverse=True)
    for path in candidates:
        if path.exists():
            history = json.loads(path.read_text()).get("log_history", [])
            return ([{"step": r["step"], "loss": r["loss"], "kind": "train"} for r in history if "loss" in r]
                    + [{"step": r["step"], "loss": r["eval_loss"], "kind": "eval"} for r in history
                       if "eval_loss" in r])
    return []


def loss_points(job: Job) -> list[dict]:
    """Log lines while the job runs (every logging step), trainer_state.json once it is written."""
    from_state = losses_from_state(job.run_dir)
    from_log = losses_from_log(job.log_path.read_text(encoding="utf-8", errors="replace"))
    return from_state if len(from_state) >= len(from_log) else from_log


def adapter_link(job: Job) -> str:
    if job.running:
        return ""
    summary = job.run_dir / "train_summary.json"
    if not summary.exists():
        return "Kein Ergebnis: siehe Log."
    data = json.loads(summary.read_text())
    repo = data.get("hub_model_id")
    figures = (f"{data['global_step']} Schritte, Train-Loss {data['train_loss']}, Eval-Loss {data['eval_loss']}, "
               f"{data['tokens_per_s']} Tokens/s")
    if not repo:
        return f"Fertig ({figures}); Adapter lokal in `{job.run_dir / 'adapter'}` (kein Hub-Repo angegeben)."
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    return f"Fertig ({figures}): Adapter [{repo}]({endpoint}/{repo})"


def build_app(jobs_root: Path = JOBS_DIR):
    import gradio as gr
    import pandas as pd

    state: dict[str, Job | None] = {"job": None}
    default_preset = Path(os.environ.get("RAG_DE_TRAIN_CONFIG", "")).stem or (
        "gpu-mistral7b-24gb" if _has_cuda() else "cpu-smollm2")

    def frame(points):
        return pd.DataFrame(points or [], columns=["step", "loss", "kind"])

    def start(dataset, base_model, preset, hub_model_id, lr, steps, batch, r, alpha, max_length, packing):
        job = state["job"]
        if job is not None and job.running:
            yield job.log_tail(), frame(loss_points(job)), "Es läuft bereits ein Job; erst stoppen."
            return
        request = JobRequest(dataset=dataset.strip(), base_model=base_model.strip(), preset=preset,
                             hub_model_id=hub_model_id.strip(), learning_rate=lr or None,
                             max_steps=int(steps) if steps else None, batch_size=int(batch) if batch else None,
                             lora_r=int(r) if r else None, lora_alpha=int(alpha) if alpha else None,
                             max_length=int(max_length) if max_length else None, packing=packing)
        job = state["job"] = Job(request, jobs_root)
        while True:
            running = job.running
            yield job.log_tail(), frame(loss_points(job)), f"Status: {job.status()}  \n{adapter_link(job)}"
            if not running:
                return
            time.sleep(POLL_S)

    def stop():
        job = state["job"]
        if job is None:
            return "Kein Job."
        job.stop()
        return f"Status: {job.status()} (gestoppt; mit denselben Einstellungen und --resume fortsetzbar)"

    with gr.Blocks(title="spaces-rag-de Training") as app:
        gr.Markdown("# spaces-rag-de: QLoRA-Training\nTrainiert einen LoRA-Adapter, der aus nummerierten "
                    "Kontextabschnitten antwortet, mit [n] zitiert und ablehnt, wenn die Antwort fehlt.")
        with gr.Row():
            dataset = gr.Textbox(label="Datensatz (Hub-Repo)", value=os.environ.get("RAG_DE_DATASET", "org/spaces-rag-de"))
            base_model = gr.Textbox(label="Basismodell", value=os.environ.get(
                "RAG_DE_BASE_MODEL", EMBEDDED_MODEL_ID))
            preset = gr.Dropdown(label="Preset", choices=list(PRESETS), value=default_preset)
            hub_model_id = gr.Textbox(label="Adapter-Repo (Push-Ziel)", value=os.environ.get("RAG_DE_HUB_MODEL_ID", ""))
        with gr.Accordion("Hyperparameter (leer = Preset)", open=False):
            with gr.Row():
                lr = gr.Number(label="Lernrate", value=None)
                steps = gr.Number(label="max_steps", value=None, precision=0)
                batch = gr.Number(label="Batchgröße", value=None, precision=0)
                r = gr.Number(label="LoRA r", value=None, precision=0)
                alpha = gr.Number(label="LoRA alpha", value=None, precision=0)
                max_length = gr.Number(label="max_length", value=None, precision=0)
                packing = gr.Checkbox(label="Packing (padding-frei)", value=None)
        with gr.Row():
            start_btn = gr.Button("Training starten", variant="primary")
            stop_btn = gr.Button("Stoppen")
        status = gr.Markdown()
        plot = gr.LinePlot(frame([]), x="step", y="loss", color="kind", title="Loss", height=300)
        log = gr.Textbox(label="Log", lines=20, max_lines=30, autoscroll=True)
        start_btn.click(start, [dataset, base_model, preset, hub_model_id, lr, steps, batch, r, alpha,
                                max_length, packing], [log, plot, status])
        stop_btn.click(stop, None, status)
    return app


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


if __name__ == "__main__":
    build_app().queue().launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"))
