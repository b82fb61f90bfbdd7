"""Reads, one module per domain: `runs` (lookup, lists and the one cursor), `search` (full text),
`timeline`, `stats` (overview and agents), `caps` (policy, audit, backtest), `prices`, `replay`
(playback, compare, recordings), `export`, `windows`, `webhooks` (endpoints and
delivery logs). Views, API operations and tasks call them."""
