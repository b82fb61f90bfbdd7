"""Writes, one module per domain: `runs` (create, dispatch, cancel, claim, finish), `events` (the
one write path for steps), `ingest` and `ingest_steps` (batches from agents elsewhere), `caps`,
`prices`, `keys` (API keys), `users`, `replay`, `windows` (spend windows), `webhooks`
(endpoints, the events told to them, and sending). Each function is keyword-only and named
`<entity>_<action>`; views, API operations and tasks call them."""
