"""llama.cpp's OpenAI-compatible server (`python -m llama_cpp.server`) for the bundled model.

    .venv/bin/python -m rag.llm.llama_server --host 127.0.0.1 --port 8080
    RAG_LLM_URL=http://127.0.0.1:8080 .venv/bin/rag ask "..."

It is llama_cpp.server itself, run after two steps it cannot do alone: the model is assembled from its
parts (and checked), and llama.cpp's AMX code path is switched off (see `rag.llm.local.avoid_amx`: on this
kind of VM it crashes on the first prompt). Arguments are llama_cpp.server's; `--model` defaults to the
bundled model.
"""

from __future__ import annotations

import runpy
import sys

from rag.config import set_offline_env


def main(argv: list[str] | None = None) -> None:
    set_offline_env()
    from rag.llm.assemble import assemble_model
    from rag.llm.local import avoid_amx

    args = list(sys.argv[1:] if argv is None else argv)
    if "--model" not in args:
        args = ["--model", str(assemble_model()), *args]
    avoid_amx()
    sys.argv = ["llama_cpp.server", *args]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
