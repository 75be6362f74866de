"""The MCP face (streamable HTTP at /mcp), for assistants and IDEs that call tools: `ask`, `search`, `show`.

Built on the `mcp` package's MCPServer (the SDK's FastMCP, renamed in mcp 2), stateless: every request
stands alone, so nothing is kept per client between calls. The tools share the API's slots.
"""

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, ConfigDict, Field

from rag.errors import RagError
from rag.service import Service
from rag.types import Answer
from ui.api_base import Limits, last, run


class CitationOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    n: int
    doc_id: str
    chunk_id: str
    source: str
    title: str
    start: int
    end: int
    quote: str = Field(description="exactly the stored text[start:end] of the document (see `show`)")
    page: int | None = None


class AnswerOut(BaseModel):
    """The JSON answer of the HTTP API (INTERFACE.md)."""

    model_config = ConfigDict(extra="allow")

    question: str
    answer: str = Field(description="the answer with [n] markers, each resolved in `citations`")
    abstained: bool
    citations: list[CitationOut]


def answer_text(ans: Answer) -> str:
    """The answer, then its numbered sources with their quotes: what a model reading only text needs."""
    lines = [ans.answer]
    if ans.citations:
        lines.append("")
        lines += [f'[{c.n}] {c.source} ({c.start}-{c.end}): "{c.quote}"' for c in ans.citations]
    return "\n".join(lines)


def build_mcp(service: Service, limits: Limits) -> MCPServer:
    mcp = MCPServer("rag", log_level="WARNING", instructions=(
        "Answers questions from the indexed documents. Every claim in an answer carries a [n] marker whose "
        "citation gives the document, the character span and the exact quote; `show` returns a document's "
        "stored text, in which text[start:end] == quote."))

    @mcp.tool()
    async def ask(question: str, history: list[dict[str, str]] | None = None,
                  k: int | None = None) -> Annotated[CallToolResult, AnswerOut]:
        """Answer a question from the documents, with citations (exact quotes and their offsets). `history`:
        earlier turns, oldest first, as [{"role": "user" or "assistant", "content": "..."}]."""
        try:
            _, ans = await last(limits.answers, lambda: service.ask_stream(question, history, k))
        except RagError as e:
            raise ToolError(str(e)) from None
        return CallToolResult(content=[TextContent(type="text", text=answer_text(ans))],
                              structured_content=ans.to_json())

    @mcp.tool()
    async def search(query: str, k: int = 5) -> dict[str, Any]:
        """Retrieval only: the k passages that best match the query, with their offsets in the document."""
        try:
            hits = await run(limits.searches, lambda: service.search(query, k))
        except RagError as e:
            raise ToolError(str(e)) from None
        return {"query": query, "hits": [h.to_json() for h in hits]}

    @mcp.tool(structured_output=False)  # the text itself, not a copy wrapped in {"result": ...}
    async def show(doc_id: str) -> str:
        """A document's stored text, by doc_id or by source: the text that citation offsets index into."""
        try:
            return await run(limits.searches, lambda: service.show(doc_id))
        except RagError as e:
            raise ToolError(str(e)) from None

    return mcp
