"""The two batch APIs behind ``core.backend.BatchBackend``: the Gemini Developer API
(``gemini_api``) and Vertex AI (``vertex_ai``). ``hooks.connection.backend_for`` picks one from
the connection; nothing else in the provider asks which API it talks to."""
