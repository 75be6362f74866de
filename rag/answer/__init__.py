"""Answerers turn a question and retrieved passages into an Answer whose every `[n]` is a Citation."""

from rag.answer.base import CANNOT_ANSWER, Answerer, DocTexts, abstain, cite

__all__ = ["CANNOT_ANSWER", "Answerer", "DocTexts", "abstain", "cite"]
