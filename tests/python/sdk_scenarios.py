"""Scenarios of the official OpenAI Python SDK against switchyard's /v1 front door.

Run by tests/tests/v1_openai_sdk.rs with the virtual environment's interpreter:

    python sdk_scenarios.py SCENARIO

Environment: SY_BASE_URL (the dispatcher's /v1), SY_API_KEY (ROOT_NODE_SECRET), SY_MODEL, and
SY_ARGS (a JSON object with what the scenario expects). A scenario asserts what the client saw
and prints one JSON line of facts for the Rust side to check further (task ids, timings); a
failed assertion exits non-zero with its message.
"""

import json
import os
import sys
import time

import openai

BASE_URL = os.environ["SY_BASE_URL"]
API_KEY = os.environ["SY_API_KEY"]
MODEL = os.environ.get("SY_MODEL", "model-e2e")
ARGS = json.loads(os.environ.get("SY_ARGS", "{}"))
USER = [{"role": "user", "content": "What is the weather in Oslo?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def client(api_key=API_KEY):
    # No retries: a test must see the first answer, not a later one.
    return openai.OpenAI(base_url=BASE_URL, api_key=api_key, max_retries=0, timeout=60)


def create():
    raw = client().chat.completions.with_raw_response.create(model=MODEL, messages=USER)
    c = raw.parse()
    assert c.object == "chat.completion", c
    assert c.id.startswith("chatcmpl-"), c.id
    choice = c.choices[0]
    assert choice.message.role == "assistant", choice
    assert choice.message.content == ARGS["expect"], (choice.message.content, ARGS["expect"])
    assert choice.finish_reason == "stop", choice.finish_reason
    assert c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens, c.usage
    assert c.usage.completion_tokens == ARGS["completion_tokens"], c.usage
    request_id = raw.headers["x-request-id"]
    assert c.id == "chatcmpl-" + request_id, (c.id, request_id)
    return {"request_id": request_id, "model": c.model}


def read_stream(stream):
    """The chunks of a stream, each with the monotonic time it arrived."""
    out = []
    for chunk in stream:
        out.append((time.monotonic(), chunk))
    return out


def stream():
    cl = client()
    facts = {}
    for include_usage in (False, True):
        extra = {"stream_options": {"include_usage": True}} if include_usage else {}
        began = time.monotonic()
        chunks = read_stream(
            cl.chat.completions.create(model=MODEL, messages=USER, stream=True, **extra)
        )
        assert chunks, "no chunk"
        ids = {c.id for _, c in chunks}
        assert len(ids) == 1, ids
        assert len({c.created for _, c in chunks}) == 1
        assert all(c.object == "chat.completion.chunk" for _, c in chunks)
        first = chunks[0][1]
        assert first.choices[0].delta.role == "assistant", first
        assert not first.choices[0].delta.content, first
        with_choices = [(t, c) for t, c in chunks if c.choices]
        content = [(t, c.choices[0].delta.content) for t, c in with_choices if c.choices[0].delta.content]
        text = "".join(piece for _, piece in content)
        assert text == ARGS["expect"], (text, ARGS["expect"])
        assert with_choices[-1][1].choices[0].finish_reason == "stop", with_choices[-1]
        # Incremental: the text arrives in pieces spread over the provider's pauses, not at once.
        assert len(content) >= 3, f"only {len(content)} content chunks"
        spread_ms = (content[-1][0] - content[0][0]) * 1000
        assert spread_ms >= ARGS["min_spread_ms"], f"content arrived within {spread_ms:.0f} ms"
        if include_usage:
            last = chunks[-1][1]
            assert last.choices == [], last
            assert last.usage.completion_tokens == ARGS["completion_tokens"], last.usage
            assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
            facts["usage"] = last.usage.total_tokens
        else:
            assert all(c.usage is None for _, c in chunks), "usage without include_usage"
            facts["first_content_ms"] = round((content[0][0] - began) * 1000)
            facts["spread_ms"] = round(spread_ms)
            facts["content_chunks"] = len(content)
    return facts


def assemble(chunks):
    """Tool calls from streamed deltas, as an SDK user assembles them."""
    calls = {}
    finish = None
    for _, c in chunks:
        if not c.choices:
            continue
        ch = c.choices[0]
        finish = ch.finish_reason or finish
        for d in ch.delta.tool_calls or []:
            call = calls.setdefault(d.index, {"id": None, "name": "", "arguments": ""})
            if d.id:
                call["id"] = d.id
            if d.function and d.function.name:
                call["name"] += d.function.name
            if d.function and d.function.arguments:
                call["arguments"] += d.function.arguments
    return [calls[i] for i in sorted(calls)], finish


def tools():
    cl = client()
    want = ARGS["arguments"]
    # 1. The model asks for the tool (whole answer).
    c = cl.chat.completions.create(model=MODEL, messages=USER, tools=[WEATHER_TOOL])
    choice = c.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    assert choice.message.content is None, choice.message
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather", call
    assert json.loads(call.function.arguments) == want, call.function.arguments
    assert call.id == ARGS["call_id"], call.id
    # 2. The same, streamed: the SDK user assembles the call from its deltas.
    chunks = read_stream(
        cl.chat.completions.create(model=MODEL, messages=USER, tools=[WEATHER_TOOL], stream=True)
    )
    calls, finish = assemble(chunks)
    assert finish == "tool_calls", finish
    assert len(calls) == 1 and calls[0]["name"] == "get_weather", calls
    assert calls[0]["id"] == ARGS["call_id"], calls
    assert json.loads(calls[0]["arguments"]) == want, calls[0]["arguments"]
    pieces = sum(
        1 for _, c in chunks if c.choices and c.choices[0].delta.tool_calls
    )
    # 3. The client runs the tool and answers with a `tool` message; the model answers.
    history = USER + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": ARGS["tool_result"]},
    ]
    final = cl.chat.completions.create(model=MODEL, messages=history, tools=[WEATHER_TOOL])
    assert final.choices[0].message.content == ARGS["expect"], final.choices[0].message
    assert final.choices[0].finish_reason == "stop", final.choices[0]
    return {"tool_call_chunks": pieces}


def models():
    listed = client().models.list()
    ids = sorted(m.id for m in listed.data)
    assert ids == sorted(ARGS["expect"]), (ids, ARGS["expect"])
    assert all(m.object == "model" for m in listed.data)
    return {"models": ids}


def auth():
    try:
        client(api_key="not-the-secret").chat.completions.create(model=MODEL, messages=USER)
    except openai.AuthenticationError as e:
        assert e.status_code == 401, e
        assert e.code == "invalid_api_key", e.body
        return {"status": e.status_code}
    raise AssertionError("a wrong key was accepted")


def bad_request():
    cl = client()
    seen = {}
    cases = [
        ("n", dict(model=MODEL, messages=USER, n=2)),
        ("messages[0].role", dict(model=MODEL, messages=[{"role": "robot", "content": "x"}])),
        ("messages", dict(model=MODEL, messages=[])),
    ]
    for param, kwargs in cases:
        try:
            cl.chat.completions.create(**kwargs)
        except openai.BadRequestError as e:
            assert e.status_code == 400, e
            assert e.param == param, (e.param, param, e.body)
            assert e.type == "invalid_request_error", e.body
            seen[param] = e.message
            continue
        raise AssertionError(f"a bad {param} was accepted")
    return seen


def routing():
    """Each model lands on the queue MODEL_ROUTES sends it to (the task id names its queue)."""
    cl = client()
    out = {}
    for model, queue in ARGS["routes"].items():
        raw = cl.chat.completions.with_raw_response.create(model=model, messages=USER)
        c = raw.parse()
        request_id = raw.headers["x-request-id"]
        # `/v1` tasks wait in the `high` lane: `{queue}.h-…` (see the README, Priority).
        assert request_id.startswith((queue + "-", queue + ".")), (model, request_id, queue)
        assert c.choices[0].message.content, c
        out[model] = request_id
    try:
        cl.chat.completions.create(model=ARGS["unrouted"], messages=USER)
    except openai.NotFoundError as e:
        assert e.code == "model_not_found", e.body
        return out
    raise AssertionError("an unrouted model was accepted")


SCENARIOS = {f.__name__: f for f in [create, stream, tools, models, auth, bad_request, routing]}

if __name__ == "__main__":
    facts = SCENARIOS[sys.argv[1]]()
    print(json.dumps(facts))
