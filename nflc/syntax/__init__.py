"""Source text -> AST."""

from nflc.syntax.parser import parse

__all__ = ["parse"]
