"""Output formats of the restore actions, built from plain bytes and metadata.

Each module turns streams of bytes (an item's MIME, a document's content) into one downloadable
output: the original MIME (`eml`), an Outlook message (`msg`), an mboxrd file (`mbox`), a ZIP of
several outputs (`zipstream`). Nothing here knows the catalog, the connector or the database: the
restore actions look items up and hand over their bytes.

Invariant: outputs are streamed. The only format that needs a whole item in memory is `.msg`
(its compound file is laid out from every stream's size), and it holds one item at a time,
bounded by a size limit.
"""
