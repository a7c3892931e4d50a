"""What the service accepts in ids and product text: one definition for the API's checks and
for the client tools that check a catalogue before sending it (no server install needed).

Ids become point ids and Redis keys, texts become payload: each is bounded, and ids may not
contain control characters (the point id joins product and image id with one).
"""

import re

MAX_ID_CHARS = 256
MAX_TITLE_CHARS = 1024
MAX_DESCRIPTION_CHARS = 8192
MAX_LABELS = 64
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Product set names appear in URLs, metric labels and file names: keep them plain.
PRODUCT_SET = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# The words of a text search (SearchRequest.text): a shopper's query, not a document.
MAX_SEARCH_TEXT_CHARS = 1000
