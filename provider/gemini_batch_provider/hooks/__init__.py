"""The gateway to the API (``gemini.GeminiHook``) and the reading of its connection (``connection``)."""

#: The default connection id, here so that operator modules name it without importing the SDK.
DEFAULT_CONN_ID = "gemini_default"
