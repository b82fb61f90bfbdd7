"""The OTLP door against the native one, for the same content, on PostgreSQL.

    .venv/bin/python bench/bench_otlp.py [--traces 60] [--rounds 3]

Creates its own database (dropped first) and an API key. Each trace is an agent's run as the
GenAI semantic conventions export it: one `invoke_agent` span and 20 children, chat and
tool-call spans alternating (~1.6 KB of protobuf per span). The traces are posted to
/api/v1/otlp/v1/traces; then the runs and steps they became are read back and posted again,
as new runs with the same content, to /api/v1/ingest (one batch per trace). Both go through
Django's request handler in this process (no HTTP server: what is compared is the two doors'
own work), in rounds that alternate the doors, so a busy machine weighs on both alike.

Prints, per stored step, the CPU of this process and of the database's sessions, for each door,
and their ratio (target: OTLP <= 1.2x native). Not a test.
"""

import argparse
import json
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_ingest import (  # noqa: E402
    bench_env,
    create_keys,
    machine,
    postgres_cpu,
    prepare_database,
)

SPANS = 21
EVENT_FIELDS = (
    "kind", "name", "status", "started_at", "ended_at", "input", "output", "model",
    "input_tokens", "output_tokens", "error", "attributes",
)  # fmt: skip


def traces(count: int, seed: int = 5) -> list[tuple[bytes, uuid.UUID]]:
    """(protobuf body, run id) of `count` agent traces."""
    from tests.ingest.test_otlp import request, span

    rng = random.Random(seed)
    filler = "".join(rng.choice("abcdefghij klmnopqrstuvwxyz") for _ in range(4000))

    def text(n):
        at = rng.randrange(2000)
        return filler[at : at + n]

    def said(role, n):
        return json.dumps([{"role": role, "parts": [{"type": "text", "content": text(n)}]}])

    out = []
    for _ in range(count):
        trace, agent = uuid.UUID(int=rng.getrandbits(128)).bytes, rng.randbytes(8)
        root = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "bench-otlp"}
        root["gen_ai.input.messages"] = said("user", 600)
        spans = [span(agent, "invoke_agent bench-otlp", 0, 2000, root, trace=trace)]
        for i in range(SPANS - 1):
            if i % 2 == 0:
                name, attrs = (
                    "chat gpt-4o-mini",
                    {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.request.model": "gpt-4o-mini",
                        "gen_ai.usage.input_tokens": 300,
                        "gen_ai.usage.output_tokens": 50,
                        "gen_ai.input.messages": said("user", 600),
                        "gen_ai.output.messages": said("assistant", 500),
                    },
                )
            else:
                name, attrs = (
                    "execute_tool lookup",
                    {
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": "lookup",
                        "gen_ai.tool.call.arguments": json.dumps({"q": text(700)}),
                        "gen_ai.tool.call.result": text(800),
                    },
                )
            start = 10 + i * 50
            spans.append(
                span(rng.randbytes(8), name, start, start + 30, attrs, parent=agent, trace=trace)
            )
        out.append((request(*spans).SerializeToString(), uuid.UUID(bytes=trace)))
    return out


def native_batch(run_id) -> bytes:
    """The run and steps stored for `run_id`, as one /ingest batch of a new run."""
    from runs.models import Event, Run

    def sent(value):
        return value.isoformat() if hasattr(value, "isoformat") else value

    run = Run.objects.get(id=run_id)
    new_run = str(uuid.uuid4())
    item = {"id": new_run, "agent": run.agent, "status": run.status, "metadata": run.metadata}
    item.update(input=run.input, output=run.output, started_at=sent(run.started_at))
    if run.finished_at:
        item["finished_at"] = sent(run.finished_at)
    ids, events = {}, []
    for step in Event.objects.filter(run_id=run_id).order_by("seq"):
        ids[step.id] = str(uuid.uuid4())
        event = {"id": ids[step.id], "run_id": new_run}
        if step.parent_id:
            event["parent_id"] = ids[step.parent_id]
        for name in EVENT_FIELDS:
            value = getattr(step, name)
            if value not in (None, ""):
                event[name] = sent(value)
        events.append(event)
    return json.dumps({"runs": [item], "events": events}).encode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=60, help="traces per door and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/agentops_bench_otlp"
    )
    parser.add_argument("--cache-url", default=os.environ.get("CACHE_URL", ""))
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="agentops-bench-otlp-"))
    env = bench_env(
        args.database_url,
        data_dir,
        CACHE_URL=args.cache_url,
        DJANGO_SETTINGS_MODULE="agentops.settings",
        AGENTOPS_INGEST_RATE_PER_SECOND="0",
    )
    print(f"machine: {machine()}")
    prepare_database(args.database_url, env)
    key = create_keys(1, env)[0]
    os.environ.update(env)
    import django

    django.setup()
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_HOST="127.0.0.1")
    database = args.database_url.rsplit("/", 1)[1]

    def post(path, body, content_type):
        response = client.post(path, body, content_type=content_type)
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}: {response.content[:300]}")

    def timed(send, bodies) -> tuple[float, float]:
        cpu, db = time.process_time(), postgres_cpu(database)
        for body in bodies:
            send(body)
        return time.process_time() - cpu, postgres_cpu(database) - db

    def otlp(body):
        post("/api/v1/otlp/v1/traces", body, "application/x-protobuf")

    def native(body):
        post("/api/v1/ingest", body, "application/json")

    warm = traces(5, seed=1)
    for body, _ in warm:
        otlp(body)
    for _, run_id in warm:
        native(native_batch(run_id))
    totals = {"otlp": [0.0, 0.0], "native": [0.0, 0.0]}
    for round_ in range(args.rounds):
        made = traces(args.traces, seed=100 + round_)
        app, db = timed(otlp, [body for body, _ in made])
        totals["otlp"][0] += app
        totals["otlp"][1] += db
        app, db = timed(native, [native_batch(run_id) for _, run_id in made])
        totals["native"][0] += app
        totals["native"][1] += db
    steps = args.rounds * args.traces * SPANS
    per_step = {door: [s / steps * 1e6 for s in pair] for door, pair in totals.items()}
    for door, (app, db) in per_step.items():
        print(f"{door:7s} CPU per step: this process {app:.0f} us, PostgreSQL {db:.0f} us, "
              f"both {app + db:.0f} us")  # fmt: skip
    ratio = sum(per_step["otlp"]) / sum(per_step["native"])
    print(f"OTLP / native: {ratio:.2f}x the CPU per step ({steps:,} steps each)")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
