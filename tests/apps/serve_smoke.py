#!/usr/bin/env python3
"""`lloco serve` over real HTTP (stdlib only): start it on a free port, list the models, ask one
question plainly and streamed (greedy, so both must give the same text), check a 400, then SIGTERM
and expect a clean exit.

usage: serve_smoke.py LLOCO MODEL_DIR STORE_DIR ADAPTER_DIR WORK_DIR [RETRIEVER_DIR]

With RETRIEVER_DIR the server ranks with that dense encoder (--retriever-model), which must leave the
store's chunk keys in STORE_DIR/retrieval/dense.{faiss,json}, one per chunk.
"""
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time


def fail(msg, proc=None, log=None):
    if proc is not None and proc.poll() is None:
        proc.kill()
    if log and os.path.exists(log):
        sys.stderr.write(open(log).read()[-4000:])
    sys.exit("serve_smoke: " + msg)


def request(port, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp, resp.read().decode("utf-8")


def main():
    lloco, model, store, adapter, work = sys.argv[1:6]
    retriever = sys.argv[6] if len(sys.argv) > 6 else None
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    port_file, log = os.path.join(work, "port"), os.path.join(work, "serve.log")
    with open(log, "w") as out:
        proc = subprocess.Popen([lloco, "serve", "--model", model, "--store", store, "--port", "0",
                                 "--port-file", port_file, "--max-tokens", "8"]
                                + (["--retriever-model", retriever] if retriever else []), stdout=out, stderr=out)
    deadline = time.time() + 120
    while not os.path.exists(port_file):
        if proc.poll() is not None or time.time() > deadline:
            fail("the server did not start", proc, log)
        time.sleep(0.1)
    port = int(open(port_file).read())
    if retriever:
        meta = json.load(open(os.path.join(store, "retrieval", "dense.json")))
        stored = [c["id"] for c in json.load(open(os.path.join(store, "manifest.json")))["chunks"]]
        if stored != meta["chunks"]:
            fail("dense.json indexes %r, the store holds %r" % (meta["chunks"], stored), proc, log)

    resp, text = request(port, "GET", "/v1/models")
    ids = [m["id"] for m in json.loads(text)["data"]]
    if resp.status != 200 or ids != ["lloco", "meetings", "base"]:
        fail("GET /v1/models: %d %s" % (resp.status, text), proc, log)

    question = {"model": "lloco", "max_tokens": 8,
                "messages": [{"role": "user", "content": "What did the group decide about the remote control?"}]}
    resp, text = request(port, "POST", "/v1/chat/completions", question)
    answer = json.loads(text) if resp.status == 200 else fail("chat: %d %s" % (resp.status, text), proc, log)
    content = answer["choices"][0]["message"]["content"]
    lloco_info = answer["lloco"]
    if answer["object"] != "chat.completion" or lloco_info["adapter"] != "meetings" or not lloco_info["doc_ids"]:
        fail("chat answer: " + text, proc, log)
    if answer["usage"]["prompt_tokens"] <= 0 or answer["usage"]["completion_tokens"] > 8:
        fail("usage: " + text, proc, log)

    streamed = dict(question, stream=True, stream_options={"include_usage": True})
    resp, text = request(port, "POST", "/v1/chat/completions", streamed)
    events = [line[len("data: "):] for line in text.split("\n") if line.startswith("data: ")]
    if resp.status != 200 or not events or events[-1] != "[DONE]":
        fail("stream: %d %s" % (resp.status, text), proc, log)
    chunks = [json.loads(e) for e in events[:-1]]
    pieces = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    if pieces != content:
        fail("streamed %r but the plain answer was %r" % (pieces, content), proc, log)
    if chunks[-1].get("usage") != answer["usage"]:
        fail("stream usage %r vs %r" % (chunks[-1].get("usage"), answer["usage"]), proc, log)

    resp, text = request(port, "POST", "/v1/chat/completions", dict(question, n=2))
    if resp.status != 400 or json.loads(text)["error"]["param"] != "n":
        fail("n=2: %d %s" % (resp.status, text), proc, log)

    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        fail("no exit 30 s after SIGTERM", proc, log)
    if code != 0:
        fail("exit code %d after SIGTERM" % code, None, log)
    print("serve_smoke: %d models, answer %r from %s with adapter %s (%s); streamed the same in %d chunks; clean stop"
          % (len(ids), content, lloco_info["doc_ids"], lloco_info["adapter"], "dense" if retriever else "bm25",
             len(chunks)))


if __name__ == "__main__":
    main()
