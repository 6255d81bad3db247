"""Storage backends behind one small Protocol (`base.Backend`): local directory, S3, memory.

Must not import the rest of `repository`: a backend moves opaque bytes under handles.
"""
