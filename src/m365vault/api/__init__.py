"""The HTTP face: FastAPI app, v3 wire conventions, auth.

Owns: lenient input parsing, exact v3 output shapes, HAL links, paging, the error body.
Must not: hold business rules (those live in `control`), or touch storage directly.
"""
