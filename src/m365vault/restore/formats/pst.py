"""`exporttoPst`: not available until the PST writer lands; the API answers 501 with this text."""

from __future__ import annotations

PST_EXPORT_STATUS = 501
PST_EXPORT_UNAVAILABLE = (
    "Export to PST is not available in this version. Use exportToMbox to export a mailbox, folder "
    "or items as one mbox file, saveToEml for the original message files, or savetoMsg for "
    "Outlook .msg files (several items arrive as a ZIP)."
)
