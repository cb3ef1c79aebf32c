"""The compiler's passes: AST -> checked ``SpaceIR`` (``nflc.ir.lower`` drives them)."""
